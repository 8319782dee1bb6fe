/**
 * The README's demo guest: real mode from the reset vector, a greeting on
 * COM1, then ACPI S5 power-off (exit status 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boot, describe, romArgs, skipWithoutKvm, Status } from './harness.js';

test('hello: greets on COM1 and powers off with status 1', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('hello'));
  assert.equal(r.lines[0], 'Hello from bhyve-ts guest', describe(r));
  assert.match(r.stdout, /ran in real mode/, describe(r));
  assert.equal(r.lines.at(-1), 'DONE', describe(r));
  assert.equal(r.status, Status.PowerOff, describe(r));
  assert.equal(r.stderr, '', describe(r));
});
