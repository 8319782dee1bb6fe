/**
 * ACPI system description table plumbing: the common 36-byte header, the
 * Generic Address Structure, and the root pointers (RSDP, RSDT, XSDT).
 */

import { ByteWriter, FirmwareError } from '../bytes.js';

export class AcpiError extends FirmwareError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AcpiError';
  }
}

export const OEM_ID = 'BHYVE ';
export const OEM_REVISION = 1;
export const CREATOR_ID = 'BHYV';
export const CREATOR_REVISION = 1;
export const SDT_HEADER_LENGTH = 36;

const HDR_LENGTH = 4;
const HDR_CHECKSUM = 9;

/** A table's OEM table id as bhyve names them: "BV" + signature, space padded. */
export function oemTableId(sig: string): string { return `BV${sig}`.padEnd(8, ' '); }

/** Start a table: writes the header with length and checksum left to `finishSdt`. */
export function startSdt(sig: string, revision: number): ByteWriter {
  if (sig.length !== 4) throw new AcpiError(`bad table signature '${sig}'`);
  return new ByteWriter()
    .ascii(sig, 4).u32(0).u8(revision).u8(0)
    .ascii(OEM_ID, 6).ascii(oemTableId(sig), 8).u32(OEM_REVISION)
    .ascii(CREATOR_ID, 4).u32(CREATOR_REVISION);
}

/** Fill in the length and checksum. */
export function finishSdt(w: ByteWriter): Uint8Array {
  w.patchU32(HDR_LENGTH, w.length);
  w.patchChecksum(HDR_CHECKSUM, 0, w.length);
  return w.finish();
}

/** A table made of the header and `body`. */
export function sdt(sig: string, revision: number, body: Uint8Array): Uint8Array {
  return finishSdt(startSdt(sig, revision).bytes(body));
}

// Generic Address Structure (ACPI 5.2.3.2).
export const GAS_SYSTEM_MEMORY = 0;
export const GAS_SYSTEM_IO = 1;
export const ACCESS_UNDEFINED = 0;
export const ACCESS_BYTE = 1;
export const ACCESS_WORD = 2;
export const ACCESS_DWORD = 3;
export const GAS_LENGTH = 12;

export interface Gas { space: number; bitWidth: number; bitOffset?: number; access: number; address: number }

export const GAS_NONE: Gas = { space: GAS_SYSTEM_MEMORY, bitWidth: 0, access: ACCESS_UNDEFINED, address: 0 };

export function writeGas(w: ByteWriter, g: Gas): void {
  w.u8(g.space).u8(g.bitWidth).u8(g.bitOffset ?? 0).u8(g.access).u64(g.address);
}

// RSDP (ACPI 5.2.5.3).
export const RSDP_SIGNATURE = 'RSD PTR ';
export const RSDP_LENGTH = 36;
const RSDP_V1_LENGTH = 20;
const RSDP_CHECKSUM = 8;
const RSDP_EXT_CHECKSUM = 32;
const RSDP_REVISION = 2;

export function buildRsdp(rsdtAddress: number, xsdtAddress: number): Uint8Array {
  const w = new ByteWriter()
    .ascii(RSDP_SIGNATURE, 8).u8(0).ascii(OEM_ID, 6).u8(RSDP_REVISION).u32(rsdtAddress)
    .u32(RSDP_LENGTH).u64(xsdtAddress).u8(0).zeros(3);
  w.patchChecksum(RSDP_CHECKSUM, 0, RSDP_V1_LENGTH);
  w.patchChecksum(RSDP_EXT_CHECKSUM, 0, RSDP_LENGTH);
  return w.finish();
}

export function buildRsdt(addresses: readonly number[]): Uint8Array {
  const w = startSdt('RSDT', 1);
  for (const a of addresses) {
    if (a > 0xffffffff) throw new AcpiError(`table at 0x${a.toString(16)} is above 4 GiB, out of RSDT's reach`);
    w.u32(a);
  }
  return finishSdt(w);
}

export function buildXsdt(addresses: readonly number[]): Uint8Array {
  const w = startSdt('XSDT', 1);
  for (const a of addresses) w.u64(a);
  return finishSdt(w);
}

export function rsdtLength(count: number): number { return SDT_HEADER_LENGTH + 4 * count; }
export function xsdtLength(count: number): number { return SDT_HEADER_LENGTH + 8 * count; }

/** Whether a legacy-BIOS OS can find an RSDP here by scanning 0xE0000-0xFFFFF. */
export function isLegacyRsdpAddress(addr: number): boolean {
  return addr % 16 === 0 && addr >= 0xe0000 && addr + RSDP_LENGTH <= 0x100000;
}
