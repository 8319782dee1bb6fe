/**
 * The network back-end: a Linux tap interface (bhyve's `tapN`, also
 * `vmnetN`), opened once on the main thread through /dev/net/tun with
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR. The tap is created when missing
 * (and disappears with the VMM) or attached to when it exists; its link is
 * brought up. Frames carry the virtio-net header, so checksum and
 * segmentation offloads pass through in both directions (TUNSETVNETHDRSZ,
 * TUNSETOFFLOAD set from what the guest negotiated).
 *
 * Readiness: the tap fd sits in an epoll set of its own, and that epoll fd is
 * what the device hands to ctx.watch. Pausing removes the tap from the set
 * (the device has no receive buffers: the kernel queues and then drops, as
 * bhyve's netbe_rx_disable does); resuming adds it back. The paused flag
 * lives in the arena, so any thread may pause or resume.
 *
 * Frames move with readv/writev straight between the tap and guest memory
 * views: no per-packet copy on the host side.
 */
import type { MachineContext } from '../vmm/context.js';
import type { ChainBatch } from '../devices/virtio/chain-batch.js';
import { WritevRing } from './uring.js';
import type { Arena } from '../vmm/shared.js';
import {
  close, epoll_create1, epoll_ctl, errno, ioctlInt, ioctlPtr, koffi, open, read, strerror,
  EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLLIN, EPOLL_EVENT_SIZE, O_CLOEXEC, O_RDWR,
} from '../kvm/libc.js';

export class NetError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NetError';
  }
}

const libc = koffi.load('libc.so.6');
const readv = libc.func('long readv(int fd, void *iov, int iovcnt)');
const writev = libc.func('long writev(int fd, void *iov, int iovcnt)');
/** writev with the iovec array given by address (a ChainBatch's). */
const writevAt = libc.func('long writev(int fd, uintptr_t iov, int iovcnt)');
const socket = libc.func('int socket(int domain, int type, int protocol)');
const timerfdCreate = libc.func('int timerfd_create(int clockid, int flags)');
const timerfdSettime = libc.func('int timerfd_settime(int fd, int flags, void *next, void *prev)');

const TUN_PATH = '/dev/net/tun';
const O_NONBLOCK = 0o4000;
const CLOCK_MONOTONIC = 1, TFD_NONBLOCK = 0o4000, TFD_CLOEXEC = 0o2000000;
/** struct itimerspec: interval {sec, nsec}, value {sec, nsec}. */
const ITIMERSPEC_SIZE = 32, IT_VALUE_SEC = 16, IT_VALUE_NSEC = 24;
// <linux/if_tun.h>
const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETVNETHDRSZ = 0x400454d8;
const TUNSETSNDBUF = 0x400454d4;
/** The tap's send buffer: unlimited (as QEMU sets it), so a write never waits for room. */
const SNDBUF_UNLIMITED = 0x7fffffff;
const IFF_TAP = 0x0002, IFF_NO_PI = 0x1000, IFF_VNET_HDR = 0x4000;
export const TUN_F_CSUM = 0x01, TUN_F_TSO4 = 0x02, TUN_F_TSO6 = 0x04, TUN_F_TSO_ECN = 0x08, TUN_F_UFO = 0x10;
// <linux/sockios.h>, <net/if.h>
const SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914, SIOCGIFMTU = 0x8921;
const IFF_UP = 0x1;
const AF_INET = 2, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000;
const IFREQ_SIZE = 40, IFNAMSIZ = 16, IFR_DATA = 16;
/** Largest iovec count for readv/writev (UIO_MAXIOV). */
export const IOV_MAX = 1024;
const IOVEC_SIZE = 16;
/** Frames per io_uring submission. */
export const SEND_BATCH = 256;
/** A frame the tap can hand over: a 64 KiB GSO packet, its Ethernet header and a VLAN tag. */
export const MAX_FRAME = 65535 + 14 + 4;

/** What the main thread leaves in ctx.resources (structured-cloneable). */
export interface TapResource {
  kind: 'tap';
  ifname: string;
  fd: number;
  /** An epoll set holding only the tap fd: the fd the device watches. */
  epfd: number;
  mtu: number;
  /** A timerfd for the device's own use (re-polling the transmit queue); absent: none. */
  timer?: number;
}

const resourceKey = (prefix: string): string => `${prefix}.net`;

/** bhyve accepts `tap...` and `vmnet...` back-end names; Linux names are at most 15 bytes. */
export function isTapName(name: string): boolean {
  return /^(tap|vmnet)[A-Za-z0-9_.-]*$/.test(name) && name.length < IFNAMSIZ;
}

function ifreq(name: string): Buffer {
  const b = Buffer.alloc(IFREQ_SIZE);
  b.write(name, 0, IFNAMSIZ - 1, 'latin1');
  return b;
}

/** Open (create or attach) tap `name` and bring it up. Throws NetError with one line naming the tap. */
export function openTap(name: string): TapResource {
  if (!isTapName(name)) throw new NetError(`'${name}' is not a tap interface name (tapN or vmnetN, at most 15 characters)`);
  const fail = (what: string, e = errno()): NetError => new NetError(`tap ${name}: ${what} (${strerror(e)})`);
  const fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC, 0) as number;
  if (fd < 0) throw fail(`cannot open ${TUN_PATH}`);
  let sock = -1, epfd = -1, timer = -1;
  try {
    const req = ifreq(name);
    req.writeUInt16LE(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, IFR_DATA);
    if (ioctlPtr(fd, TUNSETIFF, req) < 0) throw fail('cannot create or attach to the interface');
    setVnetHdrSize(fd, 12, name);
    ioctlPtr(fd, TUNSETSNDBUF, Int32Array.of(SNDBUF_UNLIMITED)); // best effort: the default only bounds frames in flight
    setOffload(fd, 0, name);
    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
    if (sock < 0) throw fail('cannot open a socket to configure the interface');
    const fl = ifreq(name);
    if (ioctlPtr(sock, SIOCGIFFLAGS, fl) < 0) throw fail('cannot read the interface flags');
    fl.writeUInt16LE(fl.readUInt16LE(IFR_DATA) | IFF_UP, IFR_DATA);
    if (ioctlPtr(sock, SIOCSIFFLAGS, fl) < 0) throw fail('cannot bring the link up');
    const m = ifreq(name);
    const mtu = ioctlPtr(sock, SIOCGIFMTU, m) < 0 ? 1500 : m.readInt32LE(IFR_DATA);
    epfd = epoll_create1(EPOLL_CLOEXEC) as number;
    if (epfd < 0) throw fail('cannot create an epoll set');
    if (epollAdd(epfd, fd) < 0) throw fail('cannot watch the tap');
    timer = timerfdCreate(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC) as number;
    if (timer < 0) throw fail('cannot create a timer');
    return { kind: 'tap', ifname: name, fd, epfd, mtu, timer };
  } catch (e) {
    close(fd);
    if (epfd >= 0) close(epfd);
    if (timer >= 0) close(timer);
    throw e;
  } finally {
    if (sock >= 0) close(sock);
  }
}

function epollAdd(epfd: number, fd: number): number {
  const ev = Buffer.alloc(EPOLL_EVENT_SIZE);
  ev.writeUInt32LE(EPOLLIN, 0);
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, ev) as number;
}

function setVnetHdrSize(fd: number, size: number, name: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(size, 0);
  if (ioctlPtr(fd, TUNSETVNETHDRSZ, b) < 0) throw new NetError(`tap ${name}: cannot set the virtio-net header size (${strerror(errno())})`);
}

function setOffload(fd: number, flags: number, name: string): void {
  if (ioctlInt(fd, TUNSETOFFLOAD, flags) < 0) throw new NetError(`tap ${name}: cannot set offloads 0x${flags.toString(16)} (${strerror(errno())})`);
}

/** Main thread, from a device's prepare(): open the tap and publish it for every thread. */
export function prepareTap(ctx: MachineContext, prefix: string, name: string): TapResource {
  const res = openTap(name);
  ctx.resources.set(resourceKey(prefix), res);
  return res;
}

export function tapResource(ctx: MachineContext, prefix: string): TapResource | undefined {
  const r = ctx.resources.get(resourceKey(prefix)) as TapResource | undefined;
  return r?.kind === 'tap' ? r : undefined;
}

/** The tap as one thread uses it: sends and receives guest buffers, pauses and resumes reception. */
export class TapBackend {
  private readonly st;
  private iov = Buffer.alloc(64 * IOVEC_SIZE);
  private scratch: Buffer | undefined;
  /** This thread's io_uring for bursts (made on first use; null: unusable here). */
  private ring: WritevRing | null | undefined;
  private readonly timerSpec = Buffer.alloc(ITIMERSPEC_SIZE);
  private readonly expiries = Buffer.alloc(8);

  constructor(arena: Arena, readonly res: TapResource) {
    this.st = arena.struct({ paused: 'u8', timerArmed: 'u8' });
  }

  get fd(): number { return this.res.fd; }
  /** The fd to hand to ctx.watch: readable while a frame waits and reception is not paused. */
  get watchFd(): number { return this.res.epfd; }
  get paused(): boolean { return this.st.paused === 1; }
  /** The timerfd to hand to ctx.watch (readable once armTimer's delay has passed), if the resource has one. */
  get timerFd(): number | undefined { return this.res.timer; }

  /** Make timerFd readable in `ns` nanoseconds (one shot; replaces an earlier arming). */
  armTimer(ns: number): void {
    if (this.res.timer === undefined) return;
    this.setTimer(Math.floor(ns / 1e9), Math.max(1, Math.floor(ns % 1e9)));
    this.st.timerArmed = 1;
  }

  /** Cancel an armed timer and consume an expiry it had (no-op when it is not armed). */
  disarmTimer(): void {
    if (!this.st.timerArmed || this.res.timer === undefined) return;
    this.setTimer(0, 0);
    read(this.res.timer, this.expiries, 8);
    this.st.timerArmed = 0;
  }

  private setTimer(sec: number, nsec: number): void {
    const t = this.timerSpec;
    t.writeBigInt64LE(BigInt(sec), IT_VALUE_SEC);
    t.writeBigInt64LE(BigInt(nsec), IT_VALUE_NSEC);
    timerfdSettime(this.res.timer!, 0, t, null);
  }

  /** Header size and receive offloads (TUN_F_*) for what the guest negotiated. */
  configure(hdrLen: number, offload: number): void {
    setVnetHdrSize(this.res.fd, hdrLen, this.res.ifname);
    setOffload(this.res.fd, offload, this.res.ifname);
  }

  /** Stop reporting readiness (no receive buffers). */
  pause(): void {
    if (this.st.paused) return;
    epoll_ctl(this.res.epfd, EPOLL_CTL_DEL, this.res.fd, null);
    this.st.paused = 1;
  }

  resume(): void {
    if (!this.st.paused) return;
    epollAdd(this.res.epfd, this.res.fd);
    this.st.paused = 0;
  }

  /** Write one frame (virtio-net header first); returns the bytes written or -errno. */
  send(bufs: readonly Uint8Array[]): number {
    return this.io(writev, bufs);
  }

  /**
   * Write every chain of `b` not marked `drop` (its readable buffers: one
   * frame, virtio-net header first) with as few system calls as possible:
   * io_uring when the kernel has it, else one writev each. Each chain's
   * bytes or -errno go to b.result; returns how many frames were written.
   */
  sendBatch(b: ChainBatch): number {
    if (this.ring === undefined) this.ring = WritevRing.create(SEND_BATCH, this.res.fd) ?? null;
    if (this.ring && b.count <= this.ring.entries) {
      const ok = this.ring.writeBatch(b);
      if (ok >= 0) return ok;
    }
    let ok = 0;
    for (let i = 0; i < b.count; i++) {
      if (b.drop[i]) continue;
      const n = b.nRead[i];
      let r = -22; // EINVAL
      if (n > 0 && n <= IOV_MAX) {
        r = Number(writevAt(this.res.fd, b.iovAddr + b.first[i] * IOVEC_SIZE, n));
        if (r < 0) r = -errno();
      }
      b.result[i] = r;
      if (r >= 0) ok++;
    }
    return ok;
  }

  /** Read one frame into `bufs`; returns its length (larger than the buffers when truncated), or -errno (-EAGAIN: none). */
  recv(bufs: readonly Uint8Array[]): number {
    return this.io(readv, bufs);
  }

  /** Read and drop every waiting frame (the driver is not ready); returns how many. */
  discardAll(): number {
    this.scratch ??= Buffer.alloc(MAX_FRAME + 12);
    let n = 0;
    while (this.recv([this.scratch]) >= 0) n++;
    return n;
  }

  private io(fn: typeof readv, bufs: readonly Uint8Array[]): number {
    const n = bufs.length;
    if (n === 0 || n > IOV_MAX) return -22; // EINVAL
    if (this.iov.length < n * IOVEC_SIZE) this.iov = Buffer.alloc(IOV_MAX * IOVEC_SIZE);
    const iov = this.iov;
    for (let i = 0; i < n; i++) {
      const b = bufs[i];
      iov.writeBigUInt64LE(b.length ? koffi.address(b) : 0n, i * IOVEC_SIZE);
      iov.writeUInt32LE(b.length, i * IOVEC_SIZE + 8);
      iov.writeUInt32LE(0, i * IOVEC_SIZE + 12);
    }
    const r = Number(fn(this.res.fd, iov, n));
    return r < 0 ? -errno() : r;
  }
}


