#!/usr/bin/env node
/**
 * The bundled `bhyve` command's first module (dist/bundle/bhyve.js): it
 * starts the first vCPU thread before Node parses the VMM itself, so the
 * thread's start-up overlaps the main thread's (see src/vmm/vcpu-pool.ts),
 * then loads the command (dist/bundle/bhyve-main.js).
 */
import { Worker } from 'node:worker_threads';
import { EARLY_VCPU_THREAD, wantsPrewarm, type EarlyThread } from '../vmm/early.js';

if (wantsPrewarm(process.argv.slice(2))) {
  const worker = new Worker(new URL('./vcpu-worker.js', import.meta.url));
  worker.unref();
  const loaded = new Promise<void>((resolve) => {
    worker.once('message', () => resolve());
    worker.once('error', () => resolve());
    worker.once('exit', () => resolve());
  });
  const early: EarlyThread = { worker, loaded };
  (globalThis as Record<symbol, unknown>)[EARLY_VCPU_THREAD] = early;
}
// @ts-expect-error: exists only in the bundle, next to this file
await import('./bhyve-main.js');
