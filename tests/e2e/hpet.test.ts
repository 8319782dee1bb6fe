/**
 * HPET interrupts: timer 0 through IOAPIC pin 20 (level-triggered) and
 * through FSB delivery, i.e. an MSI written straight to the local APIC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boot, describe, findLine, romArgs, skipWithoutKvm, Status } from './harness.js';

const hex = (s: string): number => parseInt(s, 16);

test('hpet: timer 0 interrupts through IOAPIC pin 20 as vector 0x40', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('hpet'));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);

  const cap = findLine(r, /^HPET cap ([0-9a-f]{8}) period ([0-9a-f]{8})$/);
  assert.ok(cap, why);
  const capLo = hex(cap[1]);
  const period = hex(cap[2]);
  assert.notEqual(capLo & 0xff, 0, `revision id is non-zero\n${why}`);
  assert.ok(((capLo >> 8) & 0x1f) + 1 >= 3, `at least 3 timers\n${why}`);
  assert.ok(period > 0 && period <= 100_000_000, `period 0 < ${period} fs <= 100 ns\n${why}`);

  const t0 = findLine(r, /^HPET T0 conf ([0-9a-f]{8}) routes ([0-9a-f]{8})$/);
  assert.ok(t0, why);
  assert.ok(hex(t0[2]) & (1 << 20), `timer 0 can be routed to pin 20\n${why}`);

  const ioapic = findLine(r, /^IOAPIC id ([0-9a-f]{8}) ver ([0-9a-f]{8})$/);
  assert.ok(ioapic, why);
  assert.equal((hex(ioapic[2]) >>> 16) & 0xff, 23, `IOAPIC has 24 pins\n${why}`);

  assert.ok(r.lines.includes('HPET IRQ vector 0x40'), why);
  const at = findLine(r, /^HPET counter ([0-9a-f]{8}) comparator ([0-9a-f]{8}) isr ([0-9a-f]{8})$/);
  assert.ok(at, why);
  assert.ok(hex(at[1]) >= hex(at[2]), `the interrupt came after the comparator matched\n${why}`);
  assert.equal(hex(at[3]) & 1, 1, `timer 0 status bit set (level-triggered)\n${why}`);

  // The redirection entry while the handler runs: vector 0x40, level, unmasked, remote IRR set.
  const redir = r.lines.filter((l) => l.startsWith('IOAPIC pin 20 redir ')).map((l) => hex(l.slice(-8)));
  assert.equal(redir.length, 2, why);
  assert.equal(redir[0] & 0x1afff, 0x8040, `programmed: vector 0x40, level, unmasked\n${why}`);
  assert.ok(redir[1] & (1 << 14), `remote IRR set while the level interrupt is in service\n${why}`);
  assert.equal(r.lines.at(-1), 'DONE', why);
});

test('hpet: FSB delivery (MSI) reaches the local APIC as vector 0x41', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('hpet-msi'));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  const t0 = findLine(r, /^HPET T0 conf ([0-9a-f]{8}) routes ([0-9a-f]{8})$/);
  assert.ok(t0, why);
  assert.ok(hex(t0[1]) & (1 << 15), `timer 0 advertises FSB delivery\n${why}`);
  assert.ok(r.lines.includes('MSI vector 0x41'), why);
  const at = findLine(r, /^HPET counter ([0-9a-f]{8}) comparator ([0-9a-f]{8})/);
  assert.ok(at && hex(at[1]) >= hex(at[2]), why);
  assert.equal(r.lines.at(-1), 'DONE', why);
});
