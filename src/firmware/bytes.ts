/**
 * Little-endian byte assembly shared by the firmware table builders.
 * Pure helpers: no I/O, no guest memory.
 */

export class FirmwareError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FirmwareError';
  }
}

/** A growable little-endian byte buffer with patching. */
export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private len = 0;

  get length(): number { return this.len; }

  private reserve(n: number): number {
    const at = this.len;
    if (at + n > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < at + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.len += n;
    return at;
  }

  // reserve() may replace the buffer, so take the offset before touching this.view.
  u8(v: number): this { const at = this.reserve(1); this.view.setUint8(at, checkUint(v, 0xff, 'u8')); return this; }
  u16(v: number): this { const at = this.reserve(2); this.view.setUint16(at, checkUint(v, 0xffff, 'u16'), true); return this; }
  u32(v: number): this { const at = this.reserve(4); this.view.setUint32(at, checkUint(v, 0xffffffff, 'u32'), true); return this; }
  u64(v: number | bigint): this { const at = this.reserve(8); this.view.setBigUint64(at, toU64(v), true); return this; }

  bytes(b: ArrayLike<number>): this {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    return this;
  }

  zeros(n: number): this { this.reserve(n); this.buf.fill(0, this.len - n, this.len); return this; }

  /** ASCII text in exactly `width` bytes, padded with `pad` (must fit). */
  ascii(text: string, width: number, pad = 0x20): this {
    const b = asciiBytes(text);
    if (b.length > width) throw new FirmwareError(`'${text}' is longer than ${width} bytes`);
    this.bytes(b);
    for (let i = b.length; i < width; i++) this.u8(pad);
    return this;
  }

  /** Pad with zeros to a multiple of `align` bytes. */
  align(align: number): this {
    const rem = this.len % align;
    if (rem) this.zeros(align - rem);
    return this;
  }

  patchU8(at: number, v: number): void { this.view.setUint8(at, checkUint(v, 0xff, 'u8')); }
  patchU16(at: number, v: number): void { this.view.setUint16(at, checkUint(v, 0xffff, 'u16'), true); }
  patchU32(at: number, v: number): void { this.view.setUint32(at, checkUint(v, 0xffffffff, 'u32'), true); }

  /** Store at `at` the byte that makes bytes [start, end) sum to zero. */
  patchChecksum(at: number, start: number, end: number): void {
    this.buf[at] = 0;
    this.buf[at] = checksum(this.buf.subarray(start, end));
  }

  /** A copy of the bytes written so far. */
  finish(): Uint8Array { return this.buf.slice(0, this.len); }
}

/** The byte that, added to `data`, makes its 8-bit sum zero. */
export function checksum(data: Uint8Array): number {
  let sum = 0;
  for (const b of data) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** 8-bit sum of `data` (0 for a table with a valid checksum). */
export function byteSum(data: Uint8Array): number {
  let sum = 0;
  for (const b of data) sum = (sum + b) & 0xff;
  return sum;
}

export function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7e || c < 0x20) throw new FirmwareError(`non-printable-ASCII character in '${text}'`);
    out[i] = c;
  }
  return out;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function checkUint(v: number, max: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new FirmwareError(`${v} does not fit a ${what}`);
  return v;
}

function toU64(v: number | bigint): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n || v > 0xffffffffffffffffn) throw new FirmwareError(`${v} does not fit a u64`);
    return v;
  }
  if (!Number.isSafeInteger(v) || v < 0) throw new FirmwareError(`${v} does not fit a u64 exactly`);
  return BigInt(v);
}
