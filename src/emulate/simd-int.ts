/**
 * SSE2/AVX2 packed operations on two sources (map 0F, 66 prefix or VEX):
 * bitwise and/andn/or/xor (integer and floating-point forms), unpacks, packs with saturation, compares, add/sub (wrapping and
 * saturating), multiplies, min/max/average, psadbw, and shifts by the count
 * in a vector register. Each works per 128-bit lane where the instruction
 * does; `n` is the vector length in bytes.
 */
export type Lanes = (a: Uint8Array, b: Uint8Array, n: number) => Uint8Array;

type Num = (x: number, y: number) => number;

/** Element-wise on unsigned `size`-byte elements (1, 2, 4); f's result is truncated. */
function each(size: 1 | 2 | 4, f: Num): Lanes {
  return (a, b, n) => {
    const out = new Uint8Array(n);
    const da = view(a), db = view(b), d = view(out);
    for (let i = 0; i < n; i += size) put(d, i, size, f(get(da, i, size), get(db, i, size)));
    return out;
  };
}
function each64(f: (x: bigint, y: bigint) => bigint): Lanes {
  return (a, b, n) => {
    const out = new Uint8Array(n);
    const da = view(a), db = view(b), d = view(out);
    for (let i = 0; i < n; i += 8) d.setBigUint64(i, BigInt.asUintN(64, f(da.getBigUint64(i, true), db.getBigUint64(i, true))), true);
    return out;
  };
}
const view = (u: Uint8Array) => new DataView(u.buffer, u.byteOffset, u.byteLength);
function get(d: DataView, i: number, size: number): number {
  return size === 1 ? d.getUint8(i) : size === 2 ? d.getUint16(i, true) : d.getUint32(i, true);
}
function put(d: DataView, i: number, size: number, v: number): void {
  if (size === 1) d.setUint8(i, v & 0xff); else if (size === 2) d.setUint16(i, v & 0xffff, true); else d.setUint32(i, v >>> 0, true);
}
const s8 = (x: number) => (x << 24) >> 24;
const s16 = (x: number) => (x << 16) >> 16;
const s32 = (x: number) => x | 0;
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
const mask = (c: boolean, size: number) => (c ? (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1) : 0);

/** punpckl / punpckh: interleave the low or high halves of each 128-bit lane. */
function unpack(size: number, high: boolean): Lanes {
  return (a, b, n) => {
    const out = new Uint8Array(n);
    for (let lane = 0; lane < n; lane += 16) {
      const from = lane + (high ? 8 : 0);
      for (let i = 0, o = lane; i < 8; i += size, o += 2 * size) {
        out.set(a.subarray(from + i, from + i + size), o);
        out.set(b.subarray(from + i, from + i + size), o + size);
      }
    }
    return out;
  };
}

/** packss/packus: narrow each source's elements (a first, then b) per 128-bit lane, saturating. */
function pack(from: 2 | 4, signedOut: boolean): Lanes {
  const to = from / 2;
  const [lo, hi] = to === 1 ? (signedOut ? [-128, 127] : [0, 255]) : signedOut ? [-32768, 32767] : [0, 65535];
  return (a, b, n) => {
    const out = new Uint8Array(n);
    const d = view(out);
    for (let lane = 0; lane < n; lane += 16) {
      let o = lane;
      for (const src of [a, b]) {
        const s = view(src);
        for (let i = 0; i < 16; i += from, o += to) {
          const v = from === 2 ? s16(s.getUint16(lane + i, true)) : s32(s.getUint32(lane + i, true));
          put(d, o, to, clamp(v, lo, hi));
        }
      }
    }
    return out;
  };
}

/** Shifts by the count in the low quadword of the second source. */
function shift(size: 2 | 4 | 8, kind: 'l' | 'r' | 'a'): Lanes {
  return (a, b, n) => {
    const count = view(b).getBigUint64(0, true);
    const bits = BigInt(size * 8);
    const out = new Uint8Array(n);
    const da = view(a), d = view(out);
    for (let i = 0; i < n; i += size) {
      const e = size === 8 ? da.getBigUint64(i, true) : BigInt(get(da, i, size));
      let r: bigint;
      if (kind === 'a') r = BigInt.asUintN(Number(bits), BigInt.asIntN(Number(bits), e) >> (count >= bits ? bits - 1n : count));
      else if (count >= bits) r = 0n;
      else r = kind === 'l' ? BigInt.asUintN(Number(bits), e << count) : e >> count;
      if (size === 8) d.setBigUint64(i, r, true); else put(d, i, size, Number(r));
    }
    return out;
  };
}

function pmaddwd(a: Uint8Array, b: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n), da = view(a), db = view(b), d = view(out);
  for (let i = 0; i < n; i += 4) {
    const p = s16(da.getUint16(i, true)) * s16(db.getUint16(i, true)) + s16(da.getUint16(i + 2, true)) * s16(db.getUint16(i + 2, true));
    d.setUint32(i, p >>> 0, true);
  }
  return out;
}

function psadbw(a: Uint8Array, b: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n), d = view(out);
  for (let q = 0; q < n; q += 8) {
    let sum = 0;
    for (let i = 0; i < 8; i++) sum += Math.abs(a[q + i] - b[q + i]);
    d.setUint16(q, sum, true);
  }
  return out;
}

/** By "map:opcode" (map 2 is 0F). */
export const PACKED_BINARY: Record<string, Lanes> = {
  '2:db': each(1, (x, y) => x & y), '2:df': each(1, (x, y) => ~x & y), '2:eb': each(1, (x, y) => x | y), '2:ef': each(1, (x, y) => x ^ y),
  '2:54': each(1, (x, y) => x & y), '2:55': each(1, (x, y) => ~x & y), '2:56': each(1, (x, y) => x | y), '2:57': each(1, (x, y) => x ^ y),
  '2:fe': each(4, (x, y) => x + y), '2:fa': each(4, (x, y) => x - y),
  '2:60': unpack(1, false), '2:61': unpack(2, false), '2:62': unpack(4, false), '2:6c': unpack(8, false),
  '2:68': unpack(1, true), '2:69': unpack(2, true), '2:6a': unpack(4, true), '2:6d': unpack(8, true),
  '2:63': pack(2, true), '2:67': pack(2, false), '2:6b': pack(4, true),
  '2:64': each(1, (x, y) => mask(s8(x) > s8(y), 1)), '2:65': each(2, (x, y) => mask(s16(x) > s16(y), 2)),
  '2:66': each(4, (x, y) => mask(s32(x) > s32(y), 4)),
  '2:74': each(1, (x, y) => mask(x === y, 1)), '2:75': each(2, (x, y) => mask(x === y, 2)), '2:76': each(4, (x, y) => mask(x === y, 4)),
  '2:fc': each(1, (x, y) => x + y), '2:fd': each(2, (x, y) => x + y), '2:f8': each(1, (x, y) => x - y), '2:f9': each(2, (x, y) => x - y),
  '2:d4': each64((x, y) => x + y), '2:fb': each64((x, y) => x - y),
  '2:ec': each(1, (x, y) => clamp(s8(x) + s8(y), -128, 127)), '2:ed': each(2, (x, y) => clamp(s16(x) + s16(y), -32768, 32767)),
  '2:e8': each(1, (x, y) => clamp(s8(x) - s8(y), -128, 127)), '2:e9': each(2, (x, y) => clamp(s16(x) - s16(y), -32768, 32767)),
  '2:dc': each(1, (x, y) => Math.min(255, x + y)), '2:dd': each(2, (x, y) => Math.min(65535, x + y)),
  '2:d8': each(1, (x, y) => Math.max(0, x - y)), '2:d9': each(2, (x, y) => Math.max(0, x - y)),
  '2:d5': each(2, (x, y) => Math.imul(x, y)), '2:e5': each(2, (x, y) => (s16(x) * s16(y)) >> 16), '2:e4': each(2, (x, y) => (x * y) >>> 16),
  '2:f4': each64((x, y) => (x & 0xffffffffn) * (y & 0xffffffffn)), '2:f5': pmaddwd, '2:f6': psadbw,
  '2:da': each(1, Math.min), '2:de': each(1, Math.max), '2:ea': each(2, (x, y) => (s16(x) < s16(y) ? x : y)),
  '2:ee': each(2, (x, y) => (s16(x) > s16(y) ? x : y)), '2:e0': each(1, (x, y) => (x + y + 1) >> 1), '2:e3': each(2, (x, y) => (x + y + 1) >> 1),
  '2:d1': shift(2, 'r'), '2:d2': shift(4, 'r'), '2:d3': shift(8, 'r'), '2:e1': shift(2, 'a'), '2:e2': shift(4, 'a'),
  '2:f1': shift(2, 'l'), '2:f2': shift(4, 'l'), '2:f3': shift(8, 'l'),
};
