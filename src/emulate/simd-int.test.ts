/**
 * The SSE2 packed operations of simd-int.ts against the host CPU:
 * a C program built with gcc at test time runs each `66 0F xx /r` on
 * xmm0, xmm1 for the same random inputs, and the results must match byte
 * for byte. Then one instruction end to end through the emulator.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { PACKED_BINARY } from './simd-int.js';
import { emulate } from './index.js';
import { FakeMem, FakeVcpu } from './fake-vcpu.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DIR = join(ROOT, '.cache/emulate');
const OPS = Object.keys(PACKED_BINARY).map((k) => parseInt(k.split(':')[1], 16));
const CASES = 64;

function nativeProgram(): string {
  mkdirSync(DIR, { recursive: true });
  const cases = OPS.map((op) => `    case 0x${op.toString(16)}: __asm__ volatile("movdqu (%0), %%xmm0\\n movdqu (%1), %%xmm1\\n .byte 0x66,0x0f,0x${op.toString(16)},0xc1\\n movdqu %%xmm0, (%0)" :: "r"(a), "r"(b) : "xmm0", "xmm1", "memory"); break;`).join('\n');
  const src = `#include <stdio.h>
#include <stdlib.h>
static unsigned char hex(const char *s) { char t[3] = { s[0], s[1], 0 }; return (unsigned char)strtoul(t, 0, 16); }
int main(void) {
  char line[256]; unsigned op; unsigned char a[16], b[16];
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "%x", &op) != 1) continue;
    const char *p = line + 3;
    for (int i = 0; i < 16; i++) a[i] = hex(p + 2 * i);
    for (int i = 0; i < 16; i++) b[i] = hex(p + 33 + 2 * i);
    switch (op) {
${cases}
    default: return 2;
    }
    for (int i = 0; i < 16; i++) printf("%02x", a[i]);
    printf("\\n");
  }
  return 0;
}
`;
  const c = join(DIR, 'simd-int-native.c'), exe = join(DIR, 'simd-int-native');
  writeFileSync(c, src);
  execFileSync('gcc', ['-O0', '-msse2', '-o', exe, c], { stdio: 'pipe' });
  return exe;
}

test('SSE2 packed-integer operations match the host CPU', () => {
  const exe = nativeProgram();
  const inputs: { op: number; a: Buffer; b: Buffer }[] = [];
  for (const op of OPS) {
    for (let i = 0; i < CASES; i++) {
      const a = randomBytes(16), b = randomBytes(16);
      if (i % 8 === 1) b.fill(0, 1); // small shift counts
      if (i % 8 === 2) b.writeBigUInt64LE(BigInt(i & 63), 0);
      if (i % 8 === 3) a.fill(i % 16 === 3 ? 0x7f : 0x80);
      if (i % 8 === 4) b.set(a); // equal elements
      inputs.push({ op, a, b });
    }
  }
  const lines = inputs.map(({ op, a, b }) => `${op.toString(16).padStart(2, '0')} ${a.toString('hex')} ${b.toString('hex')}`).join('\n') + '\n';
  const native = execFileSync(exe, { input: lines }).toString().trim().split('\n');
  assert.equal(native.length, inputs.length);
  const bad: string[] = [];
  inputs.forEach(({ op, a, b }, i) => {
    const ours = Buffer.from(PACKED_BINARY[`2:${op.toString(16)}`](a, b, 16)).toString('hex');
    if (ours !== native[i] && bad.length < 10) bad.push(`66 0f ${op.toString(16)}: a=${a.toString('hex')} b=${b.toString('hex')} cpu=${native[i]} ours=${ours}`);
  });
  assert.deepEqual(bad, []);
});

test('punpckldq through the emulator (66 0F 62 /r), legacy and VEX.256', () => {
  const XMM = (i: number) => 160 + 16 * i;
  const YMMH = (i: number) => 576 + 16 * i;
  const v = new FakeVcpu();
  v.regs.rip = 0x100n;
  v.xcr0 = 0xe7n;
  v.cpuid = [[0xd, 2, 256, 576, 0, 0]];
  const m = new FakeMem();
  m.bytes.fill(0xf4, 0x100, 0x200);
  [1, 2, 3, 4].forEach((d, i) => v.xsave.writeUInt32LE(d, XMM(5) + 4 * i));
  [5, 6, 7, 8].forEach((d, i) => v.xsave.writeUInt32LE(d, XMM(4) + 4 * i));
  const out = emulate({ vcpu: v, mem: m }, Buffer.from('660f62ec', 'hex')); // punpckldq xmm5, xmm4
  assert.ok(out.ok, out.ok ? '' : out.report);
  assert.deepEqual([0, 1, 2, 3].map((i) => v.xsave.readUInt32LE(XMM(5) + 4 * i)), [1, 5, 2, 6]);
  // vpunpckhdq ymm0, ymm1, ymm2: each 128-bit lane on its own.
  [1, 2, 3, 4].forEach((d, i) => { v.xsave.writeUInt32LE(d, XMM(1) + 4 * i); v.xsave.writeUInt32LE(d + 10, YMMH(1) + 4 * i); });
  [5, 6, 7, 8].forEach((d, i) => { v.xsave.writeUInt32LE(d, XMM(2) + 4 * i); v.xsave.writeUInt32LE(d + 10, YMMH(2) + 4 * i); });
  v.regs.rip = 0x100n;
  const out2 = emulate({ vcpu: v, mem: m }, Buffer.from('c5f56ac2', 'hex'));
  assert.ok(out2.ok, out2.ok ? '' : out2.report);
  assert.deepEqual([0, 1, 2, 3].map((i) => v.xsave.readUInt32LE(XMM(0) + 4 * i)), [3, 7, 4, 8]);
  assert.deepEqual([0, 1, 2, 3].map((i) => v.xsave.readUInt32LE(YMMH(0) + 4 * i)), [13, 17, 14, 18]);
});
