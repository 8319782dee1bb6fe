import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from './options.js';
import '../devices/all.js';

const run = (args: string[]) => {
  const r = parseArgs(args);
  assert.equal(r.kind, 'run');
  return r.kind === 'run' ? r.config : undefined!;
};

test("the man page's first example becomes the config tree", () => {
  const c = run('-c 2 -s 0,hostbridge -s 1,lpc -l com1,stdio -A -H -P -m 1G vm1'.split(' '));
  assert.equal(c.get('cpus'), '2');
  assert.equal(c.get('pci.0.0.0.device'), 'hostbridge');
  assert.equal(c.get('pci.0.1.0.device'), 'lpc');
  assert.equal(c.get('lpc.com1.path'), 'stdio');
  assert.equal(c.get('acpi_tables'), 'true');
  assert.equal(c.get('x86.vmexit_on_hlt'), 'true');
  assert.equal(c.get('x86.vmexit_on_pause'), 'true');
  assert.equal(c.get('memory.size'), '1G');
  assert.equal(c.get('name'), 'vm1');
});

test('flags combine and arguments attach, as getopt', () => {
  const c = run(['-AHPc4', '-m512', '-Y', '-u', '-w', '-W', '-x', '-e', '-S', 'vm']);
  assert.equal(c.get('cpus'), '4');
  assert.equal(c.get('memory.size'), '512');
  assert.equal(c.get('x86.mptable'), 'false');
  assert.equal(c.get('rtc.use_localtime'), 'false');
  assert.equal(c.get('x86.strictmsr'), 'false');
  assert.equal(c.get('virtio_msix'), 'false');
  assert.equal(c.get('x86.x2apic'), 'true');
  assert.equal(c.get('x86.strictio'), 'true');
  assert.equal(c.get('memory.wired'), 'true');
});

test('slot forms: slot, slot:function, bus:slot:function', () => {
  const c = run(['-s', '3,hostbridge', '-s', '4:2,hostbridge', '-s', '7:5:1,hostbridge', 'vm']);
  assert.equal(c.get('pci.0.3.0.device'), 'hostbridge');
  assert.equal(c.get('pci.0.4.2.device'), 'hostbridge');
  assert.equal(c.get('pci.7.5.1.device'), 'hostbridge');
});

test('bad slots and devices name what is wrong', () => {
  assert.throws(() => parseArgs(['-s', '32,hostbridge', 'vm']), /slot 32 out of range/);
  assert.throws(() => parseArgs(['-s', '1:8,hostbridge', 'vm']), /function 8 out of range/);
  assert.throws(() => parseArgs(['-s', '256:0:0,hostbridge', 'vm']), /bus 256 out of range/);
  assert.throws(() => parseArgs(['-s', 'x,hostbridge', 'vm']), /bad slot 'x'/);
  assert.throws(() => parseArgs(['-s', '2,no-such-dev', 'vm']), /unknown device emulation 'no-such-dev'/);
  assert.throws(() => parseArgs(['-s', '2,hostbridge', '-s', '2,hostbridge', 'vm']), /already in use/);
  assert.throws(() => parseArgs(['-Q', 'vm']), /unknown option -Q/);
  assert.throws(() => parseArgs(['-m']), /option -m requires an argument/);
  assert.throws(() => parseArgs(['-l', 'com9,stdio', 'vm']), /-l com9,stdio: unknown lpc device 'com9'/);
  assert.throws(() => parseArgs(['-c', 'cpus=2,dies=2', 'vm']), /unknown topology key 'dies'/);
  assert.throws(() => parseArgs(['-p', '0-1', 'vm']), /expected vcpu:hostcpu/);
});

test('-c topology, -p pinning, -l bootrom, -o and -k', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bhyve-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'vm.conf');
  writeFileSync(f, '# a comment\nmemory.size=2G\n\nx86.mptable=false\n');
  const c = run(['-c', 'cpus=4,sockets=2,cores=2', '-p', '0:1', '-p', '0:0', '-l', 'bootrom,/rom.fd,/vars.fd', '-k', f, '-o', 'boot.cmdline=console=ttyS0', 'vm']);
  assert.equal(c.get('sockets'), '2');
  assert.equal(c.get('cores'), '2');
  assert.equal(c.get('vcpu.0.cpuset'), '1,0');
  assert.equal(c.get('lpc.bootrom'), '/rom.fd');
  assert.equal(c.get('lpc.bootvars'), '/vars.fd');
  assert.equal(c.get('memory.size'), '2G');
  assert.equal(c.get('boot.cmdline'), 'console=ttyS0');
  assert.throws(() => parseArgs(['-k', join(dir, 'missing.conf'), 'vm']), /cannot read config file/);
  writeFileSync(f, 'novalue\n');
  assert.throws(() => parseArgs(['-k', f, 'vm']), /vm.conf:1: .*expected key=value/);
});

test('help and missing VM name', () => {
  const h = parseArgs(['-h']);
  assert.equal(h.kind, 'help');
  assert.equal(h.kind === 'help' && h.status, 0);
  const n = parseArgs(['-A']);
  assert.equal(n.kind === 'help' && n.status, 4);
  const d = parseArgs(['-o', 'config.dump=1']);
  assert.equal(d.kind, 'run');
});
