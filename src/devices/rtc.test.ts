import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestMachine } from './platform-test-ctx.js';
import {
  B_24H, B_DM_BINARY, B_PIE, B_SET, B_UIE, B_AIE, C_AF, C_IRQF, C_PF, C_UF, A_UIP, REG_A, REG_B, REG_C, REG_D,
  CMOS_CENTURY, Rtc, RTC_IRQ,
} from './rtc.js';

const GiB = 2 ** 30;

function setup(config: Record<string, string> = {}, tz = 0, mem = { lowmem: 2 * GiB, highmem: 2 * GiB }) {
  const m = new TestMachine(config);
  m.clock.tzOffsetMs = tz;
  const rtc = new Rtc(m.ctx, { ...mem, clock: m.clock });
  const rd = (i: number) => { m.io.write(0x70, 1, i); return m.io.read(0x71, 1)!; };
  const wr = (i: number, v: number) => { m.io.write(0x70, 1, i); m.io.write(0x71, 1, v); };
  return { m, rtc, rd, wr };
}

test('time fields in BCD, 24-hour, from the host clock (2024-02-29 13:45:30 UTC)', () => {
  const { m, rd } = setup({ 'rtc.use_localtime': 'false' }, 3_600_000);
  assert.deepEqual([0, 2, 4, 6, 7, 8, 9, CMOS_CENTURY].map(rd), [0x30, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
  assert.equal(rd(REG_A), 0x20);
  assert.equal(rd(REG_B), B_24H);
  assert.equal(rd(REG_D), 0x80);
  m.clock.advance(2.5e9);
  assert.equal(rd(0), 0x32);
});

test('use_localtime (default) adds the host zone offset', () => {
  const { rd } = setup({}, 3_600_000);
  assert.equal(rd(4), 0x14);
});

test('binary and 12-hour formats', () => {
  const { rd, wr } = setup();
  wr(REG_B, B_24H | B_DM_BINARY);
  assert.deepEqual([rd(0), rd(2), rd(4), rd(9), rd(CMOS_CENTURY)], [30, 45, 13, 24, 20]);
  wr(REG_B, B_DM_BINARY);
  assert.equal(rd(4), 0x80 | 1);
  wr(REG_B, 0);
  assert.equal(rd(4), 0x80 | 0x01);
});

test('setting the time with SET keeps it as an offset that runs on', () => {
  const { m, rd, wr } = setup();
  wr(REG_B, B_24H | B_SET);
  const frozen = rd(0);
  m.clock.advance(5e9);
  assert.equal(rd(0), frozen, 'fields hold while SET');
  // 1999-12-31 23:59:58, BCD
  wr(0, 0x58); wr(2, 0x59); wr(4, 0x23); wr(7, 0x31); wr(8, 0x12); wr(9, 0x99); wr(CMOS_CENTURY, 0x19);
  wr(REG_B, B_24H);
  m.clock.advance(3e9);
  assert.deepEqual([0, 2, 4, 7, 8, 9, CMOS_CENTURY].map(rd), [0x01, 0x00, 0x00, 0x01, 0x01, 0x00, 0x20]);
  assert.equal(rd(6), 0x07, '2000-01-01 was a Saturday');
});

test('SET in 12-hour binary mode parses PM hours', () => {
  const { rd, wr } = setup();
  wr(REG_B, B_DM_BINARY | B_SET);
  wr(4, 0x80 | 12); // 12 PM = noon
  wr(REG_B, B_DM_BINARY);
  wr(REG_B, B_DM_BINARY | B_24H);
  assert.equal(rd(4), 12);
  wr(REG_B, B_DM_BINARY | B_SET);
  wr(4, 12); // 12 AM = midnight
  wr(REG_B, B_DM_BINARY);
  wr(REG_B, B_DM_BINARY | B_24H);
  assert.equal(rd(4), 0);
});

test('UIP reads 1 just before a second boundary', () => {
  const { m, rd } = setup();
  assert.equal(rd(REG_A) & A_UIP, 0);
  m.clock.advance(999.9e6);
  assert.equal(rd(REG_A) & A_UIP, A_UIP);
  m.clock.advance(0.2e6);
  assert.equal(rd(REG_A) & A_UIP, 0);
});

test('index port keeps the NMI-disable bit apart from the index', () => {
  const { m, rtc } = setup();
  m.io.write(0x70, 1, 0x80 | REG_D);
  assert.equal(m.io.read(0x71, 1), 0x80);
  assert.equal(rtc.nmiDisabled, true);
});

test('memory-size bytes as bhyve rtc_init, and the checksum', () => {
  const { rd } = setup();
  const w = (lo: number) => rd(lo) | (rd(lo + 1) << 8);
  assert.equal(w(0x15), 640);
  assert.equal(w(0x17), 0xffff);
  assert.equal(w(0x30), 0xffff);
  assert.equal(w(0x34), (2 * GiB - 16 * 2 ** 20) / 65536);
  assert.equal(rd(0x5b) | (rd(0x5c) << 8) | (rd(0x5d) << 16), 2 * GiB / 65536);
  let sum = 0;
  for (let i = 0x10; i <= 0x2d; i++) sum += rd(i);
  assert.equal((rd(0x2e) << 8) | rd(0x2f), sum);
});

test('small memory: extended KiB and no lowmem blocks', () => {
  const { rd } = setup({}, 0, { lowmem: 8 * 2 ** 20, highmem: 0 });
  assert.equal(rd(0x17) | (rd(0x18) << 8), 7 * 1024);
  assert.equal(rd(0x34) | rd(0x35), 0);
  assert.equal(rd(0x5b) | rd(0x5c) | rd(0x5d), 0);
});

test('update-ended interrupt each second; register C clears on read', () => {
  const { m, rd, wr } = setup();
  m.clock.advance(0.3e9);
  wr(REG_B, B_24H | B_UIE);
  m.run(0.6e9);
  assert.equal(m.pulses(RTC_IRQ), 0);
  m.run(0.2e9);
  assert.equal(m.pulses(RTC_IRQ), 1);
  assert.equal(rd(REG_C), C_IRQF | C_UF);
  assert.equal(rd(REG_C), 0);
  m.run(3e9);
  assert.equal(m.pulses(RTC_IRQ), 2, 'no new edge while IRQF stays set');
  rd(REG_C);
  m.run(1e9);
  assert.equal(m.pulses(RTC_IRQ), 3);
});

test('update flag is set without the interrupt enabled, and raises none', () => {
  const { m, rd } = setup();
  m.clock.advance(1e9);
  assert.equal(rd(REG_C), C_UF);
  assert.equal(m.pulses(RTC_IRQ), 0);
});

test('periodic interrupt at the rate in register A', () => {
  const { m, rd, wr } = setup();
  wr(REG_A, 0x26); // 32.768 kHz, 1024 Hz
  wr(REG_B, B_24H | B_PIE);
  m.run(0.5e6);
  assert.equal(m.pulses(RTC_IRQ), 0);
  m.run(0.5e6);
  assert.equal(m.pulses(RTC_IRQ), 1);
  assert.equal(rd(REG_C) & (C_IRQF | C_PF), C_IRQF | C_PF);
  m.run(10e6);
  assert.ok(m.pulses(RTC_IRQ) >= 2);
});

test('alarm with don\'t-care bytes fires every second', () => {
  const { m, rd, wr } = setup();
  wr(1, 0xc0); wr(3, 0xff); wr(5, 0xc0);
  wr(REG_B, B_24H | B_AIE);
  m.run(1e9);
  assert.equal(m.pulses(RTC_IRQ), 1);
  assert.equal(rd(REG_C) & (C_IRQF | C_AF), C_IRQF | C_AF);
});

test('SET masks the update interrupt enable', () => {
  const { rd, wr } = setup();
  wr(REG_B, B_24H | B_UIE | B_SET);
  assert.equal(rd(REG_B), B_24H | B_SET);
});
