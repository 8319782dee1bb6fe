/**
 * virtio-net, after bhyve's pci_virtio_net.c:
 *   -s N,virtio-net,tapN[,mac=xx:xx:xx:xx:xx:xx][,mtu=N]
 * over the tap back-end (src/backends/net.ts). Queue 0 receives, queue 1
 * transmits; there is no control queue (as in bhyve).
 *
 * Frames keep their virtio-net header on the way through the tap
 * (IFF_VNET_HDR), so the checksum and segmentation offloads the driver
 * negotiates pass through: a 64 KiB TSO frame is one writev, a GSO frame from
 * the host is one readv, straight between the tap and guest buffers.
 *
 * Transmit: on the doorbell (I/O thread), up to 256 chains are taken in one
 * pass over the ring into a ChainBatch (no allocation; iovecs that point
 * straight into guest memory, every address checked), checked under the
 * device lock (device-readable only, a header, a sane size, offloads that
 * were negotiated) and written to the tap with the lock released, in one
 * io_uring submission (one writev each without io_uring); the used index
 * then moves once for the batch. A bad chain is completed without sending
 * anything. The rings have bhyve's 1024 entries.
 *
 * Receive: when the tap is readable (I/O thread, under the lock), enough
 * receive chains are taken to hold the largest frame the driver may get
 * (mergeable buffers: several chains, num_buffers in the header) and the
 * frame is read into them. Chains taken but not filled are held for the next
 * frame: they belong to the I/O thread, which alone receives, and are dropped
 * when the device is reset or the queue moves. Without buffers, reception
 * pauses (the tap queues, then drops) until the driver adds some.
 */
import { IOV_MAX, SEND_BATCH, isTapName, MAX_FRAME, NetError, prepareTap, TapBackend, tapResource, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO } from '../../backends/net.js';
import type { MachineContext } from '../../vmm/context.js';
import { DeviceError, registerPci, type PciBdf } from '../registry.js';
import { bit, F_VERSION_1, VIRTIO_DEV_NET, VIRTIO_ID_NET } from './constants.js';
import { VirtioDevice } from './device.js';
import { ChainBatch, GuestPieces } from './chain-batch.js';
import { txOk } from './net-tx.js';
import { iovWrite } from './iov.js';
import * as N from './net-config.js';
import type { Chain, Virtqueue } from './virtqueue.js';

/** bhyve's VTNET_RINGSZ. */
export const NET_QUEUE_SIZE = 1024;
export const RXQ = 0, TXQ = 1;
/** Chains sent per unlocked stretch (one io_uring submission), and the buffers they may use between them. */
const TX_BATCH = SEND_BATCH;
const TX_PIECES = 4 * IOV_MAX;
/** How long one transmit run may hold the I/O thread while chains keep coming (ms). */
const TX_RUN_MS = 2;
/** When a run ends with chains still waiting: the I/O thread serves its other sources, then runs the queue again after this (ns). */
const TX_REPOLL_NS = 1_000;
/** Frames received per readiness event (others wait for the next round of the I/O loop). */
const RX_BUDGET = 256;
/** Ethernet header and a VLAN tag on top of the MTU. */
const ETH_OVERHEAD = 18;
const CLASS_NETWORK = 0x02;
const HOST_OFFLOADS = [N.F_CSUM, N.F_HOST_TSO4, N.F_HOST_TSO6, N.F_HOST_ECN, N.F_HOST_UFO];
const GUEST_OFFLOADS = [N.F_GUEST_CSUM, N.F_GUEST_TSO4, N.F_GUEST_TSO6, N.F_GUEST_ECN, N.F_GUEST_UFO];

export class VirtioNet extends VirtioDevice {
  readonly mac: Uint8Array;
  private readonly tap: TapBackend | undefined;
  private readonly mtu: number;
  private readonly nst;
  /** Receive chains taken from the ring and not yet filled (I/O thread only), for the ring named by heldKey. */
  private held: Chain[] = [];
  private heldKey = '';
  /** Transmit chains taken per batch (this thread's; only the I/O thread transmits). */
  private txb: ChainBatch | undefined;

  constructor(ctx: MachineContext, prefix: string, bdf: PciBdf) {
    const res = tapResource(ctx, prefix);
    const mtuKey = `${prefix}.mtu`;
    const mtu = ctx.config.has(mtuKey) ? ctx.config.int(mtuKey, 1500, N.MIN_MTU, N.MAX_MTU) : undefined;
    let features = bit(N.F_MAC) | bit(N.F_STATUS) | bit(N.F_MRG_RXBUF);
    if (res) for (const f of [...HOST_OFFLOADS, ...GUEST_OFFLOADS]) features |= bit(f);
    if (mtu !== undefined) features |= bit(N.F_MTU);
    super(ctx, bdf, `virtio-net@${prefix}`, {
      deviceType: VIRTIO_ID_NET, pciDevice: VIRTIO_DEV_NET, classCode: CLASS_NETWORK, subclass: 0,
      queueSizes: [NET_QUEUE_SIZE, NET_QUEUE_SIZE], features, configSize: N.NET_CONFIG_SIZE,
    });
    this.mac = netMac(ctx, prefix, bdf);
    this.mtu = Math.max(mtu ?? 0, res?.mtu ?? 1500);
    this.nst = ctx.arena.struct({ txFrames: 'f64', txDropped: 'f64', rxFrames: 'f64', rxDropped: 'f64' });
    if (res) {
      if (!ctx.watch) throw new DeviceError(`${this.name}: this machine has no I/O thread support`);
      this.tap = new TapBackend(ctx.arena, res);
      ctx.watch(`${this.name}.tap`, this.tap.watchFd, () => this.receive());
      if (this.tap.timerFd !== undefined) ctx.watch(`${this.name}.txtimer`, this.tap.timerFd, () => this.repoll());
    }
    if (ctx.role === 'main') {
      const c = this.devcfgView;
      this.devcfg.set(this.mac, N.C_MAC);
      c.setUint16(N.C_STATUS, N.S_LINK_UP, true);
      c.setUint16(N.C_MAX_PAIRS, 1, true);
      c.setUint16(N.C_MTU, mtu ?? 1500, true);
    }
  }

  /** Counters: frames sent to / received from the tap and frames dropped each way. */
  get stats(): { txFrames: number; txDropped: number; rxFrames: number; rxDropped: number } {
    const s = this.nst;
    return { txFrames: s.txFrames, txDropped: s.txDropped, rxFrames: s.rxFrames, rxDropped: s.rxDropped };
  }

  /** Bytes of the per-frame header for what the driver negotiated. */
  get hdrLen(): number { return this.features().hdr; }

  protected override onDriverOk(): void {
    if (!this.tap) return;
    let off = 0;
    if (this.negotiated(N.F_GUEST_CSUM)) {
      off |= TUN_F_CSUM;
      if (this.negotiated(N.F_GUEST_TSO4)) off |= TUN_F_TSO4;
      if (this.negotiated(N.F_GUEST_TSO6)) off |= TUN_F_TSO6;
      if (this.negotiated(N.F_GUEST_ECN) && off & (TUN_F_TSO4 | TUN_F_TSO6)) off |= TUN_F_TSO_ECN;
      if (this.negotiated(N.F_GUEST_UFO)) off |= TUN_F_UFO;
    }
    try {
      this.tap.configure(this.hdrLen, off);
    } catch (e) {
      this.needsReset((e as Error).message);
    }
    this.tap.resume();
  }

  /** While no driver is ready, frames from the tap are read and dropped (reception must not stay paused). */
  protected override onReset(): void {
    this.tap?.resume(); // undefined when the base constructor resets, before this class is built
  }

  protected onQueue(q: Virtqueue): void {
    if (q.index === TXQ) this.transmit(q);
    else if (q.index === RXQ) this.tap?.resume();
  }

  // ---- transmit -------------------------------------------------------------
  /**
   * Send what the driver made available, with driver notifications off
   * meanwhile, a batch at a time (one io_uring submission, TX_BATCH chains,
   * the used index moved once per batch). With a tap timer, a run lasts at
   * most TX_RUN_MS: when chains are still waiting then, notifications go
   * back on and the timer runs the queue again almost at once, after the I/O
   * thread has served whatever else is ready (the receive queue, other
   * devices). Runs of one batch each, resumed by the guest's next doorbell
   * or a 100 µs timer, reached 0.99-1.01× QEMU's steady-state throughput on
   * the bench guest with 1514-byte frames and 0.98-0.99× with 64 KiB TSO
   * frames; runs of up to 2 ms reach 1.15-1.20× and 1.02-1.06× (README,
   * benchmarks).
   */
  private transmit(q: Virtqueue): void {
    const f = this.features();
    const b = (this.txb ??= new ChainBatch(new GuestPieces(this.ctx.mem), TX_BATCH, TX_PIECES, IOV_MAX));
    const tap = this.tap;
    tap?.disarmTimer(); // this run does what it was armed for
    const bounded = tap?.timerFd !== undefined;
    const until = performance.now() + TX_RUN_MS;
    let pushed = 0, more = false;
    for (;;) {
      q.notifications(false);
      for (;;) {
        const n = q.popBatch(b, TX_BATCH);
        if (n === 0) break;
        let good = 0;
        for (let i = 0; i < n; i++) {
          if (!b.drop[i] && !txOk(b, i, f.lo, f.hdr)) b.drop[i] = 1;
          if (!b.drop[i]) good++;
        }
        let sent = 0;
        if (tap && good > 0) {
          const live = this.unlocked(() => { sent = tap.sendBatch(b); });
          if (!live) return; // reset meanwhile: these chains are no longer ours to complete
        }
        this.nst.txFrames += sent;
        this.nst.txDropped += n - sent;
        q.pushBatch(b, 0);
        pushed += n;
        if (bounded && performance.now() >= until) { more = true; break; }
      }
      q.notifications(true);
      if (q.pending() === 0) break;
      if (more) { tap!.armTimer(TX_REPOLL_NS); break; }
    }
    if (pushed > 0) this.interrupt(q);
  }

  /** The tap's timer: run the transmit queue again (see transmit). */
  private repoll(): void {
    this.tap!.disarmTimer();
    const q = this.queues[TXQ];
    if (this.driverOk && q.ready) this.transmit(q);
  }

  /** The negotiated features as plain numbers: the low 32 bits (every net feature) and VERSION_1. */
  private features(): { lo: number; hdr: number } {
    const all = this.driverFeatures;
    const lo = Number(all & 0xffffffffn);
    const v1 = (all & bit(F_VERSION_1)) !== 0n;
    return { lo, hdr: v1 || lo & (1 << Number(N.F_MRG_RXBUF)) ? N.HDR_LEN : N.HDR_LEN_LEGACY };
  }

  // ---- receive --------------------------------------------------------------
  private receive(): void {
    const tap = this.tap!;
    const q = this.queues[RXQ];
    if (!this.driverOk || !q.ready) {
      this.held = [];
      this.nst.rxDropped += tap.discardAll();
      return;
    }
    const key = `${this.epoch}:${q.addr('desc')}:${q.addr('avail')}:${q.size}`;
    if (key !== this.heldKey) { this.held = []; this.heldKey = key; }
    const f = this.features();
    const has = (b: bigint): boolean => (f.lo & (1 << Number(b))) !== 0;
    const hdr = f.hdr;
    const mrg = has(N.F_MRG_RXBUF);
    const small = hdr + this.mtu + ETH_OVERHEAD;
    const gso = has(N.F_GUEST_TSO4) || has(N.F_GUEST_TSO6) || has(N.F_GUEST_UFO);
    const need = mrg ? (gso ? hdr + MAX_FRAME : small) : 1;
    let pushed = false;
    q.notifications(false);
    for (let budget = RX_BUDGET; budget > 0;) {
      const t = this.take(q, mrg, need, hdr);
      pushed ||= t.pushed;
      if (t.bufs.length === 0 || (mrg && t.cap < Math.min(need, small))) {
        // Starved: ask for a notification, and look once more before pausing.
        q.notifications(true);
        if (q.pending() > 0) { q.notifications(false); continue; }
        tap.pause();
        break;
      }
      const n = tap.recv(t.bufs);
      if (n < 0) break; // -EAGAIN: nothing more waits
      budget--;
      if (n < hdr || n > t.cap) { this.nst.rxDropped++; continue; } // truncated: the chains stay held
      this.deliver(q, n, hdr, mrg, has(N.F_GUEST_CSUM));
      pushed = true;
    }
    if (pushed) this.interrupt(q);
  }

  /** Hold chains until they can take `need` bytes (mergeable) or one chain (not); bad chains go back empty. */
  private take(q: Virtqueue, mrg: boolean, need: number, hdr: number): { bufs: Uint8Array[]; cap: number; pushed: boolean } {
    let cap = 0, views = 0, pushed = false;
    for (const c of this.held) { cap += c.writeBytes; views += c.writable.length; }
    while (mrg ? cap < need : this.held.length === 0) {
      const c = q.pop();
      if (!c) break;
      if (c.error || c.readable.length > 0 || c.writeBytes < (mrg ? 1 : hdr) || views + c.writable.length > IOV_MAX) {
        q.push(c.head, 0);
        this.nst.rxDropped++;
        pushed = true;
        continue;
      }
      this.held.push(c);
      cap += c.writeBytes;
      views += c.writable.length;
    }
    const use = mrg ? this.held : this.held.slice(0, 1);
    return { bufs: use.flatMap((c) => c.writable), cap: mrg ? cap : (use[0]?.writeBytes ?? 0), pushed };
  }

  /** A frame of `n` bytes is in the held chains: fix its header and hand the chains it filled to the driver. */
  private deliver(q: Virtqueue, n: number, hdr: number, mrg: boolean, guestCsum: boolean): void {
    const used: [Chain, number][] = [];
    for (let left = n, i = 0; left > 0 && i < this.held.length; i++) {
      const k = Math.min(left, this.held[i].writeBytes);
      used.push([this.held[i], k]);
      left -= k;
      if (!mrg) break;
    }
    const head = used.flatMap(([c]) => c.writable);
    if (hdr === N.HDR_LEN) iovWrite(head, N.HDR_NUM_BUFFERS, Uint8Array.of(used.length & 0xff, used.length >> 8));
    // The tap may flag DATA_VALID; a driver without GUEST_CSUM must see no flags.
    if (!guestCsum) iovWrite(head, N.HDR_FLAGS, Uint8Array.of(0));
    this.held.splice(0, used.length);
    for (const [c, k] of used) q.push(c.head, k);
    this.nst.rxFrames++;
  }
}

/** The MAC from `mac=`, or bhyve's derived one. */
function netMac(ctx: MachineContext, prefix: string, bdf: PciBdf): Uint8Array {
  const v = ctx.config.get(`${prefix}.mac`);
  if (v === undefined) return N.generateMac(bdf.slot, bdf.func, ctx.config.get('name') ?? '');
  const mac = N.parseMac(v);
  if (!mac) throw new DeviceError(`virtio-net at ${prefix}: bad MAC address '${v}' (expected xx:xx:xx:xx:xx:xx, unicast, not all zero)`);
  return mac;
}

registerPci({
  name: 'virtio-net',
  options: { ...N.NET_OPTION_KEYS },
  legacyConfig: N.netLegacyConfig,
  prepare(ctx, prefix, bdf) {
    netMac(ctx, prefix, bdf);
    const mtuKey = `${prefix}.mtu`;
    if (ctx.config.has(mtuKey)) ctx.config.int(mtuKey, 1500, N.MIN_MTU, N.MAX_MTU);
    const backend = ctx.config.get(`${prefix}.backend`);
    if (backend === undefined) return; // bhyve allows an unconnected interface
    if (!/^(tap|vmnet)/.test(backend)) throw new DeviceError(`virtio-net at ${prefix}: unknown network back-end '${backend}' (expected tapN or vmnetN)`);
    if (!isTapName(backend)) throw new DeviceError(`virtio-net at ${prefix}: bad tap name '${backend}'`);
    try {
      prepareTap(ctx, prefix, backend);
    } catch (e) {
      if (e instanceof NetError) throw new DeviceError(`virtio-net at ${prefix}: ${e.message}`, { cause: e });
      throw e;
    }
  },
  create: (ctx, prefix, bdf) => new VirtioNet(ctx, prefix, bdf),
});
