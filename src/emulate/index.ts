/**
 * The user-space instruction emulator, entered on KVM_EXIT_INTERNAL_ERROR
 * with suberror 1 (KVM's emulator gave up): take the instruction bytes KVM
 * handed over (or fetch them from guest memory at CS:RIP), decode them in
 * the vCPU's mode, emulate against the register file and guest memory,
 * write back what changed, and deliver whatever the instruction raised.
 * Counts what it handled per thread, by instruction (BHYVE_EMUL_STATS=1
 * prints them when the vCPU stops; BHYVE_EMUL_TRACE=1 logs each one).
 */
import { writeSync } from 'node:fs';
import { CpuState, CS, RF, type VcpuPort } from './cpu.js';
import { decode, DecodeError, hexBytes, type Insn } from './decoder.js';
import { Emu, type Handler } from './emu.js';
import { EmulationError, GuestFault, PF, UD, VECTOR_NAMES } from './fault.js';
import { Mmu, type MemPort, type MmioPort } from './mmu.js';
import { injectException, injectSoftInterrupt, unblockNmi } from './inject.js';
import { INT_HANDLERS } from './exec-int.js';
import { FLOW_HANDLERS } from './exec-flow.js';
import { SYS_HANDLERS } from './exec-sys.js';
import { FPU_HANDLERS } from './exec-fpu.js';
import { withPvmFrame } from './pvm-frame.js';
import { simd } from './exec-simd.js';
import { runAhead } from './runahead.js';
import type { VecRegs } from './vec.js';

export { EmulationError, GuestFault } from './fault.js';
export type { VcpuPort } from './cpu.js';
export type { MemPort, MmioPort } from './mmu.js';

export const HANDLERS: Record<string, Handler> = {
  ...INT_HANDLERS, ...FLOW_HANDLERS, ...SYS_HANDLERS, ...FPU_HANDLERS, simd,
  // PVM puts protected-mode interrupt frames at ESP without the SS base (pvm-frame.ts).
  iret: withPvmFrame(SYS_HANDLERS.iret),
};

export interface EmulateEnv {
  vcpu: VcpuPort;
  mem: MemPort;
  mmio?: MmioPort;
  /** The registers of this exit when the caller has read them already (KVM_GET_REGS/SREGS once). */
  cpu?: CpuState;
}

export type Outcome = { ok: true; what: string } | { ok: false; report: string };

const stats = new Map<string, number>();
const TRACE = process.env.BHYVE_EMUL_TRACE === '1';
/** BHYVE_EMUL_RUNAHEAD=0 turns run-ahead off (every instruction then costs an exit). */
const RUN_AHEAD = process.env.BHYVE_EMUL_RUNAHEAD !== '0';
function count(what: string, rip?: bigint): void {
  stats.set(what, (stats.get(what) ?? 0) + 1);
  if (TRACE && rip !== undefined) writeSync(2, `emulate: ${what} at 0x${rip.toString(16)}\n`);
}

/** What this thread handled, by instruction (and by exception injected). */
export function emulationStats(): Map<string, number> {
  return new Map(stats);
}

export function formatStats(title: string): string {
  const rows = [...stats].sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((n, [, c]) => n + c, 0);
  return `${title}: ${total} emulation failures handled\n` + rows.map(([k, c]) => `  ${String(c).padStart(9)}  ${k}`).join('\n') + '\n';
}

/**
 * Handle one emulation failure. `bytes` are the instruction bytes from
 * kvm_run (may be cut short or absent). Never throws for guest-controlled
 * reasons: the outcome says whether the vCPU may resume.
 */
export function emulate(env: EmulateEnv, bytes?: Uint8Array): Outcome {
  let cpu: CpuState | undefined;
  let insn: Insn | undefined;
  let name = '?';
  try {
    cpu = env.cpu ?? new CpuState(env.vcpu);
    const mmu = new Mmu(cpu, env.mem, env.mmio);
    insn = decodeAt(cpu, mmu, bytes);
    name = insn.mn;
    const h = HANDLERS[insn.mn];
    if (!h) throw new EmulationError(`no emulation for ${insn.mn}`);
    const shared: { vec?: VecRegs } = {};
    const x = new Emu(cpu, mmu, insn, env.vcpu, shared);
    try {
      h(x);
    } finally {
      name = x.name;
    }
    const at = cpu.rip;
    if (!x.ripSet) cpu.setRip(x.next);
    if (cpu.rflags & RF) cpu.setFlags(cpu.rflags & ~RF);
    if (insn.mn === 'simd' && RUN_AHEAD) for (const n of runAhead(cpu, env.mem, env.vcpu, shared, HANDLERS)) count(`+${n}`);
    shared.vec?.commit();
    cpu.commit();
    if (x.unblockNmi) unblockNmi(env.vcpu);
    if (x.event) {
      if (x.event.soft) injectSoftInterrupt(env.vcpu, x.event.vector);
      else injectException(env.vcpu, x.event.vector);
    }
    count(name, at);
    faultRepeats = 0;
    return { ok: true, what: name };
  } catch (e) {
    if (e instanceof GuestFault || (e instanceof DecodeError && e.kind === 'ud')) {
      const f = e instanceof GuestFault ? e : new GuestFault(UD);
      try {
        injectException(env.vcpu, f.vector, f.errorCode, f.vector === PF ? f.cr2 : undefined);
      } catch (e2) {
        return { ok: false, report: report(cpu, insn, bytes, `${name} raised ${f.message}, which could not be injected: ${(e2 as Error).message}`) };
      }
      count(`${name} -> ${VECTOR_NAMES[f.vector] ?? f.vector}`, cpu?.rip);
      if (cpu && spinning(cpu.rip)) {
        return { ok: false, report: report(cpu, insn, bytes, `${name} raised ${f.message} ${SPIN_LIMIT} times in a row at the same RIP (the guest makes no progress)`) };
      }
      return { ok: true, what: `${name} -> ${f.message}` };
    }
    return { ok: false, report: report(cpu, insn, bytes, (e as Error).message) };
  }
}

const SPIN_LIMIT = 100_000;
let lastFaultRip = -1n, faultRepeats = 0;
/** The same instruction faulting over and over: stop rather than spin. */
function spinning(rip: bigint): boolean {
  faultRepeats = rip === lastFaultRip ? faultRepeats + 1 : 1;
  lastFaultRip = rip;
  return faultRepeats >= SPIN_LIMIT;
}

/** Decode from the bytes KVM gave, fetching from CS:RIP when they are missing or too few. */
function decodeAt(cpu: CpuState, mmu: Mmu, given?: Uint8Array): Insn {
  if (given && given.length) {
    try {
      return decode(given, cpu.codeSize);
    } catch (e) {
      if (!(e instanceof DecodeError) || e.kind !== 'short') throw e;
    }
  }
  const lin = mmu.linear(CS, cpu.rip, 1);
  try {
    return decode(mmu.readLinear(lin, 15, { fetch: true }), cpu.codeSize);
  } catch (e) {
    // The next page faults: decode what the first page holds, and raise the fault if that is not enough.
    const first = 4096 - Number(lin & 0xfffn);
    if (first >= 15 || !(e instanceof GuestFault)) throw e;
    try {
      return decode(mmu.readLinear(lin, first, { fetch: true }), cpu.codeSize);
    } catch (e2) {
      throw e2 instanceof DecodeError && e2.kind === 'short' ? e : e2;
    }
  }
}

function report(cpu: CpuState | undefined, insn: Insn | undefined, bytes: Uint8Array | undefined, why: string): string {
  const b = insn ? hexBytes(insn.bytes) : bytes?.length ? hexBytes(bytes) : '(none)';
  const where = cpu ? `RIP 0x${cpu.rip.toString(16)}, ${cpu.mode} mode, CPL ${cpu.cpl}` : 'registers unavailable';
  return `cannot emulate instruction [${b}] at ${where}: ${why}`;
}
