/** The iret of a protected-mode guest whose interrupt frame PVM wrote at ESP without the SS base (pvm-frame.ts). */
import test from 'node:test';
import assert from 'node:assert/strict';
import { emulate } from './index.js';
import { FakeMem, FakeVcpu, longSregs } from './fake-vcpu.js';
import type { Segment } from '../kvm/vcpu.js';

const BASE = 0x10000;
const GDT = 0x800;
const ESP = 0x2000;

function seg(selector: number, type: number, base: number): Segment {
  return { base: BigInt(base), limit: 0xffffffff, selector, type, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 };
}

/** Flat 32-bit protected mode as iPXE runs it: CS (conforming) and SS based at BASE. */
function setup(ssBase = BASE) {
  const v = new FakeVcpu();
  const m = new FakeMem();
  const s = longSregs();
  s.efer = 0n;
  s.cr0 = 0x11n;
  s.cr4 = 0n;
  s.gdt = { base: BigInt(GDT), limit: 0x17 };
  s.seg.cs = seg(0x08, 0xf, BASE);
  for (const k of ['ds', 'es', 'fs', 'gs', 'ss'] as const) s.seg[k] = seg(0x10, 0x3, ssBase);
  v.sregs = s;
  v.regs.rip = 0x100n;
  v.regs.rsp = BigInt(ESP);
  v.regs.rflags = 0x2n;
  const dv = new DataView(m.bytes.buffer);
  dv.setBigUint64(GDT + 0x08, 0x00cf9f000000ffffn | (BigInt(BASE >> 16) << 32n), true);
  dv.setBigUint64(GDT + 0x10, 0x00cf93000000ffffn | (BigInt(ssBase >> 16) << 32n), true);
  m.bytes[BASE + 0x100] = 0xcf; // iretd
  const frame = (at: number, eip: number, cs: number, flags: number) => {
    dv.setUint32(at, eip, true); dv.setUint32(at + 4, cs, true); dv.setUint32(at + 8, flags, true);
  };
  return { v, m, dv, frame };
}

test('a frame PVM left at flat ESP is moved to SS:ESP and the iret returns through it', () => {
  const { v, m, dv, frame } = setup();
  frame(ESP, 0x1234, 0x08, 0x246);                 // where PVM wrote it
  frame(BASE + ESP, 0x138ef, 0x800, 0x1396e);      // stale words where the guest looks
  const out = emulate({ vcpu: v, mem: m });
  assert.deepEqual(out, { ok: true, what: 'iretd (PVM frame)' });
  assert.equal(v.regs.rip, 0x1234n);
  assert.equal(v.regs.rsp, BigInt(ESP + 12));
  assert.equal(v.regs.rflags, 0x246n);
  assert.equal(v.injected, undefined);
  assert.deepEqual([dv.getUint32(ESP, true), dv.getUint32(ESP + 4, true), dv.getUint32(ESP + 8, true)], [0, 0, 0]);
  assert.deepEqual([dv.getUint32(BASE + ESP, true), dv.getUint32(BASE + ESP + 4, true)], [0x1234, 0x08]);
});

test('without a frame at flat ESP the iret reads SS:ESP as usual', () => {
  const { v, m, frame } = setup();
  frame(BASE + ESP, 0x4321, 0x08, 0x202);
  const out = emulate({ vcpu: v, mem: m });
  assert.deepEqual(out, { ok: true, what: 'iretd' });
  assert.equal(v.regs.rip, 0x4321n);
  // Neither frame usable: the iret's own #GP, as before.
  const b = setup();
  b.frame(BASE + ESP, 0x138ef, 0x800, 0x1396e);
  b.frame(ESP, 0x1234, 0x08, 0x8246);              // EFLAGS bit 15 set: not a frame
  emulate({ vcpu: b.v, mem: b.m });
  assert.deepEqual(b.v.injected, [13, 0x800]);
});

test('an SS based at 0 is left alone', () => {
  const { v, m, frame } = setup(0);
  frame(ESP, 0x1234, 0x08, 0x246);
  assert.deepEqual(emulate({ vcpu: v, mem: m }), { ok: true, what: 'iretd' });
  assert.equal(v.regs.rip, 0x1234n);
});
