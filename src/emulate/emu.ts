/**
 * One instruction being emulated: its operands resolved against the
 * register file and guest memory, the stack, and atomic read-modify-write
 * for LOCK-prefixed instructions (Atomics on guest RAM; 16 bytes through
 * libatomic). Handlers (exec-*.ts) work through this.
 */
import { CpuState, RSP, SS, mask, type VcpuPort } from './cpu.js';
import type { Insn, MemOperand, Operand } from './decoder.js';
import { Mmu, fromBytes, toBytes } from './mmu.js';
import { EmulationError } from './fault.js';
import { cas } from './atomic.js';
import { VecRegs } from './vec.js';

export type Handler = (x: Emu) => void;

/** An event a completed instruction delivers: int3 and into (traps), int n (a software interrupt). */
export interface PendingEvent { vector: number; soft: boolean }

export class Emu {
  /** RIP of the next instruction. */
  readonly next: bigint;
  /** Statistics name when it differs from the mnemonic (cmpxchg16b, iretq...). */
  name: string;
  /** Set by handlers that change RIP themselves (jumps) or must not advance it (faults). */
  ripSet = false;
  /** Delivered after the instruction completes (RIP already past it). */
  event?: PendingEvent;
  /** Clear NMI blocking after the instruction (iret). */
  unblockNmi = false;

  /** Shared by the instructions of one exit (see index.ts): the vector registers, loaded once. */
  readonly shared: { vec?: VecRegs };

  constructor(readonly cpu: CpuState, readonly mmu: Mmu, readonly insn: Insn, readonly vcpu: VcpuPort, shared: { vec?: VecRegs } = {}) {
    this.shared = shared;
    this.next = cpu.rip + BigInt(insn.len);
    this.name = insn.mn;
  }

  /** The XMM/YMM/ZMM registers (KVM_GET_XSAVE once; written back by the caller of the handler). */
  vec(): VecRegs {
    return (this.shared.vec ??= new VecRegs(this.vcpu));
  }

  op(i: number): Operand {
    const o = this.insn.operands[i];
    if (!o) throw new EmulationError(`${this.insn.mn}: missing operand ${i}`);
    return o;
  }

  /** Effective address (segment offset) of a memory operand. */
  ea(m: MemOperand): bigint {
    let v = m.disp;
    if (m.base === -2) v += this.next;
    else if (m.base >= 0) v += this.cpu.gpr[m.base];
    if (m.index >= 0) v += this.cpu.gpr[m.index] * BigInt(m.scale);
    return v & mask(this.insn.addrSize);
  }

  linear(m: MemOperand, size = m.size, write = false): bigint {
    return this.mmu.linear(m.seg, this.ea(m), Math.max(1, size), write);
  }

  read(o: Operand): bigint {
    if (o.t === 'reg') return this.cpu.reg(o.reg, o.size, o.high8);
    if (o.t === 'imm') return o.value & mask(o.size);
    return fromBytes(this.mmu.readLinear(this.linear(o), o.size));
  }

  write(o: Operand, v: bigint): void {
    if (o.t === 'reg') this.cpu.setReg(o.reg, o.size, v, o.high8);
    else if (o.t === 'mem') this.mmu.writeLinear(this.linear(o, o.size, true), toBytes(v & mask(o.size), o.size));
    else throw new EmulationError(`${this.insn.mn}: write to an immediate`);
  }

  /**
   * Read-modify-write of operand `o`: fn gets the old value and returns the
   * new one, or undefined to leave it. Atomic on guest RAM with LOCK.
   */
  update(o: Operand, fn: (old: bigint) => bigint | undefined): void {
    if (o.t !== 'mem') {
      const old = this.read(o);
      const v = fn(old);
      // A 32-bit register destination is written (bits 63:32 cleared) even when the value stays.
      if (v !== undefined || o.size === 4) this.write(o, v ?? old);
      return;
    }
    const lin = this.linear(o, o.size, true);
    if (this.insn.lock) {
      const view = this.mmu.ramView(lin, o.size, true);
      if (view) {
        for (let tries = 0; tries < 1000; tries++) {
          const old = fromBytes(view);
          const v = fn(old);
          if (v === undefined || cas(view, old, v & mask(o.size))) return;
        }
        throw new EmulationError(`${this.insn.mn}: locked update did not settle`);
      }
    }
    this.mmu.probeWrite(lin, o.size);
    const old = fromBytes(this.mmu.readLinear(lin, o.size, { write: true }));
    const v = fn(old);
    if (v !== undefined) this.mmu.writeLinear(lin, toBytes(v & mask(o.size), o.size));
  }

  setFlags(set: bigint, f: bigint): void {
    this.cpu.updateFlags(set, f);
  }

  jump(target: bigint, size = this.insn.opSize): void {
    this.cpu.setRip(size === 8 ? target : target & mask(size));
    this.ripSet = true;
  }

  get sp(): bigint {
    return this.cpu.reg(RSP, this.cpu.stackSize);
  }

  /** Push: the write happens before RSP changes, so a fault leaves RSP alone. */
  push(v: bigint, size: number = this.insn.opSize): void {
    const sp = (this.sp - BigInt(size)) & mask(this.cpu.stackSize);
    this.mmu.write(SS, sp, size, v & mask(size));
    this.cpu.setReg(RSP, this.cpu.stackSize, sp);
  }

  /** Read the stack `depth` bytes above RSP without popping. */
  peek(size: number, depth = 0): bigint {
    return this.mmu.read(SS, (this.sp + BigInt(depth)) & mask(this.cpu.stackSize), size);
  }

  pop(size: number = this.insn.opSize): bigint {
    const v = this.peek(size);
    this.cpu.setReg(RSP, this.cpu.stackSize, (this.sp + BigInt(size)) & mask(this.cpu.stackSize));
    return v;
  }
}
