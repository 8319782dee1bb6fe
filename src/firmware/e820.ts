/**
 * The guest's physical memory map as a BIOS E820 table, and its encodings
 * for the Linux zero page and the PVH start_info memory map.
 *
 * Layout (sorted, non-overlapping):
 *   [0, 0x9FC00)              RAM
 *   [0x9FC00, 0x100000)       reserved: EBDA, VGA hole, option ROMs and the
 *                             BIOS area holding the MP table, SMBIOS and ACPI
 *   [0x100000, lowmem)        RAM
 *   ECAM buses                reserved, so Linux accepts MCFG early (it checks
 *                             that the MMCONFIG window is E820-reserved)
 *   [0xFEC00000, 4 GiB)       reserved: I/O APIC, HPET, local APIC and the boot
 *                             ROM (from the lowest of their addresses)
 *   [4 GiB, 4 GiB + highmem)  RAM
 * The PCI memory windows are left out: they are holes, not reserved RAM.
 */

import { ByteWriter, FirmwareError } from './bytes.js';
import { HIGHMEM_BASE, LOWMEM_LIMIT, type Platform, ecamRange } from './platform.js';

export class E820Error extends FirmwareError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'E820Error';
  }
}

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;

export interface E820Entry { addr: number; size: number; type: number }

export const EBDA_START = 0x9fc00;
export const HIGH_MEMORY_START = 0x100000;
const FOUR_GIB = 0x100000000;

export function e820Map(p: Platform): E820Entry[] {
  const { lowmem, highmem } = p.memory;
  if (!Number.isSafeInteger(lowmem) || lowmem < EBDA_START || lowmem > LOWMEM_LIMIT) {
    throw new E820Error(`low memory 0x${lowmem.toString(16)} must lie between 0x${EBDA_START.toString(16)} and 3 GiB`);
  }
  if (!Number.isSafeInteger(highmem) || highmem < 0) throw new E820Error(`bad high memory size ${highmem}`);
  const map: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: HIGH_MEMORY_START - EBDA_START, type: E820_RESERVED },
  ];
  if (lowmem > HIGH_MEMORY_START) map.push({ addr: HIGH_MEMORY_START, size: lowmem - HIGH_MEMORY_START, type: E820_RAM });
  if (p.ecam) {
    const { start, size } = ecamRange(p.ecam);
    map.push({ addr: start, size, type: E820_RESERVED });
  }
  const mmio = [p.ioapic.address, p.lapicAddress, ...(p.hpet ? [p.hpet.address] : []), ...(p.bootrom ? [p.bootrom.address] : [])];
  const mmioStart = Math.min(...mmio);
  if (mmioStart < FOUR_GIB) map.push({ addr: mmioStart, size: FOUR_GIB - mmioStart, type: E820_RESERVED });
  if (highmem > 0) map.push({ addr: HIGHMEM_BASE, size: highmem, type: E820_RAM });
  map.sort((a, b) => a.addr - b.addr);
  for (let i = 1; i < map.length; i++) {
    const prev = map[i - 1];
    if (prev.addr + prev.size > map[i].addr) {
      throw new E820Error(`E820 ranges overlap at 0x${map[i].addr.toString(16)} (is low memory above the ECAM or MMIO?)`);
    }
  }
  return map;
}

/** Linux zero page: struct boot_e820_entry { u64 addr; u64 size; u32 type; }, packed. */
export const BOOT_E820_ENTRY_SIZE = 20;
/** E820_MAX_ENTRIES_ZEROPAGE: the zero page holds at most this many. */
export const BOOT_E820_MAX_ENTRIES = 128;

export function encodeBootE820(entries: readonly E820Entry[]): Uint8Array {
  if (entries.length > BOOT_E820_MAX_ENTRIES) throw new E820Error(`${entries.length} E820 entries exceed the zero page's ${BOOT_E820_MAX_ENTRIES}`);
  const w = new ByteWriter();
  for (const e of entries) w.u64(e.addr).u64(e.size).u32(e.type);
  return w.finish();
}

/** PVH: struct hvm_memmap_table_entry { u64 addr; u64 size; u32 type; u32 reserved; }. */
export const PVH_MEMMAP_ENTRY_SIZE = 24;

export function encodePvhMemmap(entries: readonly E820Entry[]): Uint8Array {
  const w = new ByteWriter();
  for (const e of entries) w.u64(e.addr).u64(e.size).u32(e.type).u32(0);
  return w.finish();
}
