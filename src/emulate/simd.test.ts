/** SSE/AVX/AVX-512 instructions on the fake vCPU's XSAVE buffer (the blake2s set and the common moves). */
import test from 'node:test';
import assert from 'node:assert/strict';
import { emulate } from './index.js';
import { FakeMem, FakeVcpu } from './fake-vcpu.js';

const XMM = (i: number) => 160 + 16 * i;
const YMMH = (i: number) => 576 + 16 * i;

function run(hex: string, setup: (v: FakeVcpu, m: FakeMem) => void) {
  const v = new FakeVcpu();
  v.regs.rip = 0x100n;
  v.xcr0 = 0xe7n;
  v.cpuid = [[0xd, 2, 256, 576, 0, 0], [0xd, 5, 64, 1088, 0, 0], [0xd, 6, 512, 1152, 0, 0], [0xd, 7, 1024, 1664, 0, 0]];
  const m = new FakeMem();
  m.bytes.fill(0xf4, 0x100, 0x200); // hlt after the instruction: run-ahead stops there
  setup(v, m);
  const out = emulate({ vcpu: v, mem: m }, Buffer.from(hex.replace(/ /g, ''), 'hex'));
  assert.ok(out.ok, out.ok ? '' : out.report);
  if (!v.injected) assert.equal(v.regs.rip, 0x100n + BigInt(hex.replace(/ /g, '').length / 2));
  return { v, m };
}
const dwords = (b: Buffer, off: number, n: number) => [...Array(n)].map((_, i) => b.readUInt32LE(off + 4 * i));
const setDwords = (b: Buffer, off: number, d: number[]) => d.forEach((x, i) => b.writeUInt32LE(x >>> 0, off + 4 * i));

test('loads, stores and vzeroupper', () => {
  const ld = run('c5 fa 6f 07', (v, m) => { v.regs.rdi = 0x3001n; m.bytes.fill(0x5a, 0x3001, 0x3011); v.xsave.fill(0xff, YMMH(0), YMMH(0) + 16); });
  assert.deepEqual(dwords(ld.v.xsave, XMM(0), 4), [0x5a5a5a5a, 0x5a5a5a5a, 0x5a5a5a5a, 0x5a5a5a5a]);
  assert.equal(ld.v.xsave[YMMH(0)], 0); // VEX.128 clears the upper half
  const st = run('c5 fa 7f 4f 10', (v) => { v.regs.rdi = 0x3000n; setDwords(v.xsave, XMM(1), [1, 2, 3, 4]); });
  assert.deepEqual([...st.m.bytes.subarray(0x3010, 0x3014)], [1, 0, 0, 0]);
  const legacy = run('66 0f 6f 07', (v, m) => { v.regs.rdi = 0x3000n; m.bytes.fill(1, 0x3000, 0x3010); v.xsave.fill(0xff, YMMH(0), YMMH(0) + 16); });
  assert.equal(legacy.v.xsave[YMMH(0)], 0xff); // legacy SSE keeps it
  assert.deepEqual(run('66 0f 6f 07', (v) => (v.regs.rdi = 0x3008n)).v.injected, [13, 0]); // movdqa misaligned
  const zu = run('c5 f8 77', (v) => { v.xsave.fill(0xff, YMMH(0), YMMH(16)); v.xsave.writeBigUInt64LE(7n, 512); });
  assert.ok(zu.v.xsave.subarray(YMMH(0), YMMH(16)).every((b) => b === 0));
});

test('blake2s round operations: vpaddd, vpxor, vprord, vpshufd, vpermi2d, vextracti128', () => {
  const add = run('c5 f9 fe c1', (v) => { setDwords(v.xsave, XMM(0), [1, 0xffffffff, 3, 4]); setDwords(v.xsave, XMM(1), [10, 2, 30, 40]); });
  assert.deepEqual(dwords(add.v.xsave, XMM(0), 4), [11, 1, 33, 44]);
  const xor = run('66 0f ef c1', (v) => { setDwords(v.xsave, XMM(0), [0xff, 0, 0, 1]); setDwords(v.xsave, XMM(1), [0x0f, 0, 0, 1]); });
  assert.deepEqual(dwords(xor.v.xsave, XMM(0), 4), [0xf0, 0, 0, 0]);
  const ror = run('62 f1 65 08 72 c3 10', (v) => setDwords(v.xsave, XMM(3), [0x12345678, 1, 0x80000000, 0xffff0000]));
  assert.deepEqual(dwords(ror.v.xsave, XMM(3), 4), [0x56781234, 0x10000, 0x8000, 0x0000ffff]);
  const shuf = run('c5 f9 70 c0 93', (v) => setDwords(v.xsave, XMM(0), [0, 1, 2, 3]));
  assert.deepEqual(dwords(shuf.v.xsave, XMM(0), 4), [3, 0, 1, 2]);
  // vpermi2d ymm8 (indices), ymm6 (table 1), ymm7 (table 2)
  const perm = run('62 72 4d 28 76 c7', (v) => {
    setDwords(v.xsave, XMM(8), [0, 8, 1, 9]); setDwords(v.xsave, YMMH(8), [15, 7, 2, 10]);
    setDwords(v.xsave, XMM(6), [100, 101, 102, 103]); setDwords(v.xsave, YMMH(6), [104, 105, 106, 107]);
    setDwords(v.xsave, XMM(7), [200, 201, 202, 203]); setDwords(v.xsave, YMMH(7), [204, 205, 206, 207]);
  });
  assert.deepEqual([...dwords(perm.v.xsave, XMM(8), 4), ...dwords(perm.v.xsave, YMMH(8), 4)], [100, 200, 101, 201, 207, 107, 102, 202]);
  const ext = run('c4 43 7d 39 c0 01', (v) => { setDwords(v.xsave, XMM(8), [1, 2, 3, 4]); setDwords(v.xsave, YMMH(8), [5, 6, 7, 8]); });
  assert.deepEqual(dwords(ext.v.xsave, XMM(8), 4), [5, 6, 7, 8]);
  const pshufb = run('66 0f 38 00 c1', (v) => { v.xsave.set([...Array(16).keys()].map((i) => i * 3), XMM(0)); v.xsave.set([15, 0x80, ...Array(14).fill(1)], XMM(1)); });
  assert.deepEqual([...pshufb.v.xsave.subarray(XMM(0), XMM(0) + 3)], [45, 0, 3]);
});

test('movd/movq between general and vector registers', () => {
  const a = run('c5 f9 6e e9', (v) => (v.regs.rcx = 0x1122334455n));
  assert.deepEqual(dwords(a.v.xsave, XMM(5), 4), [0x22334455, 0, 0, 0]);
  const b = run('66 48 0f 7e c0', (v) => setDwords(v.xsave, XMM(0), [0x55667788, 0x11223344, 9, 9]));
  assert.equal(b.v.regs.rax, 0x1122334455667788n);
});

test('run-ahead goes on through the vector code that follows, then stops', () => {
  const v = new FakeVcpu();
  v.xcr0 = 0xe7n;
  const m = new FakeMem();
  // vpaddd xmm0,xmm0,xmm1 three times with an inc rbx between, then hlt
  m.bytes.set(Buffer.from('c5f9fec1' + 'c5f9fec1' + '48ffc3' + 'c5f9fec1' + 'f4', 'hex'), 0x100);
  v.regs.rip = 0x100n;
  setDwords(v.xsave, XMM(1), [1, 2, 3, 4]);
  const out = emulate({ vcpu: v, mem: m }, m.bytes.subarray(0x100, 0x104));
  assert.ok(out.ok);
  assert.deepEqual(dwords(v.xsave, XMM(0), 4), [3, 6, 9, 12]);
  assert.deepEqual([v.regs.rip, v.regs.rbx], [0x10fn, 1n]);
});
