/** x87 arithmetic on the fake vCPU: a sequence of instructions on one FPU state. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { emulate } from './index.js';
import { FakeMem, FakeVcpu } from './fake-vcpu.js';
import { fromExtended, toExtended } from './x87.js';

function seq(v: FakeVcpu, m: FakeMem, ...insns: string[]): void {
  for (const hex of insns) {
    v.regs.rip = 0x100n;
    const out = emulate({ vcpu: v, mem: m }, Buffer.from(hex.replace(/ /g, ''), 'hex'));
    assert.ok(out.ok, out.ok ? '' : out.report);
    assert.equal(v.injected, undefined, hex);
  }
}

test('80-bit extended conversions round-trip doubles', () => {
  for (const x of [1, -2.5, Math.PI, 1e300, 3e-300, 0.1, 0, -0, Infinity]) assert.ok(Object.is(fromExtended(toExtended(x)), x), String(x));
  assert.ok(Number.isNaN(fromExtended(toExtended(NaN))));
});

test('loads, arithmetic, integer stores and the stack', () => {
  const v = new FakeVcpu(), m = new FakeMem();
  v.regs.rsi = 0x3000n;
  const dv = new DataView(m.bytes.buffer);
  dv.setFloat64(0x3000, 2.5, true);
  dv.setInt32(0x3008, 7, true);
  dv.setFloat32(0x3010, 0.5, true);
  // fld qword [rsi]; fimul dword [rsi+8]; fadd dword [rsi+16]; fld1; faddp st(1); fistp dword [rsi+0x20]
  seq(v, m, 'dd 06', 'da 4e 08', 'd8 46 10', 'd9 e8', 'de c1', 'db 5e 20');
  assert.equal(dv.getInt32(0x3020, true), 19); // 2.5*7 + 0.5 + 1 = 19
  assert.equal((v.xsave.readUInt16LE(2) >> 11) & 7, 0); // TOP back to 0
  assert.equal(v.xsave[4], 0); // every register empty
  // fld1; fldz; fxch; fdivr st, st(1) -> st0 = st1 / st0 = 0/1; fcomip; fstp qword [rsi+0x28]
  seq(v, m, 'd9 e8', 'd9 ee', 'd9 c9', 'd8 f9', 'df f1', 'dd 5e 28');
  assert.equal(dv.getFloat64(0x3028, true), 0); // 0/1 compared equal to 0, popped, stored
  assert.equal(v.regs.rflags & 0x45n, 0x40n); // fcomip: equal
});

test('fcmovcc copies ST(i) into ST(0) when the flags say so', () => {
  const v = new FakeVcpu(), m = new FakeMem();
  v.regs.rsi = 0x3000n;
  const dv = new DataView(m.bytes.buffer);
  const top = (): number => { seq(v, m, 'dd 1e'); return dv.getFloat64(0x3000, true); }; // fstp qword [rsi]
  const cases: [string, bigint, number][] = [
    ['db d1', 0n, 1], // fcmovnbe: CF=0, ZF=0 -> moved
    ['db d1', 0x40n, 2], // ZF=1: kept
    ['da c1', 0x1n, 1], // fcmovb: CF=1 -> moved
    ['da c9', 0n, 2], // fcmove: ZF=0 -> kept
    ['da d9', 0x4n, 1], // fcmovu: PF=1 -> moved
    ['db d9', 0x4n, 2], // fcmovnu: PF=1 -> kept
  ];
  for (const [insn, flags, want] of cases) {
    seq(v, m, 'd9 e8', 'd9 e8', 'd8 c0'); // fld1; fld1; fadd st,st(0): ST0 = 2, ST1 = 1
    v.regs.rflags = 0x2n | flags;
    seq(v, m, insn);
    assert.equal(top(), want, insn);
    seq(v, m, 'dd d8'); // fstp st(0): drop ST1
  }
  assert.equal(v.xsave[4], 0, 'the stack is empty again');
});
