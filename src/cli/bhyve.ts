/**
 * bhyve(8): run a guest operating system inside a virtual machine. The
 * command's main bundle (run by the entry stub, launch.ts, which has already
 * started the first vCPU thread).
 */
import { prewarmVcpuThreads, vcpuThreadsSettled } from '../vmm/vcpu-pool.js';
import { wantsPrewarm } from '../vmm/early.js';
import { parseArgs } from './options.js';
import { VirtualMachine } from '../vmm/vmm.js';
import { ExitStatus } from '../vmm/context.js';
import { trainingRun } from './code-cache.js';
import { handOffTeardown } from '../kvm/teardown.js';
import '../devices/all.js';

async function fail(e: unknown): Promise<never> {
  const err = e as Error;
  let msg = err?.message ?? String(e);
  if (process.env.BHYVE_DEBUG) msg = err?.stack ?? msg;
  process.stderr.write(`bhyve: ${msg}\n`);
  await vcpuThreadsSettled();
  process.exit(ExitStatus.Error);
}

async function main(): Promise<void> {
  let vm: VirtualMachine;
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
  // vCPU 0 starts on this thread (see src/vmm/head-start.ts), except in the
  // code cache's training run of the vCPU thread, which must run the guest
  // itself, and with BHYVE_HEAD_START=0.
  const headStart = process.env.BHYVE_HEAD_START !== '0' && !trainingRun()?.includes('vcpu-worker');
  await vm.start({ headStart });
  const { status, why } = await vm.stopped; // and the threads have left their loops
  if (why && status >= ExitStatus.TripleFault) process.stderr.write(`bhyve: ${why}\n`);
  // A guest may be done before the vCPU's thread has loaded: let it finish loading first (see vcpuThreadsSettled).
  await vcpuThreadsSettled();
  // The kernel's destruction of the VM goes to a holder process (src/kvm/teardown.ts), not into this exit.
  if (process.env.BHYVE_ASYNC_TEARDOWN !== '0') handOffTeardown(vm.vm.fd);
  process.exit(status);
}

if (wantsPrewarm(process.argv.slice(2))) prewarmVcpuThreads(1);
main().catch(fail);
