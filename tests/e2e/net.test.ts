/**
 * virtio-net over a tap, driven by the project's own guest (tests/guests/vnet.S)
 * inside a network namespace each test makes (10.0.2.1 the host, 10.0.2.15
 * the guest): the guest's ARP request and UDP datagram reach the host's
 * kernel and a UDP socket there, with the guest's MAC; the host's ARP reply
 * and UDP answer reach the guest. The tap is attached to when it exists, or
 * created (and brought up) when it does not; the MAC is bhyve's derived one
 * or `mac=`. Hostile chains are dropped without a frame reaching the tap, a
 * ring running ahead gets NEEDS_RESET, and the device works after a reset.
 * Bad back-ends are one line at start-up.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateMac, formatMac } from '../../src/devices/virtio/net-config.js';
import { describe, ensureGuests, findLine, allLines, rom, Status, skipWithoutKvm } from './harness.js';
import { GUEST_IP, HOST_IP, NetNs, netUnavailable, startVmm, udpResponder } from './netns.js';

const UNAVAILABLE = netUnavailable();
const GUEST_PAYLOAD = 'hello from the bhyve-ts guest';
const HOST_REPLY = 'bhyve-ts host to guest';

function args(guest: string, net: string, vm: string): string[] {
  return ['-s', '0,hostbridge', '-s', `3,virtio-net,${net}`, '-s', '31,lpc', '-l', 'com1,stdio', '-l', `bootrom,${rom(guest)}`, vm];
}

before(() => ensureGuests());

function skip(t: { skip(m: string): void }): boolean {
  if (skipWithoutKvm(t as never)) return true;
  if (UNAVAILABLE) { t.skip(UNAVAILABLE); return true; }
  return false;
}

test('virtio-net: ARP and UDP both ways through an existing tap, with the MAC bhyve derives', async (t) => {
  if (skip(t)) return;
  const ns = NetNs.create('net');
  try {
    ns.addTap('tapbt0');
    const tapMac = ns.link('tapbt0').mac;
    const udp = udpResponder(ns, 5555, HOST_REPLY);
    await udp.ready;
    const neigh = ns.watchNeighbours();
    const vm = startVmm(ns, args('vnet', 'tapbt0', 'netvm'));
    const r = await vm.done;
    udp.stop();
    const learned = neigh.stop();
    const why = describe(r);
    assert.equal(r.status, Status.PowerOff, why);
    const mac = formatMac(generateMac(3, 0, 'netvm'));
    assert.ok(mac.startsWith('00:a0:98:'), mac);
    assert.equal(findLine(r, /^MAC (\S+)$/)?.[1], mac, why);
    assert.equal(findLine(r, /^LINK (\S+)$/)?.[1], '01', `link up in the config\n${why}`);
    assert.equal(findLine(r, /^ARP reply from (\S+) tries/)?.[1], tapMac, `the host's ARP reply reached the guest\n${why}`);
    assert.equal(learned.get(GUEST_IP), mac, `the host learned the guest's MAC from its ARP request\n${why}`);
    const got = await udp.got;
    assert.deepEqual(got, { from: GUEST_IP, port: 5555, data: GUEST_PAYLOAD }, why);
    assert.equal(findLine(r, /^UDP from host: (.*)$/)?.[1], HOST_REPLY, `the host's datagram reached the guest\n${why}`);
    const sent = Number(findLine(r, /^TX frames (\d+)/)?.[1]);
    assert.equal(ns.link('tapbt0').rxPackets, sent, `every frame the guest sent, and nothing else, reached the tap\n${why}`);
    assert.ok(ns.exists('tapbt0'), 'an attached tap stays');
  } finally {
    ns.destroy();
  }
});

test('virtio-net: creates a missing tap, brings it up, and uses mac=', async (t) => {
  if (skip(t)) return;
  const ns = NetNs.create('netnew');
  try {
    const mac = '02:12:34:56:78:9a';
    const udp = udpResponder(ns, 5555, HOST_REPLY);
    await udp.ready;
    assert.equal(ns.exists('tapbt7'), false);
    const neigh = ns.watchNeighbours();
    const vm = startVmm(ns, args('vnet', `tapbt7,mac=${mac}`, 'netvm'));
    // The guest repeats its ARP request until answered: give the new tap its address once it shows up.
    await vm.waitLine(/^LINK /, 30_000);
    assert.ok(ns.exists('tapbt7'), 'the VMM created the tap');
    assert.ok(ns.link('tapbt7').flags.includes('UP'), `the VMM brought the link up: ${ns.link('tapbt7').flags}`);
    ns.configure('tapbt7');
    const r = await vm.done;
    udp.stop();
    const learned = neigh.stop();
    const why = describe(r);
    assert.equal(r.status, Status.PowerOff, why);
    assert.equal(findLine(r, /^MAC (\S+)$/)?.[1], mac, why);
    assert.ok(findLine(r, /^ARP reply from /), why);
    assert.equal(learned.get(GUEST_IP), mac, why);
    assert.equal((await udp.got).data, GUEST_PAYLOAD, why);
    assert.equal(findLine(r, /^UDP from host: (.*)$/)?.[1], HOST_REPLY, why);
    assert.equal(ns.exists('tapbt7'), false, 'a tap the VMM created goes away with it');
  } finally {
    ns.destroy();
  }
});

test('virtio-net: hostile chains are dropped (nothing reaches the tap), a runaway ring needs a reset, the device recovers', async (t) => {
  if (skip(t)) return;
  const ns = NetNs.create('nethostile');
  try {
    ns.addTap('tapbt1');
    const r = await startVmm(ns, args('vnet-hostile', 'tapbt1', 'hostile')).done;
    const why = describe(r);
    assert.equal(r.status, Status.PowerOff, why);
    const h = allLines(r, /^H(\d) status ([0-9a-f]{2})(?: used ([0-9a-f]{8}))?$/);
    assert.equal(h.length, 9, why);
    for (const m of h.slice(0, 8)) {
      assert.equal(m[2], '07', `H${m[1]}: the device stays usable (ACK|DRIVER|DRIVER_OK)\n${why}`);
      assert.equal(m[3], '00000000', `H${m[1]}: the chain came back, with nothing written\n${why}`);
    }
    assert.ok((parseInt(h[8][2], 16) & 0x40) !== 0, `H9: DEVICE_NEEDS_RESET\n${why}`);
    assert.equal(allLines(r, /^ARP reply from /).length, 3, `before the bad chains, after them and after the reset\n${why}`);
    assert.equal(findLine(r, /^RX bad (\d+)/)?.[1], '3', `the bad receive buffers came back empty\n${why}`);
    const sent = Number(findLine(r, /^TX frames (\d+)/)?.[1]);
    assert.equal(ns.link('tapbt1').rxPackets, sent, `only the valid frames reached the tap\n${why}`);
    assert.equal(findLine(r, /^MAC (\S+)$/)?.[1], formatMac(generateMac(3, 0, 'hostile')), why);
    assert.ok(HOST_IP);
  } finally {
    ns.destroy();
  }
});

test('virtio-net: back-ends that cannot be used are one line at start-up', async (t) => {
  if (skip(t)) return;
  const ns = NetNs.create('netbad');
  try {
    ns.ip(['tuntap', 'add', 'dev', 'taptun0', 'mode', 'tun']);
    const cases: [string, RegExp][] = [
      ['eth0', /unknown network back-end 'eth0'/],
      ['tapbt0,mac=01:00:00:00:00:01', /bad MAC address '01:00:00:00:00:01'/],
      ['tapbt0,mac=zz', /bad MAC address 'zz'/],
      ['taptun0', /tap taptun0: cannot create or attach/],
      ['tapbt0,speed=10', /speed/],
    ];
    for (const [net, re] of cases) {
      const r = await startVmm(ns, args('hello', net, 'bad')).done;
      const why = describe(r);
      assert.ok(r.status !== null && r.status !== 0, `${net}: non-zero status\n${why}`);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, `${net}: one line\n${why}`);
      assert.match(lines[0], re, why);
      assert.equal(ns.exists('tapbt0'), false, `${net}: no tap left behind`);
    }
  } finally {
    ns.destroy();
  }
});
