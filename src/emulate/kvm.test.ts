/**
 * The emulator under KVM with a guest of our own (kvm-guest.S, assembled
 * with gcc at test time): exceptions injected through KVM_SET_VCPU_EVENTS
 * reach the guest's IDT handlers (int3 as a trap, int n as a software
 * interrupt), popcnt/cmpxchg16b are emulated, a #PF raised by an emulated
 * instruction arrives with its CR2 and error code.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as C from '../kvm/constants.js';
import { Kvm, Vm, allocHost } from '../kvm/vm.js';
import { Vcpu } from '../kvm/vcpu.js';
import { GuestMemory } from '../kvm/memory.js';
import { emulate, emulationStats } from './index.js';
import { PvmSyscallRepair, PVM_SYSCALL_WORDS } from './pvm-syscall.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DIR = join(ROOT, '.cache/emulate');
const MEM = 8 << 20;
const LOAD = 0x20000;
const PVM = existsSync('/sys/module/kvm_pvm');

function haveKvm(): boolean {
  try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); return true; } catch { return false; }
}

function buildGuest(name = 'kvm-guest', table = 'vectors', base = BigInt(LOAD)): { code: Buffer; vectors: number } {
  mkdirSync(DIR, { recursive: true });
  const obj = join(DIR, `${name}.o`), bin = join(DIR, `${name}.bin`);
  execFileSync('gcc', ['-c', '-o', obj, join(ROOT, `src/emulate/${name}.S`)], { stdio: 'pipe' });
  execFileSync('ld', [`-Ttext=0x${base.toString(16)}`, '--oformat=binary', '-e', '_start', '-o', bin, obj], { stdio: 'pipe' });
  const sym = execFileSync('nm', [obj]).toString().split('\n').find((l) => l.endsWith(` ${table}`));
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

/** A VM with MEM bytes of RAM at 0, the in-kernel irqchip, and emulation failures handed over with their bytes. */
function smallVm(): { kvm: Kvm; vm: Vm; mem: GuestMemory } {
  const kvm = new Kvm();
  const vm = Vm.create(kvm);
  vm.createIrqchip();
  vm.enableCap(C.KVM_CAP_EXIT_ON_EMULATION_FAILURE, [1n]);
  const host = allocHost(MEM, false);
  vm.mapMemory(0, MEM, host, false);
  return { kvm, vm, mem: new GuestMemory([{ name: 'ram', gpa: 0, size: MEM, host, readonly: false, devmem: false }]) };
}

test('exceptions reach the guest; popcnt, cmpxchg16b emulated under KVM', { skip: haveKvm() ? false : 'no /dev/kvm' }, () => {
  const { code, vectors } = buildGuest();
  const { kvm, vm, mem } = smallVm();
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

/**
 * PVM leaves a user-mode `syscall` at CPL 3 (the fetch at LSTAR faults);
 * src/emulate/pvm-syscall.ts repairs it from the guest's #PF handler. With
 * the repair (on PVM hosts) or natively (hardware KVM), the entry runs at
 * CPL 0 with STAR's selectors and the return address in RCX, sysretq goes
 * back to CPL 3, and an ordinary user-mode #PF still reaches the guest.
 */
test('syscall from CPL 3 reaches LSTAR at CPL 0 (PVM: through the syscall repair)', { skip: haveKvm() ? false : 'no /dev/kvm' }, () => {
  const KOFF = 0xffffffff80000000n;
  const { code, vectors: syms } = buildGuest('pvm-user', 'syms', KOFF + BigInt(LOAD));
  const { kvm, vm, mem } = smallVm();
  const dv = mem.dataView(0, MEM)!;
  mem.write(LOAD, code);
  const [entry, pf, gp] = [0, 8, 16].map((o) => dv.getBigUint64(LOAD + syms + o, true));
  // GDT as Linux lays it out: 0x10 kernel code, 0x18 kernel data, 0x23 user code 32, 0x2b user data, 0x33 user code 64, 0x40 TSS.
  dv.setBigUint64(0x1010, 0x00af9b000000ffffn, true); dv.setBigUint64(0x1018, 0x00cf93000000ffffn, true);
  dv.setBigUint64(0x1020, 0x00cffb000000ffffn, true); dv.setBigUint64(0x1028, 0x00cff3000000ffffn, true);
  dv.setBigUint64(0x1030, 0x00affb000000ffffn, true);
  const tss = KOFF + 0x3000n;
  dv.setBigUint64(0x1040, 0x67n | ((tss & 0xffffffn) << 16n) | (0x8bn << 40n) | (((tss >> 24n) & 0xffn) << 56n), true);
  dv.setBigUint64(0x1048, tss >> 32n, true);
  dv.setBigUint64(0x3004, KOFF + 0x80000n, true); // RSP0
  for (const [vec, a] of [[14, pf], [13, gp], [6, gp]] as const) {
    const o = 0x2000 + vec * 16;
    dv.setUint16(o, Number(a & 0xffffn), true); dv.setUint16(o + 2, 0x10, true); dv.setUint8(o + 5, 0x8e);
    dv.setUint16(o + 6, Number((a >> 16n) & 0xffffn), true); dv.setUint32(o + 8, Number(a >> 32n), true);
  }
  // Page tables: the low 8 MiB user-accessible at 0, supervisor-only at KOFF.
  dv.setBigUint64(0x10000, 0x11007n, true); dv.setBigUint64(0x10000 + 511 * 8, 0x14003n, true);
  dv.setBigUint64(0x11000, 0x12007n, true);
  for (let i = 0; i < 4; i++) dv.setBigUint64(0x12000 + i * 8, BigInt(i * 0x200000) | 0x87n, true);
  dv.setBigUint64(0x14000 + 510 * 8, 0x15003n, true);
  for (let i = 0; i < 4; i++) dv.setBigUint64(0x15000 + i * 8, BigInt(i * 0x200000) | 0x83n, true);
  const v = Vcpu.create(vm.fd, 0, kvm.runSize);
  const s = v.getSregs();
  const cs = { base: 0n, limit: 0xffffffff, selector: 0x10, type: 11, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 };
  const ds = { ...cs, selector: 0x18, type: 3, l: 0, db: 1 };
  s.seg.cs = cs; s.seg.ds = s.seg.es = s.seg.ss = s.seg.fs = s.seg.gs = ds;
  s.seg.tr = { ...cs, selector: 0x40, base: tss, limit: 0x67, type: 11, s: 0, l: 0, g: 0 };
  s.gdt = { base: KOFF + 0x1000n, limit: 0x4f };
  s.idt = { base: KOFF + 0x2000n, limit: 0xfff };
  s.cr0 = 0x80050033n; s.cr4 = 0x620n; s.cr3 = 0x10000n; s.efer = 0xd01n;
  v.setSregs(s);
  v.setMsrs([[0xc0000081, (0x23n << 48n) | (0x10n << 32n)], [0xc0000082, entry], [0xc0000084, 0x47700n]]);
  v.setRegs({ rip: KOFF + BigInt(LOAD), rsp: KOFF + 0x80000n, rflags: 2n });

  const repair = PVM ? new PvmSyscallRepair(new Int32Array(new SharedArrayBuffer(4 * PVM_SYSCALL_WORDS)), mem) : undefined;
  const seen: string[] = [];
  for (let n = 0; n < 60; n++) {
    repair?.check(v);
    assert.ok(v.enter() >= 0);
    const reason = v.exitReason;
    if (reason === C.KVM_EXIT_INTERNAL_ERROR) {
      const k = v.run.getUint8(C.RUN_EMUL_INSN_SIZE);
      const bytes = v.runBytes.slice(C.RUN_EMUL_INSN_BYTES, C.RUN_EMUL_INSN_BYTES + k);
      const hook = repair?.onFailure(v, bytes);
      if (hook?.repaired) continue;
      const out = emulate({ vcpu: v, mem, cpu: hook?.cpu }, hook ? hook.original : bytes);
      assert.ok(out.ok, out.ok ? '' : out.report);
      continue;
    }
    if (reason !== C.KVM_EXIT_IO) { seen.push(`exit ${C.EXIT_NAMES[reason] ?? reason}`); break; }
    const port = v.run.getUint16(C.RUN_IO_PORT, true);
    const val = v.run.getUint32(v.run.getUint32(C.RUN_IO_DATA_OFFSET, true), true);
    if (port === 0xf4) break;
    seen.push(`${port.toString(16)}:${val.toString(16)}`);
  }
  const userRip = (label: number) => (LOAD + label).toString(16);
  const movRbx = code.indexOf(Buffer.from([0x48, 0x8b, 0x18]));
  const afterSyscall = code.indexOf(Buffer.from([0x0f, 0x05])) + 2;
  const expected = ['80:10', '80:11',
    '84:e', '84:5', `88:${userRip(movRbx)}`, '8c:33', '8c:90000', // user read of a supervisor page: #PF, error P|U
    '90:10', '90:18', `94:${userRip(afterSyscall)}`, '90:200', // the syscall entry at CPL 0
  ];
  assert.deepEqual(seen.slice(0, expected.length), expected);
  // Back at CPL 3 after sysretq: `out` there either raises #GP (hardware KVM) or is let through (PVM does not check IOPL).
  const tail = seen.slice(expected.length);
  assert.ok(tail[0] === '80:300' || (tail[0] === '84:d' && tail[1] === '84:0'), `after sysretq: ${tail.join(' ')}`);
  if (repair) assert.equal(repair.counts.syscalls, 1);
});
