/**
 * PVM's user-mode `syscall`, repaired.
 *
 * On a PVM host (kvm_pvm) an unmodified guest's `syscall` from CPL 3 loads
 * RIP from LSTAR, RCX and R11 as the architecture says, but leaves the vCPU
 * at CPL 3: the first fetch at LSTAR faults (#PF, error code U|I-fetch) and
 * the guest kernel sees a user process faulting on its own syscall entry
 * (Linux: "init: segfault at entry_SYSCALL_64 ... error 15"). Exceptions
 * from CPL 3 are delivered correctly through the guest's IDT, so the VMM
 * takes over there: it puts an `int3` on the first byte of the guest's #PF
 * handler (vector 14 of the IDT, found at run time and followed when the
 * guest moves it). KVM's emulator cannot run `int3`, so every #PF entry
 * comes to us as an emulation failure. A fault whose frame says "user-mode
 * instruction fetch at LSTAR" is turned into the system call it was: the
 * frame is dropped, RSP is the user stack again, CS/SS come from STAR and
 * RFLAGS is R11 masked by SFMASK, RIP is LSTAR, now at CPL 0. Any other
 * fault runs the handler's original first instruction and goes on.
 *
 * The hook's state lives in shared words so that every vCPU thread sees
 * one patch; callers serialize `check` under the device lock.
 */
import { CpuState, CS, SS, RF, RSP, R11, GPR_KEYS, type VcpuPort } from './cpu.js';
import type { Regs } from '../kvm/vcpu.js';
import { Mmu, fromBytes, type MemPort } from './mmu.js';
import { decode, hexBytes } from './decoder.js';
import { FaultLog, FAULT_LOG_WORDS } from './pvm-fault-log.js';
import { getU64, setU64 } from './shared-words.js';
import { writeSync } from 'node:fs';

const MSR_STAR = 0xc0000081, MSR_LSTAR = 0xc0000082, MSR_FMASK = 0xc0000084, MSR_FS_BASE = 0xc0000100;
/**
 * BHYVE_PVM_DEBUG=1: report user-mode faults that look like a lost TLS base
 * (on the NULL page, in the upper half, or through FS far from its base)
 * with what the guest's own page tables hold there and where the process's
 * TLS image is in RAM (pvm-fault-log.ts): the TLS defect, README.
 */
const DEBUG_TLS = process.env.BHYVE_PVM_DEBUG === '1';
const PAGE = 4096n;
const PF_VECTOR = 14;
const INT3 = 0xcc;
const PFERR_USER = 4n, PFERR_FETCH = 0x10n;
const UPPER_HALF = 1n << 63n, FS_NEAR = 1n << 24n;
const PREFIX_FS = 0x64;
/** Zeroed general registers, for reading the special ones alone (made on first use: no work at load). */
let noRegs: Regs | undefined;

/** Layout of the shared words. */
const W_STATE = 0, W_VA = 1, W_GPA = 3, W_LEN = 5, W_ORIG = 6, W_FAULT_LOG = 10;
/** The hook's words, then the fault log's (pvm-fault-log.ts; used only with BHYVE_PVM_DEBUG=1). */
export const PVM_SYSCALL_WORDS = W_FAULT_LOG + FAULT_LOG_WORDS;

/** `original`: the handler's first instruction, to emulate when not repaired; `cpu`: the registers read for it. */
export interface RepairOutcome { repaired: boolean; original: Uint8Array; cpu: CpuState }

export class PvmSyscallRepair {
  /** Number of system calls repaired and #PF passed through, on this thread. */
  readonly counts = { syscalls: 0, faults: 0, installs: 0 };
  private readonly faultLog: FaultLog | undefined;

  constructor(private readonly words: Int32Array, private readonly mem: MemPort) {
    if (words.length < PVM_SYSCALL_WORDS) throw new RangeError('pvm-syscall: shared block too small');
    if (DEBUG_TLS) this.faultLog = new FaultLog(words.subarray(W_FAULT_LOG, W_FAULT_LOG + FAULT_LOG_WORDS));
  }

  private get installed(): boolean { return Atomics.load(this.words, W_STATE) === 1; }
  private get va(): bigint { return getU64(this.words, W_VA); }
  private get gpa(): number { return Number(getU64(this.words, W_GPA)); }
  private original(): Uint8Array {
    const out = new Uint8Array(16);
    for (let i = 0; i < 4; i++) new DataView(out.buffer).setInt32(i * 4, this.words[W_ORIG + i], true);
    return out.subarray(0, this.words[W_LEN]);
  }

  /**
   * Make sure the #PF handler the guest's IDT names carries the hook (call
   * with the device lock held). Does nothing outside paged long mode.
   */
  check(vcpu: VcpuPort): void {
    // Only the special registers matter here (IDT, paging): no KVM_GET_REGS.
    noRegs ??= Object.fromEntries([...GPR_KEYS, 'rip', 'rflags'].map((k) => [k, 0n])) as unknown as Regs;
    const cpu = new CpuState(vcpu, noRegs);
    if (!cpu.long || cpu.sregs.idt.limit < PF_VECTOR * 16 + 15) return;
    const mmu = new Mmu(cpu, this.mem);
    let handler: bigint, gpa: number, bytes: Uint8Array;
    try {
      const gate = mmu.readLinear(cpu.sregs.idt.base + BigInt(PF_VECTOR * 16), 16, { implicit: true });
      if (!(gate[5] & 0x80)) return; // not present
      handler = fromBytes(gate.subarray(0, 2)) | (fromBytes(gate.subarray(6, 8)) << 16n) | (fromBytes(gate.subarray(8, 12)) << 32n);
      gpa = mmu.translate(handler, { fetch: true, implicit: true });
      bytes = mmu.readLinear(handler, 15, { fetch: true, implicit: true });
    } catch {
      return; // tables not mapped (yet): try again later
    }
    if (this.installed && this.va === handler && bytes[0] === INT3) return;
    if (this.installed) this.remove();
    if (bytes[0] === INT3) return; // the guest's own breakpoint: leave it alone
    let len: number;
    try {
      len = decode(bytes, 8).len;
    } catch {
      return;
    }
    const ram = this.mem.slice(gpa, 1);
    if (!ram) return;
    const orig = new Uint8Array(16);
    orig.set(bytes.subarray(0, len));
    const dv = new DataView(orig.buffer);
    for (let i = 0; i < 4; i++) this.words[W_ORIG + i] = dv.getInt32(i * 4, true);
    this.words[W_LEN] = len;
    setU64(this.words, W_VA, handler);
    setU64(this.words, W_GPA, BigInt(gpa));
    ram[0] = INT3;
    Atomics.store(this.words, W_STATE, 1);
    this.counts.installs++;
  }

  /**
   * A user process faulted: if it looks like the TLS defect (the NULL page,
   * the upper half, or an FS access far from FS), say where FS points, what
   * the guest's page tables give for the TLS words around it (glibc's locale
   * pointer is at FS-0x90, the TCB at FS), the XMM registers, where the TLS
   * image is in RAM, and what the faulting code is.
   */
  private reportTlsFault(vcpu: VcpuPort, cpu: CpuState, mmu: Mmu, err: bigint, rip: bigint): void {
    const hex = (v: bigint | number) => '0x' + v.toString(16);
    const cr2 = cpu.sregs.cr2;
    const fs = cpu.sregs.seg.fs;
    let bytes: Uint8Array | undefined;
    try { bytes = mmu.readLinear(rip, 8, { debug: true }); } catch { /* unmapped */ }
    const viaFs = bytes !== undefined && bytes.subarray(0, 4).includes(PREFIX_FS);
    const farFromFs = cr2 + FS_NEAR < fs.base || cr2 > fs.base + FS_NEAR;
    if (!(cr2 < PAGE || cr2 >= UPPER_HALF || (viaFs && farFromFs))) return;
    const msr = vcpu.getMsrs([MSR_FS_BASE]).get(MSR_FS_BASE);
    const word = (lin: bigint): string => {
      try {
        const gpa = mmu.translate(lin, { debug: true });
        return `${hex(fromBytes(mmu.readLinear(lin, 8, { debug: true })))} (gpa ${hex(gpa)})`;
      } catch (e) {
        return `unreadable (${(e as Error).message})`;
      }
    };
    const words = [-0x90n, -0x88n, -0x80n, 0n, 8n, 0x10n].map((d) => `[FS${d < 0n ? '-0x' + (-d).toString(16) : '+0x' + d.toString(16)}] = ${word(fs.base + d)}`).join(', ');
    let xmm = '?';
    try {
      const xs = vcpu.getXsave();
      xmm = Array.from({ length: 8 }, (_, i) => `xmm${i}=${xs.subarray(160 + 16 * i, 176 + 16 * i).toString('hex')}`).join(' ');
    } catch { /* a diagnostic only */ }
    const src = process.env.BHYVE_PVM_TLS_SRC ? ` source at ${process.env.BHYVE_PVM_TLS_SRC} = ${word(BigInt(process.env.BHYVE_PVM_TLS_SRC))}, ${word(BigInt(process.env.BHYVE_PVM_TLS_SRC) + 8n)};` : '';
    // One synchronous write: a vCPU thread never returns to its event loop to flush a stream.
    writeSync(2, `pvm: vCPU ${vcpu.id}: ${xmm};${src}\n` +
      `pvm: vCPU ${vcpu.id}: TLS words ${words}; ${this.findTlsImage(mmu, fs.base)}; ` +
      `faults on the TLS page ${hex((fs.base - 0x90n) & ~0xfffn)}: ${this.faultLog?.faultsOn(cpu, fs.base - 0x90n) ?? 'none'}\n` +
      `pvm: vCPU ${vcpu.id}: user #PF at ${hex(cr2)} err ${hex(err)} rip ${hex(rip)} [${bytes ? hexBytes(bytes) : '?'}] cr3 ${hex(cpu.sregs.cr3)}; ` +
      `FS selector ${hex(fs.selector)} base ${hex(fs.base)} (MSR ${msr === undefined ? '?' : hex(msr)})\n`);
  }

  /**
   * Where the process's TLS initialisation image went: read PT_TLS from the
   * ELF headers of the (non-PIE) program at 0x400000, and look through all
   * of guest RAM for pages holding the image's first 16 bytes where this
   * process's TLS block would start. A match other than the page the
   * guest's tables give means the process's writes went to another page.
   */
  private findTlsImage(mmu: Mmu, fsBase: bigint): string {
    try {
      return this.findTlsImageOrThrow(mmu, fsBase);
    } catch (e) {
      return `TLS image not found (${(e as Error).message})`;
    }
  }

  private findTlsImageOrThrow(mmu: Mmu, fsBase: bigint): string {
    const PT_TLS = 7, BASE = 0x400000n;
    const rd = (va: bigint, n: number) => mmu.readLinear(va, n, { debug: true });
    let eh: Uint8Array;
    try {
      eh = rd(BASE, 64);
    } catch {
      // The ELF header's page is often not mapped: BHYVE_PVM_TLS_IMAGE=size:hex gives the image instead.
      const [size, img] = (process.env.BHYVE_PVM_TLS_IMAGE ?? '').split(':');
      if (!img) return 'the ELF header is not mapped (set BHYVE_PVM_TLS_IMAGE=size:hex)';
      return this.scanFor(mmu, fsBase, BigInt(size), Uint8Array.from(Buffer.from(img, 'hex')));
    }
    if (eh[0] !== 0x7f || eh[1] !== 0x45) return 'no ELF at 0x400000';
    const dv = new DataView(eh.buffer, eh.byteOffset, 64);
    const phoff = dv.getBigUint64(0x20, true), phentsize = dv.getUint16(0x36, true), phnum = dv.getUint16(0x38, true);
    for (let i = 0; i < phnum; i++) {
      const ph = rd(BASE + phoff + BigInt(i * phentsize), 56);
      const p = new DataView(ph.buffer, ph.byteOffset, 56);
      if (p.getUint32(0, true) !== PT_TLS) continue;
      const vaddr = p.getBigUint64(0x10, true), filesz = Number(p.getBigUint64(0x20, true));
      const memsz = p.getBigUint64(0x28, true), align = p.getBigUint64(0x30, true) || 1n;
      if (filesz < 16) return `TLS image of ${filesz} bytes`;
      const size = (memsz + align - 1n) / align * align;
      return this.scanFor(mmu, fsBase, size, rd(vaddr, 16));
    }
    return 'no PT_TLS';
  }

  /** Pages of RAM holding `image` where a TLS block of `size` bytes below `fsBase` would start. */
  private scanFor(mmu: Mmu, fsBase: bigint, size: bigint, image: Uint8Array): string {
    const start = fsBase - size;
    const off = Number(start & 0xfffn);
    if (off + 16 > 4096) return 'TLS image crosses a page';
    const mapped = mmu.translate(start, { debug: true });
    const hits: string[] = [];
    for (const seg of this.mem.segments) {
      for (let gpa = seg.gpa; gpa + 4096 <= seg.gpa + seg.size; gpa += 4096) {
        const page = this.mem.slice(gpa, 4096);
        if (!page || page[off] !== image[0]) continue;
        let same = true;
        for (let k = 1; k < 16 && same; k++) same = page[off + k] === image[k];
        if (!same) continue;
        const tcbOff = Number(fsBase & 0xfffn);
        const tcb = tcbOff + 8 <= 4096 ? fromBytes(page.subarray(tcbOff, tcbOff + 8)) : -1n;
        hits.push(`gpa 0x${(gpa + off).toString(16)}${gpa + off === mapped ? ' (mapped here)' : ''} with [FS]=0x${tcb.toString(16)}`);
      }
    }
    return `TLS image (first ${image.length} bytes) at ${hits.length} place(s) in RAM where this block would start: ${hits.slice(0, 12).join('; ')}`;
  }

  /** Put the original byte back (when the guest moved its handler). */
  private remove(): void {
    const ram = this.mem.slice(this.gpa, 1);
    if (ram && ram[0] === INT3) ram[0] = this.original()[0];
    Atomics.store(this.words, W_STATE, 0);
  }

  /**
   * An emulation failure on `bytes` (as KVM reported them): undefined when
   * it is not our hook; otherwise the system call is repaired in place
   * (`repaired`), or `original` holds the instruction to emulate instead.
   */
  onFailure(vcpu: VcpuPort, bytes: Uint8Array): RepairOutcome | undefined {
    if (!this.installed || (bytes.length && bytes[0] !== INT3)) return undefined;
    const cpu = new CpuState(vcpu);
    if (cpu.rip !== this.va) return undefined;
    const original = this.original();
    const mmu = new Mmu(cpu, this.mem);
    let frame: bigint[];
    try {
      const raw = mmu.readLinear(cpu.gpr[RSP], 48, { implicit: true });
      frame = [0, 1, 2, 3, 4, 5].map((i) => fromBytes(raw.subarray(i * 8, i * 8 + 8)));
    } catch {
      this.counts.faults++;
      return { repaired: false, original, cpu };
    }
    const [err, rip, cs, , rsp] = frame;
    if ((cs & 3n) !== 3n || (err & (PFERR_USER | PFERR_FETCH)) !== (PFERR_USER | PFERR_FETCH)) {
      if (this.faultLog && cpu.sregs.cr2 < UPPER_HALF) this.faultLog.onFault(cpu, vcpu.id, err, rip, Number(cs & 3n));
      if (DEBUG_TLS && (cs & 3n) === 3n) {
        try { this.reportTlsFault(vcpu, cpu, mmu, err, rip); } catch { /* a diagnostic only */ }
      }
      this.counts.faults++;
      return { repaired: false, original, cpu };
    }
    const msrs = vcpu.getMsrs([MSR_STAR, MSR_LSTAR, MSR_FMASK]);
    const lstar = msrs.get(MSR_LSTAR) ?? 0n;
    if (rip !== lstar) {
      this.counts.faults++;
      return { repaired: false, original, cpu };
    }
    const kcs = Number((msrs.get(MSR_STAR) ?? 0n) >> 32n) & 0xfffc;
    const fmask = msrs.get(MSR_FMASK) ?? 0n;
    const codeSeg = cpu.seg(CS);
    cpu.setSeg(CS, { ...codeSeg, selector: kcs, base: 0n, limit: 0xffffffff, type: 11, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, unusable: 0 });
    cpu.setSeg(SS, { ...codeSeg, selector: kcs + 8, base: 0n, limit: 0xffffffff, type: 3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, unusable: 0 });
    cpu.setReg(RSP, 8, rsp);
    cpu.setRip(lstar);
    cpu.setFlags(((cpu.gpr[R11] & ~fmask) & ~RF) | 2n);
    cpu.commit();
    this.counts.syscalls++;
    return { repaired: true, original, cpu };
  }
}
