/**
 * The head start (src/vmm/head-start.ts): vCPU 0 runs on the main thread
 * until its own thread has loaded, then moves there while the guest runs.
 * The library drives the VM here: its vCPU thread loads from the unbundled
 * modules, slowly, so the main thread surely runs the guest first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureGuests, rom, skipWithoutKvm, Status } from './harness.js';
import { parseArgs } from '../../src/cli/options.js';
import { VirtualMachine } from '../../src/vmm/vmm.js';
import '../../src/devices/all.js';

/** Run the headstart guest through the library with COM1 on a file; returns the VM and what COM1 got. */
async function runGuest(args: string[], headStart: boolean): Promise<{ vm: VirtualMachine; status: number; com1: string }> {
  ensureGuests();
  const dir = mkdtempSync(join(tmpdir(), 'bhyve-headstart-'));
  const out = join(dir, 'com1');
  writeFileSync(out, '');
  try {
    const r = parseArgs(['-s', '0,hostbridge', '-s', '31,lpc', '-l', `com1,${out}`, '-l', `bootrom,${rom('headstart')}`, ...args, 'headstart']);
    assert.equal(r.kind, 'run');
    if (r.kind !== 'run') throw new Error('unreachable');
    const vm = VirtualMachine.create(r.config);
    await vm.start({ headStart });
    const timer = setTimeout(() => vm.stop(Status.Error, 'test timeout'), 60_000);
    const { status } = await vm.stopped;
    clearTimeout(timer);
    await Promise.all(vm.workers.map((w) => w.terminate()));
    return { vm, status, com1: readFileSync(out, 'latin1') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const EXPECTED = 'HEADSTART begin\nHEADSTART scratch a5\n';

test('head start: vCPU 0 moves from the main thread to its own while the guest runs; device state goes with it', async (t) => {
  if (skipWithoutKvm(t)) return;
  const { vm, status, com1 } = await runGuest([], true);
  assert.equal(com1, EXPECTED, 'the scratch register written before the move reads back after it');
  assert.equal(status, Status.PowerOff);
  const hs = vm.headStart;
  assert.ok(hs, 'a head start was made');
  assert.equal(hs.end, 'asked', `vCPU 0's own thread took it over (${JSON.stringify(hs)})`);
  assert.ok(hs.exits > 0, `the main thread handled exits first (${JSON.stringify(hs)})`);
});

test('head start: none when vCPU 0 is pinned (-p 0:N), none when not asked for', async (t) => {
  if (skipWithoutKvm(t)) return;
  const pinned = await runGuest(['-p', '0:0'], true);
  assert.equal(pinned.com1, EXPECTED);
  assert.equal(pinned.status, Status.PowerOff);
  assert.equal(pinned.vm.headStart, undefined, 'a pinned vCPU 0 runs only on its own (pinned) thread');
  const plain = await runGuest([], false);
  assert.equal(plain.com1, EXPECTED);
  assert.equal(plain.vm.headStart, undefined);
});
