import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestMachine } from './platform-test-ctx.js';
import {
  CNF_ENABLE, Hpet, HPET_BASE, HPET_CAP, HPET_CAP_HI, HPET_CONFIG, HPET_COUNTER, HPET_COUNTER_HI, HPET_FREQ, HPET_ISR,
  HPET_NUM_TIMERS, T_CMP, T_CMP_HI, T_CONF, T_CONF_HI, T_FSB_ADDR, T_FSB_DATA, TN_32MODE, TN_FSB_EN, TN_INT_ENB,
  TN_INT_LEVEL, TN_PERIODIC, TN_ROUTE_SHIFT, TN_VAL_SET, timerReg,
} from './hpet.js';

function setup() {
  const m = new TestMachine();
  const hpet = new Hpet(m.ctx, { clock: m.clock });
  const rd = (off: number) => m.mmio.read(HPET_BASE + off, 4)!;
  const wr = (off: number, v: number) => m.mmio.write(HPET_BASE + off, 4, v >>> 0);
  const counter = () => BigInt(rd(HPET_COUNTER)) | (BigInt(rd(HPET_COUNTER_HI)) << 32n);
  return { m, hpet, rd, wr, counter };
}
const TICK_NS = 1e9 / HPET_FREQ;

test('capabilities: rev 1, 8 timers, 64-bit counter, vendor 8086, 2^24 Hz', () => {
  const { m, rd } = setup();
  assert.equal(HPET_NUM_TIMERS, 8);
  assert.equal(rd(HPET_CAP), 0x80862701);
  assert.equal(rd(HPET_CAP_HI), 59604644);
  assert.equal(m.mmio.read(HPET_BASE + 2, 2), 0x8086);
  assert.equal(rd(timerReg(0, T_CONF)), 0x8030);
  assert.equal(rd(timerReg(7, T_CONF_HI)), 0x00f00000);
  assert.equal(rd(timerReg(3, T_CMP)), 0xffffffff);
});

test('main counter runs only while enabled, at 2^24 Hz, and is writable', () => {
  const { m, rd, wr, counter } = setup();
  m.clock.advance(1e9);
  assert.equal(counter(), 0n);
  wr(HPET_CONFIG, CNF_ENABLE);
  assert.equal(rd(HPET_CONFIG), CNF_ENABLE);
  m.clock.advance(1e9);
  assert.equal(counter(), 16777216n);
  m.clock.advance(300e9);
  assert.equal(counter(), 301n * 16777216n, 'past 2^32');
  assert.equal(rd(HPET_COUNTER_HI), 1);
  wr(HPET_CONFIG, 0);
  const frozen = counter();
  m.clock.advance(5e9);
  assert.equal(counter(), frozen);
  wr(HPET_COUNTER, 0xfffffff0);
  wr(HPET_COUNTER_HI, 0x12345678);
  assert.equal(counter(), 0x12345678fffffff0n);
  wr(HPET_CONFIG, CNF_ENABLE | 2); // legacy replacement is not offered
  assert.equal(rd(HPET_CONFIG), CNF_ENABLE);
  m.clock.advance(16 * TICK_NS + 1);
  assert.equal(counter(), 0x1234567900000000n);
});

test('interrupt route must be one of pins 20-23', () => {
  const { rd, wr } = setup();
  wr(timerReg(1, T_CONF), 5 << TN_ROUTE_SHIFT);
  assert.equal((rd(timerReg(1, T_CONF)) >> TN_ROUTE_SHIFT) & 0x1f, 0);
  wr(timerReg(1, T_CONF), 22 << TN_ROUTE_SHIFT);
  assert.equal((rd(timerReg(1, T_CONF)) >> TN_ROUTE_SHIFT) & 0x1f, 22);
});

test('one-shot level interrupt: asserted until the status bit is cleared', () => {
  const { m, rd, wr } = setup();
  wr(timerReg(0, T_CONF), TN_INT_ENB | TN_INT_LEVEL | (20 << TN_ROUTE_SHIFT));
  wr(timerReg(0, T_CMP), 1000);
  wr(timerReg(0, T_CMP_HI), 0);
  wr(HPET_CONFIG, CNF_ENABLE);
  m.run(999 * TICK_NS);
  assert.equal(m.levels.get(20), undefined);
  m.run(2 * TICK_NS);
  assert.equal(m.levels.get(20), true);
  assert.equal(rd(HPET_ISR), 1);
  wr(HPET_ISR, 2);
  assert.equal(rd(HPET_ISR), 1, 'other bits do not clear it');
  wr(HPET_ISR, 1);
  assert.equal(rd(HPET_ISR), 0);
  assert.equal(m.levels.get(20), false);
  m.run(10e9);
  assert.equal(m.irqs.filter((e) => e.gsi === 20 && e.level).length, 1, 'a 64-bit one-shot fires once');
});

test('32-bit one-shot fires again after the counter wraps', () => {
  const { m, wr } = setup();
  wr(timerReg(2, T_CONF), TN_INT_ENB | TN_32MODE | (23 << TN_ROUTE_SHIFT));
  wr(timerReg(2, T_CMP), 100);
  wr(HPET_CONFIG, CNF_ENABLE);
  m.run(200 * TICK_NS);
  assert.equal(m.pulses(23), 1);
  m.run(2 ** 32 * TICK_NS);
  assert.equal(m.pulses(23), 2);
});

test('disabling a level timer deasserts its line', () => {
  const { m, rd, wr } = setup();
  const conf = TN_INT_ENB | TN_INT_LEVEL | (21 << TN_ROUTE_SHIFT);
  wr(timerReg(4, T_CONF), conf);
  wr(timerReg(4, T_CMP), 10);
  wr(timerReg(4, T_CMP_HI), 0);
  wr(HPET_CONFIG, CNF_ENABLE);
  m.run(20 * TICK_NS);
  assert.equal(m.levels.get(21), true);
  wr(timerReg(4, T_CONF), conf & ~TN_INT_ENB);
  assert.equal(rd(HPET_ISR), 0);
  assert.equal(m.levels.get(21), false);
});

test('periodic 32-bit timer, programmed as Linux does (VAL_SET, then the period)', () => {
  const { m, rd, wr } = setup();
  wr(HPET_CONFIG, CNF_ENABLE);
  m.clock.advance(1e6);
  const now = rd(HPET_COUNTER), period = 16777; // ~1 ms
  wr(timerReg(0, T_CONF), TN_INT_ENB | TN_PERIODIC | TN_VAL_SET | TN_32MODE | (20 << TN_ROUTE_SHIFT));
  wr(timerReg(0, T_CMP), now + period);
  wr(timerReg(0, T_CMP), period);
  assert.equal(rd(timerReg(0, T_CONF)) & TN_VAL_SET, 0);
  assert.equal(rd(timerReg(0, T_CMP)), now + period);
  m.run(10.5e6);
  assert.equal(m.pulses(20), 10);
  assert.equal(rd(timerReg(0, T_CMP)), now + 11 * period);
  assert.equal(rd(timerReg(0, T_CMP_HI)), 0);
});

test('periodic 64-bit timer set with a split 64-bit write keeps VAL_SET for the high half', () => {
  const { m, rd, wr } = setup();
  wr(HPET_COUNTER_HI, 1);
  wr(timerReg(5, T_CONF), TN_INT_ENB | TN_PERIODIC | TN_VAL_SET | (22 << TN_ROUTE_SHIFT));
  wr(timerReg(5, T_CMP), 1000);
  wr(timerReg(5, T_CMP_HI), 1);
  assert.equal(rd(timerReg(5, T_CMP)), 1000);
  assert.equal(rd(timerReg(5, T_CMP_HI)), 1);
  wr(timerReg(5, T_CMP), 500); // period 2^32 + 500 now; comparator unchanged
  wr(timerReg(5, T_CMP_HI), 0); // period 500
  assert.equal(rd(timerReg(5, T_CMP)), 1000);
  wr(HPET_CONFIG, CNF_ENABLE);
  m.run(2001 * TICK_NS);
  assert.equal(m.pulses(22), 3, 'at 1000, 1500, 2000');
});

test('missed periodic ticks are coalesced and the comparator skips ahead', () => {
  const { m, rd, wr } = setup();
  wr(timerReg(0, T_CONF), TN_INT_ENB | TN_PERIODIC | TN_VAL_SET | TN_INT_LEVEL | (20 << TN_ROUTE_SHIFT));
  wr(timerReg(0, T_CMP), 100);
  wr(timerReg(0, T_CMP_HI), 0);
  wr(timerReg(0, T_CMP), 100);
  wr(timerReg(0, T_CMP_HI), 0);
  wr(HPET_CONFIG, CNF_ENABLE);
  m.run(150 * TICK_NS);
  assert.equal(rd(HPET_ISR), 1);
  m.clock.advance(1050 * TICK_NS); // the host was late
  m.run(1);
  assert.equal(rd(timerReg(0, T_CMP)), 1300);
});

test('FSB delivery sends the programmed message instead of a pin', () => {
  const { m, rd, wr } = setup();
  wr(timerReg(6, T_FSB_DATA), 0x4031);
  wr(timerReg(6, T_FSB_ADDR), 0xfee00000);
  wr(timerReg(6, T_CONF), TN_INT_ENB | TN_FSB_EN | TN_INT_LEVEL);
  wr(timerReg(6, T_CMP), 50);
  wr(timerReg(6, T_CMP_HI), 0);
  wr(HPET_CONFIG, CNF_ENABLE);
  m.run(100 * TICK_NS);
  assert.deepEqual(m.irqs, [{ kind: 'msi', address: 0xfee00000n, data: 0x4031 }]);
  assert.equal(rd(HPET_ISR), 0);
});

test('stopping the counter delivers a deadline already passed', () => {
  const { m, wr } = setup();
  wr(timerReg(1, T_CONF), TN_INT_ENB | (20 << TN_ROUTE_SHIFT));
  wr(timerReg(1, T_CMP), 10);
  wr(timerReg(1, T_CMP_HI), 0);
  wr(HPET_CONFIG, CNF_ENABLE);
  m.clock.advance(100 * TICK_NS); // no timer callback yet
  wr(HPET_CONFIG, 0);
  assert.equal(m.pulses(20), 1);
});
