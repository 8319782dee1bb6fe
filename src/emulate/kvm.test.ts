/**
 * The emulator under KVM with a guest of our own (kvm-guest.S, assembled
 * with gcc at test time): exceptions injected through KVM_SET_VCPU_EVENTS
 * reach the guest's IDT handlers (int3 as a trap, int n as a software
 * interrupt), popcnt/cmpxchg16b are emulated, a #PF raised by an emulated
 * instruction arrives with its CR2 and error code.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as C from '../kvm/constants.js';
import { Kvm, Vm, allocHost } from '../kvm/vm.js';
import { Vcpu } from '../kvm/vcpu.js';
import { GuestMemory } from '../kvm/memory.js';
import { emulate, emulationStats } from './index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DIR = join(ROOT, '.cache/emulate');
const MEM = 8 << 20;
const LOAD = 0x20000;

function haveKvm(): boolean {
  try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); return true; } catch { return false; }
}

function buildGuest(): { code: Buffer; vectors: number } {
  mkdirSync(DIR, { recursive: true });
  const obj = join(DIR, 'kvm-guest.o'), bin = join(DIR, 'kvm-guest.bin');
  execFileSync('gcc', ['-c', '-o', obj, join(ROOT, 'src/emulate/kvm-guest.S')], { stdio: 'pipe' });
  execFileSync('ld', [`-Ttext=0x${LOAD.toString(16)}`, '--oformat=binary', '-e', '_start', '-o', bin, obj], { stdio: 'pipe' });
  const sym = execFileSync('nm', [obj]).toString().split('\n').find((l) => l.endsWith(' vectors'));
  return { code: readFileSync(bin), vectors: parseInt(sym!.split(' ')[0], 16) };
}

function setup(mem: GuestMemory, code: Buffer, vectors: number): void {
  const dv = mem.dataView(0, MEM)!;
  mem.write(LOAD, code);
  // GDT: 0x08 kernel code, 0x10 kernel data, 0x18 user data, 0x20 user code, 0x28 TSS (16 bytes)
  dv.setBigUint64(0x1008, 0x00af9b000000ffffn, true);
  dv.setBigUint64(0x1010, 0x00cf93000000ffffn, true);
  dv.setBigUint64(0x1018, 0x00cff3000000ffffn, true);
  dv.setBigUint64(0x1020, 0x00affb000000ffffn, true);
  dv.setBigUint64(0x1028, 0x00008b0030000067n, true);
  dv.setBigUint64(0x3004, 0x80000n, true); // TSS.RSP0
  for (let i = 0; ; i++) {
    const vec = Number(dv.getBigUint64(LOAD + vectors + i * 16, true));
    const addr = Number(dv.getBigUint64(LOAD + vectors + i * 16 + 8, true));
    if (!addr) break;
    const o = 0x2000 + vec * 16;
    dv.setUint16(o, addr & 0xffff, true);
    dv.setUint16(o + 2, 0x08, true);
    dv.setUint8(o + 5, vec === 0x80 || vec === 3 ? 0xee : 0x8e);
    dv.setUint16(o + 6, addr >>> 16, true);
  }
  // Page tables: 4 x 2 MiB user pages, the last 2 MiB through a page table whose top page is absent.
  dv.setBigUint64(0x10000, 0x11007n, true);
  dv.setBigUint64(0x11000, 0x12007n, true);
  for (let i = 0; i < 3; i++) dv.setBigUint64(0x12000 + i * 8, BigInt(i * 0x200000) | 0x87n, true);
  dv.setBigUint64(0x12000 + 3 * 8, 0x13007n, true);
  for (let i = 0; i < 511; i++) dv.setBigUint64(0x13000 + i * 8, BigInt(0x600000 + i * 0x1000) | 7n, true);
}

test('exceptions reach the guest; iretq, popcnt, cmpxchg16b emulated under KVM', { skip: haveKvm() ? false : 'no /dev/kvm' }, () => {
  const { code, vectors } = buildGuest();
  const kvm = new Kvm();
  const vm = Vm.create(kvm);
  vm.createIrqchip();
  vm.enableCap(C.KVM_CAP_EXIT_ON_EMULATION_FAILURE, [1n]);
  const host = allocHost(MEM, false);
  vm.mapMemory(0, MEM, host, false);
  const mem = new GuestMemory([{ name: 'ram', gpa: 0, size: MEM, host, readonly: false, devmem: false }]);
  setup(mem, code, vectors);
  const v = Vcpu.create(vm.fd, 0, kvm.runSize);
  const s = v.getSregs();
  const cs = { base: 0n, limit: 0xffffffff, selector: 8, type: 11, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 };
  const ds = { ...cs, selector: 0x10, type: 3, l: 0, db: 1 };
  s.seg.cs = cs; s.seg.ds = s.seg.es = s.seg.ss = s.seg.fs = s.seg.gs = ds;
  s.seg.tr = { ...cs, selector: 0x28, base: 0x3000n, limit: 0x67, type: 11, s: 0, l: 0, g: 0 };
  s.gdt = { base: 0x1000n, limit: 0x37 };
  s.idt = { base: 0x2000n, limit: 0xfff };
  s.cr0 = 0x80050033n; s.cr4 = 0x620n; s.cr3 = 0x10000n; s.efer = 0xd00n;
  v.setSregs(s);
  v.setRegs({ rip: BigInt(LOAD), rsp: 0x80000n, rflags: 2n });

  const reports: number[] = [];
  const failures: string[] = [];
  for (let n = 0; n < 200; n++) {
    const r = v.enter();
    assert.ok(r >= 0, `KVM_RUN failed: ${-r}`);
    const reason = v.exitReason;
    if (reason === C.KVM_EXIT_IO) {
      const port = v.run.getUint16(C.RUN_IO_PORT, true);
      const val = v.run.getUint32(v.run.getUint32(C.RUN_IO_DATA_OFFSET, true), true);
      if (port === 0xf4) break;
      if (port === 0x80) reports.push(val);
      continue;
    }
    if (reason === C.KVM_EXIT_INTERNAL_ERROR) {
      const n = v.run.getUint8(C.RUN_EMUL_INSN_SIZE);
      const out = emulate({ vcpu: v, mem }, v.runBytes.slice(C.RUN_EMUL_INSN_BYTES, C.RUN_EMUL_INSN_BYTES + n));
      if (!out.ok) { failures.push(out.report); break; }
      continue;
    }
    failures.push(`exit ${C.EXIT_NAMES[reason] ?? reason}\n${v.dump()}`);
    break;
  }
  assert.deepEqual(failures, []);
  assert.deepEqual(reports.map((x) => x.toString(16)), [1, 3, 2, 0x40, 4, 6, 5, 8, 0x1111, 14, 0x7ff000, 0, 9, 0xaa].map((x) => x.toString(16)));
  const st = emulationStats();
  process.stderr.write(`emulated under KVM: ${[...st].map(([k, c]) => `${k}=${c}`).join(' ')}\n`);
  for (const k of ['int3', 'int 0x40', 'popcnt', 'cmpxchg16b', 'popcnt -> #PF']) assert.ok(st.get(k), `${k} went through the emulator`);
});
