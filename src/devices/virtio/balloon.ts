/**
 * virtio-balloon (`-s N,virtio-balloon[,pages=N][,stats_interval=S]`), the
 * memory balloon virtio(4) lists (viomb). bhyve has none upstream; this
 * follows the virtio specification:
 *
 *  - config: num_pages (the target, 4 KiB pages, set by the host: config key
 *    `pages`, or setTarget()) and actual (written by the driver);
 *  - inflateq: arrays of 32-bit page frame numbers (4 KiB pages) the driver
 *    gives up. Each one inside guest RAM (not ROM or device memory) is
 *    returned to the host with madvise(MADV_DONTNEED) on the host mapping, so
 *    the VMM's resident set shrinks; the guest reads zeros there later;
 *  - deflateq: pages the driver takes back (nothing to do: touching them
 *    faults fresh memory in);
 *  - statsq: the driver's statistics (tag u16, value u64 entries). The
 *    device keeps the buffer and hands it back to ask for fresh figures every
 *    `stats_interval` seconds (0: never).
 *
 * Page frame numbers outside RAM are counted and ignored. With wired memory
 * (-S) the kernel refuses to drop locked pages and nothing is released.
 */
import { madvise, MADV_DONTNEED } from '../../kvm/libc.js';
import type { HostTimer, MachineContext } from '../../vmm/context.js';
import { registerPci, type PciBdf } from '../registry.js';
import { VIRTIO_DEV_BALLOON, VIRTIO_ID_BALLOON, bit } from './constants.js';
import { VirtioDevice } from './device.js';
import { iovLength, iovRead } from './iov.js';
import type { Virtqueue } from './virtqueue.js';

export const F_MUST_TELL_HOST = 0n, F_STATS_VQ = 1n, F_DEFLATE_ON_OOM = 2n;
export const INFLATEQ = 0, DEFLATEQ = 1, STATSQ = 2;
export const BALLOON_QUEUE_SIZE = 128;
export const PAGE = 4096;
// struct virtio_balloon_config
export const C_NUM_PAGES = 0, C_ACTUAL = 4;
export const BALLOON_CONFIG_SIZE = 8;
/** struct virtio_balloon_stat: tag u16, val u64 (packed). */
const STAT_SIZE = 10;
/** Statistics entries read from one buffer (the driver sends about ten). */
const MAX_STATS = 64;
/** Frame numbers handled per step, and at most per chain (4 GiB of pages). */
const PFN_CHUNK = 16384;
const MAX_PFNS_PER_CHAIN = 1 << 20;
export const STAT_TAGS = 16;
const CLASS_OTHER = 0xff;

/** What a balloon has done, for tests and a future control interface. */
export interface BalloonCounters { inflated: number; released: number; deflated: number; badPfns: number }

export class VirtioBalloon extends VirtioDevice {
  private readonly bst;
  /** Last statistics from the driver, by tag (f64 each; NaN when not reported). */
  private readonly statsView: DataView;
  private readonly statsTimer: HostTimer;
  private readonly statsInterval: number;

  constructor(ctx: MachineContext, prefix: string, bdf: PciBdf) {
    super(ctx, bdf, `virtio-balloon@${prefix}`, {
      deviceType: VIRTIO_ID_BALLOON, pciDevice: VIRTIO_DEV_BALLOON, classCode: CLASS_OTHER, subclass: 0,
      queueSizes: [BALLOON_QUEUE_SIZE, BALLOON_QUEUE_SIZE, BALLOON_QUEUE_SIZE],
      features: bit(F_STATS_VQ) | bit(F_DEFLATE_ON_OOM), configSize: BALLOON_CONFIG_SIZE,
    });
    this.bst = ctx.arena.struct({
      inflated: 'f64', released: 'f64', deflated: 'f64', badPfns: 'f64', statsHeld: 'u8', statsHead: 'u16',
    });
    const s = ctx.arena.bytes(STAT_TAGS * 8);
    this.statsView = new DataView(s.buffer, s.byteOffset, s.byteLength);
    this.statsInterval = ctx.config.int(`${prefix}.stats_interval`, 0, 0, 86400);
    this.statsTimer = ctx.timer(`${this.name}.stats`, () => this.requestStats());
    if (ctx.role === 'main') {
      this.devcfgView.setUint32(C_NUM_PAGES, ctx.config.int(`${prefix}.pages`, 0, 0, 0xffffffff), true);
      for (let t = 0; t < STAT_TAGS; t++) this.statsView.setFloat64(t * 8, NaN, true);
    }
  }

  get counters(): BalloonCounters {
    const b = this.bst;
    return { inflated: b.inflated, released: b.released, deflated: b.deflated, badPfns: b.badPfns };
  }

  /** The driver's latest figure for a statistics tag (VIRTIO_BALLOON_S_*), or undefined. */
  stat(tag: number): number | undefined {
    if (tag < 0 || tag >= STAT_TAGS) return undefined;
    const v = this.statsView.getFloat64(tag * 8, true);
    return Number.isNaN(v) ? undefined : v;
  }

  get target(): number { return this.devcfgView.getUint32(C_NUM_PAGES, true); }
  get actual(): number { return this.devcfgView.getUint32(C_ACTUAL, true); }

  /** Ask the driver to hold `pages` 4 KiB pages (any thread, under the lock). */
  setTarget(pages: number): void {
    this.devcfgView.setUint32(C_NUM_PAGES, Math.max(0, Math.min(0xffffffff, Math.floor(pages))), true);
    this.configChanged();
  }

  /** The driver may write `actual`, and nothing else. */
  protected override configWrite(off: number, size: number, value: number): void {
    if (off < C_ACTUAL || off + size > C_ACTUAL + 4) return;
    const c = this.devcfgView;
    if (size === 4) c.setUint32(off, value >>> 0, true);
    else if (size === 2) c.setUint16(off, value & 0xffff, true);
    else c.setUint8(off, value & 0xff);
  }

  protected override onReset(): void {
    if (this.bst === undefined) return; // the base constructor resets before this class is built
    this.bst.statsHeld = 0;
    this.statsTimer.cancel();
  }

  protected onQueue(q: Virtqueue): void {
    if (q.index === INFLATEQ) this.serve(q, (c) => { if (!c.error) this.inflate(c.readable); return 0; });
    else if (q.index === DEFLATEQ) this.serve(q, (c) => { if (!c.error) this.bst.deflated += Math.floor(iovLength(c.readable) / 4); return 0; });
    else if (q.index === STATSQ) this.takeStats(q);
  }

  /** Release every page named in the buffers, a bounded chunk at a time: runs of consecutive frames become one madvise. */
  private inflate(bufs: Uint8Array[]): void {
    const total = Math.min(Math.floor(iovLength(bufs) / 4), MAX_PFNS_PER_CHAIN);
    for (let at = 0; at < total; at += PFN_CHUNK) {
      const n = Math.min(PFN_CHUNK, total - at);
      const bytes = iovRead(bufs, at * 4, n * 4);
      const dv = new DataView(bytes.buffer);
      const pfns = new Float64Array(n);
      for (let i = 0; i < n; i++) pfns[i] = dv.getUint32(i * 4, true);
      pfns.sort();
      this.bst.inflated += n;
      for (let i = 0; i < n;) {
        let j = i + 1;
        while (j < n && pfns[j] <= pfns[j - 1] + 1) j++;
        this.release(pfns[i], pfns[j - 1] - pfns[i] + 1, j - i);
        i = j;
      }
    }
  }

  /** Drop `count` pages from frame `first`, piece by piece within RAM segments; `listed` frames were named. */
  private release(first: number, count: number, listed: number): void {
    const start = first * PAGE, end = (first + count) * PAGE;
    let done = 0;
    for (const s of this.ctx.mem.segments) {
      if (s.devmem || s.readonly) continue;
      const a = Math.max(start, s.gpa), b = Math.min(end, s.gpa + s.size);
      if (a >= b) continue;
      const host = s.host + BigInt(a - s.gpa);
      if (madvise(host, b - a, MADV_DONTNEED) === 0) this.bst.released += (b - a) / PAGE;
      done += (b - a) / PAGE;
    }
    // Frames outside RAM (duplicates in a run count once: `listed` may exceed `count`).
    this.bst.badPfns += Math.max(0, Math.min(listed, count) - done);
  }

  /** Record the driver's statistics and keep its buffer until fresh figures are wanted. */
  private takeStats(q: Virtqueue): void {
    for (let c = q.pop(); c; c = q.pop()) {
      if (this.bst.statsHeld) q.push(this.bst.statsHead, 0); // a driver should keep one buffer out; return the older
      if (!c.error) {
        const raw = iovRead(c.readable, 0, Math.min(MAX_STATS, Math.floor(c.readBytes / STAT_SIZE)) * STAT_SIZE);
        const dv = new DataView(raw.buffer);
        for (let o = 0; o < raw.length; o += STAT_SIZE) {
          const tag = dv.getUint16(o, true);
          if (tag < STAT_TAGS) this.statsView.setFloat64(tag * 8, Number(dv.getBigUint64(o + 2, true)), true);
        }
      }
      this.bst.statsHead = c.head;
      this.bst.statsHeld = 1;
    }
    this.interrupt(q);
    if (this.statsInterval > 0) this.statsTimer.arm(this.statsInterval * 1e9);
  }

  /** Hand the statistics buffer back: the driver refills and returns it. */
  requestStats(): void {
    const q = this.queues[STATSQ];
    if (!this.bst.statsHeld || !this.driverOk || !q.ready) return;
    this.bst.statsHeld = 0;
    q.push(this.bst.statsHead, 0);
    this.interrupt(q);
  }
}

registerPci({
  name: 'virtio-balloon',
  options: { pages: 'int', stats_interval: 'int' },
  returnsPages: true,
  create: (ctx, prefix, bdf) => new VirtioBalloon(ctx, prefix, bdf),
});
