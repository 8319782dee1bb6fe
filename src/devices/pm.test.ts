import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitStatus } from '../vmm/context.js';
import { TestMachine } from './platform-test-ctx.js';
import {
  ACPI_DISABLE, ACPI_ENABLE, PM1A_CNT_BLK, PM1A_EVT_BLK, PM1_PWRBTN_STS, PM1_SCI_EN, PM1_SLP_EN, PM_TMR_BLK,
  PM_TMR_FREQ, PowerManagement, SCI_IRQ, SMI_CMD,
} from './pm.js';

function setup() {
  const m = new TestMachine();
  const pm = new PowerManagement(m.ctx, { clock: m.clock });
  return { m, pm };
}

test('exported block addresses match bhyve', () => {
  assert.deepEqual([PM1A_EVT_BLK, PM1A_CNT_BLK, PM_TMR_BLK, SMI_CMD, ACPI_ENABLE, ACPI_DISABLE, SCI_IRQ], [0x400, 0x404, 0x408, 0xb2, 0xa0, 0xa1, 9]);
});

test('PM timer counts at 3.579545 MHz and is monotonic', () => {
  const { m } = setup();
  const t0 = m.io.read(PM_TMR_BLK, 4)!;
  let prev = t0;
  for (let i = 0; i < 100; i++) {
    m.clock.advance(1234);
    const t = m.io.read(PM_TMR_BLK, 4)!;
    assert.ok(t >= prev);
    prev = t;
  }
  m.clock.advance(1e9 - 123_400);
  const t1 = m.io.read(PM_TMR_BLK, 4)!;
  assert.ok(Math.abs(t1 - t0 - PM_TMR_FREQ) <= 1, `${t1 - t0} ticks in 1 s`);
  assert.equal(m.io.read(PM_TMR_BLK + 2, 2), Math.floor(t1 / 65536) % 65536);
});

test('PM timer wraps at 32 bits', () => {
  const { m } = setup();
  m.clock.advance(((2 ** 32 + 10) / PM_TMR_FREQ) * 1e9);
  assert.ok(m.io.read(PM_TMR_BLK, 4)! < 20);
});

test('SMI_CMD toggles SCI_EN, which PM1_CNT writes cannot change', () => {
  const { m, pm } = setup();
  assert.equal(m.io.read(PM1A_CNT_BLK, 2)! & PM1_SCI_EN, 0);
  m.io.write(SMI_CMD, 1, ACPI_ENABLE);
  assert.equal(m.io.read(PM1A_CNT_BLK, 2)! & PM1_SCI_EN, PM1_SCI_EN);
  assert.equal(pm.acpiEnabled, true);
  m.io.write(PM1A_CNT_BLK, 2, 0);
  assert.equal(m.io.read(PM1A_CNT_BLK, 2)! & PM1_SCI_EN, PM1_SCI_EN);
  m.io.write(SMI_CMD, 1, ACPI_DISABLE);
  assert.equal(pm.acpiEnabled, false);
});

test('SLP_EN with SLP_TYP 5 powers off; other sleep types do not', () => {
  const { m } = setup();
  m.io.write(PM1A_CNT_BLK, 2, (1 << 10) | PM1_SLP_EN);
  assert.equal(m.exits.length, 0);
  m.io.write(PM1A_CNT_BLK, 2, 5 << 10);
  assert.equal(m.exits.length, 0, 'SLP_TYP alone does nothing');
  assert.equal(m.io.read(PM1A_CNT_BLK, 2)! & PM1_SLP_EN, 0);
  m.io.write(PM1A_CNT_BLK + 1, 1, (5 << 2) | (PM1_SLP_EN >> 8));
  assert.deepEqual(m.exits.map((e) => e.status), [ExitStatus.PowerOff]);
});

test('power button sets PWRBTN_STS; SCI follows status & enable; write 1 clears', () => {
  const { m, pm } = setup();
  m.io.write(SMI_CMD, 1, ACPI_ENABLE);
  assert.equal(pm.powerButton(), true);
  assert.equal(m.io.read(PM1A_EVT_BLK, 2), PM1_PWRBTN_STS);
  assert.equal(m.levels.get(SCI_IRQ), undefined, 'not enabled yet');
  m.io.write(PM1A_EVT_BLK + 2, 2, PM1_PWRBTN_STS);
  assert.equal(m.io.read(PM1A_EVT_BLK + 2, 2), PM1_PWRBTN_STS);
  assert.equal(m.levels.get(SCI_IRQ), true);
  assert.equal(m.io.read(PM1A_EVT_BLK, 4), PM1_PWRBTN_STS | (PM1_PWRBTN_STS << 16));
  m.io.write(PM1A_EVT_BLK, 2, 0);
  assert.equal(m.levels.get(SCI_IRQ), true, 'writing 0 clears nothing');
  m.io.write(PM1A_EVT_BLK, 2, PM1_PWRBTN_STS);
  assert.equal(m.io.read(PM1A_EVT_BLK, 2), 0);
  assert.equal(m.levels.get(SCI_IRQ), false);
  m.hostEvent('powerbutton');
  assert.equal(m.levels.get(SCI_IRQ), true);
  assert.equal(m.exits.length, 0);
});

test('SIGTERM before the guest enables ACPI ends the VM, as bhyve', () => {
  const { m } = setup();
  m.hostEvent('powerbutton');
  assert.deepEqual(m.exits.map((e) => e.status), [ExitStatus.PowerOff]);
});

test('enable register keeps only the power button and GBL_EN', () => {
  const { m } = setup();
  m.io.write(PM1A_EVT_BLK + 2, 2, 0xffff);
  assert.equal(m.io.read(PM1A_EVT_BLK + 2, 2), 0x0120);
});
