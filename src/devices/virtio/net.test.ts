/**
 * virtio-net against a fake tap: one end of a SOCK_SEQPACKET socket pair
 * (datagrams keep their boundaries, as a tap's frames do) in its own epoll
 * set; the test holds the other end. Offload settings are recorded instead
 * of reaching a real tap.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { TapBackend, type TapResource } from '../../backends/net.js';
import { ConfigTree } from '../../config/tree.js';
import { close, epoll_create1, epoll_ctl, koffi, read, write, EPOLL_CTL_ADD, EPOLL_EVENT_SIZE, EPOLLIN } from '../../kvm/libc.js';
import type { MachineContext } from '../../vmm/context.js';
import { PciRoot } from '../pci/root.js';
import { bit, F_RING_INDIRECT_DESC, F_VERSION_1 } from './constants.js';
import * as N from './net-config.js';
import { VirtioNet } from './net.js';
import { placeBars, TestDriver, virtioTestCtx } from './virtio-test-ctx.js';

const libc = koffi.load('libc.so.6');
const socketpair = libc.func('int socketpair(int domain, int type, int protocol, void *sv)');
const timerfdCreate = libc.func('int timerfd_create(int clockid, int flags)');
const timerfdGettime = libc.func('int timerfd_gettime(int fd, void *cur)');
const CLOCK_MONOTONIC = 1, TFD_NONBLOCK = 0o4000;
const AF_UNIX = 1, SOCK_SEQPACKET = 5, SOCK_NONBLOCK = 0o4000;
const PREFIX = 'pci.0.5.0';
const RXQ_BASE = 0x10000, TXQ_BASE = 0x20000, BUFS = 0x100000;

const offloads: [number, number][] = [];
TapBackend.prototype.configure = function (hdrLen: number, offload: number): void { offloads.push([hdrLen, offload]); };
const fds: number[] = [];
after(() => { for (const fd of fds) close(fd); });

function fakeTap(withTimer = false): { res: TapResource; peer: number } {
  const sv = Buffer.alloc(8);
  assert.equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
  const [fd, peer] = [sv.readInt32LE(0), sv.readInt32LE(4)];
  const epfd = epoll_create1(0) as number;
  const ev = Buffer.alloc(EPOLL_EVENT_SIZE);
  ev.writeUInt32LE(EPOLLIN, 0);
  assert.equal(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, ev), 0);
  fds.push(fd, peer, epfd);
  const timer = withTimer ? timerfdCreate(CLOCK_MONOTONIC, TFD_NONBLOCK) as number : undefined;
  if (timer !== undefined) fds.push(timer);
  return { res: { kind: 'tap', ifname: 'tapfake0', fd, epfd, mtu: 1500, timer }, peer };
}

function setup(features: bigint, config: Record<string, string> = {}, withTimer = false) {
  const { res, peer } = fakeTap(withTimer);
  const t = virtioTestCtx({ name: 'unitvm', ...config }, new Map([[`${PREFIX}.net`, res]]));
  let rx: (() => void) | undefined, repoll: (() => void) | undefined;
  const ctx: MachineContext = { ...t.ctx, watch: (n, _fd, h) => { if (n.endsWith('.txtimer')) repoll = h; else rx = h; } };
  const dev = new VirtioNet(ctx, PREFIX, { bus: 0, slot: 5, func: 0 });
  new PciRoot(ctx).add(dev);
  placeBars(dev);
  const drv = new TestDriver(t);
  drv.negotiate(features | bit(F_VERSION_1));
  drv.setupQueue(0, RXQ_BASE, 256);
  drv.setupQueue(1, TXQ_BASE, 256);
  drv.driverOk();
  t.runDoorbells();
  const receive = (): void => ctx.arena.locked(() => rx!());
  /** The timer is running, or has expired (the expiry is consumed: the device's next look at it is not disturbed by that). */
  const timerArmed = (): boolean => {
    const cur = Buffer.alloc(32);
    timerfdGettime(res.timer!, cur);
    return cur.readBigInt64LE(16) > 0n || cur.readBigInt64LE(24) > 0n || Number(read(res.timer!, Buffer.alloc(8), 8)) === 8;
  };
  return { t, dev, drv, peer, receive, repoll: (): void => ctx.arena.locked(() => repoll!()), timerArmed };
}

/** A frame: a 12-byte header then `n` bytes counting up from `seed`. */
function frame(n: number, seed: number, hdr = new Uint8Array(N.HDR_LEN)): Uint8Array {
  const b = new Uint8Array(N.HDR_LEN + n);
  b.set(hdr);
  for (let i = 0; i < n; i++) b[N.HDR_LEN + i] = (seed + i) & 0xff;
  return b;
}

function recvPeer(peer: number): Buffer | undefined {
  const b = Buffer.alloc(70000);
  const n = Number(read(peer, b, b.length));
  return n < 0 ? undefined : b.subarray(0, n);
}

test('configuration: the MAC bhyve derives (or mac=), link up, the offloads offered with a tap', () => {
  const { dev, drv } = setup(0n);
  assert.deepEqual([...dev.mac], [...N.generateMac(5, 0, 'unitvm')]);
  assert.equal(N.formatMac(N.generateMac(5, 0, 'unitvm')).slice(0, 9), '00:a0:98:');
  assert.equal(drv.device(N.C_STATUS, 2), N.S_LINK_UP);
  const f = drv.deviceFeatures();
  for (const b of [N.F_MAC, N.F_STATUS, N.F_MRG_RXBUF, N.F_CSUM, N.F_HOST_TSO4, N.F_GUEST_TSO6]) assert.ok(f & bit(b), `feature ${b}`);
  assert.ok(!(f & bit(N.F_MTU)));
  const m = setup(0n, { [`${PREFIX}.mac`]: '02:00:0a:0b:0c:0d', [`${PREFIX}.mtu`]: '9000' });
  assert.equal(N.formatMac(m.dev.mac), '02:00:0a:0b:0c:0d');
  assert.equal(m.drv.device(N.C_MTU, 2), 9000);
  assert.ok(m.drv.deviceFeatures() & bit(N.F_MTU));
});

test('transmit: a chain goes out as one datagram, header included; bad chains never do', () => {
  const { t, drv, peer } = setup(bit(N.F_MRG_RXBUF));
  const f = frame(100, 7);
  t.ram.set(f.subarray(0, 20), BUFS);
  t.ram.set(f.subarray(20), BUFS + 0x1000);
  drv.submit(1, [[BUFS, 20, false], [BUFS + 0x1000, f.length - 20, false]]);
  t.runDoorbells();
  assert.deepEqual(drv.used(1), [[0, 0]]);
  assert.deepEqual(new Uint8Array(recvPeer(peer)!), f);
  drv.submit(1, [[BUFS, 20, false], [BUFS + 0x1000, 100, true]], 2); // a device-writable buffer
  drv.submit(1, [[BUFS, 10, false]], 4); // shorter than a header and an Ethernet header
  drv.submit(1, [[0x7fffff00, 200, false]], 5); // outside guest memory
  t.ram[BUFS + N.HDR_GSO_TYPE] = N.GSO_TCPV4; // TSO that was not negotiated
  drv.submit(1, [[BUFS, 20, false], [BUFS + 0x1000, 100, false]], 6);
  t.runDoorbells();
  assert.deepEqual(drv.used(1).map(([, len]) => len), [0, 0, 0, 0]);
  assert.equal(recvPeer(peer), undefined, 'nothing more was sent');
});

test('transmit with a tap timer: one batch per run, the rest on the next doorbell or when the timer fires', () => {
  const { t, drv, dev, peer, repoll, timerArmed } = setup(bit(N.F_MRG_RXBUF) | bit(F_RING_INDIRECT_DESC), {}, true);
  // Chains of 40 buffers each (indirect tables): more buffers than one batch takes (4096, less room for a largest chain).
  // Few enough frames for the socket pair's buffer: a full one would hold the write back.
  const CHAINS = 100, PIECES = 40, LEN = 200, TABLES = BUFS + 0x40000;
  for (let i = 0; i < CHAINS; i++) {
    const f = frame(LEN, i), at = BUFS + i * 256, table = TABLES + i * 1024;
    t.ram.set(f, at);
    for (let k = 0, off = 0; k < PIECES; k++) {
      const n = k < PIECES - 1 ? 5 : f.length - off;
      t.dv.setBigUint64(table + 16 * k, BigInt(at + off), true);
      t.dv.setUint32(table + 16 * k + 8, n, true);
      t.dv.setUint16(table + 16 * k + 12, k < PIECES - 1 ? 1 : 0, true);
      t.dv.setUint16(table + 16 * k + 14, k + 1, true);
      off += n;
    }
    assert.ok(16 * PIECES <= 1024);
    drv.submit(1, [[table, 16 * PIECES, false]], i);
    t.dv.setUint16(TXQ_BASE + 16 * i + 12, 4, true); // INDIRECT
  }
  t.runDoorbells();
  const first = drv.used(1).length;
  assert.equal(first, Math.floor((4096 - 1024) / PIECES) + 1, 'one batch');
  assert.ok(timerArmed(), 'the rest waits for the timer or the next doorbell');
  repoll(); // the timer fired
  assert.equal(first + drv.used(1).length, CHAINS);
  assert.ok(!timerArmed());
  for (let i = 0; i < CHAINS; i++) assert.deepEqual(new Uint8Array(recvPeer(peer)!), frame(LEN, i), `frame ${i}, in order`);
  assert.equal(recvPeer(peer), undefined);
  assert.equal(dev.stats.txFrames, CHAINS);
  repoll(); // a late timer finds nothing to do
  assert.deepEqual(drv.used(1), []);
});

test('receive, mergeable buffers: a large GSO frame fills several buffers and says how many', () => {
  const { t, drv, dev, peer, receive } = setup(bit(N.F_MRG_RXBUF) | bit(N.F_GUEST_CSUM) | bit(N.F_GUEST_TSO4));
  assert.deepEqual(offloads.at(-1), [N.HDR_LEN, 0x01 | 0x02]);
  for (let i = 0; i < 48; i++) drv.submit(0, [[BUFS + i * 2048, 1536, true]], i); // 72 KiB: room for 64 KiB GSO frames
  t.runDoorbells();
  const hdr = Uint8Array.of(N.HDR_F_NEEDS_CSUM, N.GSO_TCPV4, 54, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0);
  const f = frame(4000 - N.HDR_LEN, 3, hdr);
  assert.equal(write(peer, f, f.length), f.length);
  receive();
  assert.deepEqual(drv.used(0), [[0, 1536], [1, 1536], [2, 928]]);
  const got = new Uint8Array(4000);
  got.set(t.ram.subarray(BUFS, BUFS + 1536), 0);
  got.set(t.ram.subarray(BUFS + 2048, BUFS + 2048 + 1536), 1536);
  got.set(t.ram.subarray(BUFS + 4096, BUFS + 4096 + 928), 3072);
  assert.equal(got[N.HDR_NUM_BUFFERS], 3);
  got[N.HDR_NUM_BUFFERS] = 0;
  assert.deepEqual(got, f);
  assert.equal(dev.stats.rxFrames, 1);
});

test('receive without buffers pauses until the driver adds some; bad buffers come back empty', () => {
  const { t, drv, peer, receive } = setup(0n);
  const f = frame(60, 1);
  write(peer, f, f.length);
  receive(); // no buffers: the frame waits in the tap
  assert.deepEqual(drv.used(0), []);
  drv.submit(0, [[0x7fffff00, 2048, true]], 0); // outside memory
  drv.submit(0, [[BUFS, 2048, false]], 1); // device-readable
  drv.submit(0, [[BUFS, 2048, true]], 2);
  t.runDoorbells(); // the notification resumes reception
  receive();
  assert.deepEqual(drv.used(0), [[0, 0], [1, 0], [2, f.length]]);
  assert.deepEqual(t.ram.subarray(BUFS + N.HDR_LEN, BUFS + f.length), f.subarray(N.HDR_LEN));
  assert.equal(t.ram[BUFS + N.HDR_NUM_BUFFERS], 1, 'VERSION_1 headers always carry num_buffers');
});

test('options: legacy string, MAC parsing', () => {
  const c = new ConfigTree();
  N.netLegacyConfig(c, 'pci.0.2.0', 'tap0,mac=00:be:fa:76:45:00,mtu=9000');
  assert.equal(c.get('pci.0.2.0.backend'), 'tap0');
  assert.equal(c.get('pci.0.2.0.mac'), '00:be:fa:76:45:00');
  assert.equal(c.get('pci.0.2.0.mtu'), '9000');
  assert.deepEqual([...N.parseMac('0:a0:98:1:2:3')!], [0, 0xa0, 0x98, 1, 2, 3]);
  for (const bad of ['01:00:00:00:00:01', '00:00:00:00:00:00', '00:a0:98:1:2', 'zz:00:00:00:00:01', '000:1:2:3:4:5']) assert.equal(N.parseMac(bad), undefined, bad);
});
