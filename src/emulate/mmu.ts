/**
 * Guest-virtual memory for the emulator: segmentation (base, limit, the
 * canonical check of long mode), the page walk of the guest's own tables
 * (32-bit, PAE, 4- and 5-level) with the permission checks of the CPL
 * (U/S, R/W with CR0.WP, NX, SMEP, SMAP) and the accessed/dirty bits, then
 * guest-physical access through GuestMemory.slice, never outside guest RAM.
 * What is not RAM goes to the MMIO port, when there is one.
 */
import { CpuState, AC, CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_NXE, SS } from './cpu.js';
import { EmulationError, GuestFault, PF, PFEC_I, PFEC_P, PFEC_RSVD, PFEC_U, PFEC_W, gp, ss } from './fault.js';

export interface MemPort {
  slice(gpa: number, len: number): Uint8Array | undefined;
  readonly segments: readonly { gpa: number; size: number; readonly: boolean }[];
}

export interface MmioPort {
  read(gpa: number, size: number): number | undefined;
  write(gpa: number, size: number, value: number): void;
}

export interface Access {
  write?: boolean;
  fetch?: boolean;
  /** A supervisor access whatever the CPL (descriptor tables, TSS, the stack of an interrupt). */
  implicit?: boolean;
  /** A look by the VMM itself (diagnostics): no permission checks, no accessed/dirty bits. */
  debug?: boolean;
}

const PAGE = 4096;
const P = 1n, RW = 2n, US = 4n, A = 0x20n, D = 0x40n, PS = 0x80n, XD = 1n << 63n;
const ADDR_MASK = 0x000ffffffffff000n;

export class Mmu {
  /** Translations made during this exit (page tables do not change meanwhile), by page and access kind. */
  private readonly tlb = new Map<string, number>();

  constructor(readonly cpu: CpuState, readonly mem: MemPort, readonly mmio?: MmioPort) {}

  /** Segment base + offset, with the checks of the mode; raises #GP/#SS. */
  linear(seg: number, off: bigint, size: number, write = false): bigint {
    const cpu = this.cpu;
    const fault = () => (seg === SS ? ss(0) : gp(0));
    if (cpu.code64) {
      const base = seg >= 4 ? cpu.seg(seg).base : 0n;
      const lin = BigInt.asUintN(64, base + off);
      if (!this.canonical(lin) || !this.canonical(BigInt.asUintN(64, lin + BigInt(size - 1)))) throw fault();
      return lin;
    }
    const s = cpu.seg(seg);
    const mode = cpu.mode;
    if (mode !== 'real' && mode !== 'v86') {
      if (s.unusable || !s.present) throw fault();
      const code = (s.type & 8) !== 0;
      if (write && (code || (s.type & 2) === 0)) throw fault();
      const expandDown = !code && (s.type & 4) !== 0;
      const end = off + BigInt(size - 1);
      if (!expandDown && end > BigInt(s.limit >>> 0)) throw fault();
    }
    return (s.base + off) & 0xffffffffn;
  }

  canonical(lin: bigint): boolean {
    const bits = this.cpu.sregs.cr4 & CR4_LA57 ? 57 : 48;
    return BigInt.asUintN(64, BigInt.asIntN(bits, lin)) === lin;
  }

  /** Guest-virtual to guest-physical for one byte's page; raises #PF. */
  translate(lin: bigint, acc: Access = {}): number {
    const key = `${lin >> 12n}:${acc.write ? 1 : 0}${acc.fetch ? 1 : 0}${acc.implicit ? 1 : 0}${acc.debug ? 1 : 0}${this.cpu.cpl}${this.cpu.rflags & AC ? 1 : 0}`;
    const hit = this.tlb.get(key);
    if (hit !== undefined) return hit + Number(lin & 0xfffn);
    const gpa = this.walk(lin, acc);
    this.tlb.set(key, gpa - Number(lin & 0xfffn));
    return gpa;
  }

  private walk(lin: bigint, acc: Access): number {
    const cpu = this.cpu;
    const s = cpu.sregs;
    if ((s.cr0 & CR0_PG) === 0n) return Number(cpu.long ? lin : lin & 0xffffffffn);
    const user = !acc.implicit && cpu.cpl === 3;
    const nxe = (s.efer & EFER_NXE) !== 0n;
    let errBase = (acc.write ? PFEC_W : 0) | (user ? PFEC_U : 0) | (acc.fetch && (nxe || s.cr4 & CR4_SMEP) ? PFEC_I : 0);
    const entries: number[] = [];
    const values: bigint[] = [];
    let rw = true, us = true, nx = false;
    let table: bigint, shift: number, levels: number, size: 4 | 8 = 8;
    const pageFault = (present: boolean, rsvd = false) =>
      new GuestFault(PF, errBase | (present ? PFEC_P : 0) | (rsvd ? PFEC_RSVD : 0), lin);

    if (cpu.long) {
      levels = s.cr4 & CR4_LA57 ? 5 : 4;
      table = s.cr3 & ADDR_MASK;
      shift = 12 + 9 * (levels - 1);
    } else if (s.cr4 & CR4_PAE) {
      const pdpte = this.pte(Number((s.cr3 & 0xffffffe0n) + ((lin >> 30n) & 3n) * 8n), 8);
      if (!(pdpte & P)) throw pageFault(false);
      table = pdpte & ADDR_MASK;
      shift = 21;
      levels = 2;
    } else {
      table = s.cr3 & 0xfffff000n;
      shift = 22;
      levels = 2;
      size = 4;
      lin &= 0xffffffffn;
    }
    const bitsPer = size === 8 ? 9 : 10;
    let phys = 0n;
    for (let level = levels; level >= 1; level--, shift -= bitsPer) {
      const idx = (lin >> BigInt(shift)) & ((1n << BigInt(bitsPer)) - 1n);
      const addr = Number(table + idx * BigInt(size));
      const ent = this.pte(addr, size);
      if (!(ent & P)) throw pageFault(false);
      rw &&= (ent & RW) !== 0n;
      us &&= (ent & US) !== 0n;
      if (nxe && ent & XD) nx = true;
      entries.push(addr);
      values.push(ent);
      const large = level > 1 && (ent & PS) !== 0n && (size === 8 ? level <= (cpu.long ? 3 : 2) : (s.cr4 & CR4_PSE) !== 0n);
      if (level === 1 || large) {
        const pageBits = BigInt(shift);
        let frame: bigint;
        if (size === 4 && large) frame = (ent & 0xffc00000n) | (((ent >> 13n) & 0xffn) << 32n);
        else frame = (ent & ADDR_MASK) & ~((1n << pageBits) - 1n);
        phys = frame | (lin & ((1n << pageBits) - 1n));
        if (!acc.debug) {
          this.check(acc, user, rw, us, nx, pageFault);
          this.setAccessed(entries, values, size, acc.write === true);
        }
        return Number(phys);
      }
      table = size === 8 ? ent & ADDR_MASK : ent & 0xfffff000n;
    }
    void errBase;
    throw new EmulationError('page walk fell through');
  }

  private check(acc: Access, user: boolean, rw: boolean, us: boolean, nx: boolean, pf: (present: boolean) => GuestFault): void {
    const s = this.cpu.sregs;
    if (user && !us) throw pf(true);
    if (acc.fetch) {
      if (nx) throw pf(true);
      if (!user && us && s.cr4 & CR4_SMEP) throw pf(true);
      return;
    }
    if (acc.write && !rw && (user || s.cr0 & CR0_WP)) throw pf(true);
    if (!user && us && s.cr4 & CR4_SMAP && (acc.implicit || this.cpu.cpl === 3 || !this.cpu.flag(AC))) throw pf(true);
  }

  private pte(gpa: number, size: 4 | 8): bigint {
    const b = this.mem.slice(gpa, size);
    if (!b) throw new EmulationError(`page-table entry at 0x${gpa.toString(16)} is not in guest memory`);
    const dv = new DataView(b.buffer, b.byteOffset, size);
    return size === 8 ? dv.getBigUint64(0, true) : BigInt(dv.getUint32(0, true));
  }

  /**
   * Set the accessed bits (and dirty, on a write, in the leaf) as the CPU
   * does: a locked compare-and-exchange on each entry as it was walked, so
   * that an entry another vCPU changed meanwhile is left alone (never a
   * plain read-modify-write that could write an old entry back).
   */
  private setAccessed(entries: number[], values: bigint[], size: 4 | 8, write: boolean): void {
    entries.forEach((addr, i) => {
      const leaf = i === entries.length - 1;
      const want = A | (leaf && write ? D : 0n);
      const old = values[i];
      if ((old & want) === want) return;
      const b = this.mem.slice(addr, size)!;
      if (size === 8) Atomics.compareExchange(new BigUint64Array(b.buffer, b.byteOffset, 1), 0, old, old | want);
      else Atomics.compareExchange(new Uint32Array(b.buffer, b.byteOffset, 1), 0, Number(old), Number(old | want));
    });
  }

  /** Physical pieces of a linear range, translated page by page before any byte moves. */
  private pieces(lin: bigint, len: number, acc: Access): [number, number][] {
    const out: [number, number][] = [];
    let done = 0;
    while (done < len) {
      const at = BigInt.asUintN(this.cpu.long ? 64 : 32, lin + BigInt(done));
      const n = Math.min(len - done, PAGE - Number(at & 0xfffn));
      out.push([this.translate(at, acc), n]);
      done += n;
    }
    return out;
  }

  readLinear(lin: bigint, len: number, acc: Access = {}): Uint8Array {
    const out = new Uint8Array(len);
    let o = 0;
    for (const [gpa, n] of this.pieces(lin, len, acc)) {
      out.set(this.physRead(gpa, n), o);
      o += n;
    }
    return out;
  }

  writeLinear(lin: bigint, data: Uint8Array, acc: Access = {}): void {
    let o = 0;
    for (const [gpa, n] of this.pieces(lin, data.length, { ...acc, write: true })) {
      this.physWrite(gpa, data.subarray(o, o + n));
      o += n;
    }
  }

  /** Check that a linear range could be written (raises the fault now, changes nothing but A/D bits). */
  probeWrite(lin: bigint, len: number, acc: Access = {}): void {
    this.pieces(lin, len, { ...acc, write: true });
  }

  /** A live view of guest RAM for [lin, lin+len) when it is RAM within one page (for atomic updates). */
  ramView(lin: bigint, len: number, write: boolean, acc: Access = {}): Uint8Array | undefined {
    if (Number(lin & 0xfffn) + len > PAGE) return undefined;
    const gpa = this.translate(lin, { ...acc, write });
    if (write && this.readonly(gpa)) return undefined;
    return this.mem.slice(gpa, len);
  }

  private readonly(gpa: number): boolean {
    return this.mem.segments.some((s) => s.readonly && gpa >= s.gpa && gpa < s.gpa + s.size);
  }

  physRead(gpa: number, n: number): Uint8Array {
    const ram = this.mem.slice(gpa, n);
    if (ram) return Uint8Array.from(ram);
    const out = new Uint8Array(n);
    for (const [o, sz] of split(n, gpa)) {
      const v = this.mmioPort(gpa).read(gpa + o, sz) ?? 0xffffffff;
      for (let i = 0; i < sz; i++) out[o + i] = (v >>> (8 * i)) & 0xff;
    }
    return out;
  }

  physWrite(gpa: number, data: Uint8Array): void {
    const ram = this.readonly(gpa) ? undefined : this.mem.slice(gpa, data.length);
    if (ram) { ram.set(data); return; }
    for (const [o, sz] of split(data.length, gpa)) {
      let v = 0;
      for (let i = 0; i < sz; i++) v |= data[o + i] << (8 * i);
      this.mmioPort(gpa).write(gpa + o, sz, v >>> 0);
    }
  }

  private mmioPort(gpa: number): MmioPort {
    if (!this.mmio) throw new EmulationError(`guest-physical 0x${gpa.toString(16)} is not RAM`);
    return this.mmio;
  }

  // Segment-relative helpers, little-endian values.
  read(seg: number, off: bigint, size: number, acc: Access = {}): bigint {
    return fromBytes(this.readLinear(this.linear(seg, off, size), size, acc));
  }

  write(seg: number, off: bigint, size: number, v: bigint, acc: Access = {}): void {
    this.writeLinear(this.linear(seg, off, size, true), toBytes(v, size), acc);
  }
}

/** Naturally aligned 4/2/1-byte pieces for an MMIO access of n bytes. */
function split(n: number, gpa: number): [number, number][] {
  if ((n === 1 || n === 2 || n === 4) && gpa % n === 0) return [[0, n]];
  if (n === 8 && gpa % 4 === 0) return [[0, 4], [4, 4]];
  return [...Array(n)].map((_, i) => [i, 1] as [number, number]);
}

export function fromBytes(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  return v;
}

export function toBytes(v: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) { out[i] = Number(v & 0xffn); v >>= 8n; }
  return out;
}
