/**
 * The CMOS RTC: the time the guest reads agrees with the host clock (UTC
 * with -u, local time otherwise), and the memory-size bytes 0x34/0x35
 * (64 KiB units above 16 MiB, below 4 GiB) and 0x5b-0x5d (64 KiB units
 * above 4 GiB) describe -m.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boot, describe, findLine, romArgs, skipWithoutKvm, Status, type RunResult } from './harness.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const LOWMEM_LIMIT = 3 * GiB;
const SLACK_MS = 2000;

const RTC_RE = /^RTC century ([0-9a-f]{2}) year ([0-9a-f]{2}) month ([0-9a-f]{2}) day ([0-9a-f]{2}) hour ([0-9a-f]{2}) min ([0-9a-f]{2}) sec ([0-9a-f]{2})$/;
const REGS_RE = /^RTC regA ([0-9a-f]{2}) regB ([0-9a-f]{2}) regD ([0-9a-f]{2})$/;
const CMOS_RE = /^CMOS 34=([0-9a-f]{2}) 35=([0-9a-f]{2}) 5b=([0-9a-f]{2}) 5c=([0-9a-f]{2}) 5d=([0-9a-f]{2})$/;

/** The guest's clock reading as milliseconds since the epoch, read as if it were UTC. */
function guestTime(r: RunResult): number {
  const why = describe(r);
  const t = findLine(r, RTC_RE);
  const regs = findLine(r, REGS_RE);
  assert.ok(t && regs, why);
  const regB = parseInt(regs[2], 16);
  const binary = (regB & 0x04) !== 0;
  const h24 = (regB & 0x02) !== 0;
  const num = (s: string, mask = 0xff): number => {
    const v = parseInt(s, 16) & mask;
    return binary ? v : (v >> 4) * 10 + (v & 0xf);
  };
  let hour = num(t[5], 0x7f);
  if (!h24) {
    const pm = (parseInt(t[5], 16) & 0x80) !== 0;
    hour = (hour % 12) + (pm ? 12 : 0);
  }
  const year = num(t[1]) * 100 + num(t[2]);
  return Date.UTC(year, num(t[3]) - 1, num(t[4]), hour, num(t[6]), num(t[7]));
}

function checkCmos(r: RunResult, memBytes: number): void {
  const why = describe(r);
  const m = findLine(r, CMOS_RE);
  assert.ok(m, why);
  const [b34, b35, b5b, b5c, b5d] = m.slice(1, 6).map((s) => parseInt(s, 16));
  const lowmem = Math.min(memBytes, LOWMEM_LIMIT);
  const highmem = memBytes - lowmem;
  assert.equal(b34 | (b35 << 8), Math.max(0, lowmem - 16 * MiB) / (64 * 1024), `0x34/0x35: lowmem above 16 MiB\n${why}`);
  assert.equal(b5b | (b5c << 8) | (b5d << 16), highmem / (64 * 1024), `0x5b-0x5d: highmem\n${why}`);
}

async function runRtc(extra: string[], env?: Record<string, string>): Promise<{ r: RunResult; before: number; after: number }> {
  const before = Date.now();
  const r = await boot(romArgs('rtc', extra), { env });
  const after = Date.now();
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.ok(r.lines.includes('NVRAM rw ok'), why);
  assert.equal(r.lines.at(-1), 'DONE', why);
  return { r, before, after };
}

function assertNear(actual: number, before: number, after: number, r: RunResult): void {
  const lo = Math.floor(before / 1000) * 1000 - SLACK_MS;
  const hi = after + SLACK_MS;
  assert.ok(
    actual >= lo && actual <= hi,
    `guest time ${new Date(actual).toISOString()} not within [${new Date(lo).toISOString()}, ${new Date(hi).toISOString()}]\n${describe(r)}`,
  );
}

test('rtc: -u time is UTC within 2 s; -m 512M memory bytes', async (t) => {
  if (skipWithoutKvm(t)) return;
  const { r, before, after } = await runRtc(['-u', '-m', '512M']);
  assertNear(guestTime(r), before, after, r);
  checkCmos(r, 512 * MiB);
  const regs = findLine(r, REGS_RE)!;
  assert.equal(parseInt(regs[1], 16) & 0x80, 0, `regA: no update in progress when read\n${describe(r)}`);
  assert.equal(parseInt(regs[3], 16) & 0x80, 0x80, `regD: valid RAM and time\n${describe(r)}`);
});

test('rtc: without -u the clock is local time (TZ=Asia/Kolkata, UTC+5:30)', async (t) => {
  if (skipWithoutKvm(t)) return;
  const { r, before, after } = await runRtc(['-m', '256M'], { TZ: 'Asia/Kolkata' });
  const offset = 5.5 * 3600 * 1000;
  assertNear(guestTime(r) - offset, before, after, r);
  checkCmos(r, 256 * MiB);
});

test('rtc: -m 5G memory bytes cover high memory', async (t) => {
  if (skipWithoutKvm(t)) return;
  const { r } = await runRtc(['-u', '-m', '5G']);
  checkCmos(r, 5 * GiB);
});
