/** A vCPU thread started by the bundled command's first module (src/cli/launch.ts). */
import type { Worker } from 'node:worker_threads';

export const EARLY_VCPU_THREAD = Symbol.for('bhyve-ts.early-vcpu-thread');

export interface EarlyThread { worker: Worker; loaded: Promise<void> }

/** Whether a command line will run a VM (so a vCPU thread is worth starting early). */
export function wantsPrewarm(argv: string[]): boolean {
  return argv.length > 1 && !argv.some((a) => a === '-h' || a === 'help' || a.includes('config.dump'));
}

export function takeEarlyThread(): EarlyThread | undefined {
  const g = globalThis as Record<symbol, unknown>;
  const early = g[EARLY_VCPU_THREAD] as EarlyThread | undefined;
  delete g[EARLY_VCPU_THREAD];
  return early;
}
