/**
 * iPXE over virtio-net: Debian's SeaBIOS runs Debian's iPXE virtio ROM
 * (package ipxe-qemu), handed over as fw_cfg file "pci1af4,1000.rom" as
 * QEMU does, with the virtio-net function first in the boot order. dnsmasq
 * (DHCP and TFTP) serves a tap inside a namespace the test makes; iPXE must
 * get 10.0.2.15 by DHCP, fetch boot.ipxe by TFTP and run it: the script
 * prints a marker with a token made for this run and the address iPXE got.
 *
 * On a PVM host this needs the emulator's protected-mode iret and its PVM
 * interrupt-frame fix-up (src/emulate/pvm-frame.ts): iPXE's C code runs with
 * a based SS, and PVM writes interrupt frames without that base.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateMac, formatMac } from '../../src/devices/virtio/net-config.js';
import { describe, HAVE_KVM, NO_KVM } from './harness.js';
import { GUEST_IP, NetNs, netUnavailable, startVmm } from './netns.js';

const SEABIOS = '/usr/share/seabios/bios-256k.bin';
const IPXE_ROM = '/usr/lib/ipxe/qemu/pxe-virtio.rom';
const MARKER = 'bhyve-ts TFTP script ran';
/** From the launch: SeaBIOS, iPXE's banner, its 2 s prompt, DHCP and TFTP take about a minute here. */
const SCRIPT_MS = 300_000;

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

test('iPXE over virtio-net gets an address by DHCP and runs a script fetched by TFTP', { timeout: SCRIPT_MS + 60_000 }, async (t) => {
  const why = missing();
  if (why) { t.skip(why); return; }
  const ns = NetNs.create('ipxe');
  const dir = mkdtempSync(join(tmpdir(), 'bhyvets-ipxe-'));
  try {
    ns.addTap('tapipxe0');
    const token = randomBytes(6).toString('hex');
    writeFileSync(join(dir, 'boot.ipxe'), `#!ipxe\necho ${MARKER} ${token} ip=\${net0/ip} end\nexit\n`);
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
      '-l', `bootrom,${SEABIOS}`, 'ipxe'], SCRIPT_MS + 30_000);
    let line: RegExpMatchArray | undefined;
    try {
      line = await vm.waitLine(new RegExp(`${MARKER} (\\w+) ip=(\\S*) end`), SCRIPT_MS);
    } catch { /* reported below */ }
    // dnsmasq logs the transfer when it ends, about when the script starts: give its pipe a moment.
    for (let i = 0; i < 50 && !/sent .*boot\.ipxe/.test(log); i++) await new Promise((ok) => setTimeout(ok, 100));
    vm.kill();
    const r = await vm.done;
    const out = describe(r);
    const banner = /iPXE initialising devices\.\.\.ok/.test(r.stdout);
    t.diagnostic(`iPXE banner: ${banner}; DHCP ack: ${/DHCPACK/.test(log)}; TFTP sent: ${/sent .*boot\.ipxe/.test(log)}; ` +
      `script ran: ${line !== undefined}; ${Math.round(r.ms / 1000)} s`);
    assert.ok(banner, `SeaBIOS ran iPXE from fw_cfg\n${out}`);
    const mac = formatMac(generateMac(3, 0, 'ipxe'));
    assert.match(log, new RegExp(`DHCPACK\\(tapipxe0\\) ${GUEST_IP.replace(/\./g, '\\.')} ${mac}`), `iPXE got an address\n${log}\n${out}`);
    assert.match(log, /sent \S+\/boot\.ipxe to 10\.0\.2\.15/, `iPXE fetched boot.ipxe by TFTP\n${log}`);
    assert.ok(line, `iPXE ran the script\n${out}`);
    assert.equal(line[1], token, 'the script came from this run\'s TFTP root');
    assert.equal(line[2], GUEST_IP, 'iPXE shows the address it got by DHCP');
  } finally {
    ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
