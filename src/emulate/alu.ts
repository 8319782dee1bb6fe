/**
 * Integer arithmetic with the x86 flags. Each function returns the result
 * and the new values of the flags it writes (`set` says which ones);
 * undefined flags are given the values current AMD and Intel CPUs produce
 * where they agree, otherwise a fixed choice (the unit tests compare only
 * the defined ones with the CPU).
 */
import { AF, CF, OF, PF, SF, ZF, ARITH_FLAGS, mask, sext } from './cpu.js';

export interface Flagged { r: bigint; f: bigint; set: bigint }

const PARITY = new Uint8Array(256).map((_, i) => {
  let n = 0;
  for (let b = i; b; b >>= 1) n ^= b & 1;
  return n ? 0 : 1;
});

export function signBit(size: number): bigint {
  return 1n << BigInt(size * 8 - 1);
}

/** SF, ZF and PF of a result. */
export function szp(r: bigint, size: number): bigint {
  let f = 0n;
  if (r & signBit(size)) f |= SF;
  if ((r & mask(size)) === 0n) f |= ZF;
  if (PARITY[Number(r & 0xffn)]) f |= PF;
  return f;
}

export function add(a: bigint, b: bigint, carry: bigint, size: number): Flagged {
  const m = mask(size);
  a &= m; b &= m;
  const full = a + b + carry;
  const r = full & m;
  let f = szp(r, size);
  if (full > m) f |= CF;
  if ((a ^ b ^ r) & 0x10n) f |= AF;
  if ((a ^ r) & (b ^ r) & signBit(size)) f |= OF;
  return { r, f, set: ARITH_FLAGS };
}

export function sub(a: bigint, b: bigint, borrow: bigint, size: number): Flagged {
  const m = mask(size);
  a &= m; b &= m;
  const r = (a - b - borrow) & m;
  let f = szp(r, size);
  if (a < b + borrow) f |= CF;
  if ((a ^ b ^ r) & 0x10n) f |= AF;
  if ((a ^ b) & (a ^ r) & signBit(size)) f |= OF;
  return { r, f, set: ARITH_FLAGS };
}

export function logic(r: bigint, size: number): Flagged {
  r &= mask(size);
  return { r, f: szp(r, size), set: ARITH_FLAGS };
}

/** The eight ALU operations of opcodes 00-3F and group 1; cf is the carry in. */
export function alu(op: string, a: bigint, b: bigint, cf: boolean, size: number): Flagged {
  switch (op) {
    case 'add': return add(a, b, 0n, size);
    case 'adc': return add(a, b, cf ? 1n : 0n, size);
    case 'sub': case 'cmp': return sub(a, b, 0n, size);
    case 'sbb': return sub(a, b, cf ? 1n : 0n, size);
    case 'and': case 'test': return logic(a & b, size);
    case 'or': return logic(a | b, size);
    case 'xor': return logic(a ^ b, size);
    default: throw new Error(`not an ALU operation: ${op}`);
  }
}

export function incdec(a: bigint, dec: boolean, size: number): Flagged {
  const x = dec ? sub(a, 1n, 0n, size) : add(a, 1n, 0n, size);
  return { r: x.r, f: x.f & ~CF, set: ARITH_FLAGS & ~CF };
}

export function neg(a: bigint, size: number): Flagged {
  return sub(0n, a, 0n, size);
}

/** Shifts and rotates (group 2); cfIn is the carry for rcl/rcr. Undefined for count 0 (no change). */
export function shift(op: string, a: bigint, count: number, cfIn: boolean, size: number): Flagged | undefined {
  const bits = size * 8;
  const m = mask(size);
  a &= m;
  const c = count & (size === 8 ? 0x3f : 0x1f);
  if (c === 0) return undefined;
  const C = BigInt(c);
  const msb = (v: bigint) => (v >> BigInt(bits - 1)) & 1n;
  let r: bigint, cf: bigint, of: bigint;
  switch (op) {
    case 'shl': case 'sal':
      r = (a << C) & m;
      cf = c <= bits ? (a >> BigInt(bits - c)) & 1n : 0n;
      of = msb(r) ^ cf;
      return { r, f: szp(r, size) | (cf ? CF : 0n) | (of ? OF : 0n), set: ARITH_FLAGS };
    case 'shr':
      r = a >> C;
      cf = (a >> BigInt(c - 1)) & 1n;
      of = msb(a);
      return { r, f: szp(r, size) | (cf ? CF : 0n) | (of ? OF : 0n), set: ARITH_FLAGS };
    case 'sar': {
      const s = sext(a, size);
      r = (s >> C) & m;
      cf = (s >> BigInt(Math.min(c - 1, bits - 1))) & 1n;
      return { r, f: szp(r, size) | (cf ? CF : 0n), set: ARITH_FLAGS };
    }
    case 'rol': {
      const k = BigInt(c % bits);
      r = ((a << k) | (a >> (BigInt(bits) - k))) & m;
      cf = r & 1n;
      of = msb(r) ^ cf;
      return { r, f: (cf ? CF : 0n) | (of ? OF : 0n), set: CF | OF };
    }
    case 'ror': {
      const k = BigInt(c % bits);
      r = ((a >> k) | (a << (BigInt(bits) - k))) & m;
      cf = msb(r);
      of = msb(r) ^ ((r >> BigInt(bits - 2)) & 1n);
      return { r, f: (cf ? CF : 0n) | (of ? OF : 0n), set: CF | OF };
    }
    case 'rcl': case 'rcr': {
      const k = size <= 2 ? c % (bits + 1) : c;
      const w = BigInt(bits + 1);
      const wide = (a | ((cfIn ? 1n : 0n) << BigInt(bits))) & ((1n << w) - 1n);
      const kk = BigInt(op === 'rcl' ? k : (bits + 1 - k) % (bits + 1));
      const rot = ((wide << kk) | (wide >> (w - kk))) & ((1n << w) - 1n);
      r = rot & m;
      cf = rot >> BigInt(bits);
      of = op === 'rcl' ? msb(r) ^ cf : msb(r) ^ ((r >> BigInt(bits - 2)) & 1n);
      return { r, f: (cf ? CF : 0n) | (of ? OF : 0n), set: CF | OF };
    }
    default: throw new Error(`not a shift: ${op}`);
  }
}

/** shld/shrd: shift `a`, filling from `b`. */
export function shiftDouble(left: boolean, a: bigint, b: bigint, count: number, size: number): Flagged | undefined {
  const bits = size * 8;
  const m = mask(size);
  a &= m; b &= m;
  const c = count & (size === 8 ? 0x3f : 0x1f);
  if (c === 0) return undefined;
  // 16-bit counts above 16 shift through b then a again (what the CPU does; the SDM says undefined).
  const wide = left ? (a << BigInt(bits)) | b : (b << BigInt(bits)) | a;
  const w2 = BigInt(2 * bits);
  const ext = size === 2 ? (wide << w2) | wide : wide;
  let r: bigint, cf: bigint;
  if (left) {
    const span = size === 2 ? 4n * BigInt(bits) : w2;
    const shifted = (ext << BigInt(c)) & ((1n << span) - 1n);
    r = (shifted >> (span - BigInt(bits))) & m;
    cf = (ext >> (span - BigInt(c))) & 1n;
  } else {
    r = (ext >> BigInt(c)) & m;
    cf = (ext >> BigInt(c - 1)) & 1n;
  }
  const of = ((r ^ a) >> BigInt(bits - 1)) & 1n;
  return { r, f: szp(r, size) | (cf ? CF : 0n) | (of ? OF : 0n), set: ARITH_FLAGS };
}

/** Condition codes 0-15 (jcc, setcc, cmovcc) against RFLAGS. */
export function condition(cc: number, fl: bigint): boolean {
  const cf = (fl & CF) !== 0n, zf = (fl & ZF) !== 0n, sf = (fl & SF) !== 0n, of = (fl & OF) !== 0n, pf = (fl & PF) !== 0n;
  let r: boolean;
  switch (cc >> 1) {
    case 0: r = of; break;
    case 1: r = cf; break;
    case 2: r = zf; break;
    case 3: r = cf || zf; break;
    case 4: r = sf; break;
    case 5: r = pf; break;
    case 6: r = sf !== of; break;
    default: r = zf || sf !== of;
  }
  return cc & 1 ? !r : r;
}

export function popcount(v: bigint): number {
  let n = 0;
  for (; v; v &= v - 1n) n++;
  return n;
}

/** Index of the lowest/highest set bit, or -1. */
export function lowBit(v: bigint): number {
  if (v === 0n) return -1;
  let n = 0;
  while (!(v & 1n)) { v >>= 1n; n++; }
  return n;
}
export function highBit(v: bigint): number {
  return v === 0n ? -1 : v.toString(2).length - 1;
}

export function bswap(v: bigint, size: number): bigint {
  let r = 0n;
  for (let i = 0; i < size; i++) { r = (r << 8n) | (v & 0xffn); v >>= 8n; }
  return r;
}
