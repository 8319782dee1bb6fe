#!/usr/bin/env node
/**
 * The `bhyve` command's entry (dist/bundle/bhyve.js, a small CommonJS stub):
 * it starts the first vCPU thread before anything else, so the thread's
 * start-up overlaps the main thread's (see src/vmm/vcpu-pool.ts), then runs
 * the command's bundle (dist/bundle/code/bhyve-main.js) with its code cache.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { EARLY_VCPU_THREAD, wantsPrewarm, type EarlyThread } from '../vmm/early.js';
import { runBundle, saveOnExit, trainingRun } from './code-cache.js';

// Only ever run as the CommonJS bundle, where __dirname and require are the stub's (dist/bundle).
const dir = __dirname;

if (wantsPrewarm(process.argv.slice(2))) {
  const worker = new Worker(join(dir, 'vcpu-worker.js'));
  worker.unref();
  const loaded = new Promise<void>((resolve) => {
    worker.once('message', () => resolve());
    worker.once('error', () => resolve());
    worker.once('exit', () => resolve());
  });
  const early: EarlyThread = { worker, loaded };
  (globalThis as Record<symbol, unknown>)[EARLY_VCPU_THREAD] = early;
}
const MAIN = 'bhyve-main';
const main = runBundle(dir, MAIN, require);
const training = trainingRun();
if (training) saveOnExit(dir, main, MAIN, training);
