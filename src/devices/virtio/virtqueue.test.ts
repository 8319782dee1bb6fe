import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as V from './constants.js';
import { AVAIL, DESC, N, RAM, ROM_BASE, ROM_SIZE, USED, fakeMem, queueOn } from './ring-fixture.js';

function setup(features = V.bit(V.F_RING_INDIRECT_DESC), size = N) {
  return queueOn(fakeMem(), features, size);
}

const { NEXT } = { NEXT: V.DESC_F_NEXT }, W = V.DESC_F_WRITE, IND = V.DESC_F_INDIRECT;

test('a good chain: readable then writable views into guest memory; used ring updated', () => {
  const { mem, q, desc, offer } = setup();
  desc(0, 0x10000, 16, NEXT, 1);
  desc(1, 0x11000, 4096, NEXT | W, 2);
  desc(2, 0x12000, 1, W);
  offer(0);
  assert.equal(q.pending(), 1);
  const c = q.pop()!;
  assert.equal(c.error, undefined);
  assert.deepEqual([c.head, c.readBytes, c.writeBytes, c.readable.length, c.writable.length], [0, 16, 4097, 1, 2]);
  c.writable[0][0] = 0xab;
  assert.equal(mem.ram[0x11000], 0xab, 'views alias guest memory');
  assert.equal(q.pop(), undefined);
  q.push(c.head, 4097);
  assert.equal(mem.dv.getUint16(USED + 2, true), 1);
  assert.deepEqual([mem.dv.getUint32(USED + 4, true), mem.dv.getUint32(USED + 8, true)], [0, 4097]);
});

test('buffers outside guest memory, or running past it, spoil the chain but the walk finds the status', () => {
  for (const [addr, len] of [[2n ** 40n, 512], [0x10000n, 0xfffff000], [BigInt(RAM - 8), 16], [2n ** 64n - 1n, 1], [BigInt(ROM_BASE + ROM_SIZE - 1), 2]] as [bigint, number][]) {
    const { q, desc, offer } = setup();
    desc(0, 0x10000, 16, NEXT, 1);
    desc(1, addr, len, NEXT | W, 2);
    desc(2, 0x12000, 1, W);
    offer(0);
    const c = q.pop()!;
    assert.match(c.error ?? '', /outside guest memory|read-only/, `${addr}+${len}`);
    assert.equal(c.writable.length, 1, 'only the status buffer');
    assert.equal(c.writable[0].byteOffset, 0x12000);
  }
});

test('a device-writable buffer in read-only memory is refused', () => {
  const { q, desc, offer } = setup();
  desc(0, ROM_BASE, 16, W);
  offer(0);
  assert.match(q.pop()!.error ?? '', /read-only/);
});

test('loops and indexes beyond the queue end the walk with an error', () => {
  const cases: [string, (d: ReturnType<typeof setup>['desc']) => void, RegExp][] = [
    ['self loop', (d) => d(0, 0x10000, 1, NEXT | W, 0), /loops/],
    ['two-cycle', (d) => { d(0, 0x10000, 1, NEXT, 1); d(1, 0x10000, 1, NEXT, 0); }, /loops/],
    ['next beyond', (d) => d(0, 0x10000, 16, NEXT, 999), /index 999 beyond/],
    ['readable after writable', (d) => { d(0, 0x10000, 1, NEXT | W, 1); d(1, 0x10000, 1, 0); }, /readable buffer after/],
  ];
  for (const [name, build, re] of cases) {
    const { q, desc, offer } = setup();
    build(desc);
    offer(0);
    const c = q.pop()!;
    assert.match(c.error ?? '', re, name);
    assert.ok(c.readable.length + c.writable.length <= N + 1, `${name}: bounded`);
  }
});

test('indirect tables: used when negotiated, every defect refused', () => {
  const T = 0x8000;
  const good = setup();
  good.desc(0, T, 48, IND);
  good.desc(0, 0x10000, 16, NEXT, 1, T);
  good.desc(1, 0x11000, 512, NEXT | W, 2, T);
  good.desc(2, 0x12000, 1, W, 0, T);
  good.offer(0);
  const c = good.q.pop()!;
  assert.equal(c.error, undefined);
  assert.deepEqual([c.readBytes, c.writeBytes], [16, 513]);

  const cases: [string, (s: ReturnType<typeof setup>) => void, RegExp, bigint?][] = [
    ['not negotiated', (s) => s.desc(0, T, 16, IND), /not negotiated/, 0n],
    ['length not a multiple of 16', (s) => s.desc(0, T, 40, IND), /indirect table length 40/],
    ['empty', (s) => s.desc(0, T, 0, IND), /indirect table length 0/],
    ['too long', (s) => s.desc(0, T, 16 * (V.INDIRECT_MAX + 1), IND), /indirect table length/],
    ['outside memory', (s) => s.desc(0, 2 ** 40, 32, IND), /outside guest memory/],
    ['with NEXT', (s) => s.desc(0, T, 32, IND | NEXT, 1), /NEXT set/],
    ['nested', (s) => { s.desc(0, T, 32, IND); s.desc(0, T, 32, IND, 0, T); }, /nested/],
    ['loop inside', (s) => { s.desc(0, T, 32, IND); s.desc(0, 0x10000, 1, NEXT, 1, T); s.desc(1, 0x10000, 1, NEXT, 0, T); }, /loops/],
    ['index beyond the table', (s) => { s.desc(0, T, 32, IND); s.desc(0, 0x10000, 1, NEXT, 5, T); }, /beyond the 2-entry indirect table/],
  ];
  for (const [name, build, re, features] of cases) {
    const s = setup(features ?? V.bit(V.F_RING_INDIRECT_DESC));
    build(s);
    s.offer(0);
    assert.match(s.q.pop()!.error ?? '', re, name);
  }
});

test('a head beyond the queue or an available index running ahead breaks the queue', () => {
  const a = setup();
  a.offer(N);
  assert.equal(a.q.pop(), undefined);
  assert.equal(a.broken.length, 1);
  assert.match(a.broken[0], /head descriptor 8 beyond/);
  assert.ok(a.q.broken && !a.q.ready);
  a.offer(0);
  assert.equal(a.q.pop(), undefined, 'a broken queue stays stopped');
  assert.equal(a.broken.length, 1, 'reported once');

  const b = setup();
  b.mem.dv.setUint16(AVAIL + 2, N + 1, true);
  assert.equal(b.q.pop(), undefined);
  assert.match(b.broken[0], /runs 9 entries ahead/);
  b.q.reset();
  assert.ok(!b.q.broken, 'reset clears it');
});

test('rings outside guest memory break the queue', () => {
  const s = setup();
  s.q.enabled = false;
  s.q.setReg('usedLo', RAM - 4);
  s.q.enabled = true;
  s.offer(0);
  assert.equal(s.q.pop(), undefined);
  assert.match(s.broken[0], /rings outside guest memory/);
});

test('indexes wrap at 2^16', () => {
  const s = setup();
  s.desc(0, 0x10000, 4, W);
  for (let i = 0; i < 70000; i++) {
    s.offer(0);
    const c = s.q.pop()!;
    assert.ok(c && !c.error);
    s.q.push(c.head, 4);
  }
  assert.equal(s.mem.dv.getUint16(USED + 2, true), 70000 & 0xffff);
  assert.equal(s.broken.length, 0);
});

test('interrupt suppression: NO_INTERRUPT, and EVENT_IDX used_event', () => {
  const s = setup();
  s.desc(0, 0x10000, 4, W);
  s.offer(0); s.q.push(s.q.pop()!.head, 4);
  assert.equal(s.q.needsInterrupt(), true);
  s.mem.dv.setUint16(AVAIL, V.AVAIL_F_NO_INTERRUPT, true);
  assert.equal(s.q.needsInterrupt(), false);

  const e = setup(V.bit(V.F_RING_EVENT_IDX));
  e.desc(0, 0x10000, 4, W);
  const usedEvent = (v: number) => e.mem.dv.setUint16(AVAIL + 4 + 2 * N, v, true);
  const complete = () => { e.offer(0); e.q.push(e.q.pop()!.head, 4); };
  complete();
  assert.equal(e.q.needsInterrupt(), true, 'the first one always');
  usedEvent(5);
  complete(); // used idx 2
  assert.equal(e.q.needsInterrupt(), false, 'driver waits for entry 5');
  complete(); complete(); complete(); complete(); // used idx 6 crosses 5
  assert.equal(e.q.needsInterrupt(), true);
  e.q.notifications(true);
  assert.equal(e.mem.dv.getUint16(USED + 4 + 8 * N, true), 6, 'avail_event = next index the device will read');
  const p = setup();
  p.q.notifications(false);
  assert.equal(p.mem.dv.getUint16(USED, true), V.USED_F_NO_NOTIFY);
  p.q.notifications(true);
  assert.equal(p.mem.dv.getUint16(USED, true), 0);
});

test('legacy PFN places the three rings in one aligned block', () => {
  const s = setup(0n, 256);
  s.q.reset();
  s.q.pfn = 0x10;
  assert.deepEqual([s.q.addr('desc'), s.q.addr('avail'), s.q.addr('used')], [0x10000, 0x11000, 0x12000]);
  assert.equal(s.q.pfn, 0x10);
  assert.ok(s.q.enabled);
  s.q.pfn = 0;
  assert.ok(!s.q.enabled);
});

test('fuzz: random rings never throw and views stay inside guest memory', () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let round = 0; round < 300; round++) {
    const s = setup(rnd() < 0.5 ? V.bit(V.F_RING_INDIRECT_DESC) | V.bit(V.F_RING_EVENT_IDX) : 0n);
    for (let b = DESC; b < DESC + 16 * N; b++) s.mem.ram[b] = rnd() * 256;
    for (let b = 0x8000; b < 0x8400; b++) s.mem.ram[b] = rnd() * 256;
    for (let i = 0; i < N; i++) { // plausible addresses some of the time
      if (rnd() < 0.5) s.mem.dv.setBigUint64(DESC + 16 * i, BigInt(Math.floor(rnd() * RAM * 1.2)), true);
      if (rnd() < 0.3) s.mem.dv.setBigUint64(DESC + 16 * i, 0x8000n, true);
    }
    s.mem.dv.setUint16(AVAIL + 2, Math.floor(rnd() * (N + 3)), true);
    for (let i = 0; i < N; i++) s.mem.dv.setUint16(AVAIL + 4 + 2 * i, Math.floor(rnd() * (N + 2)), true);
    for (let k = 0; k < N + 2; k++) {
      const c = s.q.pop();
      if (!c) break;
      for (const v of [...c.readable, ...c.writable]) {
        assert.ok(v.buffer === s.mem.ram.buffer && v.byteOffset + v.length <= RAM, 'inside RAM');
      }
      s.q.push(c.head, c.writeBytes);
      s.q.needsInterrupt();
    }
  }
});
