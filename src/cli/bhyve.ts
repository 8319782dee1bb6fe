#!/usr/bin/env node
/** bhyve(8): run a guest operating system inside a virtual machine. */
import { prewarmVcpuThreads, vcpuThreadsSettled } from '../vmm/vcpu-pool.js';
import { wantsPrewarm } from '../vmm/early.js';

// Start the first vCPU thread before loading the rest: its start-up overlaps
// ours (the bundled command has already started it: see launch.ts).
if (wantsPrewarm(process.argv.slice(2))) prewarmVcpuThreads(1);

const [{ parseArgs }, { VirtualMachine }, { ExitStatus }] = await Promise.all([
  import('./options.js'), import('../vmm/vmm.js'), import('../vmm/context.js'), import('../devices/all.js'),
]);

async function fail(e: unknown): Promise<never> {
  const err = e as Error;
  let msg = err?.message ?? String(e);
  if (process.env.BHYVE_DEBUG) msg = err?.stack ?? msg;
  process.stderr.write(`bhyve: ${msg}\n`);
  await vcpuThreadsSettled();
  process.exit(ExitStatus.Error);
}

async function main(): Promise<void> {
  let vm: import('../vmm/vmm.js').VirtualMachine;
  try {
    const r = parseArgs(process.argv.slice(2));
    if (r.kind === 'help') {
      (r.status === 0 ? process.stdout : process.stderr).write(r.text);
      await vcpuThreadsSettled();
      process.exit(r.status);
    }
    if (r.config.bool('config.dump', false)) {
      process.stdout.write(r.config.dump());
      process.exit(0);
    }
    vm = VirtualMachine.create(r.config);
  } catch (e) {
    return fail(e);
  }
  process.on('SIGTERM', () => vm.powerButton());
  await vm.start();
  const { status, why } = await vm.stopped;
  if (why && status >= ExitStatus.TripleFault) process.stderr.write(`bhyve: ${why}\n`);
  process.exit(status);
}

main().catch(fail);
