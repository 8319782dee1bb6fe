/**
 * Bad command lines: each gives exactly one line on stderr naming the
 * offending item, a non-zero exit status, and no stack trace. These do not
 * need a VM and run with or without /dev/kvm.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { describe, ensureGuests, rom, runVmm } from './harness.js';

const base = ['-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio'];
const hello = ['-l', `bootrom,${rom('hello')}`];

const cases: { what: string; args: string[]; names: string }[] = [
  { what: 'an unknown device name', args: [...base, '-s', '3,nosuchdevice', ...hello, 'vm'], names: 'nosuchdevice' },
  { what: 'a slot number past 31', args: [...base, '-s', '32,uart', ...hello, 'vm'], names: '32' },
  { what: 'a function number past 7', args: [...base, '-s', '3:8,uart', ...hello, 'vm'], names: '3:8' },
  { what: 'a slot that is not a number', args: [...base, '-s', 'x7,uart', ...hello, 'vm'], names: 'x7' },
  { what: 'a slot used twice', args: [...base, '-s', '3,uart', '-s', '3,uart', ...hello, 'vm'], names: '3' },
  { what: 'a missing bootrom file', args: [...base, '-l', 'bootrom,/nonexistent/bhyve-ts/rom.bin', 'vm'], names: '/nonexistent/bhyve-ts/rom.bin' },
  { what: 'an unknown -o key', args: [...base, ...hello, '-o', 'no.such.key=1', 'vm'], names: 'no.such.key' },
];

before(() => ensureGuests());

for (const c of cases) {
  test(`cli: ${c.what} is one line on stderr and a non-zero status`, async () => {
    const r = await runVmm(c.args, { timeoutMs: 30_000 });
    const why = describe(r);
    assert.equal(r.timedOut, false, why);
    assert.equal(r.signal, null, why);
    assert.ok(r.status !== null && r.status !== 0, `non-zero status\n${why}`);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.equal(lines.length, 1, `exactly one line on stderr\n${why}`);
    assert.ok(lines[0].includes(c.names), `the message names ${c.names}\n${why}`);
    assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace\n${why}`);
  });
}
