/**
 * Protected mode: a software interrupt and the local APIC timer, both
 * returning with iret, on a stack segment with a base (as iPXE's C code
 * runs). On a PVM host this exercises the emulator's iret and its fix-up
 * for PVM's frames written without the SS base (src/emulate/pvm-frame.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boot, describe, romArgs, skipWithoutKvm, Status } from './harness.js';

test('protected mode: int n and the APIC timer return with iret on a based stack segment', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('pmirq'));
  const why = describe(r);
  assert.deepEqual(r.lines, ['INT 0x40 returned', 'TIMER 0x41 returned', 'DONE'], why);
  assert.equal(r.status, Status.PowerOff, why);
});
