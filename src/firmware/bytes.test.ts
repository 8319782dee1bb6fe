import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteWriter, byteSum, checksum, concat } from './bytes.js';

test('ByteWriter writes little-endian and grows', () => {
  const w = new ByteWriter();
  for (let i = 0; i < 100; i++) w.u32(0x04030201);
  w.u64(0x0102030405060708n).u16(0xbeef).ascii('AB', 4);
  const b = w.finish();
  assert.equal(b.length, 400 + 8 + 2 + 4);
  assert.deepEqual([...b.subarray(0, 4)], [1, 2, 3, 4]);
  assert.deepEqual([...b.subarray(400, 408)], [8, 7, 6, 5, 4, 3, 2, 1]);
  assert.deepEqual([...b.subarray(410)], [0x41, 0x42, 0x20, 0x20]);
  assert.throws(() => new ByteWriter().u8(256), /does not fit/);
  assert.throws(() => new ByteWriter().ascii('TOOLONG', 4), /longer/);
});

test('checksums make the byte sum zero', () => {
  const w = new ByteWriter().u8(0).u32(0xdeadbeef).u8(7);
  w.patchChecksum(0, 0, w.length);
  assert.equal(byteSum(w.finish()), 0);
  assert.equal(checksum(Uint8Array.of(1, 2, 3)), 250);
  assert.deepEqual([...concat([Uint8Array.of(1), Uint8Array.of(2, 3)])], [1, 2, 3]);
});
