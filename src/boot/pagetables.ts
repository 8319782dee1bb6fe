/**
 * The boot-time descriptor table and identity map the Linux entry points
 * expect: a GDT with flat __BOOT_CS (0x10) / __BOOT_DS (0x18) and a TSS
 * descriptor, and 4-level page tables mapping the first 4 GiB 1:1 with
 * 2 MiB pages.
 */
import type { GuestMemory } from '../kvm/memory.js';
import { GDT_ADDR, GDT_LIMIT, PAGE, put } from './common.js';

export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_TSS = 0x20;

// Descriptor access byte: P, DPL 0, S (code/data) and the type.
const ACC_PRESENT = 0x80;
const ACC_S = 0x10;
export const TYPE_CODE_XR_A = 0xb; // execute/read, accessed
export const TYPE_DATA_RW_A = 0x3; // read/write, accessed
export const TYPE_TSS_BUSY = 0xb; // 32- or 64-bit TSS, busy
// Flags nibble: G (4 KiB granularity), D/B (32-bit), L (64-bit code).
const FLAG_G = 0x8;
const FLAG_DB = 0x4;
const FLAG_L = 0x2;

/** An 8-byte segment descriptor. */
export function descriptor(base: number, limit: number, access: number, flags: number): bigint {
  const b = BigInt(base >>> 0);
  const l = BigInt(limit >>> 0);
  return (
    (l & 0xffffn) |
    ((b & 0xffffffn) << 16n) |
    (BigInt(access & 0xff) << 40n) |
    (((l >> 16n) & 0xfn) << 48n) |
    (BigInt(flags & 0xf) << 52n) |
    (((b >> 24n) & 0xffn) << 56n)
  );
}

export interface GdtSpec {
  /** long64: 64-bit code (L=1); pvh32: 32-bit code (D=1). */
  mode: 'long64' | 'pvh32';
  tssBase: number;
  tssLimit: number;
}

/**
 * Write the GDT at GDT_ADDR: null, null, code 0x10, data 0x18, TSS 0x20
 * (16 bytes in long mode, 8 in protected mode).
 */
export function writeGdt(mem: GuestMemory, spec: GdtSpec): { base: number; limit: number } {
  const table = new Uint8Array(GDT_LIMIT + 1);
  const dv = new DataView(table.buffer);
  const code = spec.mode === 'long64'
    ? descriptor(0, 0xfffff, ACC_PRESENT | ACC_S | TYPE_CODE_XR_A, FLAG_G | FLAG_L)
    : descriptor(0, 0xfffff, ACC_PRESENT | ACC_S | TYPE_CODE_XR_A, FLAG_G | FLAG_DB);
  const data = descriptor(0, 0xfffff, ACC_PRESENT | ACC_S | TYPE_DATA_RW_A, FLAG_G | FLAG_DB);
  const tss = descriptor(spec.tssBase, spec.tssLimit, ACC_PRESENT | TYPE_TSS_BUSY, 0);
  dv.setBigUint64(BOOT_CS, code, true);
  dv.setBigUint64(BOOT_DS, data, true);
  dv.setBigUint64(BOOT_TSS, tss, true);
  // In long mode a system descriptor has a second 8 bytes: base[63:32] (0 here).
  put(mem, GDT_ADDR, table, 'boot GDT');
  return { base: GDT_ADDR, limit: GDT_LIMIT };
}

// Page-table entry bits.
export const PTE_P = 1n;
export const PTE_RW = 2n;
export const PTE_PS = 0x80n;
const ENTRIES = 512;
const TWO_MIB = 2 ** 21;
const ONE_GIB = 2 ** 30;
/** Page directories: one per GiB of the identity map. */
export const IDENTITY_GIB = 4;
export const PAGE_TABLES_SIZE = (2 + IDENTITY_GIB) * PAGE;

/**
 * Identity-map [0, 4 GiB) at `base`: PML4, then the PDPT, then four page
 * directories of 2 MiB pages. Returns the CR3 value (the PML4 address).
 */
export function writeIdentityMap(mem: GuestMemory, base: number): number {
  const buf = new Uint8Array(PAGE_TABLES_SIZE);
  const dv = new DataView(buf.buffer);
  const pdpt = base + PAGE;
  const pd = base + 2 * PAGE;
  dv.setBigUint64(0, BigInt(pdpt) | PTE_P | PTE_RW, true);
  for (let g = 0; g < IDENTITY_GIB; g++) {
    dv.setBigUint64(PAGE + g * 8, BigInt(pd + g * PAGE) | PTE_P | PTE_RW, true);
    for (let i = 0; i < ENTRIES; i++) {
      const addr = BigInt(g * ONE_GIB + i * TWO_MIB);
      dv.setBigUint64((2 + g) * PAGE + i * 8, addr | PTE_P | PTE_RW | PTE_PS, true);
    }
  }
  put(mem, base, buf, 'boot page tables');
  return base;
}
