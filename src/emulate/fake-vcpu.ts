/**
 * A vCPU and guest memory made of plain objects, for the emulator's unit
 * tests: 64-bit mode (or another, by sregs) without KVM.
 */
import type { Regs, Sregs, Segment } from '../kvm/vcpu.js';
import { REG_NAMES } from '../kvm/constants.js';
import type { VcpuPort } from './cpu.js';
import type { MemPort } from './mmu.js';

export function flatSeg(selector: number, code: boolean, long: boolean, dpl = 0): Segment {
  return {
    base: 0n, limit: 0xffffffff, selector, type: code ? 0xb : 0x3, present: 1, dpl,
    db: long && code ? 0 : 1, s: 1, l: long && code ? 1 : 0, g: 1, avl: 0, unusable: 0,
  };
}

/** Sregs of 64-bit mode at CPL `cpl`; paging off unless cr3/cr0 are given. */
export function longSregs(cpl = 0, extra: Partial<Sregs> = {}): Sregs {
  const data = flatSeg(cpl ? 0x2b : 0x18, false, true, cpl);
  return {
    seg: {
      cs: flatSeg(cpl ? 0x33 : 0x10, true, true, cpl), ds: { ...data }, es: { ...data }, fs: { ...data }, gs: { ...data }, ss: { ...data },
      tr: { ...data, type: 0xb, s: 0 }, ldt: { ...data, unusable: 1 },
    },
    gdt: { base: 0x800n, limit: 0x7f }, idt: { base: 0x2000n, limit: 0xfff },
    cr0: 0x80050033n & ~0x80000000n, cr2: 0n, cr3: 0n, cr4: 0x3406e0n, cr8: 0n, efer: 0xd01n, apicBase: 0xfee00900n,
    raw: Buffer.alloc(312),
    ...extra,
  };
}

export function zeroRegs(): Regs {
  const r = {} as Regs;
  for (const n of REG_NAMES) r[n] = 0n;
  r.rflags = 2n;
  return r;
}

export class FakeVcpu implements VcpuPort {
  readonly id = 0;
  events = Buffer.alloc(64);
  xsave = Buffer.alloc(4096);
  xcr0 = 7n;
  msrs = new Map<number, bigint>();
  cpuid: number[][] = [[0xd, 2, 256, 576, 0, 0]];
  sregsSets = 0;

  constructor(public regs: Regs = zeroRegs(), public sregs: Sregs = longSregs()) {
    this.xsave.writeUInt16LE(0x37f, 0);
    this.xsave.writeUInt32LE(0x1f80, 24);
    this.xsave.writeUInt32LE(0xffff, 28);
  }
  getRegs(): Regs { return { ...this.regs }; }
  setRegs(r: Partial<Regs>): void { this.regs = { ...this.regs, ...r }; }
  getSregs(): Sregs { return structuredClone(this.sregs); }
  setSregs(s: Sregs): void { this.sregs = structuredClone(s); this.sregsSets++; }
  getEvents(): Buffer { return Buffer.from(this.events); }
  setEvents(b: Buffer): void { this.events = Buffer.from(b); }
  getXsave(): Buffer { return Buffer.from(this.xsave); }
  setXsave(b: Buffer): void { this.xsave = Buffer.from(b); }
  getXcrs(): Map<number, bigint> { return new Map([[0, this.xcr0]]); }
  getMsrs(idx: number[]): Map<number, bigint> { return new Map(idx.filter((i) => this.msrs.has(i)).map((i) => [i, this.msrs.get(i)!])); }
  setMsrs(m: [number, bigint][]): void { for (const [i, v] of m) this.msrs.set(i, v); }
  getCpuid(): number[][] { return this.cpuid; }

  /** The exception injected, if any: [vector, error code or undefined]. */
  get injected(): [number, number | undefined] | undefined {
    const e = this.events;
    if (!e[0]) return undefined;
    return [e[1], e[2] ? e.readUInt32LE(4) : undefined];
  }
}

export class FakeMem implements MemPort {
  readonly bytes: Uint8Array;
  readonly segments: { gpa: number; size: number; readonly: boolean }[];
  constructor(size = 0x100000) {
    this.bytes = new Uint8Array(size);
    this.segments = [{ gpa: 0, size, readonly: false }];
  }
  slice(gpa: number, len: number): Uint8Array | undefined {
    if (gpa < 0 || len < 0 || gpa + len > this.bytes.length) return undefined;
    return this.bytes.subarray(gpa, gpa + len);
  }
}
