/**
 * The XSAVE area in guest memory, standard and compacted forms, against
 * KVM's buffer (always the standard form). Components 0 (x87) and 1 (SSE)
 * live in the 512-byte legacy region; MXCSR goes with SSE and AVX; the
 * others are placed by CPUID leaf 0xD (standard offsets) or packed after
 * the 64-byte header (compacted, 64-byte aligned where CPUID says so).
 */
import type { VcpuPort } from './cpu.js';
import type { Emu } from './emu.js';
import { EmulationError, gp } from './fault.js';
import { fromBytes, toBytes } from './mmu.js';

const LEGACY = 512, HEADER = 64, EXT_START = LEGACY + HEADER;
const XSTATE_BV = 512, XCOMP_BV = 520;
const MXCSR = 24;
const COMPACTED = 1n << 63n;

interface Component { offset: number; size: number; align64: boolean }
const layouts = new WeakMap<VcpuPort, Map<number, Component>>();

/** Components 2..62 from the vCPU's CPUID leaf 0xD. */
export function components(vcpu: VcpuPort): Map<number, Component> {
  let m = layouts.get(vcpu);
  if (!m) {
    m = new Map();
    for (const [fn, index, eax, ebx, ecx] of vcpu.getCpuid()) {
      if (fn === 0xd && index >= 2 && index < 63 && eax > 0) m.set(index, { offset: ebx, size: eax, align64: (ecx & 2) !== 0 });
    }
    layouts.set(vcpu, m);
  }
  return m;
}

function bits(v: bigint): number[] {
  const out: number[] = [];
  for (let i = 0; v; i++, v >>= 1n) if (v & 1n) out.push(i);
  return out;
}

/** Where each component of `bv` lies in the guest's area, and the area's size. */
function placement(vcpu: VcpuPort, bv: bigint, compacted: boolean): { at: Map<number, Component>; size: number } {
  const comps = components(vcpu);
  const at = new Map<number, Component>();
  let size = EXT_START;
  let next = EXT_START;
  for (const i of bits(bv & ~3n)) {
    const c = comps.get(i);
    if (!c) throw new EmulationError(`XSAVE component ${i} is not described by CPUID leaf 0xD`);
    if (compacted) {
      if (c.align64) next = (next + 63) & ~63;
      at.set(i, { ...c, offset: next });
      next += c.size;
      size = next;
    } else {
      if (c.offset === 0) throw new EmulationError(`XSAVE component ${i} (supervisor) cannot be saved from user space`);
      at.set(i, c);
      size = Math.max(size, c.offset + c.size);
    }
  }
  return { at, size };
}

/** Copy the legacy part of components 0/1 (and MXCSR) between two areas. */
function legacy(dst: Uint8Array, src: Uint8Array, rfbm: bigint, withMxcsr: boolean): void {
  if (rfbm & 1n) { dst.set(src.subarray(0, MXCSR), 0); dst.set(src.subarray(32, 160), 32); }
  if (rfbm & 2n) dst.set(src.subarray(160, 416), 160);
  if (withMxcsr) dst.set(src.subarray(MXCSR, MXCSR + 8), MXCSR);
}

/** xsave/xsaveopt (standard) and xsavec/xsaves (compacted). */
export function xsaveArea(x: Emu, lin: bigint, rfbm: bigint, compacted: boolean): void {
  const buf = x.vcpu.getXsave();
  const inuse = fromBytes(buf.subarray(XSTATE_BV, XSTATE_BV + 8)) | 3n;
  const { at, size } = placement(x.vcpu, rfbm, compacted);
  const std = components(x.vcpu);
  const area = x.mmu.readLinear(lin, size, { write: true });
  const dv = new DataView(area.buffer);
  legacy(area, buf, rfbm, (rfbm & 6n) !== 0n);
  for (const [i, c] of at) {
    const s = std.get(i)!;
    area.set(buf.subarray(s.offset, s.offset + c.size), c.offset);
  }
  if (compacted) {
    dv.setBigUint64(XSTATE_BV, inuse & rfbm, true);
    dv.setBigUint64(XCOMP_BV, rfbm | COMPACTED, true);
  } else {
    dv.setBigUint64(XSTATE_BV, (dv.getBigUint64(XSTATE_BV, true) & ~rfbm) | (inuse & rfbm), true);
  }
  x.mmu.writeLinear(lin, area);
}

/** xrstor (either form) and xrstors (compacted only). */
export function xrstorArea(x: Emu, lin: bigint, rfbm: bigint, supervisor: boolean, mxcsrMask: (b: Buffer) => number): void {
  const hdr = x.mmu.readLinear(lin + BigInt(LEGACY), HEADER);
  const xstateBv = fromBytes(hdr.subarray(0, 8));
  const xcompBv = fromBytes(hdr.subarray(8, 16));
  if (hdr.subarray(16).some((b) => b !== 0)) throw gp(0);
  const compacted = (xcompBv & COMPACTED) !== 0n;
  const allowed = rfbm | (x.vcpu.getXcrs().get(0) ?? 3n);
  if (supervisor && !compacted) throw gp(0);
  if (compacted) {
    if ((xcompBv & ~COMPACTED & ~allowed) !== 0n || (xstateBv & ~xcompBv) !== 0n) throw gp(0);
  } else if (xcompBv !== 0n || (xstateBv & ~allowed) !== 0n) {
    throw gp(0);
  }
  const { at, size } = placement(x.vcpu, compacted ? xcompBv & ~COMPACTED : rfbm, compacted);
  const area = x.mmu.readLinear(lin, size);
  const buf = x.vcpu.getXsave();
  const std = components(x.vcpu);
  const load = rfbm & xstateBv;
  const init = rfbm & ~xstateBv;
  // MXCSR: the standard form loads it whenever SSE or AVX is requested; the compacted form with SSE's data.
  const mxcsrFromMem = compacted ? (load & 6n) !== 0n : (rfbm & 6n) !== 0n;
  if (mxcsrFromMem && new DataView(area.buffer).getUint32(MXCSR, true) & ~mxcsrMask(buf)) throw gp(0);
  legacy(buf, area, load, mxcsrFromMem);
  if (init & 1n) { buf.fill(0, 0, MXCSR); buf.fill(0, 32, 160); buf.writeUInt16LE(0x37f, 0); }
  if (init & 2n) {
    buf.fill(0, 160, 416);
    if (!mxcsrFromMem) buf.writeUInt32LE(0x1f80, MXCSR);
  }
  for (const i of bits(rfbm & ~3n)) {
    const s = std.get(i);
    if (!s || s.offset === 0) throw new EmulationError(`XSAVE component ${i} cannot be restored from user space`);
    const c = at.get(i);
    if (load & (1n << BigInt(i)) && c) buf.set(area.subarray(c.offset, c.offset + s.size), s.offset);
    else buf.fill(0, s.offset, s.offset + s.size);
  }
  // Every requested component now holds explicit values.
  const bv = fromBytes(buf.subarray(XSTATE_BV, XSTATE_BV + 8)) | rfbm | (mxcsrFromMem ? 2n : 0n);
  buf.set(toBytes(bv, 8), XSTATE_BV);
  x.vcpu.setXsave(buf);
}
