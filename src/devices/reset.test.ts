import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitStatus } from '../vmm/context.js';
import { TestMachine } from './platform-test-ctx.js';
import { handleResetWrite, I8042_COMMAND, I8042_DATA, KBC_PULSE_RESET, KBC_READ_CTR, KBC_SELF_TEST, KBC_WRITE_CTR, KBS_OBF, PORT_A, RESET_PORT, ResetDevices } from './reset.js';

function setup() {
  const m = new TestMachine();
  return { m, dev: new ResetDevices(m.ctx) };
}
const statuses = (m: TestMachine) => m.exits.map((e) => e.status);

test('0xcf9: bit 2 resets; the register latches', () => {
  const { m, dev } = setup();
  assert.equal(RESET_PORT, 0xcf9);
  dev.control.write(0x02);
  assert.equal(m.exits.length, 0);
  assert.equal(dev.control.read(), 0x02);
  dev.control.write(0x06);
  assert.deepEqual(statuses(m), [ExitStatus.Reset]);
  handleResetWrite(m.ctx, 0x0e);
  handleResetWrite(m.ctx, 0x08);
  assert.deepEqual(statuses(m), [ExitStatus.Reset, ExitStatus.Reset]);
});

test('port 0x92: A20 reads set; bit 0 rising resets', () => {
  const { m } = setup();
  assert.equal(m.io.read(PORT_A, 1), 0x02);
  m.io.write(PORT_A, 1, 0x02);
  assert.equal(m.exits.length, 0);
  m.io.write(PORT_A, 1, 0x03);
  assert.deepEqual(statuses(m), [ExitStatus.Reset]);
});

test('i8042: self-test, command byte, and 0xfe reset', () => {
  const { m } = setup();
  assert.equal(m.io.read(I8042_COMMAND, 1)! & KBS_OBF, 0);
  m.io.write(I8042_COMMAND, 1, KBC_SELF_TEST);
  assert.equal(m.io.read(I8042_COMMAND, 1)! & KBS_OBF, KBS_OBF);
  assert.equal(m.io.read(I8042_DATA, 1), 0x55);
  assert.equal(m.io.read(I8042_COMMAND, 1)! & KBS_OBF, 0);
  m.io.write(I8042_COMMAND, 1, KBC_WRITE_CTR);
  m.io.write(I8042_DATA, 1, 0x45);
  m.io.write(I8042_COMMAND, 1, KBC_READ_CTR);
  assert.equal(m.io.read(I8042_DATA, 1), 0x45);
  m.io.write(I8042_DATA, 1, 0xff); // to the (absent) keyboard
  assert.equal(m.io.read(I8042_COMMAND, 1)! & KBS_OBF, 0);
  assert.equal(m.exits.length, 0);
  m.io.write(I8042_COMMAND, 1, KBC_PULSE_RESET);
  assert.deepEqual(statuses(m), [ExitStatus.Reset]);
});

test('i8042: output port write with the reset line low resets', () => {
  const { m } = setup();
  m.io.write(I8042_COMMAND, 1, 0xd1);
  m.io.write(I8042_DATA, 1, 0x03);
  assert.equal(m.exits.length, 0);
  m.io.write(I8042_COMMAND, 1, 0xd1);
  m.io.write(I8042_DATA, 1, 0x02);
  assert.deepEqual(statuses(m), [ExitStatus.Reset]);
});
