/**
 * Real mode: iret (a hand-built frame, then returning from a hardware
 * interrupt: the 8254 PIT's IRQ0 through the 8259 PIC).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boot, describe, romArgs, skipWithoutKvm, Status } from './harness.js';

test('real mode: iret and a PIT interrupt through the PIC', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('rmirq'));
  const why = describe(r);
  assert.equal(r.lines[0], 'IRET ok', why);
  assert.match(r.stdout, /^RM IRQ0 count [1-9]\d*$/m, why);
  assert.equal(r.lines.at(-1), 'DONE', why);
  assert.equal(r.status, Status.PowerOff, why);
});
