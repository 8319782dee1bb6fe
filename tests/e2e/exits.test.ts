/**
 * bhyve(8) exit statuses, one tiny guest each: reset (0), power off (1),
 * halt (2), triple fault (3) and an error (4: -e with an unemulated port,
 * which also dumps the registers on stderr).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boot, describe, romArgs, skipWithoutKvm, Status } from './harness.js';

const cases: { rom: string; kind: string; status: number; extra?: string[] }[] = [
  { rom: 'exit-reset', kind: 'reset', status: Status.Reset },
  { rom: 'exit-poweroff', kind: 'poweroff', status: Status.PowerOff },
  { rom: 'exit-halt', kind: 'halt', status: Status.Halt },
  { rom: 'exit-triple', kind: 'triple', status: Status.TripleFault },
  { rom: 'exit-strict', kind: 'strict', status: Status.Error, extra: ['-e'] },
];

for (const c of cases) {
  test(`exit ${c.kind}: status ${c.status}`, async (t) => {
    if (skipWithoutKvm(t)) return;
    const r = await boot(romArgs(c.rom, c.extra ?? []));
    assert.equal(r.lines[0], `EXIT ${c.kind}`, describe(r));
    assert.equal(r.lines.length, 1, `the guest must not run past its exit\n${describe(r)}`);
    assert.equal(r.status, c.status, describe(r));
    assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace\n${describe(r)}`);
  });
}

test('exit strict: the error names the port and dumps the registers', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('exit-strict', ['-e']));
  assert.equal(r.status, Status.Error, describe(r));
  assert.match(r.stderr, /0x0*1234\b|\b1234h\b/i, `stderr names port 0x1234\n${describe(r)}`);
  // A register dump: the general registers and the instruction pointer by name.
  for (const reg of ['rax', 'rbx', 'rcx', 'rdx', 'rsp', 'rip']) {
    assert.match(r.stderr, new RegExp(`\\b${reg}\\b`, 'i'), `register dump shows ${reg}\n${describe(r)}`);
  }
  assert.match(r.stderr, /\brdx\W+(0x)?0*1234\b/i, `the dump shows the guest's %dx = 0x1234\n${describe(r)}`);
});

test('exit strict: without -e the unemulated port reads as all ones and the guest continues', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('exit-strict'));
  assert.deepEqual(r.lines, ['EXIT strict', 'EXIT strict: port read returned ff, -e not in force'], describe(r));
  assert.equal(r.status, Status.PowerOff, describe(r));
});
