/**
 * iret in protected mode and long mode (KVM's emulator does only real
 * mode): pop RIP, CS, RFLAGS (and SS:RSP on a privilege change or always
 * in 64-bit mode), check and load the new CS and SS from the descriptor
 * tables, null data segments the new CPL may not use, and unblock NMIs.
 * Task returns (NT set outside long mode) and returns to virtual-8086 mode
 * are not emulated.
 */
import { AC, AF, CF, DF, ES, DS, FS, GS, ID, IF, IOPL, NT, OF, PF, RF, RSP, SF, TF, VIF, VIP, VM, ZF, mask, type CpuState } from './cpu.js';
import { readDescriptor, nullSegment, toSegment, type Descriptor } from './descriptor.js';
import { EmulationError, gp, np, ss } from './fault.js';
import type { Emu } from './emu.js';

export function iret(x: Emu): void {
  const cpu = x.cpu;
  const mode = cpu.mode;
  const n = x.insn.opSize;
  x.name = n === 8 ? 'iretq' : n === 4 ? 'iretd' : 'iretw';
  if (mode === 'real') throw new EmulationError('real-mode iret (KVM emulates it)');
  if (mode === 'v86') throw new EmulationError('iret in virtual-8086 mode');
  if (cpu.flag(NT)) {
    if (cpu.long) throw gp(0);
    throw new EmulationError('iret with NT set (task return)');
  }
  const code64 = cpu.code64;
  // Read the frame without popping yet: nothing changes until every check passed.
  let depth = 0;
  const next = () => { const v = x.peek(n, depth); depth += n; return v; };
  const newRip = next();
  const csSel = Number(next() & 0xffffn);
  const newFlags = next();
  const oldCpl = cpu.cpl;
  if (!cpu.long && newFlags & VM && oldCpl === 0) throw new EmulationError('iret to virtual-8086 mode');

  const cs = checkCode(x, csSel, oldCpl);
  const newCpl = csSel & 3;
  const toCode64 = cpu.long && cs.l === 1;
  if (toCode64 && !x.mmu.canonical(newRip)) throw gp(0);

  let ssSeg, newRsp: bigint | undefined;
  if (code64 || newCpl !== oldCpl) {
    newRsp = next();
    const ssSel = Number(next() & 0xffffn);
    ssSeg = checkStack(x, ssSel, newCpl, toCode64);
  }

  // Commit.
  cpu.setSeg(1, toSegment(cs));
  if (ssSeg && newRsp !== undefined) {
    cpu.setSeg(2, ssSeg);
    cpu.setReg(RSP, 8, ssSeg.db || toCode64 ? newRsp : (cpu.gpr[RSP] & ~0xffffn) | (newRsp & 0xffffn));
  } else {
    cpu.setReg(RSP, cpu.stackSize, (x.sp + BigInt(depth)) & mask(cpu.stackSize));
  }
  cpu.setFlags(mergeFlags(cpu, newFlags, n, oldCpl));
  cpu.setRip(newRip); // masked to the new code segment's size
  x.ripSet = true;
  if (newCpl > oldCpl) for (const seg of [ES, DS, FS, GS]) dropSegment(cpu, seg, newCpl);
  x.unblockNmi = true;
}

function checkCode(x: Emu, sel: number, cpl: number): Descriptor {
  const err = sel & 0xfffc;
  if (err === 0) throw gp(0);
  const d = readDescriptor(x.cpu, x.mmu, sel);
  const rpl = sel & 3;
  if (!d.s || !(d.type & 8)) throw gp(err);
  if (rpl < cpl) throw gp(err);
  const conforming = (d.type & 4) !== 0;
  if (conforming ? d.dpl > rpl : d.dpl !== rpl) throw gp(err);
  if (x.cpu.long && d.l && d.db) throw gp(err);
  if (!d.present) throw np(err);
  return d;
}

function checkStack(x: Emu, sel: number, cpl: number, toCode64: boolean): ReturnType<typeof toSegment> {
  const err = sel & 0xfffc;
  if (err === 0) {
    if (toCode64 && cpl !== 3) return nullSegment(sel, cpl);
    throw gp(0);
  }
  if ((sel & 3) !== cpl) throw gp(err);
  const d = readDescriptor(x.cpu, x.mmu, sel);
  if (!d.s || d.type & 8 || !(d.type & 2) || d.dpl !== cpl) throw gp(err);
  if (!d.present) throw ss(err);
  return toSegment(d);
}

/** The RFLAGS bits iret may change depend on the CPL before it and on IOPL. */
function mergeFlags(cpu: CpuState, v: bigint, n: number, cpl: number): bigint {
  let bits = CF | PF | AF | ZF | SF | TF | DF | OF | NT;
  if (n >= 4) bits |= RF | AC | ID;
  const iopl = Number((cpu.rflags & IOPL) >> 12n);
  if (cpl <= iopl) bits |= IF;
  if (cpl === 0) {
    bits |= IOPL;
    if (n >= 4) bits |= VIF | VIP;
  }
  if (n === 2) bits &= 0xffffn;
  return ((cpu.rflags & ~bits) | (v & bits)) & ~VM;
}

/** On a return to an outer level, data segments more privileged than the new CPL become null. */
function dropSegment(cpu: CpuState, n: number, cpl: number): void {
  const s = cpu.seg(n);
  if (s.unusable) return;
  const conformingCode = (s.type & 0xc) === 0xc;
  if (s.s && !conformingCode && s.dpl < cpl) cpu.setSeg(n, { ...nullSegment(0), base: n >= FS ? s.base : 0n });
}
