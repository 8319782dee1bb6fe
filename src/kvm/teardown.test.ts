/**
 * The asynchronous teardown's holder: a child process makes a VM with the
 * in-kernel irqchip and PIT, hands its fd off and exits. While the child
 * lives, the holder has open only its pipe, /dev/null and the VM, and it stays even
 * when its pipe from the child is closed (that happens early in the child's
 * exit, before the child's own VM references are gone); once the child is
 * gone, the holder ends too (so the VM is destroyed there).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

const CHILD = `
import { Kvm, Vm } from ${JSON.stringify(here('./vm.js'))};
import { handOffTeardown } from ${JSON.stringify(here('./teardown.js'))};
import { closeSync, existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
const vm = Vm.create(new Kvm());
vm.createIrqchip();
const pid = handOffTeardown(vm.fd);
// What the holder has open, by target (a shell may move its fds about: their numbers are not checked).
const open = () => readdirSync('/proc/' + pid + '/fd').map((fd) => { try { return readlinkSync('/proc/' + pid + '/fd/' + fd); } catch { return ''; } }).filter(Boolean).sort();
let fds = [], vmfd = '';
for (let i = 0; i < 100 && pid; i++) {
  await new Promise((r) => setTimeout(r, 10));
  try { fds = open(); } catch {}
  vmfd = fds.find((f) => f.startsWith('anon_inode:kvm')) ?? '';
  if (vmfd) break;
}
// Close the VMM's end of the pipe by hand, as its exit would: the holder must stay while this process lives.
const pipe = pid ? readlinkSync('/proc/' + pid + '/fd/0') : '';
for (const fd of readdirSync('/proc/self/fd').map(Number)) {
  try { if (fd > 2 && readlinkSync('/proc/self/fd/' + fd) === pipe) closeSync(fd); } catch {}
}
await new Promise((r) => setTimeout(r, 200));
const stayed = existsSync('/proc/' + pid) && !/^State:\\s+Z/m.test(readFileSync('/proc/' + pid + '/status', 'utf8'));
console.log(JSON.stringify({ pid, fds, vmfd, stayed }));
`;

function gone(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return true;
  try { return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return true; }
}

test('teardown: the holder keeps the VM fd and nothing else of the VMM\'s, outlives its pipe while the VMM lives, and ends after the VMM', { skip: !existsSync('/dev/kvm') && 'no /dev/kvm on this host' }, async () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { pid, fds, vmfd, stayed } = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { pid: number; fds: string[]; vmfd: string; stayed: boolean };
  assert.ok(pid > 0, 'the holder did not start');
  // Its standard input (the pipe), /dev/null for output, the VM: nothing else of the VMM's (no disk image, no tap).
  assert.equal(fds.filter((f) => f.startsWith('anon_inode:kvm')).length, 1, `holder fds: ${fds.join(', ')}`);
  assert.equal(fds.filter((f) => f.startsWith('pipe:')).length, 1, `holder fds: ${fds.join(', ')}`);
  assert.ok(fds.every((f) => f === '/dev/null' || f.startsWith('pipe:') || f === 'anon_inode:kvm-vm'), `holder fds: ${fds.join(', ')}`);
  assert.equal(vmfd, 'anon_inode:kvm-vm');
  assert.equal(stayed, true, 'the holder ended when its pipe closed, while the VMM still lived');
  for (let i = 0; i < 200 && !gone(pid); i++) await new Promise((res) => setTimeout(res, 10));
  assert.ok(gone(pid), `holder ${pid} still running 2 s after the VMM exited: ${readdirSync('/proc').includes(String(pid))}`);
});
