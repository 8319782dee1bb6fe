/**
 * Descriptor chains taken in bulk, without allocating: the fast path of a
 * device that hands guest buffers straight to the host kernel (virtio-net
 * transmit). Virtqueue.popBatch() walks up to N chains into a ChainBatch,
 * which keeps, for every buffer, an iovec (host address, length) ready for
 * writev/io_uring, and where that buffer lies in guest memory.
 *
 * The walk is Virtqueue.pop()'s (desc-walk.ts): every descriptor index,
 * loop, indirect table and buffer the guest supplies is checked, buffers lie
 * in guest memory (GuestPieces: the segments cut at 4 GiB multiples, as
 * GuestMemory views them) and writable ones outside read-only segments. A
 * bad chain is marked (`drop`, `error`) and its walk stops there: its buffers
 * must not be used, only its head returned.
 */
import { koffi } from '../../kvm/libc.js';
import { PIECE, walkChain, type DescSink } from './desc-walk.js';
import type { QueueMemory } from './virtqueue.js';

export const IOVEC_SIZE = 16;

/**
 * Guest memory as a few contiguous pieces (the segments cut at 4 GiB
 * multiples), each with its view, a DataView and its host address, made on
 * first use as GuestMemory makes its views (per thread).
 */
export class GuestPieces {
  readonly gpa: number[] = [];
  readonly end: number[] = [];
  readonly readonly: boolean[] = [];
  readonly views: Uint8Array[] = [];
  readonly dvs: DataView[] = [];
  readonly host: number[] = [];
  private last = -1;

  constructor(private readonly mem: QueueMemory) {
    for (const s of mem.segments) {
      for (let at = s.gpa; at < s.gpa + s.size;) {
        const n = Math.min(s.gpa + s.size - at, PIECE - (at % PIECE));
        this.gpa.push(at); this.end.push(at + n); this.readonly.push(s.readonly);
        at += n;
      }
    }
  }

  /** The piece holding all of [gpa, gpa+len) (len ≥ 1), or -1. */
  find(gpa: number, len: number): number {
    const i = this.last;
    if (i >= 0 && gpa >= this.gpa[i] && gpa + len <= this.end[i]) return i;
    for (let k = 0; k < this.gpa.length; k++) {
      if (gpa >= this.gpa[k] && gpa + len <= this.end[k] && this.materialize(k)) { this.last = k; return k; }
    }
    return -1;
  }

  /** Make piece k's views; false (and the piece dropped) when guest memory has no view of it. */
  private materialize(k: number): boolean {
    if (this.views[k]) return true;
    const v = this.mem.slice(this.gpa[k], this.end[k] - this.gpa[k]);
    if (!v) { this.end[k] = this.gpa[k]; return false; }
    this.views[k] = v;
    this.dvs[k] = new DataView(v.buffer, v.byteOffset, v.byteLength);
    this.host[k] = Number(koffi.address(v.buffer)) + v.byteOffset;
    return true;
  }
}

export class ChainBatch implements DescSink {
  /** Chains in the batch. */
  count = 0;
  /** Buffers (pieces) in the batch. */
  pieces = 0;
  readonly heads: Uint16Array;
  /** Chain i's pieces are [first[i], first[i] + nRead[i] + nWrite[i]), readable ones first. */
  readonly first: Uint32Array;
  readonly nRead: Uint32Array;
  readonly nWrite: Uint32Array;
  readonly readBytes: Float64Array;
  readonly writeBytes: Float64Array;
  /** 1: do not use this chain's buffers (bad chain; the device may mark more). */
  readonly drop: Uint8Array;
  /** A result per chain for the device's use (bytes or -errno). */
  readonly result: Int32Array;
  readonly error: (string | undefined)[];
  /** iovecs, 4 words each: address low, high, length, 0. */
  readonly iov: Uint32Array;
  readonly iovBuf: Buffer;
  readonly iovAddr: number;
  /** Where each piece is: its GuestPieces index and offset in that piece. */
  readonly where: Uint8Array;
  readonly offset: Float64Array;

  constructor(readonly mem: GuestPieces, readonly maxChains: number, readonly maxPieces: number, readonly perChain: number) {
    this.heads = new Uint16Array(maxChains);
    this.first = new Uint32Array(maxChains);
    this.nRead = new Uint32Array(maxChains);
    this.nWrite = new Uint32Array(maxChains);
    this.readBytes = new Float64Array(maxChains);
    this.writeBytes = new Float64Array(maxChains);
    this.drop = new Uint8Array(maxChains);
    this.result = new Int32Array(maxChains);
    this.error = new Array<string | undefined>(maxChains).fill(undefined);
    this.iovBuf = Buffer.alloc(maxPieces * IOVEC_SIZE);
    this.iov = new Uint32Array(this.iovBuf.buffer, this.iovBuf.byteOffset, maxPieces * 4);
    this.iovAddr = Number(koffi.address(this.iovBuf.buffer)) + this.iovBuf.byteOffset;
    this.where = new Uint8Array(maxPieces);
    this.offset = new Float64Array(maxPieces);
  }

  /** Empty the batch. */
  clear(): void { this.count = 0; this.pieces = 0; }

  /** Room for one more chain of the largest size. */
  get hasRoom(): boolean { return this.count < this.maxChains && this.pieces + this.perChain <= this.maxPieces; }

  /** Byte `k` of chain i's readable bytes (k < readBytes[i]). */
  readByte(i: number, k: number): number {
    const end = this.first[i] + this.nRead[i];
    for (let p = this.first[i]; p < end; p++) {
      const len = this.iov[4 * p + 2];
      if (k < len) return this.mem.views[this.where[p]][this.offset[p] + k];
      k -= len;
    }
    return 0;
  }

  /** Chain being walked, and the indirect table found for it (DescSink). */
  private cur = 0;
  private queue = 0;
  tableView: DataView | undefined;

  /**
   * Walk chain `head` of descriptor table `desc` (`size` entries) into the
   * batch (Virtqueue.popBatch calls this with room checked). A bad buffer
   * ends the walk: the chain's buffers are not used.
   */
  walk(head: number, desc: DataView, size: number, indirectOk: boolean, queue: number): void {
    const i = this.count++;
    this.heads[i] = head; this.first[i] = this.pieces;
    this.nRead[i] = 0; this.nWrite[i] = 0; this.readBytes[i] = 0; this.writeBytes[i] = 0;
    this.drop[i] = 0; this.result[i] = 0; this.error[i] = undefined;
    this.cur = i; this.queue = queue;
    walkChain(head, desc, size, indirectOk, this, true);
  }

  table(gpa: number, len: number): number {
    const p = this.mem.find(gpa, len);
    if (p < 0) return -1;
    this.tableView = this.mem.dvs[p];
    return gpa - this.mem.gpa[p];
  }

  buffer(gpa: number, len: number, write: boolean): string | undefined {
    return len > 0 ? this.add(this.cur, gpa, len, write) : undefined;
  }

  bad(why: string): void {
    const i = this.cur;
    this.drop[i] = 1;
    this.error[i] ??= `queue ${this.queue}, chain ${this.heads[i]}: ${why}`;
  }

  private add(i: number, gpa: number, len: number, write: boolean): string | undefined {
    for (let done = 0; done < len;) {
      const at = gpa + done;
      const n = Math.min(len - done, PIECE - (at % PIECE));
      const p = this.mem.find(at, n);
      if (p < 0) return `buffer 0x${gpa.toString(16)}+${len} outside guest memory`;
      if (write && this.mem.readonly[p]) return `writable buffer 0x${gpa.toString(16)}+${len} in read-only memory`;
      if (this.nRead[i] + this.nWrite[i] >= this.perChain) return `more than ${this.perChain} buffers`;
      const k = this.pieces++;
      const off = at - this.mem.gpa[p], host = this.mem.host[p] + off;
      const w = 4 * k;
      this.iov[w] = host % PIECE; this.iov[w + 1] = Math.floor(host / PIECE); this.iov[w + 2] = n; this.iov[w + 3] = 0;
      this.where[k] = p; this.offset[k] = off;
      if (write) this.nWrite[i]++; else this.nRead[i]++;
      done += n;
    }
    if (write) this.writeBytes[i] += len; else this.readBytes[i] += len;
    return undefined;
  }

}
