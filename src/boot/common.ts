/**
 * What the Linux loaders share: the error class, the boot entry they
 * return, the low-memory layout of the boot structures and the placement
 * of the initrd in the e820 map.
 */
import type { GuestMemory } from '../kvm/memory.js';

export class LoaderError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LoaderError';
  }
}

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;

export interface LinuxBootOptions {
  kernel: string;
  initrd?: string;
  cmdline: string;
  e820: E820Entry[];
  /** Guest-physical address of the ACPI RSDP, when ACPI tables were built. */
  rsdp?: number;
  ncpus: number;
  /**
   * A bzImage: unpack its payload on the host and enter the ELF through PVH
   * (unpack.ts), not the kernel's own decompressor. 'if-possible': only when
   * the image has an xz or gzip payload, else the 64-bit entry.
   */
  unpack?: boolean | 'if-possible';
}

/** The state vCPU 0 starts in (see applyBootEntry). */
export interface BootEntry {
  /** long64: the bzImage 64-bit boot protocol; pvh32: the PVH entry, paging off. */
  mode: 'long64' | 'pvh32';
  rip: bigint;
  rsi?: bigint;
  rbx?: bigint;
  rsp?: bigint;
  /** CR3: the PML4 of the identity map (long64 only). */
  pageTables?: number;
  gdt: { base: number; limit: number };
  /** Guest-physical base of the TSS the TR descriptor in the GDT names. */
  tss: number;
  /** Where things went, for a log line. */
  loaded: {
    kernel: { addr: number; size: number };
    initrd?: { addr: number; size: number };
    cmdline: number;
    /** boot_params (long64) or hvm_start_info (pvh32). */
    info: number;
  };
}

/*
 * Low-memory layout of the boot structures (all below 1 MiB, clear of the
 * BIOS area at 0xA0000-0xFFFFF where the firmware tables go).
 */
export const GDT_ADDR = 0x500;
export const GDT_LIMIT = 6 * 8 - 1; // null, null, code, data, TSS (16 bytes)
/** A zeroed 104-byte TSS for TR (long64; PVH asks for base 0). */
export const TSS_ADDR = 0x580;
export const TSS_LIMIT = 0x67;
/** Initial stack top (grows down into 0x1000-0x6fff). */
export const STACK_TOP = 0x7000;
/** boot_params (the zero page) or hvm_start_info and its tables. */
export const INFO_ADDR = 0x7000;
export const INFO_SIZE = 0x1000;
/** PML4, PDPT and four page directories. */
export const PAGE_TABLE_ADDR = 0x9000;
export const CMDLINE_ADDR = 0x20000;
export const CMDLINE_MAX = 0x10000;

export const PAGE = 4096;
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
export const FOUR_GIB = 4 * GiB;

export function alignDown(v: number, a: number): number {
  return Math.floor(v / a) * a;
}

export function hex(v: number): string {
  return '0x' + v.toString(16);
}

/** True when [addr, addr+size) lies inside one RAM entry of the e820 map. */
export function inRam(e820: E820Entry[], addr: number, size: number): boolean {
  return e820.some((e) => e.type === E820_RAM && addr >= e.addr && addr + size <= e.addr + e.size);
}

/** The top of the highest RAM entry below 4 GiB. */
export function lowRamTop(e820: E820Entry[]): number {
  let top = 0;
  for (const e of e820) {
    if (e.type === E820_RAM && e.addr < FOUR_GIB) top = Math.max(top, Math.min(e.addr + e.size, FOUR_GIB));
  }
  return top;
}

/**
 * The highest page-aligned address where `size` bytes fit in RAM, at or
 * above `min`, ending at or below `limit`, overlapping none of `avoid`.
 */
export function placeHigh(
  e820: E820Entry[], size: number, min: number, limit: number, avoid: { addr: number; size: number }[],
): number | undefined {
  const ram = e820.filter((e) => e.type === E820_RAM).sort((a, b) => b.addr - a.addr);
  for (const r of ram) {
    const lo = Math.max(r.addr, min);
    let cand = alignDown(Math.min(r.addr + r.size, limit) - size, PAGE);
    while (cand >= lo) {
      const hit = avoid.find((a) => cand < a.addr + a.size && a.addr < cand + size);
      if (!hit) return cand;
      cand = alignDown(hit.addr - size, PAGE);
    }
  }
  return undefined;
}

/** Write into guest memory; a MemoryError becomes a LoaderError naming `what`. */
export function put(mem: GuestMemory, gpa: number, data: Uint8Array, what: string): void {
  try {
    mem.write(gpa, data);
  } catch (e) {
    throw new LoaderError(`${what} at ${hex(gpa)} (${data.length} bytes) is outside guest memory`, { cause: e });
  }
}

/** The NUL-terminated command line bytes. */
export function cmdlineBytes(cmdline: string, max: number): Uint8Array {
  const b = Buffer.from(cmdline + '\0', 'utf8');
  if (b.length > max) throw new LoaderError(`kernel command line is ${b.length - 1} bytes, more than the ${max - 1} allowed`);
  return b;
}
