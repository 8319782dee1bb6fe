/**
 * System instructions KVM's emulator leaves to us: software interrupts
 * (int3, int n, into: delivered as events after the instruction), the
 * #UD instructions, SMAP's clac/stac, random numbers, rdpid/rdpru, cache
 * and TLB maintenance, swapgs and the FS/GS base instructions.
 */
import { randomBytes } from 'node:crypto';
import { AC, ARITH_FLAGS, CF, CR4_FSGSBASE, CR4_PGE, CR4_SMAP, CS, FS, GS, OF, RAX, RCX, RDX, R11, DS, SS, mask } from './cpu.js';
import { BP, DB, EmulationError, OF_VEC, gp, np, ud } from './fault.js';
import { iret } from './exec-iret.js';
import { fromBytes } from './mmu.js';
import type { Emu, Handler } from './emu.js';
import type { MemOperand } from './decoder.js';

const MSR_STAR = 0xc0000081;
const MSR_KERNEL_GS_BASE = 0xc0000102;
const MSR_TSC_AUX = 0xc0000103;

/** The IDT gate of a software interrupt: #GP when beyond the IDT or its DPL is below the CPL. */
function checkGate(x: Emu, vector: number): void {
  const cpu = x.cpu;
  const mode = cpu.mode;
  if (mode === 'real') return;
  const err = vector * 8 + 2;
  if (mode === 'v86') throw new EmulationError('software interrupt in virtual-8086 mode');
  const size = cpu.long ? 16 : 8;
  if (vector * size + size - 1 > cpu.sregs.idt.limit) throw gp(err);
  const b = x.mmu.readLinear(cpu.sregs.idt.base + BigInt(vector * size), 8, { implicit: true });
  const dpl = (b[5] >> 5) & 3;
  if (dpl < cpu.cpl) throw gp(err);
  if (!(b[5] & 0x80)) throw np(err);
}

function needCpl0(x: Emu): void {
  if (x.cpu.cpl !== 0) throw gp(0);
}

/** Make KVM drop its cached translations: an MMU reset through KVM_SET_SREGS (CR4.PGE toggled, then restored by commit). */
export function flushTlb(x: Emu): void {
  const s = x.cpu.sregs;
  x.vcpu.setSregs({ ...s, cr4: s.cr4 ^ CR4_PGE });
  x.cpu.markSregs();
}

function random(x: Emu): void {
  const d = x.op(0);
  const b = randomBytes(d.size);
  x.write(d, fromBytes(b));
  x.setFlags(ARITH_FLAGS, CF);
}

function fsgsbase(x: Emu): void {
  if (!(x.cpu.sregs.cr4 & CR4_FSGSBASE) || !x.cpu.code64) throw ud();
  const mn = x.insn.mn;
  const seg = mn.includes('fs') ? FS : GS;
  const o = x.op(0);
  if (mn.startsWith('rd')) { x.write(o, x.cpu.seg(seg).base); return; }
  const v = x.read(o);
  if (!x.mmu.canonical(v)) throw gp(0);
  x.cpu.setSeg(seg, { ...x.cpu.seg(seg), base: v });
}

function swapgs(x: Emu): void {
  if (!x.cpu.code64) throw ud();
  needCpl0(x);
  const kernel = x.vcpu.getMsrs([MSR_KERNEL_GS_BASE]).get(MSR_KERNEL_GS_BASE);
  if (kernel === undefined) throw new EmulationError('swapgs: KVM_GET_MSRS has no KERNEL_GS_BASE');
  const gs = x.cpu.seg(GS);
  x.vcpu.setMsrs([[MSR_KERNEL_GS_BASE, gs.base]]);
  x.cpu.setSeg(GS, { ...gs, base: kernel });
}

/** sysret: back to CPL 3 with RIP from RCX and RFLAGS from R11, selectors from STAR[63:48]. */
function sysret(x: Emu): void {
  const cpu = x.cpu;
  if (!cpu.long || !(cpu.sregs.efer & 1n)) throw ud();
  needCpl0(x);
  const star = x.vcpu.getMsrs([MSR_STAR]).get(MSR_STAR);
  if (star === undefined) throw new EmulationError('sysret: KVM_GET_MSRS has no STAR');
  const base = Number((star >> 48n) & 0xffffn);
  const to64 = x.insn.opSize === 8;
  const rip = to64 ? cpu.gpr[RCX] : cpu.gpr[RCX] & 0xffffffffn;
  if (to64 && !x.mmu.canonical(rip)) throw gp(0);
  const flat = { base: 0n, limit: 0xffffffff, present: 1, dpl: 3, s: 1, g: 1, avl: 0, unusable: 0 };
  cpu.setSeg(CS, { ...flat, selector: ((to64 ? base + 16 : base) | 3) & 0xffff, type: 0xb, l: to64 ? 1 : 0, db: to64 ? 0 : 1 });
  cpu.setSeg(SS, { ...flat, selector: ((base + 8) | 3) & 0xffff, type: 0x3, l: 0, db: 1 });
  cpu.setFlags((cpu.gpr[R11] & 0x3c7fd7n) | 2n);
  cpu.setRip(rip);
  x.ripSet = true;
}

function invpcid(x: Emu): void {
  if (x.cpu.mode === 'real' || x.cpu.mode === 'v86') throw ud();
  needCpl0(x);
  const type = x.read(x.op(0));
  const m = x.op(1) as MemOperand;
  const desc = x.mmu.readLinear(x.linear(m, 16), 16);
  const pcid = Number(fromBytes(desc.subarray(0, 8)));
  if (type > 3n || pcid > 0xfff) throw gp(0);
  if (type === 0n && !x.mmu.canonical(fromBytes(desc.subarray(8, 16)))) throw gp(0);
  flushTlb(x);
}

/** Cache-line maintenance: only the address checks (a fault on an unmapped line). */
function cacheLine(x: Emu): void {
  const m = x.op(0) as MemOperand;
  x.mmu.readLinear(x.linear(m, 1), 1);
}

export const SYS_HANDLERS: Record<string, Handler> = {
  int3: (x) => { checkGate(x, BP); x.event = { vector: BP, soft: false }; },
  int: (x) => {
    const v = Number(x.read(x.op(0)) & 0xffn);
    x.name = `int 0x${v.toString(16)}`;
    checkGate(x, v);
    x.event = { vector: v, soft: true };
  },
  into: (x) => { if (x.cpu.flag(OF)) { checkGate(x, OF_VEC); x.event = { vector: OF_VEC, soft: false }; } },
  ud2: () => { throw ud(); }, ud1: () => { throw ud(); }, ud0: () => { throw ud(); },
  iret,
  clac: (x) => { if (!(x.cpu.sregs.cr4 & CR4_SMAP)) throw ud(); needCpl0(x); x.setFlags(AC, 0n); },
  stac: (x) => { if (!(x.cpu.sregs.cr4 & CR4_SMAP)) throw ud(); needCpl0(x); x.setFlags(AC, AC); },
  rdrand: random, rdseed: random,
  rdpid: (x) => {
    const aux = x.vcpu.getMsrs([MSR_TSC_AUX]).get(MSR_TSC_AUX);
    if (aux === undefined) throw ud();
    x.write(x.op(0), aux & 0xffffffffn);
  },
  rdpru: (x) => {
    // MPERF (ECX 0) and APERF (ECX 1) tick together: the guest sees its nominal frequency.
    const which = x.cpu.reg(RCX, 4);
    if (which > 1n) { x.cpu.setReg(RAX, 4, 0n); x.cpu.setReg(RDX, 4, 0n); x.setFlags(CF, 0n); return; }
    const t = process.hrtime.bigint();
    x.cpu.setReg(RAX, 4, t & mask(4));
    x.cpu.setReg(RDX, 4, t >> 32n);
    x.setFlags(CF, CF);
  },
  clflush: cacheLine, clflushopt: cacheLine, clwb: cacheLine,
  clzero: (x) => {
    const off = x.cpu.reg(RAX, x.insn.addrSize) & ~63n;
    x.mmu.writeLinear(x.mmu.linear(x.insn.segOverride >= 0 ? x.insn.segOverride : DS, off, 64, true), new Uint8Array(64));
  },
  lfence: () => {}, mfence: () => {}, sfence: () => {}, serialize: () => {},
  monitor: () => {}, mwait: () => {}, monitorx: () => {}, mwaitx: () => {},
  invpcid, swapgs, sysret,
  wbinvd: (x) => needCpl0(x),
  rdfsbase: fsgsbase, rdgsbase: fsgsbase, wrfsbase: fsgsbase, wrgsbase: fsgsbase,
  int1: (x) => { x.event = { vector: DB, soft: false }; },
};
