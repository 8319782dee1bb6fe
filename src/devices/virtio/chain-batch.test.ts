import { test } from 'node:test';
import assert from 'node:assert/strict';
import { koffi } from '../../kvm/libc.js';
import { ChainBatch, GuestPieces } from './chain-batch.js';
import * as V from './constants.js';
import { AVAIL, DESC, N, RAM, ROM_BASE, ROM_SIZE, USED, fakeMem, queueOn } from './ring-fixture.js';

const NEXT = V.DESC_F_NEXT, W = V.DESC_F_WRITE, IND = V.DESC_F_INDIRECT;

function setup(features = V.bit(V.F_RING_INDIRECT_DESC), mem = fakeMem()) {
  const { q, broken, desc, offer } = queueOn(mem, features);
  const batch = (maxChains = 16, maxPieces = 64, perChain = 16) => new ChainBatch(new GuestPieces(mem), maxChains, maxPieces, perChain);
  return { mem, q, broken, desc, offer, batch };
}

const hostOf = (v: Uint8Array): number => Number(koffi.address(v.buffer)) + v.byteOffset;
/** Piece p of the batch as [host address, length]. */
const piece = (b: ChainBatch, p: number): [number, number] => [b.iov[4 * p] + b.iov[4 * p + 1] * 2 ** 32, b.iov[4 * p + 2]];

test('a batch: iovecs point straight into guest memory, readable first; the used index moves once', () => {
  const { mem, q, desc, offer, batch } = setup();
  desc(0, 0x10000, 16, NEXT, 1);
  desc(1, 0x11000, 4096, NEXT | W, 2);
  desc(2, 0x12000, 1, W);
  desc(3, ROM_BASE + 8, 100, 0); // readable ROM is fine
  offer(0); offer(3);
  const b = batch();
  assert.equal(q.popBatch(b, 16), 2);
  assert.deepEqual([...b.heads.subarray(0, 2)], [0, 3]);
  assert.deepEqual([b.nRead[0], b.nWrite[0], b.readBytes[0], b.writeBytes[0], b.drop[0]], [1, 2, 16, 4097, 0]);
  assert.deepEqual([0, 1, 2].map((p) => piece(b, p)), [[hostOf(mem.ram) + 0x10000, 16], [hostOf(mem.ram) + 0x11000, 4096], [hostOf(mem.ram) + 0x12000, 1]]);
  assert.deepEqual([b.first[1], b.nRead[1], piece(b, 3)], [3, 1, [hostOf(mem.rom) + 8, 100]]);
  mem.ram[0x10000 + 5] = 0x5a; mem.rom[8 + 1] = 0xa5;
  assert.deepEqual([b.readByte(0, 5), b.readByte(1, 1)], [0x5a, 0xa5]);
  assert.equal(q.popBatch(b, 16), 0);
  assert.equal(q.pending(), 0);
  q.pushBatch(b, 0); // b was emptied by the last popBatch: nothing moves
  assert.equal(mem.dv.getUint16(USED + 2, true), 0);
  offer(3); offer(0);
  q.popBatch(b, 16);
  q.pushBatch(b, 7);
  assert.equal(mem.dv.getUint16(USED + 2, true), 2);
  assert.deepEqual([mem.dv.getUint32(USED + 4, true), mem.dv.getUint32(USED + 8, true), mem.dv.getUint32(USED + 12, true)], [3, 7, 0]);
});

test('bad chains are marked and only their head is kept; the others go on', () => {
  const T = 0x8000;
  const cases: [string, (s: ReturnType<typeof setup>) => void, RegExp][] = [
    ['outside memory', (s) => s.desc(0, 2 ** 40, 16, 0), /outside guest memory/],
    ['running past RAM', (s) => s.desc(0, RAM - 8, 16, 0), /outside guest memory/],
    ['above 2^53', (s) => s.desc(0, 2n ** 64n - 1n, 1, 0), /outside guest memory/],
    ['writable in ROM', (s) => s.desc(0, ROM_BASE, 16, W), /read-only/],
    ['self loop', (s) => s.desc(0, 0x10000, 1, NEXT, 0), /loops/],
    ['next beyond', (s) => s.desc(0, 0x10000, 16, NEXT, 999), /index 999 beyond/],
    ['readable after writable', (s) => { s.desc(0, 0x10000, 1, NEXT | W, 1); s.desc(1, 0x10000, 1, 0); }, /readable buffer after/],
    ['indirect: nested', (s) => { s.desc(0, T, 32, IND); s.desc(0, T, 32, IND, 0, T); }, /nested/],
    ['indirect: outside memory', (s) => s.desc(0, 2 ** 40, 32, IND), /outside guest memory/],
    ['indirect: bad length', (s) => s.desc(0, T, 40, IND), /indirect table length 40/],
    ['indirect: loop inside', (s) => { s.desc(0, T, 32, IND); s.desc(0, 0x10000, 1, NEXT, 1, T); s.desc(1, 0x10000, 1, NEXT, 0, T); }, /loops/],
    ['too many buffers', (s) => { for (let i = 0; i < 6; i++) s.desc(i, 0x10000, 1, i < 5 ? NEXT : 0, i + 1); }, /more than 4 buffers/],
  ];
  for (const [name, build, re] of cases) {
    const s = setup();
    build(s);
    s.desc(7, 0x20000, 64, 0);
    s.offer(0); s.offer(7);
    const b = s.batch(16, 64, name === 'too many buffers' ? 4 : 16);
    assert.equal(s.q.popBatch(b, 16), 2, name);
    assert.equal(b.drop[0], 1, name);
    assert.match(b.error[0] ?? '', re, name);
    assert.deepEqual([b.heads[1], b.drop[1], b.readBytes[1]], [7, 0, 64], `${name}: the next chain`);
    for (let p = 0; p < b.pieces; p++) {
      const [host, len] = piece(b, p);
      assert.ok(host >= hostOf(s.mem.ram) && host + len <= hostOf(s.mem.ram) + RAM, `${name}: inside RAM`);
    }
    assert.equal(s.broken.length, 0, name);
  }
});

test('a batch stops at its chain limit or when a largest chain would not fit', () => {
  const s = setup();
  s.desc(0, 0x10000, 16, 0);
  for (let i = 0; i < 5; i++) s.offer(0);
  const b = s.batch(3, 64, 4);
  assert.equal(s.q.popBatch(b, 16), 3);
  assert.equal(s.q.pending(), 2);
  const small = s.batch(16, 10, 4); // room for 2 pieces after the first chain's... then a 4-piece chain would not fit
  assert.equal(s.q.popBatch(small, 16), 2);
  assert.equal(s.q.popBatch(b, 1), 0);
  assert.equal(s.q.pending(), 0);
});

test('a head beyond the queue or a runaway available index breaks the queue', () => {
  const a = setup();
  a.desc(0, 0x10000, 16, 0);
  a.offer(0); a.offer(N);
  const b = a.batch();
  assert.equal(a.q.popBatch(b, 16), 1, 'the chain before the bad head is taken');
  assert.match(a.broken[0], /head descriptor 8 beyond/);
  assert.equal(a.q.popBatch(b, 16), 0);
  const r = setup();
  r.mem.dv.setUint16(AVAIL + 2, N + 1, true);
  assert.equal(r.q.popBatch(r.batch(), 16), 0);
  assert.match(r.broken[0], /runs 9 entries ahead/);
});

test('fuzz: popBatch takes the same chains as pop, with the same buffers', () => {
  let seed = 4242;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let round = 0; round < 400; round++) {
    const features = rnd() < 0.7 ? V.bit(V.F_RING_INDIRECT_DESC) : 0n;
    const one = setup(features);
    const plausible = (table: number, count: number): void => {
      for (let i = 0; i < count; i++) {
        const r = rnd(), o = table + 16 * i;
        const ind = rnd() < 0.15;
        const addr = ind ? 0x8000 : r < 0.8 ? Math.floor(rnd() * RAM) : r < 0.9 ? ROM_BASE + Math.floor(rnd() * ROM_SIZE) : Math.floor(rnd() * 2 ** 40);
        one.mem.dv.setBigUint64(o, BigInt(addr), true);
        one.mem.dv.setUint32(o + 8, ind ? 16 * Math.floor(rnd() * 5) : Math.floor(rnd() * 8192), true);
        one.mem.dv.setUint16(o + 12, (rnd() < 0.6 ? NEXT : 0) | (rnd() < 0.3 ? W : 0) | (ind ? IND : 0), true);
        one.mem.dv.setUint16(o + 14, Math.floor(rnd() * (count + 1)), true);
      }
    };
    if (rnd() < 0.2) for (let b = DESC; b < DESC + 16 * N; b++) one.mem.ram[b] = rnd() * 256;
    else plausible(DESC, N);
    plausible(0x8000, 4);
    one.mem.dv.setUint16(AVAIL + 2, Math.floor(rnd() * (N + 3)), true);
    for (let i = 0; i < N; i++) one.mem.dv.setUint16(AVAIL + 4 + 2 * i, Math.floor(rnd() * (N + 2)), true);
    const two = setup(features, fakeMem(one.mem.ram, one.mem.rom));
    const b = two.batch(N, 8 * 1024, 1024);
    const got = two.q.popBatch(b, N);
    for (let i = 0; ; i++) {
      const c = one.q.pop();
      if (!c) { assert.equal(got, i, `round ${round}: as many chains`); break; }
      assert.ok(i < got, `round ${round}: chain ${i} taken by both`);
      assert.equal(b.heads[i], c.head);
      assert.equal(b.drop[i] === 1, c.error !== undefined, `round ${round}, chain ${i}: ${c.error} / ${b.error[i]}`);
      if (c.error) continue;
      assert.deepEqual([b.readBytes[i], b.writeBytes[i], b.nRead[i], b.nWrite[i]], [c.readBytes, c.writeBytes, c.readable.length, c.writable.length]);
      [...c.readable, ...c.writable].forEach((v, k) => assert.deepEqual(piece(b, b.first[i] + k), [hostOf(v), v.length]));
    }
    assert.deepEqual(two.broken, one.broken, `round ${round}`);
  }
});
