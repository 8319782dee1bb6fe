/**
 * The BIOS-area tables at bhyve's fixed addresses: MP table at 0xF0000,
 * SMBIOS at 0xF1000, ACPI from 0xF2400 up to 1 MiB. Each must stay within
 * its slot; the caller copies every blob to guest memory at its address.
 */

import { buildAcpi } from './acpi/build.js';
import { FirmwareError } from './bytes.js';
import { buildMpTable } from './mptable.js';
import { BHYVE_ACPI_BASE, MPTABLE_BASE, type Platform, SMBIOS_BASE } from './platform.js';
import { buildSmbios } from './smbios.js';

export const BIOS_AREA_END = 0x100000;

export interface BiosBlob { name: 'mptable' | 'smbios' | 'acpi'; address: number; bytes: Uint8Array }

export interface BiosAreaOptions {
  /** Generate ACPI tables (bhyve -A). Default true. */
  acpi?: boolean;
  /** Generate the MP table (bhyve: unless -Y). Default true. */
  mptable?: boolean;
}

export interface BiosArea { blobs: BiosBlob[]; rsdpAddress?: number }

export function buildBiosArea(p: Platform, opts: BiosAreaOptions = {}): BiosArea {
  const blobs: BiosBlob[] = [];
  let rsdpAddress: number | undefined;
  const place = (name: BiosBlob['name'], address: number, limit: number, bytes: Uint8Array) => {
    if (address + bytes.length > limit) {
      throw new FirmwareError(`${name} tables need ${bytes.length} bytes, more than the ${limit - address} at 0x${address.toString(16)}`);
    }
    blobs.push({ name, address, bytes });
  };
  if (opts.mptable !== false) place('mptable', MPTABLE_BASE, SMBIOS_BASE, buildMpTable(p, MPTABLE_BASE));
  place('smbios', SMBIOS_BASE, BHYVE_ACPI_BASE, buildSmbios(p, SMBIOS_BASE));
  if (opts.acpi !== false) {
    const acpi = buildAcpi(p, BHYVE_ACPI_BASE);
    place('acpi', BHYVE_ACPI_BASE, BIOS_AREA_END, acpi.bytes);
    rsdpAddress = acpi.rsdpAddress;
  }
  return { blobs, rsdpAddress };
}
