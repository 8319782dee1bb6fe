/**
 * memtest86+ (Debian's package memtest86+, 6.x) booted through the Linux
 * boot protocol (`-o boot.kernel=`): its x64 image is a bzImage-style kernel
 * with a 64-bit entry point. With `console=ttyS0,115200` it draws its screen
 * on COM1 and redraws what changed while it tests (every other second, so
 * short tests may never be shown). The test reads that screen and waits until
 * memtest is past its first test and the next one is under way, with no
 * errors. Its code runs in (emulated) kernel mode on a PVM host, so the
 * machine is kept small (16 MiB) and the benchmark and start-up pause are
 * skipped (`nobench nopause`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { skipWithoutKvm } from './harness.js';
import { describeWatch, Screen, watchVmm } from './console.js';

const MEMTEST = '/boot/memtest86+x64.bin';
const TIMEOUT_MS = 6 * 60_000;

/** What the screen shows: rows as memtest lays them out (0-based). */
function readScreen(s: Screen) {
  const num = (re: RegExp, row: number): number | undefined => {
    const m = re.exec(s.line(row));
    return m ? Number(m[1]) : undefined;
  };
  return {
    title: s.line(0),
    memory: /Memory\s*:\s*(\d+[KMG]B)/.exec(s.line(5))?.[1],
    passPct: num(/Pass\s+(\d+)%/, 1),
    testPct: num(/Test\s+(\d+)%/, 2),
    testNum: num(/Test #\s*(\d+)/, 3),
    testName: /Test #\s*\d+\s+\[([^\]]+)\]/.exec(s.line(3))?.[1],
    status: /Status:\s*(\S+)/.exec(s.line(7))?.[1],
    time: /Time:\s*(\d+:\d\d:\d\d)/.exec(s.line(7))?.[1],
    errors: num(/Errors:\s*(\d+)/, 8),
  };
}

test('memtest86+ starts its tests and reports progress on COM1', { timeout: TIMEOUT_MS + 30_000 }, async (t) => {
  if (skipWithoutKvm(t)) return;
  if (!existsSync(MEMTEST)) { t.skip(`no ${MEMTEST} (package memtest86+)`); return; }
  const screen = new Screen();
  let fed = 0;
  const tests = new Map<number, string>();
  const r = await watchVmm([
    '-m', '16M', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio',
    '-o', `boot.kernel=${MEMTEST}`, '-o', 'boot.cmdline=console=ttyS0,115200 nopause nobench', 'memtest',
  ], {
    timeoutMs: TIMEOUT_MS,
    until: (out) => {
      screen.feed(out.slice(fed));
      fed = out.length;
      const v = readScreen(screen);
      if (v.testNum !== undefined && v.testName) tests.set(v.testNum, v.testName);
      // Done once a test after the first is shown making progress.
      return (v.testNum ?? 0) >= 1 && (v.testPct ?? 0) > 0;
    },
  });
  const v = readScreen(screen);
  const out = describeWatch(r, screen);
  t.diagnostic(`after ${r.ms} ms: tests shown ${[...tests].map(([n, d]) => `#${n} ${d}`).join('; ')}; test ${v.testPct}%, pass ${v.passPct}%, time ${v.time}`);
  assert.match(v.title, /Memtest86\+ v\d+\.\d+/, `memtest's banner\n${out}`);
  assert.equal(v.memory, '16MB', `memtest found the -m 16M of RAM\n${out}`);
  assert.equal(v.status, 'Testing', out);
  assert.ok(r.matched, `memtest went past its first test and reported progress on the next\n${out}`);
  assert.match(v.testName ?? '', /test|inversions|walking|random|modulo|fade/i, `the running test's name\n${out}`);
  assert.match(v.time ?? '', /^0:\d\d:\d\d$/, `memtest's run-time clock\n${out}`);
  assert.equal(v.errors, 0, `no memory errors\n${out}`);
});
