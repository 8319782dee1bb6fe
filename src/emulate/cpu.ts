/**
 * The register file the emulator works on: general registers, RIP and
 * RFLAGS from KVM_GET_REGS, segments and control registers from
 * KVM_GET_SREGS. Changes are kept here and written back by commit(), only
 * the groups that changed, and only once the instruction has completed (an
 * instruction that faults leaves the vCPU as it was).
 */
import type { Regs, Sregs, Segment } from '../kvm/vcpu.js';

/** What the emulator needs from a vCPU; the real Vcpu has all of it, tests fake it. */
export interface VcpuPort {
  readonly id: number;
  getRegs(): Regs;
  setRegs(r: Partial<Regs>): void;
  /** Set every register at once (saves KVM_SET_REGS a read first); optional. */
  putRegs?(r: Regs): void;
  getSregs(): Sregs;
  setSregs(s: Sregs): void;
  getEvents(): Buffer;
  setEvents(b: Buffer): void;
  getXsave(): Buffer;
  setXsave(b: Buffer): void;
  getXcrs(): Map<number, bigint>;
  getMsrs(indices: number[]): Map<number, bigint>;
  setMsrs(msrs: [number, bigint][]): void;
  getCpuid(): number[][];
}

// RFLAGS bits
export const CF = 1n, PF = 4n, AF = 0x10n, ZF = 0x40n, SF = 0x80n, TF = 0x100n, IF = 0x200n, DF = 0x400n, OF = 0x800n;
export const IOPL = 0x3000n, NT = 0x4000n, RF = 0x10000n, VM = 0x20000n, AC = 0x40000n, VIF = 0x80000n, VIP = 0x100000n, ID = 0x200000n;
export const ARITH_FLAGS = CF | PF | AF | ZF | SF | OF;
// Control-register bits
export const CR0_PE = 1n, CR0_MP = 2n, CR0_EM = 4n, CR0_TS = 8n, CR0_NE = 0x20n, CR0_WP = 0x10000n, CR0_AM = 0x40000n, CR0_PG = 0x80000000n;
export const CR4_PSE = 0x10n, CR4_PAE = 0x20n, CR4_PGE = 0x80n, CR4_OSFXSR = 0x200n, CR4_LA57 = 0x1000n, CR4_FSGSBASE = 0x10000n, CR4_PCIDE = 0x20000n;
export const CR4_OSXSAVE = 0x40000n, CR4_SMEP = 0x100000n, CR4_SMAP = 0x200000n, CR4_PKE = 0x400000n;
export const EFER_LME = 0x100n, EFER_LMA = 0x400n, EFER_NXE = 0x800n;

// Register numbers (the x86 encoding order)
export const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7, R11 = 11;
// Segment numbers (the x86 encoding order), and their names in Sregs
export const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;
export const SEG_KEYS = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const;
/** kvm_regs names in the x86 encoding order (kvm_regs itself is ordered rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp). */
export const GPR_KEYS = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;

const MASKS: Record<number, bigint> = { 1: 0xffn, 2: 0xffffn, 4: 0xffffffffn, 8: 0xffffffffffffffffn, 16: (1n << 128n) - 1n };
export function mask(size: number): bigint {
  return MASKS[size];
}
/** Sign-extend the low `size` bytes of v to a (signed) bigint. */
export function sext(v: bigint, size: number): bigint {
  return BigInt.asIntN(size * 8, v);
}

export type CpuMode = 'real' | 'v86' | 'prot16' | 'prot32' | 'compat16' | 'compat32' | 'long64';

export class CpuState {
  readonly gpr: bigint[];
  rip: bigint;
  rflags: bigint;
  readonly sregs: Sregs;
  private regsDirty = false;
  private sregsDirty = false;

  constructor(readonly vcpu: VcpuPort, regs?: Regs, sregs?: Sregs) {
    const r = regs ?? vcpu.getRegs();
    this.gpr = GPR_KEYS.map((k) => r[k]);
    this.rip = r.rip;
    this.rflags = r.rflags;
    this.sregs = sregs ?? vcpu.getSregs();
  }

  get long(): boolean {
    return (this.sregs.efer & EFER_LMA) !== 0n;
  }
  /** 64-bit mode: long mode with a 64-bit code segment. */
  get code64(): boolean {
    return this.long && this.sregs.seg.cs.l === 1;
  }
  get mode(): CpuMode {
    const s = this.sregs;
    if ((s.cr0 & CR0_PE) === 0n) return 'real';
    if (this.long) return s.seg.cs.l ? 'long64' : s.seg.cs.db ? 'compat32' : 'compat16';
    if (this.rflags & VM) return 'v86';
    return s.seg.cs.db ? 'prot32' : 'prot16';
  }
  /** Current privilege level: the RPL of CS in protected mode. */
  get cpl(): number {
    const m = this.mode;
    if (m === 'real') return 0;
    if (m === 'v86') return 3;
    return this.sregs.seg.cs.selector & 3;
  }
  /** Default operand and address size of the code segment, in bytes. */
  get codeSize(): 2 | 4 | 8 {
    if (this.code64) return 8;
    const m = this.mode;
    if (m === 'real' || m === 'v86') return 2;
    return this.sregs.seg.cs.db ? 4 : 2;
  }
  get stackSize(): 2 | 4 | 8 {
    if (this.code64) return 8;
    const m = this.mode;
    if (m === 'real' || m === 'v86') return 2;
    return this.sregs.seg.ss.db ? 4 : 2;
  }

  /** Read register `n` (0-15) as `size` bytes; high8 selects AH/CH/DH/BH for n 4-7. */
  reg(n: number, size: number, high8 = false): bigint {
    if (high8) return (this.gpr[n - 4] >> 8n) & 0xffn;
    return this.gpr[n] & MASKS[size];
  }

  /** Write register `n`: 32-bit writes clear bits 63:32, 8/16-bit ones merge. */
  setReg(n: number, size: number, v: bigint, high8 = false): void {
    this.regsDirty = true;
    if (high8) {
      const i = n - 4;
      this.gpr[i] = (this.gpr[i] & ~0xff00n) | ((v & 0xffn) << 8n);
    } else if (size >= 4) {
      this.gpr[n] = v & MASKS[size];
    } else {
      const m = MASKS[size];
      this.gpr[n] = (this.gpr[n] & ~m) | (v & m);
    }
  }

  setRip(v: bigint): void {
    this.rip = this.code64 ? BigInt.asUintN(64, v) : v & (this.codeSize === 4 ? 0xffffffffn : 0xffffn);
    this.regsDirty = true;
  }

  setFlags(v: bigint): void {
    this.rflags = (v & 0x3f7fd7n) | 2n;
    this.regsDirty = true;
  }

  /** Replace the bits of RFLAGS selected by `bits` with those of `v`. */
  updateFlags(bits: bigint, v: bigint): void {
    this.setFlags((this.rflags & ~bits) | (v & bits));
  }

  flag(bit: bigint): boolean {
    return (this.rflags & bit) !== 0n;
  }

  seg(n: number): Segment {
    return this.sregs.seg[SEG_KEYS[n]];
  }

  setSeg(n: number, s: Segment): void {
    this.sregs.seg[SEG_KEYS[n]] = s;
    this.sregsDirty = true;
  }

  markSregs(): void {
    this.sregsDirty = true;
  }

  get changed(): { regs: boolean; sregs: boolean } {
    return { regs: this.regsDirty, sregs: this.sregsDirty };
  }

  /** Write back what changed: special registers first, then the general ones. */
  commit(): void {
    if (this.sregsDirty) this.vcpu.setSregs(this.sregs);
    if (this.regsDirty) {
      const r = { rip: this.rip, rflags: this.rflags } as Regs;
      GPR_KEYS.forEach((k, i) => (r[k] = this.gpr[i]));
      if (this.vcpu.putRegs) this.vcpu.putRegs(r);
      else this.vcpu.setRegs(r);
    }
    this.regsDirty = this.sregsDirty = false;
  }
}
