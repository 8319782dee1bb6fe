/** Entry point of a vCPU thread. */
import { parentPort } from 'node:worker_threads';
import { Vcpu } from '../kvm/vcpu.js';
import { gettid, sched_setaffinity } from '../kvm/libc.js';
import { takeOver, giveUp, lateHandoff } from './head-start.js';
import { Machine, type MachineInit } from './machine.js';
import { pvmHost } from '../kvm/vm.js';
import {
  runLoop, CTL_BASE, CTL_GO, CTL_HANDOFF, CTL_STOP, CTL_STRIDE, CTL_TID, CTL_PVM, HANDOFF_DONE,
} from './vcpu-loop.js';
import { PvmSyscallRepair, PVM_SYSCALL_WORDS } from '../emulate/pvm-syscall.js';
import { emulate, formatStats } from '../emulate/index.js';
import { writeSync } from 'node:fs';
import type { ExitStatus } from './context.js';

export interface VcpuThreadData {
  init: MachineInit;
  id: number;
  fd: number;
  runSize: number;
  ctl: SharedArrayBuffer;
  cpuset: number[];
  strictIo: boolean;
  strictMsr: boolean;
  /** vCPU 0 is already running on the main thread: take it over (see head-start.ts). */
  headStart: boolean;
}

export type WorkerMessage =
  | { t: 'loaded' }
  | { t: 'ready'; id: number }
  | { t: 'exit'; status: ExitStatus; why?: string }
  | { t: 'timer'; index: number }
  | { t: 'error'; message: string }
  /** The thread's loop has returned, or it never had one to run (a vCPU's statistics, if asked for, are written). */
  | { t: 'done'; id: number };

const post = (m: WorkerMessage) => parentPort!.postMessage(m);
/** PVM hosts (kvm_pvm) need the user-mode syscall repair; BHYVE_PVM_SYSCALL=0 turns it off. */
const PVM_HOST = pvmHost() && process.env.BHYVE_PVM_SYSCALL !== '0';

function main(data: VcpuThreadData): void {
  const ctl = new Int32Array(data.ctl);
  // The VM stopped before this thread got its vCPU (a guest done within the
  // head start): nothing to build or run.
  if (Atomics.load(ctl, CTL_STOP) !== 0 && (!data.headStart || Atomics.load(ctl, CTL_HANDOFF) === HANDOFF_DONE)) return;
  let stopped = false;
  const exit = (status: ExitStatus, why?: string) => {
    if (stopped) return;
    stopped = true;
    Atomics.store(ctl, CTL_STOP, 1);
    post({ t: 'exit', status, why });
  };
  const machine = new Machine(data.init, 'vcpu', { exit, nudgeTimer: (index) => post({ t: 'timer', index }) });
  const vcpu = new Vcpu(data.id, data.fd, data.runSize);
  if (data.cpuset.length) pin(data.id, data.cpuset);
  if (data.headStart) {
    post({ t: 'ready', id: data.id });
    lateHandoff(ctl, () => machine.arena.generation);
    takeOver(ctl, vcpu);
  } else {
    Atomics.store(ctl, CTL_BASE + data.id * CTL_STRIDE + CTL_TID, gettid());
    post({ t: 'ready', id: data.id });
  }
  while (Atomics.load(ctl, CTL_GO) === 0 && Atomics.load(ctl, CTL_STOP) === 0) Atomics.wait(ctl, CTL_GO, 0, 100);
  const pvm = PVM_HOST ? new PvmSyscallRepair(ctl.subarray(CTL_PVM, CTL_PVM + PVM_SYSCALL_WORDS), machine.ctx.mem) : undefined;
  try {
    runLoop({
      vcpu, arena: machine.arena, io: machine.io, mmio: machine.mmio, ctl, mem: machine.ctx.mem, emulate, pvm,
      strictIo: data.strictIo, strictMsr: data.strictMsr,
      resync: () => machine.resync(), exit,
    });
  } finally {
    if (process.env.BHYVE_EMUL_STATS === '1') {
      writeSync(2, formatStats(`vCPU ${data.id}`));
      if (pvm) writeSync(2, `  PVM syscall repair: ${pvm.counts.syscalls} system calls, ${pvm.counts.faults} page faults passed on, ${pvm.counts.installs} hook installs\n`);
    }
  }
}

function pin(id: number, cpus: number[]): void {
  const mask = Buffer.alloc(128);
  for (const c of cpus) mask[c >> 3] |= 1 << (c & 7);
  if (sched_setaffinity(0, mask.length, mask) < 0) post({ t: 'error', message: `cannot pin vCPU ${id} to host CPUs ${cpus.join(',')}` });
}

// The thread may start before its vCPU exists (see vcpu-pool.ts): say it is
// loaded, then wait for its vCPU.
post({ t: 'loaded' });
parentPort!.once('message', (data: VcpuThreadData) => {
  try {
    main(data);
  } catch (e) {
    if (data.headStart) giveUp(new Int32Array(data.ctl));
    post({ t: 'error', message: `vCPU ${data.id}: ${(e as Error).message}` });
  }
  post({ t: 'done', id: data.id }); // the main thread waits for this before the process may exit
});
