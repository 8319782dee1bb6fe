/**
 * Guest physical memory layout, as bhyve: RAM from 0 up to the PCI hole at
 * 3 GiB, the rest from 4 GiB; the boot ROM ends at 4 GiB with its last
 * 128 KiB also seen below 1 MiB.
 */
import { readFileSync, statSync } from 'node:fs';
import { GiB, HIGHMEM_BASE, KiB, LOWMEM_LIMIT, MiB, type Segment } from '../kvm/memory.js';
import { allocHost } from '../kvm/vm.js';

export class LayoutError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LayoutError';
  }
}

export const BOOTROM_MAX = 16 * MiB;
export const BIOS_ALIAS_TOP = 1 * MiB;
export const BIOS_ALIAS_MAX = 128 * KiB;
export const PAGE = 4096;

export interface Layout {
  lowmem: number;
  highmem: number;
  segments: Segment[];
  /** Guest-physical range of the boot ROM alias below 1 MiB, if any. */
  romAlias?: { gpa: number; size: number };
}

export function buildLayout(memSize: number, wired: boolean, bootrom?: string): Layout {
  if (memSize < 2 * MiB) throw new LayoutError(`memory size ${memSize} is too small (at least 2M)`);
  if (memSize % PAGE) throw new LayoutError(`memory size ${memSize} is not a multiple of the page size`);
  const lowmem = Math.min(memSize, LOWMEM_LIMIT);
  const highmem = memSize - lowmem;
  const segments: Segment[] = [];
  const ram = allocHost(lowmem, wired);
  let romAlias: Layout['romAlias'];

  if (bootrom !== undefined) {
    let size: number;
    try {
      size = statSync(bootrom).size;
    } catch (e) {
      throw new LayoutError(`bootrom ${bootrom}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    if (size === 0 || size % PAGE) throw new LayoutError(`bootrom ${bootrom}: size ${size} is not a multiple of the page size`);
    if (size > BOOTROM_MAX) throw new LayoutError(`bootrom ${bootrom}: size ${size} exceeds ${BOOTROM_MAX}`);
    const host = allocHost(size, wired);
    const rom: Segment = { name: 'bootrom', gpa: 4 * GiB - size, size, host, readonly: true, devmem: true };
    segments.push(rom);
    const aliasSize = Math.min(size, BIOS_ALIAS_MAX);
    romAlias = { gpa: BIOS_ALIAS_TOP - aliasSize, size: aliasSize };
    segments.push({ name: 'bootrom.alias', gpa: romAlias.gpa, size: aliasSize, host: host + BigInt(size - aliasSize), readonly: true, devmem: true });
    // RAM around the alias: two slots over one allocation.
    segments.push({ name: 'lowmem', gpa: 0, size: romAlias.gpa, host: ram, readonly: false, devmem: false });
    if (lowmem > BIOS_ALIAS_TOP) {
      segments.push({ name: 'lowmem.hi', gpa: BIOS_ALIAS_TOP, size: lowmem - BIOS_ALIAS_TOP, host: ram + BigInt(BIOS_ALIAS_TOP), readonly: false, devmem: false });
    }
  } else {
    segments.push({ name: 'lowmem', gpa: 0, size: lowmem, host: ram, readonly: false, devmem: false });
  }
  if (highmem > 0) {
    segments.push({ name: 'highmem', gpa: HIGHMEM_BASE, size: highmem, host: allocHost(highmem, wired), readonly: false, devmem: false });
  }
  return { lowmem, highmem, segments, romAlias };
}

/** Read the ROM file into its segment. */
export function loadBootrom(layout: Layout, path: string, write: (gpa: number, data: Uint8Array) => void): void {
  const rom = layout.segments.find((s) => s.name === 'bootrom');
  if (!rom) return;
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw new LayoutError(`bootrom ${path}: ${(e as Error).message}`);
  }
  write(rom.gpa, data);
}
