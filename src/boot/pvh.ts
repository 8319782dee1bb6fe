/**
 * ELF vmlinux loading through the Xen PVH entry: PT_LOAD segments at their
 * physical addresses, entry at XEN_ELFNOTE_PHYS32_ENTRY in 32-bit protected
 * mode with paging off and EBX pointing at a struct hvm_start_info.
 */
import type { GuestMemory } from '../kvm/memory.js';
import {
  type BootEntry, type LinuxBootOptions, LoaderError, CMDLINE_ADDR, CMDLINE_MAX, FOUR_GIB, INFO_ADDR, INFO_SIZE,
  MiB, hex, inRam, lowRamTop, placeHigh, put, cmdlineBytes,
} from './common.js';
import { writeGdt } from './pagetables.js';

// ELF64 header and program/section headers.
const ELF_MAGIC = 0x464c457f; // "\x7fELF" little-endian
const EI_CLASS = 4;
const EI_DATA = 5;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const E_MACHINE = 0x12;
const EM_386 = 3;
const EM_X86_64 = 62;
const EHDR_SIZE = 0x34; // the smaller (ELF32) header
const PT_LOAD = 1;
const PT_NOTE = 4;
const SHT_NOTE = 7;

/** The PVH entry note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const XEN_NOTE_NAME = 'Xen';

// struct hvm_start_info (version 1) and the tables it points to.
export const HVM_START_MAGIC = 0x336ec578;
export const HVM_START_VERSION = 1;
export const SI_MAGIC = 0;
export const SI_VERSION = 4;
export const SI_FLAGS = 8;
export const SI_NR_MODULES = 12;
export const SI_MODLIST_PADDR = 16;
export const SI_CMDLINE_PADDR = 24;
export const SI_RSDP_PADDR = 32;
export const SI_MEMMAP_PADDR = 40;
export const SI_MEMMAP_ENTRIES = 48;
export const START_INFO_SIZE = 56;
export const MODLIST_OFFSET = 0x40; // hvm_modlist_entry: paddr, size, cmdline_paddr, reserved (u64 each)
export const MODLIST_ENTRY_SIZE = 32;
export const MEMMAP_OFFSET = 0x80; // hvm_memmap_table_entry: addr u64, size u64, type u32, reserved u32
export const MEMMAP_ENTRY_SIZE = 24;
export const MEMMAP_MAX = Math.floor((INFO_SIZE - MEMMAP_OFFSET) / MEMMAP_ENTRY_SIZE);

export interface ElfImage {
  entry: number;
  loads: { paddr: number; offset: number; filesz: number; memsz: number }[];
}

export function isElf(image: Uint8Array): boolean {
  return image.length >= 4 && dv(image).getUint32(0, true) === ELF_MAGIC;
}

/** Where the fields this loader reads sit, for ELF32 and ELF64. */
interface ElfLayout {
  phoff: number; shoff: number; phentsize: number; phnum: number; shentsize: number; shnum: number;
  phMin: number; shMin: number; pOffset: number; pPaddr: number; pFilesz: number; pMemsz: number;
  shOffset: number; shSize: number; machine: number; word: 4 | 8;
}
const ELF64: ElfLayout = {
  phoff: 0x20, shoff: 0x28, phentsize: 0x36, phnum: 0x38, shentsize: 0x3a, shnum: 0x3c,
  phMin: 56, shMin: 64, pOffset: 8, pPaddr: 24, pFilesz: 32, pMemsz: 40, shOffset: 24, shSize: 32, machine: EM_X86_64, word: 8,
};
const ELF32: ElfLayout = {
  phoff: 0x1c, shoff: 0x20, phentsize: 0x2a, phnum: 0x2c, shentsize: 0x2e, shnum: 0x30,
  phMin: 32, shMin: 40, pOffset: 4, pPaddr: 12, pFilesz: 16, pMemsz: 20, shOffset: 16, shSize: 20, machine: EM_386, word: 4,
};

/** Parse a little-endian x86 ELF (64-bit like vmlinux, or 32-bit): its PT_LOADs and PVH entry. */
export function parseElf(path: string, image: Uint8Array): ElfImage {
  if (!isElf(image)) throw new LoaderError(`${path}: not an ELF file`);
  const v = dv(image);
  const L = image[EI_CLASS] === ELFCLASS64 ? ELF64 : image[EI_CLASS] === ELFCLASS32 ? ELF32 : undefined;
  if (!L || image.length < EHDR_SIZE || image[EI_DATA] !== ELFDATA2LSB) {
    throw new LoaderError(`${path}: not a little-endian ELF32 or ELF64 file`);
  }
  if (v.getUint16(E_MACHINE, true) !== L.machine) throw new LoaderError(`${path}: ELF is not for ${L === ELF64 ? 'x86-64' : 'i386'}`);
  const word = (o: number, what: string): number => {
    if (L.word === 4) return v.getUint32(o, true);
    const x = v.getBigUint64(o, true);
    if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new LoaderError(`${path}: ELF ${what} ${x} is out of range`);
    return Number(x);
  };
  const table = (off: number, entsize: number, num: number, min: number, what: string): number[] => {
    if (num === 0) return [];
    if (entsize < min || off + entsize * num > image.length) throw new LoaderError(`${path}: truncated ELF ${what} headers`);
    return Array.from({ length: num }, (_, i) => off + i * entsize);
  };
  const phs = table(word(L.phoff, 'e_phoff'), v.getUint16(L.phentsize, true), v.getUint16(L.phnum, true), L.phMin, 'program');
  const loads: ElfImage['loads'] = [];
  const notes: { offset: number; size: number }[] = [];
  for (const ph of phs) {
    const type = v.getUint32(ph, true);
    if (type !== PT_LOAD && type !== PT_NOTE) continue;
    const offset = word(ph + L.pOffset, 'p_offset');
    const filesz = word(ph + L.pFilesz, 'p_filesz');
    if (offset + filesz > image.length) throw new LoaderError(`${path}: ELF segment at ${hex(offset)} runs past the end of the file`);
    if (type === PT_LOAD) {
      const memsz = word(ph + L.pMemsz, 'p_memsz');
      if (memsz < filesz) throw new LoaderError(`${path}: ELF segment at ${hex(offset)} has p_memsz < p_filesz`);
      loads.push({ paddr: word(ph + L.pPaddr, 'p_paddr'), offset, filesz, memsz });
    } else {
      notes.push({ offset, size: filesz });
    }
  }
  if (notes.length === 0) {
    // No PT_NOTE: look in the SHT_NOTE sections instead.
    const shs = table(word(L.shoff, 'e_shoff'), v.getUint16(L.shentsize, true), v.getUint16(L.shnum, true), L.shMin, 'section');
    for (const sh of shs) {
      if (v.getUint32(sh + 4, true) !== SHT_NOTE) continue;
      const offset = word(sh + L.shOffset, 'sh_offset');
      const size = word(sh + L.shSize, 'sh_size');
      if (offset + size <= image.length) notes.push({ offset, size });
    }
  }
  if (loads.length === 0) throw new LoaderError(`${path}: ELF has no loadable segments`);
  let entry: number | undefined;
  for (const n of notes) entry ??= findPvhEntry(image, n.offset, n.size);
  if (entry === undefined) {
    throw new LoaderError(`${path}: ELF has no PVH entry (Xen note XEN_ELFNOTE_PHYS32_ENTRY); use the bzImage`);
  }
  return { entry, loads };
}

/** Walk one note area for the Xen PHYS32_ENTRY note. */
function findPvhEntry(image: Uint8Array, offset: number, size: number): number | undefined {
  const v = dv(image);
  const align4 = (x: number) => (x + 3) & ~3;
  let o = offset;
  const end = offset + size;
  while (o + 12 <= end) {
    const namesz = v.getUint32(o, true);
    const descsz = v.getUint32(o + 4, true);
    const type = v.getUint32(o + 8, true);
    const name = o + 12;
    const desc = name + align4(namesz);
    if (desc + descsz > end) return undefined;
    const nm = Buffer.from(image.subarray(name, name + namesz)).toString('latin1').replace(/\0+$/, '');
    if (nm === XEN_NOTE_NAME && type === XEN_ELFNOTE_PHYS32_ENTRY) {
      if (descsz === 4) return v.getUint32(desc, true);
      if (descsz === 8) return Number(v.getBigUint64(desc, true) & 0xffffffffn);
      return undefined;
    }
    o = desc + align4(descsz);
  }
  return undefined;
}

export function loadPvh(mem: GuestMemory, image: Uint8Array, opts: LinuxBootOptions, initrd?: Uint8Array): BootEntry {
  const path = opts.kernel;
  const elf = parseElf(path, image);
  let lo = Infinity;
  let hi = 0;
  for (const s of elf.loads) {
    if (!inRam(opts.e820, s.paddr, s.memsz)) {
      throw new LoaderError(`${path}: kernel segment ${hex(s.paddr)}-${hex(s.paddr + s.memsz)} is outside guest RAM`);
    }
    const seg = new Uint8Array(s.memsz);
    seg.set(image.subarray(s.offset, s.offset + s.filesz));
    put(mem, s.paddr, seg, `${path}: kernel segment`);
    lo = Math.min(lo, s.paddr);
    hi = Math.max(hi, s.paddr + s.memsz);
  }
  if (elf.entry < lo || elf.entry >= hi) throw new LoaderError(`${path}: PVH entry ${hex(elf.entry)} is outside the kernel image`);

  const info = new Uint8Array(INFO_SIZE);
  const iv = dv(info);
  iv.setUint32(SI_MAGIC, HVM_START_MAGIC, true);
  iv.setUint32(SI_VERSION, HVM_START_VERSION, true);

  put(mem, CMDLINE_ADDR, cmdlineBytes(opts.cmdline, CMDLINE_MAX), 'kernel command line');
  iv.setBigUint64(SI_CMDLINE_PADDR, BigInt(CMDLINE_ADDR), true);

  let initrdAt: BootEntry['loaded']['initrd'];
  if (initrd && opts.initrd !== undefined) {
    const limit = Math.min(lowRamTop(opts.e820), FOUR_GIB);
    const addr = placeHigh(opts.e820, initrd.length, 1 * MiB, limit, [{ addr: lo, size: hi - lo }]);
    if (addr === undefined) {
      throw new LoaderError(`${opts.initrd}: initrd of ${initrd.length} bytes does not fit in RAM below ${hex(limit)}`);
    }
    put(mem, addr, initrd, `${opts.initrd}: initrd`);
    iv.setUint32(SI_NR_MODULES, 1, true);
    iv.setBigUint64(SI_MODLIST_PADDR, BigInt(INFO_ADDR + MODLIST_OFFSET), true);
    iv.setBigUint64(MODLIST_OFFSET, BigInt(addr), true);
    iv.setBigUint64(MODLIST_OFFSET + 8, BigInt(initrd.length), true);
    initrdAt = { addr, size: initrd.length };
  }
  if (opts.rsdp !== undefined) iv.setBigUint64(SI_RSDP_PADDR, BigInt(opts.rsdp), true);

  if (opts.e820.length > MEMMAP_MAX) throw new LoaderError(`e820 map has ${opts.e820.length} entries, hvm_start_info holds ${MEMMAP_MAX}`);
  iv.setBigUint64(SI_MEMMAP_PADDR, BigInt(INFO_ADDR + MEMMAP_OFFSET), true);
  iv.setUint32(SI_MEMMAP_ENTRIES, opts.e820.length, true);
  opts.e820.forEach((e, i) => {
    const o = MEMMAP_OFFSET + i * MEMMAP_ENTRY_SIZE;
    iv.setBigUint64(o, BigInt(e.addr), true);
    iv.setBigUint64(o + 8, BigInt(e.size), true);
    iv.setUint32(o + 16, e.type, true);
  });
  put(mem, INFO_ADDR, info, 'hvm_start_info');

  // PVH: TR is a 32-bit TSS with base 0 and limit 0x67.
  const gdt = writeGdt(mem, { mode: 'pvh32', tssBase: 0, tssLimit: 0x67 });
  return {
    mode: 'pvh32',
    rip: BigInt(elf.entry),
    rbx: BigInt(INFO_ADDR),
    gdt,
    tss: 0,
    loaded: { kernel: { addr: lo, size: hi - lo }, initrd: initrdAt, cmdline: CMDLINE_ADDR, info: INFO_ADDR },
  };
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
