/**
 * virtio-blk, after bhyve's pci_virtio_block.c:
 *   -s N,virtio-blk,PATH[,ro][,nocache][,direct][,sectorsize=L[/P]][,ser=ID][,nodelete]
 * over the shared block back-end (src/backends/block.ts). Requests are read
 * from their chains under the device lock, the disk I/O runs on the I/O
 * thread with the lock released, and completions go back under the lock
 * (dropped when the driver reset the device meanwhile). A flush completes
 * after fdatasync; a write to a read-only disk gets VIRTIO_BLK_S_IOERR and
 * never reaches the file; a malformed chain gets IOERR in its status byte.
 */
import { blockBackend, blockLegacyConfig, blockResource, BlockError, BLOCK_OPTION_KEYS, parseBlockOptions, prepareBlock, type BlockBackend } from '../../backends/block.js';
import type { MachineContext } from '../../vmm/context.js';
import { DeviceError, registerPci, type PciBdf } from '../registry.js';
import { VIRTIO_DEV_BLOCK, VIRTIO_ID_BLOCK, F_ANY_LAYOUT, bit } from './constants.js';
import { VirtioDevice } from './device.js';
import { iovLength, iovRead, iovSlice } from './iov.js';
import type { Chain, Virtqueue } from './virtqueue.js';

// Feature bits
const F_SEG_MAX = 2n, F_RO = 5n, F_BLK_SIZE = 6n, F_FLUSH = 9n, F_TOPOLOGY = 10n, F_DISCARD = 13n, F_WRITE_ZEROES = 14n;
// Request types and status
export const T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13;
export const S_OK = 0, S_IOERR = 1, S_UNSUPP = 2;
const WZ_UNMAP = 1;
// struct virtio_blk_config offsets
const C_CAPACITY = 0, C_SEG_MAX = 12, C_BLK_SIZE = 20, C_PHYS_EXP = 24, C_MIN_IO = 26, C_OPT_IO = 28;
const C_NUM_QUEUES = 34, C_MAX_DISCARD_SECTORS = 36, C_MAX_DISCARD_SEG = 40, C_DISCARD_ALIGN = 44;
const C_MAX_WZ_SECTORS = 48, C_MAX_WZ_SEG = 52, C_WZ_MAY_UNMAP = 56;
export const BLK_CONFIG_SIZE = 60;

export const BLK_QUEUE_SIZE = 256;
const SECTOR = 512;
const HEADER = 16;
const SEGMENT = 16;
const ID_BYTES = 20;
/** Largest discard or write-zeroes request, in sectors (64 MiB). */
const MAX_RANGE_SECTORS = 131072;
const ZERO_CHUNK = 1 << 20;

interface Request { chain: Chain; type: number; sector: number; status: number; written: number }

export class VirtioBlk extends VirtioDevice {
  private readonly disk: BlockBackend;
  private readonly isDevice: boolean;
  private zeros: Uint8Array | undefined;

  constructor(ctx: MachineContext, prefix: string, bdf: PciBdf) {
    const res = blockResource(ctx, prefix);
    if (!res) throw new DeviceError(`virtio-blk at ${prefix}: no disk image (give -s slot,virtio-blk,PATH)`);
    let features = bit(F_SEG_MAX) | bit(F_BLK_SIZE) | bit(F_FLUSH) | bit(F_TOPOLOGY) | bit(F_ANY_LAYOUT);
    if (res.readonly) features |= bit(F_RO);
    else features |= bit(F_WRITE_ZEROES);
    if (res.canDiscard) features |= bit(F_DISCARD);
    super(ctx, bdf, `virtio-blk@${prefix}`, {
      deviceType: VIRTIO_ID_BLOCK, pciDevice: VIRTIO_DEV_BLOCK, classCode: 0x01, subclass: 0x80,
      queueSizes: [BLK_QUEUE_SIZE], features, configSize: BLK_CONFIG_SIZE,
    });
    this.disk = blockBackend(ctx, prefix)!;
    this.isDevice = res.isDevice;
    if (ctx.role === 'main') this.fillConfig();
  }

  private fillConfig(): void {
    const c = this.devcfgView, d = this.disk;
    const logical = d.logicalSectorSize, physical = d.physicalSectorSize;
    c.setBigUint64(C_CAPACITY, BigInt(Math.floor(d.size / SECTOR)), true);
    c.setUint32(C_SEG_MAX, BLK_QUEUE_SIZE - 2, true);
    c.setUint32(C_BLK_SIZE, logical, true);
    c.setUint8(C_PHYS_EXP, Math.log2(physical / logical));
    c.setUint16(C_MIN_IO, physical / logical, true);
    c.setUint32(C_OPT_IO, 0, true);
    c.setUint16(C_NUM_QUEUES, 1, true);
    c.setUint32(C_MAX_DISCARD_SECTORS, MAX_RANGE_SECTORS, true);
    c.setUint32(C_MAX_DISCARD_SEG, 1, true);
    c.setUint32(C_DISCARD_ALIGN, logical / SECTOR, true);
    c.setUint32(C_MAX_WZ_SECTORS, MAX_RANGE_SECTORS, true);
    c.setUint32(C_MAX_WZ_SEG, 1, true);
    c.setUint8(C_WZ_MAY_UNMAP, d.canDiscard && !this.isDevice ? 1 : 0);
  }

  /**
   * Take every available request, then run them one at a time, completing
   * (and interrupting, unless the driver suppresses it) each as soon as its
   * I/O is done, as QEMU does: the driver reaps and refills while the rest
   * of the batch is still in progress.
   */
  protected onQueue(q: Virtqueue): void {
    for (;;) {
      q.notifications(false);
      const reqs: Request[] = [];
      for (let c = q.pop(); c; c = q.pop()) reqs.push(this.parse(c));
      for (const r of reqs) {
        if (!this.unlocked(() => this.execute(r))) return;
        q.push(r.chain.head, this.complete(r));
        this.interrupt(q);
      }
      q.notifications(true);
      if (q.pending() === 0) break;
    }
  }

  /** Read the request header (under the lock: the chain views are fixed from here on). */
  private parse(c: Chain): Request {
    const r: Request = { chain: c, type: -1, sector: 0, status: S_IOERR, written: 0 };
    if (c.error || c.readBytes < HEADER || c.writeBytes < 1) return r;
    const h = iovRead(c.readable, 0, HEADER);
    const dv = new DataView(h.buffer);
    r.type = dv.getUint32(0, true);
    const sector = dv.getBigUint64(8, true);
    r.sector = sector > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(sector);
    return r;
  }

  /** Write the status byte (the last writable byte); returns the used length. */
  private complete(r: Request): number {
    const w = r.chain.writable;
    const last = w[w.length - 1];
    if (!last || last.length === 0) return 0;
    last[last.length - 1] = r.status;
    return r.written + 1;
  }

  /** The disk work of one request (I/O thread, without the lock). */
  private execute(r: Request): void {
    if (r.type < 0) return;
    try {
      r.status = this.run(r);
    } catch {
      // BlockError from the back-end, or a range the host calls refuse: the guest sees an I/O error.
      r.status = S_IOERR;
      r.written = 0;
    }
  }

  private run(r: Request): number {
    const c = r.chain, d = this.disk;
    const dataOut = iovSlice(c.readable, HEADER, c.readBytes - HEADER);
    const dataIn = iovSlice(c.writable, 0, c.writeBytes - 1);
    switch (r.type) {
      case T_IN: {
        const len = c.writeBytes - 1;
        if (!this.inRange(r.sector, len)) return S_IOERR;
        let off = r.sector * SECTOR;
        for (const b of dataIn) { d.read(off, b); off += b.length; }
        r.written = len;
        return S_OK;
      }
      case T_OUT: {
        const len = c.readBytes - HEADER;
        if (d.readonly || !this.inRange(r.sector, len)) return S_IOERR;
        let off = r.sector * SECTOR;
        for (const b of dataOut) { d.write(off, b); off += b.length; }
        return S_OK;
      }
      case T_FLUSH:
        d.flush();
        return S_OK;
      case T_GET_ID: {
        const id = new Uint8Array(ID_BYTES);
        id.set(new TextEncoder().encode(d.serial).subarray(0, ID_BYTES));
        let n = 0;
        for (const b of dataIn) { const k = Math.min(b.length, ID_BYTES - n); b.set(id.subarray(n, n + k)); n += k; }
        r.written = n;
        return S_OK;
      }
      case T_DISCARD:
      case T_WRITE_ZEROES:
        return this.ranges(r.type, dataOut);
      default:
        return S_UNSUPP;
    }
  }

  /** DISCARD and WRITE_ZEROES: one 16-byte segment {sector u64, num u32, flags u32}. */
  private ranges(type: number, data: Uint8Array[]): number {
    const d = this.disk;
    const discard = type === T_DISCARD;
    if (discard ? !this.negotiated(F_DISCARD) : !this.negotiated(F_WRITE_ZEROES)) return S_UNSUPP;
    if (d.readonly || iovLength(data) !== SEGMENT) return S_IOERR;
    const dv = new DataView(iovRead(data, 0, SEGMENT).buffer);
    const sector = dv.getBigUint64(0, true), num = dv.getUint32(8, true), flags = dv.getUint32(12, true);
    if (sector > BigInt(Number.MAX_SAFE_INTEGER) || num > MAX_RANGE_SECTORS) return S_IOERR;
    if (discard ? flags !== 0 : (flags & ~WZ_UNMAP) !== 0) return S_UNSUPP;
    const first = Number(sector);
    if (!this.inRange(first, num * SECTOR)) return S_IOERR;
    if (discard || (flags & WZ_UNMAP && d.canDiscard && !this.isDevice)) {
      d.discard(first * SECTOR, num * SECTOR);
      return S_OK;
    }
    this.zeros ??= new Uint8Array(ZERO_CHUNK);
    for (let done = 0; done < num * SECTOR; done += ZERO_CHUNK) {
      d.write(first * SECTOR + done, this.zeros.subarray(0, Math.min(ZERO_CHUNK, num * SECTOR - done)));
    }
    return S_OK;
  }

  private inRange(sector: number, len: number): boolean {
    return sector >= 0 && len % SECTOR === 0 && sector * SECTOR + len <= this.disk.size;
  }
}

registerPci({
  name: 'virtio-blk',
  options: { ...BLOCK_OPTION_KEYS },
  legacyConfig: blockLegacyConfig,
  prepare(ctx, prefix) {
    const { path, opts } = parseBlockOptions(ctx.config, prefix);
    if (path === undefined) throw new DeviceError(`virtio-blk at ${prefix}: a disk image is required (-s slot,virtio-blk,PATH)`);
    try {
      prepareBlock(ctx, prefix, path, opts);
    } catch (e) {
      if (e instanceof BlockError) throw new DeviceError(`virtio-blk at ${prefix}: ${e.message}`, { cause: e });
      throw e;
    }
  },
  create: (ctx, prefix, bdf) => new VirtioBlk(ctx, prefix, bdf),
});
