/**
 * The Linux loader (the role bhyveload plays for FreeBSD): puts a bzImage
 * or an ELF vmlinux, its initrd, command line and memory map in guest memory
 * and describes the state vCPU 0 starts in.
 *
 * - bzImage: 64-bit boot protocol, entered in long mode with identity page
 *   tables (this host cannot run 32-bit paging, so no 32-bit entry).
 * - ELF vmlinux: the Xen PVH entry, 32-bit protected mode, paging off.
 * - bzImage with `unpack`: its payload decompressed here, then as an ELF
 *   vmlinux (unpack.ts).
 *
 * The CPU count is not passed to the kernel here: it finds the CPUs in the
 * ACPI MADT (or the MP table) the firmware code builds.
 */
import { readFileSync } from 'node:fs';
import type { GuestMemory } from '../kvm/memory.js';
import type { Regs, Segment, Sregs, Vcpu } from '../kvm/vcpu.js';
import { type BootEntry, type LinuxBootOptions, LoaderError, TSS_LIMIT } from './common.js';
import { isBzImage, loadBzImage, parseSetupHeader } from './bzimage.js';
import { canUnpack, unpackBzImage } from './unpack.js';
import { isElf, loadPvh } from './pvh.js';
import { BOOT_CS, BOOT_DS, BOOT_TSS, TYPE_CODE_XR_A, TYPE_DATA_RW_A, TYPE_TSS_BUSY } from './pagetables.js';

export { LoaderError } from './common.js';
export type { BootEntry, E820Entry, LinuxBootOptions } from './common.js';

export const CR0_PE = 1n;
export const CR0_ET = 0x10n;
export const CR0_NE = 0x20n;
export const CR0_PG = 0x80000000n;
export const CR4_PAE = 0x20n;
export const EFER_LME = 0x100n;
export const EFER_LMA = 0x400n;
export const RFLAGS_RESERVED = 0x2n;
const LDT_TYPE = 2;

function readInput(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw new LoaderError(`${what} ${path}: ${why}`, { cause: e });
  }
}

/** Load the kernel (and initrd) into guest memory; returns vCPU 0's entry state. */
export function loadLinux(mem: GuestMemory, opts: LinuxBootOptions): BootEntry {
  if (!Number.isInteger(opts.ncpus) || opts.ncpus < 1) throw new LoaderError(`bad CPU count ${opts.ncpus}`);
  const image = readInput(opts.kernel, 'kernel');
  const initrd = opts.initrd === undefined ? undefined : readInput(opts.initrd, 'initrd');
  if (isBzImage(image)) {
    if (!opts.unpack) return loadBzImage(mem, image, opts, initrd);
    const h = parseSetupHeader(opts.kernel, image);
    if (opts.unpack === 'if-possible' && !canUnpack(image, h)) return loadBzImage(mem, image, opts, initrd);
    return loadPvh(mem, unpackBzImage(opts.kernel, image, h), opts, initrd);
  }
  if (isElf(image)) return loadPvh(mem, image, opts, initrd);
  throw new LoaderError(`kernel ${opts.kernel}: not a bzImage or an ELF vmlinux`);
}

function flat(selector: number, type: number, long: boolean): Segment {
  return {
    base: 0n, limit: 0xffffffff, selector, type, present: 1, dpl: 0,
    db: long ? 0 : 1, s: 1, l: long ? 1 : 0, g: 1, avl: 0, unusable: 0,
  };
}

/** The special registers for `entry`, on top of `cur` (as KVM_GET_SREGS gave them). */
export function bootSregs(entry: BootEntry, cur: Sregs): Sregs {
  const long = entry.mode === 'long64';
  const data = flat(BOOT_DS, TYPE_DATA_RW_A, false);
  const seg: Sregs['seg'] = {
    cs: flat(BOOT_CS, TYPE_CODE_XR_A, long),
    ds: { ...data }, es: { ...data }, fs: { ...data }, gs: { ...data }, ss: { ...data },
    tr: {
      base: BigInt(entry.tss), limit: TSS_LIMIT, selector: BOOT_TSS, type: TYPE_TSS_BUSY, present: 1, dpl: 0,
      db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0,
    },
    ldt: { base: 0n, limit: 0, selector: 0, type: LDT_TYPE, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 1 },
  };
  return {
    ...cur,
    seg,
    gdt: { base: BigInt(entry.gdt.base), limit: entry.gdt.limit },
    idt: { base: 0n, limit: 0 },
    cr0: long ? CR0_PE | CR0_ET | CR0_NE | CR0_PG : CR0_PE | CR0_ET,
    cr2: 0n,
    cr3: long ? BigInt(entry.pageTables ?? 0) : 0n,
    cr4: long ? CR4_PAE : 0n,
    cr8: 0n,
    efer: long ? EFER_LME | EFER_LMA : 0n,
  };
}

/** The general registers for `entry`: everything zero but the entry values. */
export function bootRegs(entry: BootEntry): Regs {
  return {
    rax: 0n, rbx: entry.rbx ?? 0n, rcx: 0n, rdx: 0n, rsi: entry.rsi ?? 0n, rdi: 0n, rsp: entry.rsp ?? 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: entry.rip, rflags: RFLAGS_RESERVED,
  };
}

/** Put vCPU 0 in the entry state (interrupts off). */
export function applyBootEntry(vcpu: Vcpu, entry: BootEntry): void {
  if (entry.mode === 'long64' && entry.pageTables === undefined) {
    throw new LoaderError('long-mode boot entry without page tables');
  }
  vcpu.setSregs(bootSregs(entry, vcpu.getSregs()));
  vcpu.setRegs(bootRegs(entry));
}
