/**
 * iPXE over virtio-net: Debian's SeaBIOS runs Debian's iPXE virtio ROM
 * (package ipxe-qemu), handed over as fw_cfg file "pci1af4,1000.rom" as
 * QEMU does, with the virtio-net function first in the boot order. dnsmasq
 * (DHCP and TFTP) serves a tap inside a namespace the test makes; iPXE must
 * get 10.0.2.15 by DHCP, fetch boot.ipxe by TFTP and run it (it prints a
 * marker on COM1).
 *
 * Today iPXE stops right after its banner on an instruction KVM cannot
 * emulate here (see issue 4), so the test is marked todo: it reports how far
 * iPXE got and does not fail the run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateMac, formatMac } from '../../src/devices/virtio/net-config.js';
import { describe, HAVE_KVM, NO_KVM } from './harness.js';
import { GUEST_IP, HOST_IP, NetNs, netUnavailable, startVmm } from './netns.js';

const SEABIOS = '/usr/share/seabios/bios-256k.bin';
const IPXE_ROM = '/usr/lib/ipxe/qemu/pxe-virtio.rom';
const MARKER = 'bhyve-ts TFTP script ran';
const TODO = 'needs the instruction emulator (issue 4)';

/** dnsmasq from Debian's dnsmasq-base, installed when missing (root). */
function haveDnsmasq(): boolean {
  const has = (): boolean => spawnSync('sh', ['-c', 'command -v dnsmasq'], { stdio: 'ignore' }).status === 0;
  if (has() || process.getuid?.() !== 0) return has();
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): boolean => spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'dnsmasq-base'], { stdio: 'ignore', env }).status === 0;
  if (!install()) { spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env }); install(); }
  return has();
}

function missing(): string | undefined {
  if (!HAVE_KVM) return NO_KVM;
  const net = netUnavailable();
  if (net) return net;
  if (!existsSync(SEABIOS)) return `no ${SEABIOS} (package seabios)`;
  if (!existsSync(IPXE_ROM)) return `no ${IPXE_ROM} (package ipxe-qemu)`;
  if (!haveDnsmasq()) return 'no dnsmasq (package dnsmasq-base)';
  return undefined;
}

test('iPXE over virtio-net gets an address by DHCP and runs a script fetched by TFTP', { todo: TODO }, async (t) => {
  const why = missing();
  if (why) { t.skip(why); return; }
  const ns = NetNs.create('ipxe');
  const dir = mkdtempSync(join(tmpdir(), 'bhyvets-ipxe-'));
  try {
    ns.addTap('tapipxe0');
    writeFileSync(join(dir, 'boot.ipxe'), `#!ipxe\necho ${MARKER}\nexit\n`);
    const dnsmasq = spawn('ip', ['netns', 'exec', ns.name, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0',
      '--interface=tapipxe0', '--bind-interfaces', `--dhcp-range=${GUEST_IP},${GUEST_IP},255.255.255.0,1h`,
      `--dhcp-leasefile=${join(dir, 'leases')}`, '--enable-tftp', `--tftp-root=${dir}`, '--dhcp-boot=boot.ipxe',
      '--log-dhcp', '--log-facility=-', '--pid-file='], { stdio: ['ignore', 'pipe', 'pipe'] });
    ns.own(dnsmasq);
    let log = '';
    dnsmasq.stdout.on('data', (b: Buffer) => { log += b.toString(); });
    dnsmasq.stderr.on('data', (b: Buffer) => { log += b.toString(); });
    const vm = startVmm(ns, ['-m', '256M', '-s', '0,hostbridge', '-s', '3,virtio-net,tapipxe0,bootindex=1', '-s', '31,lpc',
      '-l', 'com1,stdio', '-l', 'fwcfg=qemu', '-o', 'fwcfg.0.name=pci1af4,1000.rom', '-o', `fwcfg.0.file=${IPXE_ROM}`,
      '-l', `bootrom,${SEABIOS}`, 'ipxe'], 240_000);
    let ran = false;
    try {
      await vm.waitLine(new RegExp(MARKER), 200_000);
      ran = true;
    } catch { /* reported below */ }
    vm.kill();
    const r = await vm.done;
    const out = describe(r);
    const banner = /iPXE initialising devices\.\.\.ok/.test(r.stdout);
    t.diagnostic(`iPXE banner: ${banner}; DHCP ack: ${/DHCPACK/.test(log)}; TFTP sent: ${/sent .*boot\.ipxe/.test(log)}; script ran: ${ran}`);
    assert.ok(banner, `SeaBIOS ran iPXE from fw_cfg\n${out}`);
    const mac = formatMac(generateMac(3, 0, 'ipxe'));
    assert.match(log, new RegExp(`DHCPACK\\(tapipxe0\\) ${GUEST_IP.replace(/\./g, '\\.')} ${mac}`), `iPXE got an address\n${log}\n${out}`);
    assert.match(log, /sent .*boot\.ipxe to 10\.0\.2\.15/, `iPXE fetched boot.ipxe by TFTP\n${log}`);
    assert.ok(ran, `iPXE ran the script\n${out}`);
    assert.ok(HOST_IP);
  } finally {
    ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
