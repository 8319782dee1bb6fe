/** One vCPU: its fd, its kvm_run page and its registers. */
import * as C from './constants.js';
import { check } from './error.js';
import { ioctlInt, ioctlPtr, mmap, koffi, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_FAILED, errno } from './libc.js';
import { KvmError } from './error.js';

export type Regs = Record<(typeof C.REG_NAMES)[number], bigint>;

export interface Segment {
  base: bigint; limit: number; selector: number; type: number;
  present: number; dpl: number; db: number; s: number; l: number; g: number; avl: number; unusable: number;
}

export interface Sregs {
  seg: Record<(typeof C.SEG_NAMES)[number], Segment>;
  gdt: { base: bigint; limit: number };
  idt: { base: bigint; limit: number };
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint; efer: bigint; apicBase: bigint;
  raw: Buffer;
}

export class Vcpu {
  readonly run: DataView;
  readonly runBytes: Uint8Array;
  private readonly regsBuf = Buffer.alloc(C.REGS_SIZE);
  private readonly sregsBuf = Buffer.alloc(C.SREGS_SIZE);

  constructor(readonly id: number, readonly fd: number, runSize: number) {
    const addr = BigInt(mmap(0, runSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (addr === MAP_FAILED) throw new KvmError(`mmap of vCPU ${id} run page`, errno());
    const ab = koffi.view(addr, runSize);
    this.run = new DataView(ab);
    this.runBytes = new Uint8Array(ab);
  }

  static create(vmFd: number, id: number, runSize: number): Vcpu {
    const fd = check(ioctlInt(vmFd, C.KVM_CREATE_VCPU, id), `KVM_CREATE_VCPU ${id}`);
    return new Vcpu(id, fd, runSize);
  }

  /** KVM_RUN; returns 0, or -errno (EINTR when kicked). */
  enter(): number {
    const r = ioctlInt(this.fd, C.KVM_RUN, 0);
    return r < 0 ? -errno() : r;
  }

  get exitReason(): number {
    return this.run.getUint32(C.RUN_EXIT_REASON, true);
  }

  getRegs(): Regs {
    check(ioctlPtr(this.fd, C.KVM_GET_REGS, this.regsBuf), 'KVM_GET_REGS');
    const r = {} as Regs;
    C.REG_NAMES.forEach((n, i) => (r[n] = this.regsBuf.readBigUInt64LE(i * 8)));
    return r;
  }

  setRegs(r: Partial<Regs>): void {
    check(ioctlPtr(this.fd, C.KVM_GET_REGS, this.regsBuf), 'KVM_GET_REGS');
    C.REG_NAMES.forEach((n, i) => {
      const v = r[n];
      if (v !== undefined) this.regsBuf.writeBigUInt64LE(BigInt.asUintN(64, v), i * 8);
    });
    check(ioctlPtr(this.fd, C.KVM_SET_REGS, this.regsBuf), 'KVM_SET_REGS');
  }

  /** KVM_SET_REGS with every register given (no read-modify-write). */
  putRegs(r: Regs): void {
    C.REG_NAMES.forEach((n, i) => this.regsBuf.writeBigUInt64LE(BigInt.asUintN(64, r[n]), i * 8));
    check(ioctlPtr(this.fd, C.KVM_SET_REGS, this.regsBuf), 'KVM_SET_REGS');
  }

  getSregs(): Sregs {
    const b = this.sregsBuf;
    check(ioctlPtr(this.fd, C.KVM_GET_SREGS, b), 'KVM_GET_SREGS');
    const seg = {} as Sregs['seg'];
    C.SEG_NAMES.forEach((n, i) => (seg[n] = readSeg(b, i * C.SEG_SIZE)));
    return {
      seg,
      gdt: { base: b.readBigUInt64LE(C.SREGS_GDT), limit: b.readUInt16LE(C.SREGS_GDT + 8) },
      idt: { base: b.readBigUInt64LE(C.SREGS_IDT), limit: b.readUInt16LE(C.SREGS_IDT + 8) },
      cr0: b.readBigUInt64LE(C.SREGS_CR0), cr2: b.readBigUInt64LE(C.SREGS_CR2),
      cr3: b.readBigUInt64LE(C.SREGS_CR3), cr4: b.readBigUInt64LE(C.SREGS_CR4),
      cr8: b.readBigUInt64LE(C.SREGS_CR8), efer: b.readBigUInt64LE(C.SREGS_EFER),
      apicBase: b.readBigUInt64LE(C.SREGS_APIC_BASE),
      raw: Buffer.from(b),
    };
  }

  setSregs(s: Sregs): void {
    const b = Buffer.from(s.raw);
    C.SEG_NAMES.forEach((n, i) => writeSeg(b, i * C.SEG_SIZE, s.seg[n]));
    b.writeBigUInt64LE(s.gdt.base, C.SREGS_GDT); b.writeUInt16LE(s.gdt.limit, C.SREGS_GDT + 8);
    b.writeBigUInt64LE(s.idt.base, C.SREGS_IDT); b.writeUInt16LE(s.idt.limit, C.SREGS_IDT + 8);
    b.writeBigUInt64LE(s.cr0, C.SREGS_CR0); b.writeBigUInt64LE(s.cr2, C.SREGS_CR2);
    b.writeBigUInt64LE(s.cr3, C.SREGS_CR3); b.writeBigUInt64LE(s.cr4, C.SREGS_CR4);
    b.writeBigUInt64LE(s.cr8, C.SREGS_CR8); b.writeBigUInt64LE(s.efer, C.SREGS_EFER);
    b.writeBigUInt64LE(s.apicBase, C.SREGS_APIC_BASE);
    check(ioctlPtr(this.fd, C.KVM_SET_SREGS, b), 'KVM_SET_SREGS');
  }

  setCpuid(entries: Buffer, count: number): void {
    const b = Buffer.alloc(8 + entries.length);
    b.writeUInt32LE(count, 0);
    entries.copy(b, 8);
    check(ioctlPtr(this.fd, C.KVM_SET_CPUID2, b), 'KVM_SET_CPUID2');
  }

  setMsrs(msrs: [number, bigint][]): void {
    const b = Buffer.alloc(8 + 16 * msrs.length);
    b.writeUInt32LE(msrs.length, 0);
    msrs.forEach(([idx, val], i) => {
      b.writeUInt32LE(idx, 8 + i * 16);
      b.writeBigUInt64LE(val, 8 + i * 16 + 8);
    });
    const n = ioctlPtr(this.fd, C.KVM_SET_MSRS, b);
    if (n !== msrs.length) throw new KvmError(`KVM_SET_MSRS set ${n} of ${msrs.length}`, n < 0 ? errno() : 0);
  }

  /** KVM_GET_VCPU_EVENTS: the raw 64-byte struct kvm_vcpu_events. */
  getEvents(): Buffer {
    const b = Buffer.alloc(C.VCPU_EVENTS_SIZE);
    check(ioctlPtr(this.fd, C.KVM_GET_VCPU_EVENTS, b), 'KVM_GET_VCPU_EVENTS');
    return b;
  }

  /** KVM_SET_VCPU_EVENTS; pass a struct read by getEvents() and changed. */
  setEvents(b: Buffer): void {
    check(ioctlPtr(this.fd, C.KVM_SET_VCPU_EVENTS, b), 'KVM_SET_VCPU_EVENTS');
  }

  /** KVM_GET_XSAVE: the guest's FPU/SSE/AVX state in the standard XSAVE layout (4 KiB). */
  getXsave(): Buffer {
    const b = Buffer.alloc(C.XSAVE_SIZE);
    check(ioctlPtr(this.fd, C.KVM_GET_XSAVE, b), 'KVM_GET_XSAVE');
    return b;
  }

  setXsave(b: Buffer): void {
    check(ioctlPtr(this.fd, C.KVM_SET_XSAVE, b), 'KVM_SET_XSAVE');
  }

  /** KVM_GET_XCRS: extended control registers (XCR0) by index. */
  getXcrs(): Map<number, bigint> {
    const b = Buffer.alloc(C.XCRS_SIZE);
    check(ioctlPtr(this.fd, C.KVM_GET_XCRS, b), 'KVM_GET_XCRS');
    const out = new Map<number, bigint>();
    const n = Math.min(16, b.readUInt32LE(0));
    for (let i = 0; i < n; i++) out.set(b.readUInt32LE(8 + i * 16), b.readBigUInt64LE(8 + i * 16 + 8));
    return out;
  }

  /** KVM_GET_MSRS for the given indices; an MSR KVM does not know is absent from the result. */
  getMsrs(indices: number[]): Map<number, bigint> {
    const b = Buffer.alloc(8 + 16 * indices.length);
    b.writeUInt32LE(indices.length, 0);
    indices.forEach((idx, i) => b.writeUInt32LE(idx, 8 + i * 16));
    const n = ioctlPtr(this.fd, C.KVM_GET_MSRS, b);
    const out = new Map<number, bigint>();
    for (let i = 0; i < n; i++) out.set(indices[i], b.readBigUInt64LE(8 + i * 16 + 8));
    return out;
  }

  /** KVM_GET_CPUID2: the CPUID table this vCPU was given, as [function, index, eax, ebx, ecx, edx]. */
  getCpuid(max = 256): number[][] {
    const b = Buffer.alloc(8 + max * C.CPUID_ENTRY_SIZE);
    b.writeUInt32LE(max, 0);
    check(ioctlPtr(this.fd, C.KVM_GET_CPUID2, b), 'KVM_GET_CPUID2');
    const n = b.readUInt32LE(0);
    const out: number[][] = [];
    for (let i = 0; i < n; i++) {
      const o = 8 + i * C.CPUID_ENTRY_SIZE;
      out.push([b.readUInt32LE(o), b.readUInt32LE(o + 4), b.readUInt32LE(o + 12), b.readUInt32LE(o + 16), b.readUInt32LE(o + 20), b.readUInt32LE(o + 24)]);
    }
    return out;
  }

  /** KVM_TRANSLATE: guest-virtual to guest-physical as KVM sees it, or undefined when not mapped. */
  translate(linear: bigint): { gpa: bigint; writeable: boolean; user: boolean } | undefined {
    const b = Buffer.alloc(C.TRANSLATION_SIZE);
    b.writeBigUInt64LE(BigInt.asUintN(64, linear), 0);
    check(ioctlPtr(this.fd, C.KVM_TRANSLATE, b), 'KVM_TRANSLATE');
    if (b[16] === 0) return undefined;
    return { gpa: b.readBigUInt64LE(8), writeable: b[17] !== 0, user: b[18] !== 0 };
  }

  mpState(): number {
    const b = Buffer.alloc(4);
    check(ioctlPtr(this.fd, C.KVM_GET_MP_STATE, b), 'KVM_GET_MP_STATE');
    return b.readUInt32LE(0);
  }

  setMpState(state: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(state, 0);
    check(ioctlPtr(this.fd, C.KVM_SET_MP_STATE, b), 'KVM_SET_MP_STATE');
  }

  /** A register dump for stderr, as bhyve prints on a fatal exit. */
  dump(): string {
    const lines: string[] = [];
    try {
      const r = this.getRegs();
      const s = this.getSregs();
      const h = (v: bigint) => '0x' + v.toString(16).padStart(16, '0');
      for (let i = 0; i < C.REG_NAMES.length; i += 3) {
        lines.push(C.REG_NAMES.slice(i, i + 3).map((n) => `${n.padStart(6)}=${h(r[n])}`).join(' '));
      }
      for (const n of C.SEG_NAMES) {
        const g = s.seg[n];
        lines.push(`${n.padStart(6)}: sel=0x${g.selector.toString(16).padStart(4, '0')} base=${h(g.base)} limit=0x${g.limit.toString(16)} type=${g.type}`);
      }
      lines.push(`   cr0=${h(s.cr0)}    cr3=${h(s.cr3)}    cr4=${h(s.cr4)}`);
      lines.push(`  efer=${h(s.efer)}    gdt=${h(s.gdt.base)}/${s.gdt.limit} idt=${h(s.idt.base)}/${s.idt.limit}`);
    } catch (e) {
      lines.push(`(registers unavailable: ${(e as Error).message})`);
    }
    return lines.join('\n');
  }
}

function readSeg(b: Buffer, o: number): Segment {
  return {
    base: b.readBigUInt64LE(o), limit: b.readUInt32LE(o + 8), selector: b.readUInt16LE(o + 12),
    type: b[o + 14], present: b[o + 15], dpl: b[o + 16], db: b[o + 17], s: b[o + 18], l: b[o + 19],
    g: b[o + 20], avl: b[o + 21], unusable: b[o + 22],
  };
}

function writeSeg(b: Buffer, o: number, g: Segment): void {
  b.writeBigUInt64LE(g.base, o); b.writeUInt32LE(g.limit >>> 0, o + 8); b.writeUInt16LE(g.selector, o + 12);
  b[o + 14] = g.type; b[o + 15] = g.present; b[o + 16] = g.dpl; b[o + 17] = g.db; b[o + 18] = g.s;
  b[o + 19] = g.l; b[o + 20] = g.g; b[o + 21] = g.avl; b[o + 22] = g.unusable;
}
