/**
 * vCPU threads, started as early as possible: a thread spends most of its
 * start-up loading modules, which can overlap the main thread's own work
 * (parsing, KVM set-up, firmware tables) when it is spawned first.
 */
import { Worker } from 'node:worker_threads';
import { takeEarlyThread } from './early.js';

const WORKER_URL = new URL('./vcpu-worker.js', import.meta.url);
const pool: Worker[] = [];
const loaded: Promise<void>[] = [];

/** Spawn `n` vCPU threads now; they load their code and wait for their vCPU. */
export function prewarmVcpuThreads(n = 1): void {
  const early = takeEarlyThread();
  if (early) {
    pool.push(early.worker);
    loaded.push(early.loaded);
    n--;
  }
  for (let i = 0; i < n; i++) {
    const w = spawn();
    w.unref();
    pool.push(w);
  }
}

export function takeVcpuThread(): Worker {
  const w = pool.shift() ?? spawn();
  w.ref();
  return w;
}

function spawn(): Worker {
  const w = new Worker(WORKER_URL);
  loaded.push(new Promise((resolve) => {
    w.once('message', () => resolve());
    w.once('error', () => resolve());
    w.once('exit', () => resolve());
  }));
  return w;
}

/**
 * Resolves once every vCPU thread spawned has finished loading its code. Exiting
 * the process while a thread is inside a native module's initialisation can
 * abort it, so error paths wait for this first.
 */
export function vcpuThreadsSettled(): Promise<void> {
  return Promise.all(loaded).then(() => undefined);
}

/** Threads spawned but never used (a run that stopped early) must not keep the process alive. */
export function releaseVcpuThreads(): void {
  for (const w of pool.splice(0)) void w.terminate();
}
