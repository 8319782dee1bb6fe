/** Segment descriptors: reading them from the GDT/LDT and turning them into KVM segments. */
import type { Segment } from '../kvm/vcpu.js';
import type { CpuState } from './cpu.js';
import type { Mmu } from './mmu.js';
import { gp } from './fault.js';

export interface Descriptor extends Segment { raw: bigint }

/** Parse an 8-byte code/data descriptor (the high half of a 16-byte system descriptor is `hi`). */
export function parseDescriptor(raw: bigint, selector: number, hi = 0n): Descriptor {
  const lo32 = Number(raw & 0xffffffffn), hi32 = Number(raw >> 32n);
  let limit = (lo32 & 0xffff) | (hi32 & 0xf0000);
  const g = (hi32 >>> 23) & 1;
  if (g) limit = ((limit << 12) | 0xfff) >>> 0;
  const base = BigInt(((lo32 >>> 16) | ((hi32 & 0xff) << 16) | (hi32 & 0xff000000)) >>> 0) | ((hi & 0xffffffffn) << 32n);
  return {
    raw, selector, base: BigInt.asUintN(64, base), limit,
    type: (hi32 >>> 8) & 0xf, s: (hi32 >>> 12) & 1, dpl: (hi32 >>> 13) & 3, present: (hi32 >>> 15) & 1,
    avl: (hi32 >>> 20) & 1, l: (hi32 >>> 21) & 1, db: (hi32 >>> 22) & 1, g, unusable: 0,
  };
}

/** Read the descriptor of `selector` (not null) from the GDT or LDT; #GP(selector) beyond the table. */
export function readDescriptor(cpu: CpuState, mmu: Mmu, selector: number): Descriptor {
  const table = selector & 4 ? cpu.sregs.seg.ldt : undefined;
  const base = table ? table.base : cpu.sregs.gdt.base;
  const limit = table ? (table.unusable ? -1 : table.limit) : cpu.sregs.gdt.limit;
  const off = selector & 0xfff8;
  if (off + 7 > limit) throw gp(selector & 0xfffc);
  const lin = BigInt.asUintN(cpu.long ? 64 : 32, base + BigInt(off));
  const b = mmu.readLinear(lin, 8, { implicit: true });
  return parseDescriptor(new DataView(b.buffer).getBigUint64(0, true), selector);
}

/** A null selector as KVM shows it: unusable, with the RPL kept as the DPL (64-bit SS). */
export function nullSegment(selector: number, dpl = 0): Segment {
  return { base: 0n, limit: 0, selector, type: 0, present: 0, dpl, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 1 };
}

/** The descriptor as a loaded segment register (accessed bit set). */
export function toSegment(d: Descriptor): Segment {
  const { raw: _raw, ...seg } = d;
  void _raw;
  return { ...seg, type: d.type | 1 };
}
