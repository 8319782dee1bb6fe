#!/usr/bin/env node
/** bhyve(8): run a guest operating system inside a virtual machine. */
import { parseArgs } from './options.js';
import { VirtualMachine } from '../vmm/vmm.js';
import { ExitStatus } from '../vmm/context.js';
import '../devices/all.js';

function fail(e: unknown): never {
  const err = e as Error;
  let msg = err?.message ?? String(e);
  if (process.env.BHYVE_DEBUG) msg = err?.stack ?? msg;
  process.stderr.write(`bhyve: ${msg}\n`);
  process.exit(ExitStatus.Error);
}

async function main(): Promise<void> {
  let vm: VirtualMachine;
  try {
    const r = parseArgs(process.argv.slice(2));
    if (r.kind === 'help') {
      (r.status === 0 ? process.stdout : process.stderr).write(r.text);
      process.exit(r.status);
    }
    if (r.config.bool('config.dump', false)) {
      process.stdout.write(r.config.dump());
      process.exit(0);
    }
    vm = VirtualMachine.create(r.config);
  } catch (e) {
    fail(e);
  }
  process.on('SIGTERM', () => vm.powerButton());
  process.on('SIGUSR2', () => {}); // used to kick vCPU threads out of KVM_RUN
  await vm.start();
  const { status, why } = await vm.stopped;
  if (why && status >= ExitStatus.TripleFault) process.stderr.write(`bhyve: ${why}\n`);
  process.exit(status);
}

main().catch(fail);
