/**
 * The head start: vCPU 0 runs on the main thread from the moment the VM is
 * built until its own thread has loaded, then moves there.
 *
 * A worker thread takes tens of milliseconds to start (Node's bootstrap, the
 * bundle, the device models); the VM is ready before it. Rather than wait,
 * the main thread enters KVM_RUN itself and handles vCPU 0's exits exactly as
 * a vCPU thread would (same loop, same buses, same device lock). When the
 * vCPU's thread is ready it asks for the vCPU (CTL_HANDOFF), makes KVM_RUN
 * return on the main thread (immediate_exit and a signal), waits until the
 * main thread has left the loop, and goes on from there: a vCPU's state lives
 * in KVM, so nothing is copied. The main thread then returns to its event
 * loop (console input, timers, signals), which waited meanwhile.
 */
import * as C from '../kvm/constants.js';
import {
  getpid, gettid, tgkill, timer_create, timer_delete, timer_settime,
  CLOCK_MONOTONIC, SIGEVENT_SIZE, SIGEV_THREAD_ID, SIGUSR2,
} from '../kvm/libc.js';
import type { Vcpu } from '../kvm/vcpu.js';
import {
  runLoop, CTL_BASE, CTL_BUILT, CTL_EXITS, CTL_HANDOFF, CTL_STOP, CTL_STRIDE, CTL_TID,
  HANDOFF_ASKED, HANDOFF_DONE, HANDOFF_FAILED, HANDOFF_NONE, type LoopEnd, type LoopEnv,
} from './vcpu-loop.js';

/**
 * A test ordering (BHYVE_TEST_LATE_HANDOFF=1, tests/e2e/virtio.test.ts): the
 * main thread starts vCPU 0 only once its own thread has built its devices,
 * and that thread takes it over only once a BAR has moved on the main thread.
 * That is the one interleaving in which the taking thread's buses lag behind
 * the guest, which a loaded host produces only now and then.
 */
const LATE_HANDOFF = process.env.BHYVE_TEST_LATE_HANDOFF === '1';
const LATE_HANDOFF_WAIT_MS = 2000;

/** Main thread, test ordering only: wait until vCPU 0's thread has built its devices. */
function waitBuilt(ctl: Int32Array): void {
  if (LATE_HANDOFF) Atomics.wait(ctl, CTL_BUILT, 0, LATE_HANDOFF_WAIT_MS);
}

/** vCPU 0's thread, test ordering only: say the devices are built, then wait for a BAR to move. */
export function lateHandoff(ctl: Int32Array, generation: () => number): void {
  if (!LATE_HANDOFF) return;
  const g = generation();
  Atomics.store(ctl, CTL_BUILT, 1);
  Atomics.notify(ctl, CTL_BUILT);
  const until = performance.now() + LATE_HANDOFF_WAIT_MS;
  while (generation() === g && performance.now() < until) Atomics.wait(ctl, CTL_BUILT, 1, 1);
}

/** How often the vCPU's thread signals the main thread while it waits for it to let go (ms). */
const KICK_EVERY_MS = 20;

/**
 * The longest head start (ms). A thread that loads in time never gets near
 * it; one that never does (it died loading) must not keep the main thread
 * from its event loop, which would then never hear of that.
 */
const HEAD_START_MAX_MS = 2000;
/** After the limit, how often the main thread is signalled until it has left the loop (ms). */
const LIMIT_REPEAT_MS = 100;

/**
 * Main thread: run vCPU 0 until the VM stops, its own thread takes it over
 * (or failed before it could: 'failed'), or HEAD_START_MAX_MS pass. Returns
 * why it ended and the exits it handled.
 */
export function runHeadStart(env: LoopEnv): { end: LoopEnd | 'failed'; exits: number } {
  const { ctl } = env;
  const slot = CTL_BASE + env.vcpu.id * CTL_STRIDE;
  Atomics.store(ctl, slot + CTL_TID, gettid());
  waitBuilt(ctl);
  const alarm = threadAlarm(HEAD_START_MAX_MS, LIMIT_REPEAT_MS);
  let end: LoopEnd | 'failed';
  let exits: number;
  try {
    end = runLoop({ ...env, headStart: performance.now() + HEAD_START_MAX_MS });
  } finally {
    alarm?.cancel();
    exits = Atomics.load(ctl, slot + CTL_EXITS); // before the vCPU's thread counts on
    // Let go: the vCPU's thread may now run it (or, when the VM stopped, finds it stopping).
    if (Atomics.exchange(ctl, CTL_HANDOFF, HANDOFF_DONE) === HANDOFF_FAILED) end = 'failed';
    Atomics.notify(ctl, CTL_HANDOFF);
  }
  return { end, exits };
}

/**
 * The vCPU's own thread: ask for the vCPU, stop the main thread's KVM_RUN,
 * wait until the main thread has let go, then record this thread as the one
 * to kick. The caller's loop then finds the VM running or stopping.
 */
export function takeOver(ctl: Int32Array, vcpu: Vcpu): void {
  const tidSlot = CTL_BASE + vcpu.id * CTL_STRIDE + CTL_TID;
  if (Atomics.compareExchange(ctl, CTL_HANDOFF, HANDOFF_NONE, HANDOFF_ASKED) === HANDOFF_NONE) {
    vcpu.runBytes[C.RUN_IMMEDIATE_EXIT] = 1;
  }
  waitForMain(ctl, Atomics.load(ctl, tidSlot));
  Atomics.store(ctl, tidSlot, gettid());
  // Stopping sets CTL_STOP before immediate_exit, so a stop that this misses is seen by the loop's first check.
  if (Atomics.load(ctl, CTL_STOP) === 0) vcpu.runBytes[C.RUN_IMMEDIATE_EXIT] = 0;
}

/** The vCPU's own thread failed before it took over: send the main thread back to its event loop. */
export function giveUp(ctl: Int32Array): void {
  if (Atomics.compareExchange(ctl, CTL_HANDOFF, HANDOFF_NONE, HANDOFF_FAILED) === HANDOFF_DONE) return;
  waitForMain(ctl, Atomics.load(ctl, CTL_BASE + CTL_TID));
}

/**
 * Signal the main thread out of KVM_RUN until it has left the loop. Also when
 * the VM is stopping: a stop that another vCPU's thread records does not kick
 * the main thread (its event loop, which would, waits for the head start).
 */
function waitForMain(ctl: Int32Array, mainTid: number): void {
  for (;;) {
    const state = Atomics.load(ctl, CTL_HANDOFF);
    if (state === HANDOFF_DONE) return;
    if (mainTid > 0) tgkill(getpid(), mainTid, SIGUSR2);
    Atomics.wait(ctl, CTL_HANDOFF, state, KICK_EVERY_MS);
  }
}

/**
 * SIGUSR2 to this thread after `firstMs`, then every `everyMs`: it makes
 * KVM_RUN return. Undefined if the timer cannot be made (the limit is then
 * only checked on exits).
 */
function threadAlarm(firstMs: number, everyMs: number): { cancel(): void } | undefined {
  const sev = Buffer.alloc(SIGEVENT_SIZE);
  sev.writeInt32LE(SIGUSR2, 8);
  sev.writeInt32LE(SIGEV_THREAD_ID, 12);
  sev.writeInt32LE(gettid(), 16);
  const id = Buffer.alloc(8);
  if (timer_create(CLOCK_MONOTONIC, sev, id) < 0) return undefined;
  const timer = id.readBigUInt64LE(0);
  const spec = Buffer.alloc(32); // struct itimerspec: it_interval, then it_value (seconds, nanoseconds)
  spec.writeBigInt64LE(BigInt(Math.floor(everyMs / 1000)), 0);
  spec.writeBigInt64LE(BigInt((everyMs % 1000) * 1e6), 8);
  spec.writeBigInt64LE(BigInt(Math.floor(firstMs / 1000)), 16);
  spec.writeBigInt64LE(BigInt((firstMs % 1000) * 1e6), 24);
  if (timer_settime(timer, 0, spec, null) < 0) { timer_delete(timer); return undefined; }
  return { cancel: () => { timer_delete(timer); } };
}
