/**
 * A small AML (ACPI Machine Language) encoder: just the objects our DSDT
 * uses. Every builder returns the encoded bytes; compose them by nesting.
 * Reference: ACPI 6.x section 20 (AML grammar) and 6.4 (resource descriptors).
 */

import { ByteWriter, FirmwareError, asciiBytes, concat } from '../bytes.js';

export type Aml = Uint8Array;

// Opcodes (ACPI 20.3).
const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const NAME_OP = 0x08;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const SCOPE_OP = 0x10;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const METHOD_OP = 0x14;
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;
const EXT_OP_PREFIX = 0x5b;
const DEVICE_OP = 0x82; // after EXT_OP_PREFIX
const ROOT_CHAR = 0x5c; // '\'
const PARENT_PREFIX_CHAR = 0x5e; // '^'
const LOCAL0_OP = 0x60;
const ARG0_OP = 0x68;
const STORE_OP = 0x70;
const RETURN_OP = 0xa4;
const NULL_NAME = 0x00;

const PKG_LENGTH_MAX = [0x3f, 0xfff, 0xfffff, 0xfffffff];

/**
 * Encode a PkgLength for `payload` bytes that follow it. The encoded value
 * counts the PkgLength bytes themselves, so the form (1..4 bytes) is the
 * smallest whose range holds payload + its own size.
 */
export function pkgLength(payload: number): Uint8Array {
  if (!Number.isInteger(payload) || payload < 0) throw new FirmwareError(`bad AML package length ${payload}`);
  for (let extra = 0; extra < 4; extra++) {
    const total = payload + 1 + extra;
    if (total > PKG_LENGTH_MAX[extra]) continue;
    if (extra === 0) return Uint8Array.of(total);
    const out = new Uint8Array(1 + extra);
    out[0] = (extra << 6) | (total & 0x0f);
    for (let i = 1; i <= extra; i++) out[i] = (total >>> (4 + 8 * (i - 1))) & 0xff;
    return out;
  }
  throw new FirmwareError(`AML package of ${payload} bytes is too long`);
}

/** Decode a PkgLength at `offset`: its value and how many bytes it took. */
export function decodePkgLength(data: Uint8Array, offset: number): { value: number; size: number } {
  const lead = data[offset];
  const extra = lead >> 6;
  if (extra === 0) return { value: lead & 0x3f, size: 1 };
  let value = lead & 0x0f;
  for (let i = 1; i <= extra; i++) value |= data[offset + i] << (4 + 8 * (i - 1));
  return { value: value >>> 0, size: 1 + extra };
}

/** A 4-character NameSeg, padded with '_' (e.g. "PC" -> "PC__"). */
export function nameSeg(seg: string): Uint8Array {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) throw new FirmwareError(`bad ACPI name segment '${seg}'`);
  return asciiBytes(seg.padEnd(4, '_'));
}

/** A NameString: optional '\' or '^' prefixes, then dot-separated segments. */
export function nameString(path: string): Uint8Array {
  let i = 0;
  const prefix: number[] = [];
  if (path[0] === '\\') { prefix.push(ROOT_CHAR); i = 1; }
  else while (path[i] === '^') { prefix.push(PARENT_PREFIX_CHAR); i++; }
  const rest = path.slice(i);
  const segs = rest === '' ? [] : rest.split('.').map(nameSeg);
  if (segs.length > 255) throw new FirmwareError(`ACPI path '${path}' is too deep`);
  let body: Uint8Array;
  if (segs.length === 0) body = Uint8Array.of(NULL_NAME);
  else if (segs.length === 1) body = segs[0];
  else if (segs.length === 2) body = concat([Uint8Array.of(DUAL_NAME_PREFIX), ...segs]);
  else body = concat([Uint8Array.of(MULTI_NAME_PREFIX, segs.length), ...segs]);
  return concat([Uint8Array.from(prefix), body]);
}

/** A reference to a named object, used as a term (e.g. in a Package). */
export const ref = nameString;

/** An integer constant in its shortest encoding. */
export function integer(value: number | bigint): Aml {
  const v = BigInt(value);
  if (v < 0n || v > 0xffffffffffffffffn) throw new FirmwareError(`AML integer ${value} out of range`);
  const w = new ByteWriter();
  if (v === 0n) w.u8(ZERO_OP);
  else if (v === 1n) w.u8(ONE_OP);
  else if (v <= 0xffn) w.u8(BYTE_PREFIX).u8(Number(v));
  else if (v <= 0xffffn) w.u8(WORD_PREFIX).u16(Number(v));
  else if (v <= 0xffffffffn) w.u8(DWORD_PREFIX).u32(Number(v));
  else w.u8(QWORD_PREFIX).u64(v);
  return w.finish();
}

/** A DWORD constant regardless of value (as iasl emits EisaId). */
export function dword(value: number): Aml {
  return new ByteWriter().u8(DWORD_PREFIX).u32(value).finish();
}

export function string(text: string): Aml {
  return concat([Uint8Array.of(STRING_PREFIX), asciiBytes(text), Uint8Array.of(0)]);
}

/** A compressed EISA id ("PNP0A03" -> 0x030AD041), encoded as a DWORD. */
export function eisaIdValue(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new FirmwareError(`bad EISA id '${id}'`);
  const c = (i: number) => id.charCodeAt(i) - 0x40;
  const v = ((c(0) << 26) | (c(1) << 21) | (c(2) << 16) | parseInt(id.slice(3), 16)) >>> 0;
  // Stored big-endian: swap to the little-endian integer the AML carries.
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

export function eisaId(id: string): Aml { return dword(eisaIdValue(id)); }

/** Opcode, PkgLength, then body. */
function withPkg(lead: number[], body: readonly Uint8Array[]): Aml {
  const payload = concat(body);
  return concat([Uint8Array.from(lead), pkgLength(payload.length), payload]);
}

export function buffer(data: Uint8Array): Aml {
  return withPkg([BUFFER_OP], [integer(data.length), data]);
}

export function pkg(elements: readonly Aml[]): Aml {
  if (elements.length > 255) throw new FirmwareError(`AML package of ${elements.length} elements is too long`);
  return withPkg([PACKAGE_OP], [Uint8Array.of(elements.length), ...elements]);
}

export function name(path: string, value: Aml): Aml {
  return concat([Uint8Array.of(NAME_OP), nameString(path), value]);
}

export function scope(path: string, body: readonly Aml[]): Aml {
  return withPkg([SCOPE_OP], [nameString(path), ...body]);
}

export function device(path: string, body: readonly Aml[]): Aml {
  return withPkg([EXT_OP_PREFIX, DEVICE_OP], [nameString(path), ...body]);
}

export interface MethodOptions { serialized?: boolean; syncLevel?: number }

export function method(path: string, argCount: number, body: readonly Aml[], opts: MethodOptions = {}): Aml {
  if (!Number.isInteger(argCount) || argCount < 0 || argCount > 7) throw new FirmwareError(`bad method argument count ${argCount}`);
  const sync = opts.syncLevel ?? 0;
  if (!Number.isInteger(sync) || sync < 0 || sync > 15) throw new FirmwareError(`bad method sync level ${sync}`);
  const flags = argCount | (opts.serialized ? 0x08 : 0) | (sync << 4);
  return withPkg([METHOD_OP], [nameString(path), Uint8Array.of(flags), ...body]);
}

export function ret(value: Aml): Aml { return concat([Uint8Array.of(RETURN_OP), value]); }

export function store(source: Aml, target: Aml): Aml { return concat([Uint8Array.of(STORE_OP), source, target]); }

export function arg(n: number): Aml {
  if (!Number.isInteger(n) || n < 0 || n > 6) throw new FirmwareError(`bad method argument Arg${n}`);
  return Uint8Array.of(ARG0_OP + n);
}

export function local(n: number): Aml {
  if (!Number.isInteger(n) || n < 0 || n > 7) throw new FirmwareError(`bad method local Local${n}`);
  return Uint8Array.of(LOCAL0_OP + n);
}
