/**
 * GuestMemory copies: small copies on a thread without a view of the
 * segment go through a view of their own range, larger ones through the
 * segment's view; both must land on the same host bytes, and nothing may
 * reach outside the segments.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocHost } from './vm.js';
import { GuestMemory, MemoryError, MiB, type Segment } from './memory.js';

function twoSegments(): Segment[] {
  const a = allocHost(4 * MiB, false), b = allocHost(4 * MiB, false);
  return [
    { name: 'lowmem', gpa: 0, size: 4 * MiB, host: a, readonly: false, devmem: false },
    { name: 'bootrom', gpa: 16 * MiB, size: 4 * MiB, host: b, readonly: true, devmem: true },
  ];
}

const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

test('memory: a small copy (own view) and a large one (segment view) see the same bytes', () => {
  const segs = twoSegments();
  const writer = new GuestMemory(segs);
  const small = pattern(4096, 7);
  writer.write(0x1000, small);
  // Another thread's GuestMemory over the same host memory: reads through the segment's view.
  const reader = new GuestMemory(segs);
  const big = reader.read(0, 2 * MiB);
  assert.deepEqual(big.subarray(0x1000, 0x2000), small);
  assert.deepEqual(reader.slice(0x1000, 4096), small);
  // A large write, then a small read on a fresh object (own view) sees it.
  const large = pattern(2 * MiB, 3);
  reader.write(MiB, large);
  assert.deepEqual(new GuestMemory(segs).read(MiB + 100, 300), large.subarray(100, 400));
  // Devmem segments take loader writes too (ROMs are filled this way).
  writer.write(16 * MiB + 10, Uint8Array.of(1, 2, 3));
  assert.deepEqual([...new GuestMemory(segs).read(16 * MiB + 10, 3)], [1, 2, 3]);
});

test('memory: copies that leave the segments throw MemoryError and change nothing outside', () => {
  const segs = twoSegments();
  const m = new GuestMemory(segs);
  assert.throws(() => m.write(4 * MiB - 2, Uint8Array.of(1, 2, 3, 4)), MemoryError);
  assert.throws(() => m.read(8 * MiB, 1), MemoryError);
  assert.throws(() => m.read(20 * MiB - 1, 2), MemoryError);
  assert.equal(m.slice(4 * MiB - 2, 4), undefined);
  assert.equal(m.slice(-1, 1), undefined);
});
