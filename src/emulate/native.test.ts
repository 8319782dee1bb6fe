/**
 * The emulator against the CPU itself: each instruction runs natively on
 * the host (a small C helper built with gcc into .cache/emulate/) and in the
 * emulator with the same registers, flags and memory; results and the
 * flags the instruction defines must agree.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPR_KEYS as REG_NAMES } from './cpu.js';
import { emulate } from './index.js';
import { FakeMem, FakeVcpu, zeroRegs } from './fake-vcpu.js';
import { CASES, type Case } from './native-cases.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DIR = join(ROOT, '.cache/emulate');
const HELPER = join(DIR, 'native');
const MEMBASE = 0x1000;
const ARITH = 0x8d5n;

function buildHelper(): string | undefined {
  try {
    mkdirSync(DIR, { recursive: true });
    const src = join(ROOT, 'src/emulate/native-helper.c');
    execFileSync('gcc', ['-O1', '-o', HELPER, src], { stdio: 'pipe' });
    return HELPER;
  } catch (e) {
    return void process.stderr.write(`native helper not built: ${(e as Error).message}\n`);
  }
}

interface Outcome { regs: bigint[]; flags: bigint; mem: Uint8Array }

function runNative(helper: string, cases: Case[]): Outcome[] {
  const input = cases.map((c) => [c.bytes, ...c.regs.map((r) => BigInt.asUintN(64, r).toString(16)), c.flags.toString(16), String(c.memreg), Buffer.from(c.mem).toString('hex')].join(' ')).join('\n') + '\n';
  const out = execFileSync(helper, { input, maxBuffer: 1 << 28 }).toString().trim().split('\n');
  return out.map((line) => {
    const f = line.split(' ');
    return { regs: f.slice(0, 16).map((h) => BigInt('0x' + h)), flags: BigInt('0x' + f[16]), mem: Buffer.from(f[17], 'hex') };
  });
}

function runEmulated(c: Case): Outcome & { fault?: number } {
  const regs = zeroRegs();
  c.regs.forEach((v, i) => (regs[REG_NAMES[i]] = BigInt.asUintN(64, v)));
  if (c.memreg >= 0) regs[REG_NAMES[c.memreg]] += BigInt(MEMBASE);
  regs.rsp = 0n;
  regs.rflags = c.flags;
  regs.rip = 0x100n;
  const vcpu = new FakeVcpu(regs);
  const mem = new FakeMem(0x10000);
  mem.bytes.set(c.mem, MEMBASE);
  const out = emulate({ vcpu, mem }, Buffer.from(c.bytes, 'hex'));
  assert.ok(out.ok, `${c.name}: ${out.ok ? '' : out.report}`);
  const r = vcpu.regs;
  const vals = REG_NAMES.map((n) => r[n]);
  if (c.memreg >= 0) vals[c.memreg] = BigInt.asUintN(64, vals[c.memreg] - BigInt(MEMBASE));
  assert.equal(r.rip, 0x100n + BigInt(c.bytes.length / 2), `${c.name}: RIP`);
  return { regs: vals, flags: r.rflags, mem: mem.bytes.slice(MEMBASE, MEMBASE + 64), fault: vcpu.injected?.[0] };
}

const helper = existsSync('/usr/bin/gcc') || existsSync('/usr/local/bin/gcc') ? buildHelper() : undefined;

test('emulated instructions match the host CPU', { skip: helper ? false : 'gcc not available' }, () => {
  const native = runNative(helper!, CASES);
  let checked = 0;
  const failures: string[] = [];
  CASES.forEach((c, i) => {
    const want = native[i];
    const got = runEmulated(c);
    const fmask = c.flagMask(ARITH);
    const diffs: string[] = [];
    for (let r = 0; r < 16; r++) {
      if (r === 4) continue;
      if (c.ignoreRegs?.includes(r)) continue;
      if (got.regs[r] !== want.regs[r]) diffs.push(`${REG_NAMES[r]} got ${got.regs[r].toString(16)} want ${want.regs[r].toString(16)}`);
    }
    if ((got.flags & fmask) !== (want.flags & fmask)) diffs.push(`flags got ${(got.flags & fmask).toString(16)} want ${(want.flags & fmask).toString(16)} (mask ${fmask.toString(16)})`);
    if (Buffer.compare(Buffer.from(got.mem), Buffer.from(want.mem)) !== 0) diffs.push(`memory got ${Buffer.from(got.mem).toString('hex')} want ${Buffer.from(want.mem).toString('hex')}`);
    if (diffs.length) failures.push(`${c.name} [${c.bytes}] in ${c.regs.map((v) => BigInt.asUintN(64, v).toString(16)).join(',')} fl ${c.flags.toString(16)}: ${diffs.join('; ')}`);
    checked++;
  });
  assert.ok(checked > 1000, `only ${checked} cases`);
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} of ${checked} cases differ`);
});

// The helper's source must exist beside this test (it is not compiled by tsc).
test('native helper source is present', () => {
  assert.ok(readFileSync(join(ROOT, 'src/emulate/native-helper.c'), 'utf8').includes('run_insn'));
});
