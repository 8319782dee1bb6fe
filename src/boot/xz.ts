/**
 * A decoder for the .xz container format (The .xz File Format 1.x, Tukaani),
 * enough for the payload of a Linux bzImage built with
 * `xz --check=crc32 --x86 --lzma2=,dict=32MiB`. The LZMA2 decoder is in lzma.ts.
 *
 * Implements: stream header and footer, blocks (header with its CRC32, the
 * optional compressed/uncompressed sizes, block padding, the check), the
 * index (validated against the blocks actually decoded), stream padding and
 * concatenated streams; checks None, CRC32, CRC64 and SHA-256; filter chains
 * of LZMA2 preceded by x86 BCJ (with optional start offset) and/or Delta.
 *
 * Not implemented: the other BCJ filters (PowerPC, IA-64, ARM, ARM-Thumb,
 * SPARC, ARM64, RISC-V) and the other check types, which are rejected with
 * XzError; streaming and random access: the whole file is decoded in memory.
 *
 * Untrusted input: every size, count and offset is checked, output is bounded
 * by maxOutput, and any malformed input throws XzError. The output buffer is
 * sized from the indexes (read backwards from the end of the file, as
 * `xz --list` does) or from block headers when they can, else grows
 * geometrically; it is also the LZMA2 dictionary.
 */
import { createHash } from 'node:crypto';
import { LzmaError, Lzma2Decoder, OutputBuffer, lzma2DictSize } from './lzma.js';

export class XzError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'XzError';
  }
}

const DEFAULT_MAX_OUTPUT = 1 << 30;
const INITIAL_OUTPUT = 1 << 16; // when the indexes cannot be read up front

// Stream header: magic, flags (a zero byte, then the check type), CRC32 of the flags.
const HEADER_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const STREAM_HEADER_SIZE = 12;
const HEADER_FLAGS = 6;
const HEADER_CRC = 8;
// Stream footer: CRC32 of the next six bytes, backward size, flags, magic "YZ".
const STREAM_FOOTER_SIZE = 12;
const FOOTER_BACKWARD_SIZE = 4;
const FOOTER_FLAGS = 8;
const FOOTER_MAGIC = 10;
const FOOTER_MAGIC_BYTES = [0x59, 0x5a];
const FLAGS_SIZE = 2;
const FLAGS_CHECK_MASK = 0x0f;

const CHECK_NONE = 0x00;
const CHECK_CRC32 = 0x01;
const CHECK_CRC64 = 0x04;
const CHECK_SHA256 = 0x0a;
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

// Block header: size byte ((n + 1) * 4 bytes in all), flags, optional sizes, filter flags, padding, CRC32.
const BLOCK_HEADER_FLAGS = 1;
const BLOCK_HEADER_FIELDS = 2;
const BLOCK_FLAGS_FILTERS_MASK = 0x03; // number of filters - 1
const BLOCK_FLAGS_RESERVED = 0x3c;
const BLOCK_FLAG_COMPRESSED_SIZE = 0x40;
const BLOCK_FLAG_UNCOMPRESSED_SIZE = 0x80;
const CRC32_SIZE = 4;
const ALIGN = 4; // blocks, the index and stream padding are multiples of four bytes

const INDEX_INDICATOR = 0x00;
const UNPADDED_SIZE_MIN = 5;
const VLI_BYTES_MAX = 9;

const FILTER_DELTA = 0x03;
const FILTER_X86 = 0x04;
const FILTER_LZMA2 = 0x21;
const FILTER_NAMES: Record<number, string> = {
  0x03: 'Delta', 0x04: 'x86', 0x05: 'PowerPC', 0x06: 'IA-64', 0x07: 'ARM', 0x08: 'ARM-Thumb', 0x09: 'SPARC',
  0x0a: 'ARM64', 0x0b: 'RISC-V', 0x21: 'LZMA2',
};
const X86_START_OFFSET_SIZE = 4;
const DELTA_PROPS_SIZE = 1;
const LZMA2_PROPS_SIZE = 1;

export function isXz(data: Uint8Array): boolean {
  return hasMagic(data, 0);
}

function hasMagic(data: Uint8Array, pos: number): boolean {
  if (data.length - pos < HEADER_MAGIC.length) return false;
  return HEADER_MAGIC.every((b, i) => data[pos + i] === b);
}

function hasFooterMagic(data: Uint8Array, footer: number): boolean {
  return FOOTER_MAGIC_BYTES.every((b, i) => data[footer + FOOTER_MAGIC + i] === b);
}

/** Decompresses a whole .xz file (one or more streams, optionally padded). */
export function xzDecompress(data: Uint8Array, opts: { maxOutput?: number } = {}): Uint8Array {
  const max = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
  if (!Number.isSafeInteger(max) || max < 0) throw new XzError(`xz: bad maxOutput ${max}`);
  try {
    return decodeFile(data, max);
  } catch (e) {
    if (e instanceof LzmaError) throw new XzError(`xz: ${e.message}`, { cause: e });
    throw e;
  }
}

function decodeFile(data: Uint8Array, max: number): Uint8Array {
  if (!isXz(data)) throw new XzError('xz: bad magic');
  const expected = sizeFromIndexes(data);
  if (expected !== undefined && expected > max) throw new XzError(`xz: output exceeds maxOutput (${max} bytes)`);
  const out = new OutputBuffer(expected ?? Math.max(INITIAL_OUTPUT, data.length * 4), max);
  const lzma2 = new Lzma2Decoder(out);
  let pos = decodeStream(data, 0, out, lzma2);
  while (pos < data.length) {
    let next = pos;
    while (next < data.length && data[next] === 0) next++;
    if ((next - pos) % ALIGN !== 0) throw new XzError('xz: bad stream padding');
    if (next === data.length) break;
    pos = decodeStream(data, next, out, lzma2);
  }
  return out.len === out.buf.length ? out.buf : out.buf.slice(0, out.len);
}

interface BlockRecord { unpadded: number; uncompressed: number }

/** Decodes the stream at data[pos] and returns the position after its footer. */
function decodeStream(data: Uint8Array, pos: number, out: OutputBuffer, lzma2: Lzma2Decoder): number {
  if (data.length - pos < STREAM_HEADER_SIZE) throw new XzError('xz: truncated stream header');
  if (!hasMagic(data, pos)) throw new XzError('xz: bad stream header magic');
  const flags = pos + HEADER_FLAGS;
  if (crc32(data, flags, pos + HEADER_CRC) !== u32(data, pos + HEADER_CRC)) throw new XzError('xz: bad stream header CRC32');
  if (data[flags] !== 0 || (data[flags + 1] & ~FLAGS_CHECK_MASK) !== 0) {
    throw new XzError('xz: unsupported stream flags');
  }
  const check = data[flags + 1];
  if (check !== CHECK_NONE && check !== CHECK_CRC32 && check !== CHECK_CRC64 && check !== CHECK_SHA256) {
    throw new XzError(`xz: unsupported check type ${check}`);
  }
  pos += STREAM_HEADER_SIZE;

  const blocks: BlockRecord[] = [];
  for (;;) {
    if (pos >= data.length) throw new XzError('xz: truncated stream');
    if (data[pos] === INDEX_INDICATOR) break;
    const block = decodeBlock(data, pos, check, out, lzma2);
    blocks.push(block);
    pos = block.end;
  }

  const indexStart = pos;
  const index = parseIndex(data, indexStart);
  if (index.records.length !== blocks.length) throw new XzError('xz: index does not match the blocks (count)');
  index.records.forEach((r, i) => {
    const field = r.unpadded !== blocks[i].unpadded ? 'unpadded' : r.uncompressed !== blocks[i].uncompressed ? 'uncompressed' : '';
    if (field) throw new XzError(`xz: index does not match block ${i} (${field} size)`);
  });

  const footer = index.end;
  if (data.length - footer < STREAM_FOOTER_SIZE) throw new XzError('xz: truncated stream footer');
  if (crc32(data, footer + FOOTER_BACKWARD_SIZE, footer + FOOTER_MAGIC) !== u32(data, footer)) {
    throw new XzError('xz: bad stream footer CRC32');
  }
  if ((u32(data, footer + FOOTER_BACKWARD_SIZE) + 1) * ALIGN !== footer - indexStart) {
    throw new XzError('xz: stream footer backward size does not match the index');
  }
  for (let i = 0; i < FLAGS_SIZE; i++) {
    if (data[footer + FOOTER_FLAGS + i] !== data[flags + i]) throw new XzError('xz: stream footer flags differ from the header');
  }
  if (!hasFooterMagic(data, footer)) throw new XzError('xz: bad stream footer magic');
  return footer + STREAM_FOOTER_SIZE;
}

interface Filter { id: number; props: Uint8Array }

/** Decodes the block at data[start] into `out`, verifies its check, and returns its index record and end. */
function decodeBlock(
  data: Uint8Array, start: number, check: number, out: OutputBuffer, lzma2: Lzma2Decoder,
): BlockRecord & { end: number } {
  const headerSize = (data[start] + 1) * 4;
  if (data.length - start < headerSize) throw new XzError('xz: truncated block header');
  const crcPos = start + headerSize - CRC32_SIZE;
  if (crc32(data, start, crcPos) !== u32(data, crcPos)) throw new XzError('xz: bad block header CRC32');
  const flags = data[start + BLOCK_HEADER_FLAGS];
  if ((flags & BLOCK_FLAGS_RESERVED) !== 0) throw new XzError('xz: unsupported block flags');
  const hdr = new Cursor(data, start + BLOCK_HEADER_FIELDS, crcPos, 'block header');
  const compressedSize = flags & BLOCK_FLAG_COMPRESSED_SIZE ? hdr.vli() : -1;
  const uncompressedSize = flags & BLOCK_FLAG_UNCOMPRESSED_SIZE ? hdr.vli() : -1;
  if (compressedSize === 0) throw new XzError('xz: block compressed size is zero');
  const filters: Filter[] = [];
  for (let i = 0; i <= (flags & BLOCK_FLAGS_FILTERS_MASK); i++) {
    const id = hdr.vli();
    const size = hdr.vli();
    filters.push({ id, props: hdr.bytes(size) });
  }
  while (hdr.pos < crcPos) if (hdr.byte() !== 0) throw new XzError('xz: nonzero block header padding');
  const dictSize = checkFilters(filters);

  const dataStart = start + headerSize;
  const limit = compressedSize >= 0 ? dataStart + compressedSize : data.length;
  if (limit > data.length) throw new XzError('xz: truncated block');
  if (uncompressedSize >= 0) out.reserve(uncompressedSize);
  const outStart = out.len;
  const dataEnd = lzma2.decode(data, dataStart, limit, dictSize);
  if (compressedSize >= 0 && dataEnd !== limit) throw new XzError('xz: block compressed size mismatch');
  const produced = out.len - outStart;
  if (uncompressedSize >= 0 && produced !== uncompressedSize) throw new XzError('xz: block uncompressed size mismatch');
  for (let i = filters.length - 2; i >= 0; i--) applyFilter(filters[i], out.buf, outStart, out.len);

  let pos = dataEnd;
  while ((pos - start) % ALIGN !== 0) {
    if (pos >= data.length) throw new XzError('xz: truncated block padding');
    if (data[pos++] !== 0) throw new XzError('xz: nonzero block padding');
  }
  const checkSize = CHECK_SIZES[check];
  if (data.length - pos < checkSize) throw new XzError('xz: truncated block check');
  verifyCheck(check, out.buf.subarray(outStart, out.len), data, pos);
  return { unpadded: headerSize + (dataEnd - dataStart) + checkSize, uncompressed: produced, end: pos + checkSize };
}

/** Validates a filter chain and returns the LZMA2 dictionary size. */
function checkFilters(filters: Filter[]): number {
  filters.forEach(({ id, props }, i) => {
    if (id !== FILTER_LZMA2 && id !== FILTER_X86 && id !== FILTER_DELTA) {
      throw new XzError(`xz: unsupported filter 0x${id.toString(16)}${FILTER_NAMES[id] ? ` (${FILTER_NAMES[id]})` : ''}`);
    }
    if ((id === FILTER_LZMA2) !== (i === filters.length - 1)) {
      throw new XzError('xz: LZMA2 must be the last filter, and only the last');
    }
    const ok = id === FILTER_X86 ? props.length === 0 || props.length === X86_START_OFFSET_SIZE
      : props.length === (id === FILTER_DELTA ? DELTA_PROPS_SIZE : LZMA2_PROPS_SIZE);
    if (!ok) throw new XzError(`xz: bad properties size for filter 0x${id.toString(16)}`);
  });
  return lzma2DictSize(filters[filters.length - 1].props[0]);
}

function applyFilter({ id, props }: Filter, buf: Uint8Array, start: number, end: number): void {
  if (id === FILTER_X86) x86Decode(buf, start, end, props.length ? u32(props, 0) : 0);
  else if (id === FILTER_DELTA) deltaDecode(buf, start, end, props[0] + 1);
}

/** Delta filter: each byte was stored as the difference from the byte `distance` earlier. */
function deltaDecode(buf: Uint8Array, start: number, end: number, distance: number): void {
  for (let i = start + distance; i < end; i++) buf[i] += buf[i - distance];
}

// x86 BCJ: the encoder turned the rel32 operands of E8 (call) and E9 (jmp)
// into absolute addresses when their top byte is 00 or FF. A 3-bit mask
// remembers which of the previous three bytes were E8/E9 bytes, to skip
// opcodes that are probably inside another instruction's operand.
const X86_MASK_ALLOWED = 0x17; // bit m set: a conversion is allowed under mask m (0, 1, 2 or 4)
const X86_MASK_BYTE = Uint8Array.of(0, 1, 2, 2, 3, 3, 3, 3); // operand byte to test under each mask
const X86_INSN_SIZE = 5; // opcode + rel32

function x86Top(b: number): boolean {
  return b === 0x00 || b === 0xff;
}

/** Undoes the x86 BCJ filter in place on buf[start, end); `offset` is the position of buf[start]. */
function x86Decode(buf: Uint8Array, start: number, end: number, offset: number): void {
  const limit = end - (X86_INSN_SIZE - 1);
  let mask = 0;
  let last = start - X86_INSN_SIZE; // position of the previous E8/E9 byte
  let i = start;
  for (;;) {
    while (i < limit && (buf[i] | 1) !== 0xe9) i++; // find E8 or E9
    if (i >= limit) return;
    const gap = i - last;
    last = i;
    if (gap > 3) {
      mask = 0;
    } else {
      mask = (mask << (gap - 1)) & 7;
      if (mask !== 0 && (((X86_MASK_ALLOWED >>> mask) & 1) === 0 || x86Top(buf[i + 4 - X86_MASK_BYTE[mask]]))) {
        mask = (mask << 1) | 1;
        i++;
        continue;
      }
    }
    if (!x86Top(buf[i + 4])) {
      mask = (mask << 1) | 1;
      i++;
      continue;
    }
    const here = (offset + (i - start) + X86_INSN_SIZE) | 0;
    let src = buf[i + 1] | (buf[i + 2] << 8) | (buf[i + 3] << 16) | (buf[i + 4] << 24);
    let dest: number;
    for (;;) {
      dest = (src - here) | 0;
      if (mask === 0) break;
      const bits = X86_MASK_BYTE[mask] * 8;
      if (!x86Top((dest >>> (24 - bits)) & 0xff)) break;
      src = dest ^ ((1 << (32 - bits)) - 1);
    }
    dest &= 0x01ffffff; // sign-extend bit 24 into the top byte
    if (dest & 0x01000000) dest |= 0xfe000000;
    buf[i + 1] = dest;
    buf[i + 2] = dest >>> 8;
    buf[i + 3] = dest >>> 16;
    buf[i + 4] = dest >>> 24;
    i += X86_INSN_SIZE;
  }
}

/** Parses the index at data[start] (the indicator byte) and checks its padding and CRC32. */
function parseIndex(data: Uint8Array, start: number): { records: BlockRecord[]; end: number } {
  const c = new Cursor(data, start + 1, data.length, 'index');
  const count = c.vli();
  if (count > (data.length - c.pos) / 2) throw new XzError('xz: truncated index'); // records take >= 2 bytes
  const records: BlockRecord[] = [];
  for (let i = 0; i < count; i++) {
    const unpadded = c.vli();
    const uncompressed = c.vli();
    if (unpadded < UNPADDED_SIZE_MIN) throw new XzError('xz: bad index record');
    records.push({ unpadded, uncompressed });
  }
  while ((c.pos - start) % ALIGN !== 0) if (c.byte() !== 0) throw new XzError('xz: nonzero index padding');
  if (data.length - c.pos < CRC32_SIZE) throw new XzError('xz: truncated index');
  if (crc32(data, start, c.pos) !== u32(data, c.pos)) throw new XzError('xz: bad index CRC32');
  return { records, end: c.pos + CRC32_SIZE };
}

/**
 * The total uncompressed size according to the indexes, read backwards from
 * the end of the file (as `xz --list` does), or undefined if they cannot be
 * read that way. Only used to size the output; decoding validates everything.
 */
function sizeFromIndexes(data: Uint8Array): number | undefined {
  let end = data.length;
  let total = 0;
  try {
    while (end > 0) {
      while (end >= ALIGN && u32(data, end - ALIGN) === 0) end -= ALIGN; // stream padding
      const footer = end - STREAM_FOOTER_SIZE;
      if (footer < STREAM_HEADER_SIZE || !hasFooterMagic(data, footer)) return undefined;
      const indexStart = footer - (u32(data, footer + FOOTER_BACKWARD_SIZE) + 1) * ALIGN;
      if (indexStart < STREAM_HEADER_SIZE || data[indexStart] !== INDEX_INDICATOR) return undefined;
      const index = parseIndex(data, indexStart);
      if (index.end !== footer) return undefined;
      end = indexStart - STREAM_HEADER_SIZE;
      for (const r of index.records) {
        end -= Math.ceil(r.unpadded / ALIGN) * ALIGN;
        total += r.uncompressed;
      }
      if (end < 0 || !hasMagic(data, end)) return undefined;
    }
  } catch (e) {
    if (e instanceof XzError) return undefined;
    throw e;
  }
  return total;
}

function verifyCheck(check: number, content: Uint8Array, data: Uint8Array, pos: number): void {
  if (check === CHECK_CRC32) {
    if (crc32(content, 0, content.length) !== u32(data, pos)) throw new XzError('xz: block CRC32 mismatch');
  } else if (check === CHECK_CRC64) {
    const [lo, hi] = crc64(content);
    if (lo !== u32(data, pos) || hi !== u32(data, pos + 4)) throw new XzError('xz: block CRC64 mismatch');
  } else if (check === CHECK_SHA256) {
    const digest = createHash('sha256').update(content).digest();
    if (!digest.every((b, i) => b === data[pos + i])) throw new XzError('xz: block SHA-256 mismatch');
  }
}

/** Reads header fields within [pos, end), throwing XzError instead of running past the end. */
class Cursor {
  constructor(readonly data: Uint8Array, public pos: number, readonly end: number, readonly what: string) {}

  byte(): number {
    if (this.pos >= this.end) throw new XzError(`xz: truncated ${this.what}`);
    return this.data[this.pos++];
  }

  bytes(n: number): Uint8Array {
    if (n > this.end - this.pos) throw new XzError(`xz: truncated ${this.what}`);
    this.pos += n;
    return this.data.subarray(this.pos - n, this.pos);
  }

  /** A variable-length integer: 7 bits per byte, least significant first, at most 9 bytes, minimal. */
  vli(): number {
    let value = 0;
    for (let i = 0; i < VLI_BYTES_MAX; i++) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new XzError(`xz: bad integer in ${this.what}`);
        if (value > Number.MAX_SAFE_INTEGER) throw new XzError(`xz: integer too large in ${this.what}`);
        return value;
      }
    }
    throw new XzError(`xz: bad integer in ${this.what}`);
  }
}

function u32(b: Uint8Array, p: number): number {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
}

// ---- CRC32 (IEEE, reflected, slicing-by-8) and CRC64 (ECMA-182, reflected) ----
const CRC32_POLY = 0xedb88320;
const CRC32_TABLE = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32_POLY : c >>> 1;
  CRC32_TABLE[n] = c;
}
for (let n = 0; n < 256; n++) {
  for (let k = 1; k < 8; k++) {
    const prev = CRC32_TABLE[(k - 1) * 256 + n];
    CRC32_TABLE[k * 256 + n] = (prev >>> 8) ^ CRC32_TABLE[prev & 0xff];
  }
}

export function crc32(buf: Uint8Array, start: number, end: number): number {
  const t = CRC32_TABLE;
  let c = ~0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    c = t[0x700 + (a & 0xff)] ^ t[0x600 + ((a >>> 8) & 0xff)] ^ t[0x500 + ((a >>> 16) & 0xff)] ^ t[0x400 + (a >>> 24)]
      ^ t[0x300 + buf[i + 4]] ^ t[0x200 + buf[i + 5]] ^ t[0x100 + buf[i + 6]] ^ t[buf[i + 7]];
  }
  for (; i < end; i++) c = t[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const CRC64_POLY_HI = 0xc96c5795;
const CRC64_POLY_LO = 0xd7870f42;
const CRC64_LO = new Int32Array(256);
const CRC64_HI = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let lo = n;
  let hi = 0;
  for (let k = 0; k < 8; k++) {
    const odd = lo & 1;
    lo = (lo >>> 1) | (hi << 31);
    hi >>>= 1;
    if (odd) {
      lo ^= CRC64_POLY_LO;
      hi ^= CRC64_POLY_HI;
    }
  }
  CRC64_LO[n] = lo;
  CRC64_HI[n] = hi;
}

/** CRC64 as [low 32 bits, high 32 bits]. */
function crc64(buf: Uint8Array): [number, number] {
  let lo = ~0;
  let hi = ~0;
  for (let i = 0; i < buf.length; i++) {
    const k = (lo ^ buf[i]) & 0xff;
    lo = CRC64_LO[k] ^ ((lo >>> 8) | (hi << 24));
    hi = CRC64_HI[k] ^ (hi >>> 8);
  }
  return [~lo >>> 0, ~hi >>> 0];
}
