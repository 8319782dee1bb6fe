/**
 * Guest physical memory layout, as bhyve: RAM from 0 up to the PCI hole at
 * 3 GiB, the rest from 4 GiB; the boot ROM ends at 4 GiB (read-only).
 *
 * Below 1 MiB a PC shows the BIOS image in the legacy BIOS area, whose
 * 0xC0000-0xFFFFF part an i440FX/Q35 chipset can back with "shadow" RAM
 * through its PAM registers. Here the ROM's last 256 KiB (all of it when
 * smaller) are copied into RAM ending at 1 MiB when the ROM is loaded, and
 * that RAM stays writable: the state such a chipset reaches once firmware has
 * enabled shadowing and copied itself there (SeaBIOS does exactly that first,
 * then writes its variables there and runs its init code from 0xC0000 up;
 * bios-256k.bin needs the whole 256 KiB). Doing it up front keeps one RAM slot,
 * with no PAM emulation and no run-time memslot changes; the pristine image
 * stays at 4 GiB, and a reset ends the VM (bhyve semantics), so the copy is
 * never stale. Processors also set accessed bits in descriptor tables in this
 * area, which a read-only slot would turn into MMIO exits.
 *
 * A UEFI variable store (`-l bootrom,ROM,VARS`) is mapped as bhyve does:
 * right below the ROM, writable, backed by the file itself (a shared
 * mapping), so what the guest writes there lands in the file. That is where
 * a split OVMF image (CODE + VARS) expects its variable flash: the two
 * together are laid out like the single OVMF.fd.
 */
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { GiB, HIGHMEM_BASE, KiB, LOWMEM_LIMIT, MiB, type Segment } from '../kvm/memory.js';
import { allocHost } from '../kvm/vm.js';
import { errno, MAP_FAILED, MAP_SHARED, mmap, PROT_READ, PROT_WRITE, strerror } from '../kvm/libc.js';

export class LayoutError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LayoutError';
  }
}

export const BOOTROM_MAX = 16 * MiB;
export const BIOS_ALIAS_TOP = 1 * MiB;
/** The legacy BIOS area PAM shadowing covers: 0xC0000-0xFFFFF. */
export const BIOS_ALIAS_MAX = 256 * KiB;
export const PAGE = 4096;

export interface Layout {
  lowmem: number;
  highmem: number;
  segments: Segment[];
  /** Guest-physical range below 1 MiB holding the RAM copy of the boot ROM's end ("shadow"), if any. */
  romAlias?: { gpa: number; size: number };
}

/**
 * `hugepages: false` keeps RAM off transparent huge pages. With a balloon
 * that matters: a guest that zeroes each page before handing it over (Linux
 * with INIT_ON_ALLOC, Debian's default) would fault a whole 2 MiB page into
 * an untouched region for every 4 KiB it then gives back.
 */
export function buildLayout(memSize: number, wired: boolean, bootrom?: string, bootvars?: string, hugepages = true): Layout {
  if (memSize < 2 * MiB) throw new LayoutError(`memory size ${memSize} is too small (at least 2M)`);
  if (memSize % PAGE) throw new LayoutError(`memory size ${memSize} is not a multiple of the page size`);
  const lowmem = Math.min(memSize, LOWMEM_LIMIT);
  const highmem = memSize - lowmem;
  const segments: Segment[] = [];
  const ram = allocHost(lowmem, wired, hugepages);
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
    segments.push({ name: 'bootrom', gpa: 4 * GiB - size, size, host, readonly: true, devmem: true });
    const aliasSize = Math.min(size, BIOS_ALIAS_MAX);
    romAlias = { gpa: BIOS_ALIAS_TOP - aliasSize, size: aliasSize };
    if (bootvars !== undefined) segments.push(mapVars(bootvars, 4 * GiB - size));
  } else if (bootvars !== undefined) {
    throw new LayoutError(`bootvars ${bootvars}: a variable store needs a boot ROM`);
  }
  segments.push({ name: 'lowmem', gpa: 0, size: lowmem, host: ram, readonly: false, devmem: false });
  if (highmem > 0) {
    segments.push({ name: 'highmem', gpa: HIGHMEM_BASE, size: highmem, host: allocHost(highmem, wired, hugepages), readonly: false, devmem: false });
  }
  return { lowmem, highmem, segments, romAlias };
}

/** The variable store file, mapped shared and writable, ending where the ROM begins. */
function mapVars(path: string, top: number): Segment {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LayoutError(`bootvars ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not writable' : (e as Error).message}`);
  }
  try {
    const size = statSync(path).size;
    if (size === 0 || size % PAGE) throw new LayoutError(`bootvars ${path}: size ${size} is not a multiple of the page size`);
    if (size > BOOTROM_MAX) throw new LayoutError(`bootvars ${path}: size ${size} exceeds ${BOOTROM_MAX}`);
    const host = BigInt(mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (host === MAP_FAILED) throw new LayoutError(`bootvars ${path}: cannot map it (${strerror(errno())})`);
    return { name: 'bootvars', gpa: top - size, size, host, readonly: false, devmem: true };
  } finally {
    closeSync(fd); // the mapping keeps the file
  }
}

/** Read the ROM file into its segment, and its last bytes into the shadow RAM below 1 MiB. */
export function loadBootrom(layout: Layout, path: string, write: (gpa: number, data: Uint8Array) => void): void {
  const rom = layout.segments.find((s) => s.name === 'bootrom');
  if (!rom) return;
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw new LayoutError(`bootrom ${path}: ${(e as Error).message}`);
  }
  if (data.length !== rom.size) throw new LayoutError(`bootrom ${path}: changed size while loading`);
  write(rom.gpa, data);
  const alias = layout.romAlias;
  if (alias) write(alias.gpa, data.subarray(data.length - alias.size));
}
