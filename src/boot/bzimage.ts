/**
 * bzImage loading for the x86 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst): the protected-mode kernel at 1 MiB,
 * boot_params (the "zero page") with the setup header, command line,
 * initrd and e820 map, and a long-mode entry at load address + 0x200.
 */
import type { GuestMemory } from '../kvm/memory.js';
import {
  type BootEntry, type LinuxBootOptions, LoaderError, CMDLINE_ADDR, CMDLINE_MAX, FOUR_GIB, INFO_ADDR, INFO_SIZE,
  MiB, PAGE_TABLE_ADDR, STACK_TOP, TSS_ADDR, TSS_LIMIT, cmdlineBytes, hex, inRam, lowRamTop, placeHigh, put,
} from './common.js';
import { writeGdt, writeIdentityMap } from './pagetables.js';

// Setup header fields: offsets in the image file and in boot_params alike.
export const HDR_START = 0x1f1;
export const HDR_SETUP_SECTS = 0x1f1;
export const HDR_JUMP = 0x200; // the header ends at 0x202 + the byte at 0x201
export const HDR_MAGIC = 0x202; // "HdrS"
export const HDR_VERSION = 0x206;
export const HDR_TYPE_OF_LOADER = 0x210;
export const HDR_LOADFLAGS = 0x211;
export const HDR_RAMDISK_IMAGE = 0x218;
export const HDR_RAMDISK_SIZE = 0x21c;
export const HDR_CMD_LINE_PTR = 0x228;
export const HDR_INITRD_ADDR_MAX = 0x22c;
export const HDR_RELOCATABLE = 0x234;
export const HDR_XLOADFLAGS = 0x236;
export const HDR_CMDLINE_SIZE = 0x238;
export const HDR_PREF_ADDRESS = 0x258;
export const HDR_INIT_SIZE = 0x260;
/** boot_params fields outside the setup header. */
export const BP_ACPI_RSDP_ADDR = 0x070;
export const BP_EXT_RAMDISK_IMAGE = 0x0c0;
export const BP_EXT_RAMDISK_SIZE = 0x0c4;
export const BP_EXT_CMD_LINE_PTR = 0x0c8;
export const BP_E820_ENTRIES = 0x1e8;
export const BP_HDR_END = 0x290; // edd_mbr_sig_buffer follows the header area
export const BP_E820_TABLE = 0x2d0;
export const E820_ENTRY_SIZE = 20;
export const E820_MAX_ZEROPAGE = 128;

export const HDRS_MAGIC = 0x53726448; // "HdrS" little-endian
export const MIN_PROTOCOL = 0x206;
export const XLF_PROTOCOL = 0x20c; // xloadflags exists from 2.12
export const LOADED_HIGH = 0x01;
export const XLF_KERNEL_64 = 0x01;
export const TYPE_OF_LOADER_UNDEFINED = 0xff;
/** Where the protected-mode kernel goes, and its 64-bit entry offset. */
export const KERNEL_LOAD = 1 * MiB;
export const ENTRY_64_OFFSET = 0x200;
const SECTOR = 512;
const DEFAULT_SETUP_SECTS = 4;

export interface SetupInfo {
  version: number;
  setupSects: number;
  /** File offset of the protected-mode kernel. */
  pmOffset: number;
  headerEnd: number;
  initrdAddrMax: number;
  cmdlineSize: number;
  prefAddress: number;
  initSize: number;
  relocatable: boolean;
}

/** True when the image carries the "HdrS" setup-header magic. */
export function isBzImage(image: Uint8Array): boolean {
  return image.length >= HDR_MAGIC + 4 && dv(image).getUint32(HDR_MAGIC, true) === HDRS_MAGIC;
}

/** Parse and check the setup header; errors name `path`. */
export function parseSetupHeader(path: string, image: Uint8Array): SetupInfo {
  if (!isBzImage(image)) throw new LoaderError(`${path}: not a bzImage (no HdrS magic)`);
  const v = dv(image);
  if (image.length < HDR_INIT_SIZE + 4) throw new LoaderError(`${path}: truncated setup header`);
  const version = v.getUint16(HDR_VERSION, true);
  const proto = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
  if (version < MIN_PROTOCOL) throw new LoaderError(`${path}: boot protocol ${proto} is too old (need 2.06)`);
  if (!(image[HDR_LOADFLAGS] & LOADED_HIGH)) throw new LoaderError(`${path}: kernel is not loaded high (zImage?)`);
  if (version < XLF_PROTOCOL || !(v.getUint16(HDR_XLOADFLAGS, true) & XLF_KERNEL_64)) {
    throw new LoaderError(`${path}: no 64-bit entry point (boot protocol ${proto}, XLF_KERNEL_64 clear)`);
  }
  const setupSects = image[HDR_SETUP_SECTS] || DEFAULT_SETUP_SECTS;
  const pmOffset = (setupSects + 1) * SECTOR;
  if (pmOffset >= image.length) throw new LoaderError(`${path}: truncated (no protected-mode kernel after ${setupSects} setup sectors)`);
  const headerEnd = Math.min(HDR_JUMP + 2 + image[HDR_JUMP + 1], BP_HDR_END);
  return {
    version, setupSects, pmOffset, headerEnd,
    initrdAddrMax: v.getUint32(HDR_INITRD_ADDR_MAX, true),
    cmdlineSize: v.getUint32(HDR_CMDLINE_SIZE, true),
    prefAddress: Number(v.getBigUint64(HDR_PREF_ADDRESS, true)),
    initSize: v.getUint32(HDR_INIT_SIZE, true),
    relocatable: image[HDR_RELOCATABLE] !== 0,
  };
}

export function loadBzImage(
  mem: GuestMemory, image: Uint8Array, opts: LinuxBootOptions, initrd?: Uint8Array,
): BootEntry {
  const path = opts.kernel;
  const h = parseSetupHeader(path, image);
  const pm = image.subarray(h.pmOffset);
  // The kernel decompresses into [pref_address, +init_size); both that and
  // the image at 1 MiB must be RAM.
  const kernelRanges = [
    { addr: KERNEL_LOAD, size: pm.length },
    { addr: h.prefAddress, size: h.initSize },
  ];
  for (const r of kernelRanges) {
    if (!inRam(opts.e820, r.addr, r.size)) {
      throw new LoaderError(`${path}: kernel needs RAM at ${hex(r.addr)}-${hex(r.addr + r.size)}, more than guest memory has`);
    }
  }
  put(mem, KERNEL_LOAD, pm, `${path}: kernel`);

  const bp = new Uint8Array(INFO_SIZE);
  const bv = dv(bp);
  bp.set(image.subarray(HDR_START, h.headerEnd), HDR_START);
  bp[HDR_TYPE_OF_LOADER] = TYPE_OF_LOADER_UNDEFINED;

  const cmd = cmdlineBytes(opts.cmdline, Math.min(h.cmdlineSize + 1, CMDLINE_MAX));
  put(mem, CMDLINE_ADDR, cmd, 'kernel command line');
  bv.setUint32(HDR_CMD_LINE_PTR, CMDLINE_ADDR, true);

  let initrdAt: BootEntry['loaded']['initrd'];
  if (initrd && opts.initrd !== undefined) {
    const limit = Math.min(h.initrdAddrMax + 1, lowRamTop(opts.e820), FOUR_GIB);
    const addr = placeHigh(opts.e820, initrd.length, KERNEL_LOAD, limit, kernelRanges);
    if (addr === undefined) {
      throw new LoaderError(`${opts.initrd}: initrd of ${initrd.length} bytes does not fit in RAM below ${hex(limit)}`);
    }
    put(mem, addr, initrd, `${opts.initrd}: initrd`);
    bv.setUint32(HDR_RAMDISK_IMAGE, addr, true);
    bv.setUint32(HDR_RAMDISK_SIZE, initrd.length, true);
    initrdAt = { addr, size: initrd.length };
  }

  if (opts.e820.length > E820_MAX_ZEROPAGE) {
    throw new LoaderError(`e820 map has ${opts.e820.length} entries, boot_params holds ${E820_MAX_ZEROPAGE}`);
  }
  bp[BP_E820_ENTRIES] = opts.e820.length;
  opts.e820.forEach((e, i) => {
    const o = BP_E820_TABLE + i * E820_ENTRY_SIZE;
    bv.setBigUint64(o, BigInt(e.addr), true);
    bv.setBigUint64(o + 8, BigInt(e.size), true);
    bv.setUint32(o + 16, e.type, true);
  });
  if (opts.rsdp !== undefined) bv.setBigUint64(BP_ACPI_RSDP_ADDR, BigInt(opts.rsdp), true);
  put(mem, INFO_ADDR, bp, 'boot_params');

  put(mem, TSS_ADDR, new Uint8Array(TSS_LIMIT + 1), 'boot TSS');
  const gdt = writeGdt(mem, { mode: 'long64', tssBase: TSS_ADDR, tssLimit: TSS_LIMIT });
  const cr3 = writeIdentityMap(mem, PAGE_TABLE_ADDR);
  return {
    mode: 'long64',
    rip: BigInt(KERNEL_LOAD + ENTRY_64_OFFSET),
    rsi: BigInt(INFO_ADDR),
    rsp: BigInt(STACK_TOP),
    pageTables: cr3,
    gdt,
    tss: TSS_ADDR,
    loaded: { kernel: { addr: KERNEL_LOAD, size: pm.length }, initrd: initrdAt, cmdline: CMDLINE_ADDR, info: INFO_ADDR },
  };
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
