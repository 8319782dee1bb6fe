/**
 * SMBIOS 2.8 tables after bhyve's smbiostbl.c: the 32-bit entry point
 * ("_SM_" with the "_DMI_" intermediate part) at `address` (bhyve: 0xF1000,
 * SMBIOS_BASE), then the structure table: BIOS (0), System (1, with the
 * UUID), Chassis (3), one Processor (4) per socket, Physical Memory Array
 * (16), a Memory Device (17), Array Mapped Address (19) and Device Mapped
 * Address (20) per RAM region (below 4 GiB, above 4 GiB), Boot (32), End (127).
 */

import { createHash } from 'node:crypto';
import { ByteWriter, FirmwareError, asciiBytes } from './bytes.js';
import { HIGHMEM_BASE, type Platform } from './platform.js';

export class SmbiosError extends FirmwareError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SmbiosError';
  }
}

export const SMBIOS_ENTRY_LENGTH = 0x1f;
/** The structure table starts here, relative to the entry point. */
export const SMBIOS_TABLE_OFFSET = 0x20;
export const SMBIOS_MAJOR = 2;
export const SMBIOS_MINOR = 8;
const EP_CHECKSUM = 4;
const EP_INTERMEDIATE = 0x10;
const EP_INTERMEDIATE_CHECKSUM = 0x15;

export const TYPE_BIOS = 0;
export const TYPE_SYSTEM = 1;
export const TYPE_CHASSIS = 3;
export const TYPE_PROCESSOR = 4;
export const TYPE_MEMORY_ARRAY = 16;
export const TYPE_MEMORY_DEVICE = 17;
export const TYPE_ARRAY_MAPPED = 19;
export const TYPE_DEVICE_MAPPED = 20;
export const TYPE_BOOT = 32;
export const TYPE_END = 127;

// Values bhyve uses (smbiostbl.c).
const BIOS_SEGMENT = 0xf000;
const BIOS_CHARACTERISTICS = 0x10 | 0x80 | 0x1000 | 0x8000 | 0x80000; // ISA, PCI, shadowing, CD boot, EDD
const BIOS_EXT1_ACPI = 0x01;
const BIOS_EXT2_BBS_VM = 0x01 | 0x10;
const WAKEUP_POWER_SWITCH = 0x06;
const CHASSIS_UNKNOWN = 0x02;
const CHASSIS_STATE_SAFE = 0x03;
const CHASSIS_SECURITY_NONE = 0x03;
const CPU_TYPE_CENTRAL = 0x03;
const CPU_FAMILY_OTHER = 0x01;
const CPU_STATUS_POPULATED_ENABLED = 0x41;
const CPU_UPGRADE_NONE = 0x06;
const CPU_CHAR_64BIT = 0x04;
const NO_HANDLE = 0xffff;
const ERROR_INFO_NOT_PROVIDED = 0xfffe;
const ARRAY_ON_BOARD = 0x03;
const ARRAY_SYSTEM_MEMORY = 0x03;
const ECC_NONE = 0x03;
const USE_EXTENDED_32 = 0x80000000;
const MEM_FORM_UNKNOWN = 0x02;
const MEM_TYPE_UNKNOWN = 0x02;
const MEM_DETAIL_UNKNOWN = 0x0004;
const MEM_SIZE_KB_FLAG = 0x8000;
const MEM_SIZE_USE_EXTENDED = 0x7fff;
const KB_USE_EXTENDED = 0xffffffff;
const BLANK = ' ';
const NONE = 'None';

// ---- UUIDs ----

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Parse "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into its 16 bytes in string (RFC 4122) order. */
export function parseUuid(str: string): Uint8Array {
  if (!UUID_RE.test(str)) throw new SmbiosError(`invalid UUID ${JSON.stringify(str)} (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
  const hex = str.replace(/-/g, '');
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

export function formatUuid(bytes: Uint8Array): string {
  const h = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** FreeBSD's MAXHOSTNAMELEN: bhyve hashes the whole hostname buffer. */
export const MAXHOSTNAMELEN = 256;

/**
 * bhyve's default UUID: MD5 over the VM name, then the hostname NUL-padded to
 * MAXHOSTNAMELEN bytes (bhyve hashes the whole buffer; we zero-fill it), with
 * the version-3 and RFC 4122 variant bits set. Returned as the bytes bhyve
 * stores verbatim in the SMBIOS System structure.
 */
export function defaultUuid(hostname: string, vmName: string): Uint8Array {
  const host = new Uint8Array(MAXHOSTNAMELEN);
  host.set(Buffer.from(hostname, 'utf8').subarray(0, MAXHOSTNAMELEN - 1));
  const digest = new Uint8Array(createHash('md5').update(Buffer.from(vmName, 'utf8')).update(host).digest());
  digest[6] = (digest[6] & 0x0f) | 0x30;
  digest[8] = (digest[8] & 0x3f) | 0x80;
  return digest;
}

/** The 16 bytes stored in SMBIOS type 1: a string is encoded with its first three fields little-endian. */
export function smbiosUuidBytes(uuid: string | Uint8Array): Uint8Array {
  if (typeof uuid !== 'string') {
    if (uuid.length !== 16) throw new SmbiosError(`UUID must be 16 bytes, got ${uuid.length}`);
    return uuid;
  }
  const b = parseUuid(uuid);
  return Uint8Array.of(b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.subarray(8));
}

// ---- structures ----

type Body = (w: ByteWriter, str: (text: string) => number) => void;

/** One structure: formatted area, then its string set. */
function structure(type: number, handle: number, body: Body): Uint8Array {
  const strings: string[] = [];
  const str = (text: string) => (text === '' ? 0 : strings.push(text));
  const w = new ByteWriter().u8(type).u8(0).u16(handle);
  body(w, str);
  if (w.length > 0xff) throw new SmbiosError(`SMBIOS type ${type} structure too long`);
  w.patchU8(1, w.length);
  if (strings.length === 0) w.u8(0);
  for (const s of strings) w.bytes(asciiBytes(s)).u8(0);
  return w.u8(0).finish();
}

interface Region { start: number; size: number }

/** Start/end in KiB, or the "use extended" marker plus byte addresses. */
function writeRange(w: ByteWriter, r: Region): { ext: [number, number] } {
  const endKb = Math.floor((r.start + r.size) / 1024) - 1;
  if (endKb < KB_USE_EXTENDED) {
    w.u32(r.start / 1024).u32(endKb);
    return { ext: [0, 0] };
  }
  w.u32(KB_USE_EXTENDED).u32(KB_USE_EXTENDED);
  return { ext: [r.start, r.start + r.size - 1] };
}

function memoryDeviceSize(bytes: number): { size: number; ext: number } {
  const kb = Math.floor(bytes / 1024);
  const mb = Math.floor(bytes / (1024 * 1024));
  if (kb <= MEM_SIZE_USE_EXTENDED) return { size: kb | MEM_SIZE_KB_FLAG, ext: 0 };
  if (mb < MEM_SIZE_USE_EXTENDED) return { size: mb, ext: 0 };
  return { size: MEM_SIZE_USE_EXTENDED, ext: Math.min(mb, 0x7fffffff) };
}

export function buildSmbios(p: Platform, address: number): Uint8Array {
  if (!Number.isSafeInteger(address) || address % 16 !== 0 || address + SMBIOS_TABLE_OFFSET > 0xffffffff) {
    throw new SmbiosError(`SMBIOS address 0x${address.toString(16)} must be 16-byte aligned below 4 GiB`);
  }
  const s = p.smbios;
  const topo = p.topology ?? { sockets: p.ncpus, cores: 1, threads: 1 };
  const regions: Region[] = [{ start: 0, size: p.memory.lowmem }];
  if (p.memory.highmem > 0) regions.push({ start: HIGHMEM_BASE, size: p.memory.highmem });
  const total = p.memory.lowmem + p.memory.highmem;
  const uuid = smbiosUuidBytes(p.uuid);

  let next = 1;
  const structs: Uint8Array[] = [];
  const add = (type: number, body: Body) => { const h = next++; structs.push(structure(type, h, body)); return h; };

  add(TYPE_BIOS, (w, str) => {
    w.u8(str(s.biosVendor)).u8(str(s.biosVersion)).u16(BIOS_SEGMENT).u8(str(s.biosReleaseDate)).u8(0 /* 64 KiB */);
    w.u64(BIOS_CHARACTERISTICS).u8(BIOS_EXT1_ACPI).u8(BIOS_EXT2_BBS_VM).u8(0).u8(0).u8(0xff).u8(0xff);
  });
  add(TYPE_SYSTEM, (w, str) => {
    w.u8(str(s.systemManufacturer)).u8(str(s.systemProduct)).u8(str(s.systemVersion)).u8(str(s.systemSerial));
    w.bytes(uuid).u8(WAKEUP_POWER_SWITCH).u8(str(s.systemSku)).u8(str(s.systemFamily));
  });
  add(TYPE_CHASSIS, (w, str) => {
    w.u8(str(s.chassisManufacturer)).u8(CHASSIS_UNKNOWN).u8(str(s.chassisVersion)).u8(str(s.chassisSerial)).u8(str(s.chassisAssetTag));
    w.u8(CHASSIS_STATE_SAFE).u8(CHASSIS_STATE_SAFE).u8(CHASSIS_STATE_SAFE).u8(CHASSIS_SECURITY_NONE);
    w.u32(0 /* OEM */).u8(0 /* height */).u8(0 /* cords */).u8(0).u8(0 /* no contained elements */).u8(str(s.chassisSku));
  });
  const cores = topo.cores > 254 ? 0 : topo.cores;
  const threads = topo.cores * topo.threads > 254 ? 0 : topo.cores * topo.threads;
  for (let i = 0; i < topo.sockets; i++) {
    add(TYPE_PROCESSOR, (w, str) => {
      w.u8(str(`CPU #${i}`)).u8(CPU_TYPE_CENTRAL).u8(CPU_FAMILY_OTHER).u8(str(BLANK)).u64(0 /* CPUID */).u8(str(BLANK));
      w.u8(0 /* voltage */).u16(0).u16(0).u16(0 /* clocks unknown */).u8(CPU_STATUS_POPULATED_ENABLED).u8(CPU_UPGRADE_NONE);
      w.u16(NO_HANDLE).u16(NO_HANDLE).u16(NO_HANDLE).u8(str(NONE)).u8(str(NONE)).u8(str(NONE));
      w.u8(cores).u8(cores).u8(threads).u16(CPU_CHAR_64BIT).u16(CPU_FAMILY_OTHER);
    });
  }
  const array = add(TYPE_MEMORY_ARRAY, (w) => {
    w.u8(ARRAY_ON_BOARD).u8(ARRAY_SYSTEM_MEMORY).u8(ECC_NONE).u32(USE_EXTENDED_32).u16(ERROR_INFO_NOT_PROVIDED);
    w.u16(regions.length).u64(total);
  });
  const devices = regions.map((r) => add(TYPE_MEMORY_DEVICE, (w, str) => {
    const { size, ext } = memoryDeviceSize(r.size);
    w.u16(array).u16(ERROR_INFO_NOT_PROVIDED).u16(64).u16(64).u16(size).u8(MEM_FORM_UNKNOWN).u8(0);
    w.u8(str(BLANK)).u8(str(BLANK)).u8(MEM_TYPE_UNKNOWN).u16(MEM_DETAIL_UNKNOWN).u16(0 /* speed */);
    w.u8(str(BLANK)).u8(str(NONE)).u8(str(NONE)).u8(str(NONE)).u8(0 /* rank */).u32(ext);
    w.u16(0).u16(0).u16(0).u16(0 /* speed, voltages unknown */);
  }));
  const mapped = regions.map((r) => add(TYPE_ARRAY_MAPPED, (w) => {
    const { ext } = writeRange(w, r);
    w.u16(array).u8(1 /* devices per row */).u64(ext[0]).u64(ext[1]);
  }));
  regions.forEach((r, i) => add(TYPE_DEVICE_MAPPED, (w) => {
    const { ext } = writeRange(w, r);
    w.u16(devices[i]).u16(mapped[i]).u8(1 /* row position */).u8(0).u8(0 /* not interleaved */).u64(ext[0]).u64(ext[1]);
  }));
  add(TYPE_BOOT, (w) => { w.zeros(6).u8(0 /* no errors */); });
  add(TYPE_END, () => {});

  const tableLength = structs.reduce((n, x) => n + x.length, 0);
  if (tableLength > 0xffff) throw new SmbiosError('SMBIOS structure table too long');
  const w = new ByteWriter();
  w.ascii('_SM_', 4).u8(0).u8(SMBIOS_ENTRY_LENGTH).u8(SMBIOS_MAJOR).u8(SMBIOS_MINOR);
  w.u16(Math.max(...structs.map((x) => x.length))).u8(0 /* EP revision */).zeros(5);
  w.ascii('_DMI_', 5).u8(0).u16(tableLength).u32(address + SMBIOS_TABLE_OFFSET).u16(structs.length);
  w.u8((SMBIOS_MAJOR << 4) | SMBIOS_MINOR);
  w.patchChecksum(EP_INTERMEDIATE_CHECKSUM, EP_INTERMEDIATE, SMBIOS_ENTRY_LENGTH);
  w.patchChecksum(EP_CHECKSUM, 0, SMBIOS_ENTRY_LENGTH);
  w.zeros(SMBIOS_TABLE_OFFSET - SMBIOS_ENTRY_LENGTH);
  for (const x of structs) w.bytes(x);
  return w.finish();
}
