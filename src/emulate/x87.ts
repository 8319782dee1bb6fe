/**
 * x87 arithmetic on KVM's copy of the FPU state (the FXSAVE image at the
 * start of the XSAVE buffer: FCW, FSW with TOP, the abridged tag byte, and
 * ST(0)-ST(7) in stack order). Values are computed as IEEE doubles, so
 * results carry 53 bits of mantissa instead of the x87's 64: enough for
 * the firmware and test programs that reach here (memtest86+'s timing and
 * progress arithmetic), not a bit-exact FPU. Exceptions are not raised
 * (the masked responses are produced: NaN, infinity).
 */
import { EmulationError } from './fault.js';

const FCW = 0, FSW = 2, FTW = 4, ST0 = 32;

/** 80-bit extended (10 bytes, little-endian) to a double. */
export function fromExtended(b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, 10);
  const mant = dv.getBigUint64(0, true);
  const se = dv.getUint16(8, true);
  const sign = se & 0x8000 ? -1 : 1;
  const exp = se & 0x7fff;
  if (exp === 0x7fff) return BigInt.asUintN(64, mant << 1n) === 0n ? sign * Infinity : NaN;
  if (mant === 0n) return sign * 0;
  return sign * Number(mant) * 2 ** (exp - 16383 - 63);
}

/** A double to 80-bit extended. */
export function toExtended(v: number): Uint8Array {
  const out = new Uint8Array(10);
  const dv = new DataView(out.buffer);
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  v = Math.abs(v);
  if (Number.isNaN(v)) { dv.setBigUint64(0, 0xc000000000000000n, true); dv.setUint16(8, 0xffff, true); return out; }
  if (v === Infinity) { dv.setBigUint64(0, 0x8000000000000000n, true); dv.setUint16(8, sign | 0x7fff, true); return out; }
  if (v === 0) { dv.setUint16(8, sign, true); return out; }
  let e = Math.floor(Math.log2(v));
  if (2 ** e > v) e--;
  if (2 ** (e + 1) <= v) e++;
  // mantissa = v / 2^e in [1, 2) with 63 fraction bits; exact for any double
  const m = BigInt(Math.round((v / 2 ** e) * 2 ** 52)) << 11n;
  dv.setBigUint64(0, m, true);
  dv.setUint16(8, sign | (e + 16383), true);
  return out;
}

/** The x87 register stack over the FXSAVE image `buf` (changed in place). */
export class X87 {
  constructor(readonly buf: Uint8Array) {}
  private get dv(): DataView { return new DataView(this.buf.buffer, this.buf.byteOffset, 512); }
  get fcw(): number { return this.dv.getUint16(FCW, true); }
  get fsw(): number { return this.dv.getUint16(FSW, true); }
  set fsw(v: number) { this.dv.setUint16(FSW, v & 0xffff, true); }
  get top(): number { return (this.fsw >> 11) & 7; }
  set top(t: number) { this.fsw = (this.fsw & ~0x3800) | ((t & 7) << 11); }

  st(i: number): number {
    return fromExtended(this.buf.subarray(ST0 + 16 * i, ST0 + 16 * i + 10));
  }
  setSt(i: number, v: number): void {
    this.buf.set(toExtended(v), ST0 + 16 * i);
    this.buf[FTW] |= 1 << ((this.top + i) & 7);
  }

  push(v: number): void {
    // Shift ST(0..6) down one slot; the image keeps stack order.
    this.buf.copyWithin(ST0 + 16, ST0, ST0 + 16 * 7);
    this.top = this.top - 1;
    this.setSt(0, v);
  }

  pop(): number {
    const v = this.st(0);
    this.buf[FTW] &= ~(1 << this.top);
    this.buf.copyWithin(ST0, ST0 + 16, ST0 + 16 * 8);
    this.buf.fill(0, ST0 + 16 * 7, ST0 + 16 * 8);
    this.top = this.top + 1;
    return v;
  }

  /** Set C3/C2/C0 from a comparison (C1 cleared). */
  compare(a: number, b: number): void {
    const c = Number.isNaN(a) || Number.isNaN(b) ? 0x4500 : a < b ? 0x0100 : a === b ? 0x4000 : 0;
    this.fsw = (this.fsw & ~0x4700) | c;
  }

  /** Round to an integer by FCW.RC. */
  round(v: number): number {
    switch ((this.fcw >> 10) & 3) {
      case 0: {
        const r = Math.round(v);
        return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // to nearest, ties to even
      }
      case 1: return Math.floor(v);
      case 2: return Math.ceil(v);
      default: return Math.trunc(v);
    }
  }
}

export type ArithOp = 'add' | 'mul' | 'sub' | 'subr' | 'div' | 'divr';
export const ARITH: ArithOp[] = ['add', 'mul', 'sub' /* placeholder for com */, 'sub', 'sub', 'subr', 'div', 'divr'];

export function arith(op: ArithOp, a: number, b: number): number {
  switch (op) {
    case 'add': return a + b;
    case 'mul': return a * b;
    case 'sub': return a - b;
    case 'subr': return b - a;
    case 'div': return a / b;
    case 'divr': return b / a;
    default: throw new EmulationError(`x87 operation ${op as string}`);
  }
}

/** Integer store with the x87's overflow answer (the "integer indefinite"). */
export function toInt(v: number, bytes: number): bigint {
  const bits = BigInt(bytes * 8);
  const lim = 1n << (bits - 1n);
  if (!Number.isFinite(v)) return lim;
  const i = BigInt(v);
  return i >= lim || i < -lim ? lim : BigInt.asUintN(bytes * 8, i);
}
