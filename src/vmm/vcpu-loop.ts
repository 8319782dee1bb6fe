/**
 * The vCPU run loop: KVM_RUN, then handle the exit right here on this
 * thread, under the device lock. Port I/O and MMIO go straight to the
 * buses; nothing is handed to another thread. Emulation failures go to the
 * instruction emulator (src/emulate), which the vCPU threads bring along.
 */
import * as C from '../kvm/constants.js';
import { EAGAIN, EINTR } from '../kvm/libc.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { IoBus, MmioBus } from './bus.js';
import type { Arena } from './shared.js';
import { ExitStatus } from './context.js';
import type { GuestMemory } from '../kvm/memory.js';
import type { EmulateEnv, Outcome } from '../emulate/index.js';
import type { PvmSyscallRepair } from '../emulate/pvm-syscall.js';

/** Per-vCPU words in the shared control block (see vmm.ts). */
export const CTL_STOP = 0; // global: non-zero once the VM is stopping
export const CTL_GO = 1; // global: set when the vCPUs may run
/** Global: the hand-over of vCPU 0 from the main thread to its own (see head-start.ts). */
export const CTL_HANDOFF = 2;
export const HANDOFF_NONE = 0, HANDOFF_ASKED = 1, HANDOFF_DONE = 2, HANDOFF_FAILED = 3;
/** Global: set once vCPU 0's thread has built its devices (only the test ordering of head-start.ts uses it). */
export const CTL_BUILT = 3;
export const CTL_BASE = 4; // then, per vCPU: [exits, idle, tid, pad]
export const CTL_STRIDE = 4;
export const CTL_EXITS = 0, CTL_IDLE = 1, CTL_TID = 2;
export const CTL_MAX_VCPUS = 64;
/** After the per-vCPU words: the shared state of the PVM syscall repair. */
export const CTL_PVM = CTL_BASE + CTL_MAX_VCPUS * CTL_STRIDE;

export interface LoopEnv {
  vcpu: Vcpu;
  arena: Arena;
  io: IoBus;
  mmio: MmioBus;
  ctl: Int32Array;
  strictIo: boolean;
  strictMsr: boolean;
  /**
   * Re-register this thread's buses if a BAR moved since they were last
   * registered (cheap otherwise); called under the lock before every dispatch.
   */
  resync: () => void;
  /** Stop the VM with a status; returns after recording it. */
  exit: (status: ExitStatus, why: string) => void;
  /** Guest memory and the instruction emulator (src/emulate): without them an emulation failure ends the loop. */
  mem?: GuestMemory;
  emulate?: (env: EmulateEnv, bytes?: Uint8Array) => Outcome;
  /** On PVM hosts: the repair of user-mode `syscall` (src/emulate/pvm-syscall.ts). */
  pvm?: PvmSyscallRepair;
  /**
   * The main thread's head start (head-start.ts): also return once vCPU 0's
   * own thread asks for it (CTL_HANDOFF) or after this time (performance.now()).
   * Both are looked at when KVM_RUN was interrupted: the asking thread sets
   * immediate_exit and signals, and a timer signals at the deadline.
   */
  headStart?: number;
}

/**
 * Why the loop returned: the VM is stopping; or (head start only) vCPU 0's
 * own thread asked for it, the head start's time is up, or an exit needs
 * the instruction emulator, which the main thread does not load.
 */
export type LoopEnd = 'stopped' | 'asked' | 'time-up' | 'emulation';

/** How often (in exits) the PVM repair re-checks the guest's #PF handler. */
const PVM_CHECK_EVERY = 64;

const ONES = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

export function runLoop(env: LoopEnv): LoopEnd {
  const { vcpu, arena, io, mmio, ctl } = env;
  const run = vcpu.run;
  const bytes = vcpu.runBytes;
  const base = CTL_BASE + vcpu.id * CTL_STRIDE;
  let sinceCheck = 0;

  for (;;) {
    if (Atomics.load(ctl, CTL_STOP) !== 0) return 'stopped';
    const r = vcpu.enter();
    if (r < 0) {
      if (-r === EINTR || -r === EAGAIN) {
        // A head start ends only on a signal (or immediate_exit): the exit path itself never checks for it.
        if (env.headStart !== undefined) {
          if (Atomics.load(ctl, CTL_HANDOFF) !== HANDOFF_NONE) return 'asked';
          if (performance.now() > env.headStart) return 'time-up';
        }
        checkIdle(env, base);
        continue;
      }
      env.exit(ExitStatus.Error, `KVM_RUN failed (errno ${-r})\n${vcpu.dump()}`);
      return 'stopped';
    }
    Atomics.add(ctl, base + CTL_EXITS, 1);
    const reason = run.getUint32(C.RUN_EXIT_REASON, true);
    if (env.pvm && ++sinceCheck >= PVM_CHECK_EVERY) {
      sinceCheck = 0;
      arena.lock();
      try { env.pvm.check(vcpu); } catch { /* registers unavailable: try later */ } finally { arena.unlock(); }
    }

    if (reason === C.KVM_EXIT_IO) {
      const out = run.getUint8(C.RUN_IO_DIRECTION) === C.KVM_EXIT_IO_OUT;
      const size = run.getUint8(C.RUN_IO_SIZE);
      const port = run.getUint16(C.RUN_IO_PORT, true);
      const count = run.getUint32(C.RUN_IO_COUNT, true);
      let off = run.getUint32(C.RUN_IO_DATA_OFFSET, true); // an offset into the run page: the high half is 0
      arena.lock();
      try {
        env.resync();
        for (let i = 0; i < count; i++, off += size) {
          if (out) {
            const v = size === 1 ? bytes[off] : size === 2 ? run.getUint16(off, true) : run.getUint32(off, true);
            if (!io.write(port, size, v) && env.strictIo) { unhandled(env, `unhandled I/O write to port 0x${port.toString(16)} (size ${size}, value 0x${v.toString(16)})`); return 'stopped'; }
          } else {
            let v = io.read(port, size);
            if (v === undefined) {
              if (env.strictIo) { unhandled(env, `unhandled I/O read from port 0x${port.toString(16)} (size ${size})`); return 'stopped'; }
              v = ONES[size];
            }
            if (size === 1) bytes[off] = v; else if (size === 2) run.setUint16(off, v, true); else run.setUint32(off, v, true);
          }
        }
      } finally {
        arena.unlock();
      }
      continue;
    }

    if (reason === C.KVM_EXIT_MMIO) {
      const addr = Number(run.getBigUint64(C.RUN_MMIO_ADDR, true));
      const len = run.getUint32(C.RUN_MMIO_LEN, true);
      const write = run.getUint8(C.RUN_MMIO_IS_WRITE) !== 0;
      arena.lock();
      try {
        env.resync();
        mmioAccess(env, addr, len, write);
      } finally {
        arena.unlock();
      }
      continue;
    }

    if (reason === C.KVM_EXIT_X86_RDMSR || reason === C.KVM_EXIT_X86_WRMSR) {
      // Only unknown MSRs reach us (see vmm.ts); -w makes them read as zero.
      run.setUint8(32, env.strictMsr ? 1 : 0);
      if (reason === C.KVM_EXIT_X86_RDMSR) run.setBigUint64(48, 0n, true);
      continue;
    }

    const end = handleOther(env, reason);
    if (end) return end;
  }
}

function unhandled(env: LoopEnv, what: string): void {
  env.exit(ExitStatus.Error, `${what} with -e (x86.strictio)\n${env.vcpu.dump()}`);
}

function mmioAccess(env: LoopEnv, addr: number, len: number, write: boolean): void {
  const run = env.vcpu.run;
  const data = C.RUN_MMIO_DATA;
  // Split 8-byte (and odd) accesses into dword/byte pieces.
  const pieces: [number, number][] = len === 8 ? [[0, 4], [4, 4]] : len === 1 || len === 2 || len === 4 ? [[0, len]] : [...Array(len)].map((_, i) => [i, 1]);
  for (const [o, sz] of pieces) {
    if (write) {
      const v = sz === 1 ? run.getUint8(data + o) : sz === 2 ? run.getUint16(data + o, true) : run.getUint32(data + o, true);
      env.mmio.write(addr + o, sz, v);
    } else {
      const v = env.mmio.read(addr + o, sz) ?? ONES[sz];
      if (sz === 1) run.setUint8(data + o, v); else if (sz === 2) run.setUint16(data + o, v, true); else run.setUint32(data + o, v, true);
    }
  }
}

/** Exits other than I/O; returns why when the loop must end. */
function handleOther(env: LoopEnv, reason: number): LoopEnd | undefined {
  const { vcpu } = env;
  const run = vcpu.run;
  switch (reason) {
    case C.KVM_EXIT_SHUTDOWN:
      env.exit(ExitStatus.TripleFault, `vCPU ${vcpu.id}: triple fault`);
      return 'stopped';
    case C.KVM_EXIT_SYSTEM_EVENT: {
      const type = run.getUint32(C.RUN_SYSTEM_EVENT_TYPE, true);
      if (type === C.KVM_SYSTEM_EVENT_RESET) env.exit(ExitStatus.Reset, 'reset');
      else if (type === C.KVM_SYSTEM_EVENT_SHUTDOWN) env.exit(ExitStatus.PowerOff, 'power-off');
      else env.exit(ExitStatus.Error, `vCPU ${vcpu.id}: system event ${type}\n${vcpu.dump()}`);
      return 'stopped';
    }
    case C.KVM_EXIT_HLT:
      return undefined;
    case C.KVM_EXIT_INTR:
      return undefined;
    case C.KVM_EXIT_INTERNAL_ERROR: {
      const sub = run.getUint32(C.RUN_INTERNAL_SUBERROR, true);
      let what = `vCPU ${vcpu.id}: KVM internal error, suberror ${sub}`;
      if (sub === C.KVM_INTERNAL_ERROR_EMULATION) {
        // The head start leaves it to the vCPU's thread: KVM_RUN there meets the same instruction again.
        if (env.headStart !== undefined) return 'emulation';
        // KVM's emulator gave up: emulate the instruction (or deliver its exception) here, then resume.
        const ndata = run.getUint32(C.RUN_INTERNAL_NDATA, true);
        const flags = ndata > 0 ? run.getBigUint64(C.RUN_INTERNAL_DATA, true) : 0n;
        const n = flags & 1n ? Math.min(15, run.getUint8(C.RUN_EMUL_INSN_SIZE)) : 0;
        const insn = vcpu.runBytes.slice(C.RUN_EMUL_INSN_BYTES, C.RUN_EMUL_INSN_BYTES + n);
        if (!env.mem || !env.emulate) {
          what = `vCPU ${vcpu.id}: instruction emulation failed (bytes: ${[...insn].map((b) => b.toString(16).padStart(2, '0')).join(' ')})`;
        } else {
          const hook = env.pvm?.onFailure(vcpu, insn);
          if (hook?.repaired) return undefined;
          const out = env.emulate({ vcpu, mem: env.mem, mmio: lockedMmio(env), cpu: hook?.cpu }, hook ? hook.original : insn);
          if (out.ok) return undefined;
          what = `vCPU ${vcpu.id}: ${out.report}`;
        }
      }
      env.exit(ExitStatus.Error, `${what}\n${vcpu.dump()}`);
      return 'stopped';
    }
    case C.KVM_EXIT_FAIL_ENTRY: {
      const why = run.getBigUint64(C.RUN_FAIL_ENTRY_REASON, true);
      env.exit(ExitStatus.Error, `vCPU ${vcpu.id}: VM entry failed (reason 0x${why.toString(16)})\n${vcpu.dump()}`);
      return 'stopped';
    }
    default:
      env.exit(ExitStatus.Error, `vCPU ${vcpu.id}: unhandled exit ${C.EXIT_NAMES[reason] ?? reason}\n${vcpu.dump()}`);
      return 'stopped';
  }
}

/** MMIO for the emulator's memory operands, under the device lock. */
function lockedMmio(env: LoopEnv) {
  return {
    read: (gpa: number, size: number): number | undefined => {
      env.arena.lock();
      try { env.resync(); return env.mmio.read(gpa, size); } finally { env.arena.unlock(); }
    },
    write: (gpa: number, size: number, value: number): void => {
      env.arena.lock();
      try { env.resync(); env.mmio.write(gpa, size, value); } finally { env.arena.unlock(); }
    },
  };
}

/**
 * After a kick: record whether this vCPU is idle with interrupts off (halted
 * for good) or waiting for a SIPI. The main thread ends the VM with status 2
 * when every vCPU is so (bhyve's VM_SUSPEND_HALT).
 */
function checkIdle(env: LoopEnv, base: number): void {
  let idle = 0;
  try {
    const mp = env.vcpu.mpState();
    if (mp === C.KVM_MP_STATE_HALTED) {
      const flags = env.vcpu.getRegs().rflags;
      idle = (flags & 0x200n) === 0n ? 1 : 0;
    } else if (mp === C.KVM_MP_STATE_UNINITIALIZED || mp === C.KVM_MP_STATE_INIT_RECEIVED) {
      idle = 2;
    }
  } catch {
    idle = 0;
  }
  Atomics.store(env.ctl, base + CTL_IDLE, idle);
}
