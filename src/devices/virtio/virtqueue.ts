/**
 * A split virtqueue as the device sees it: the descriptor table, the
 * driver's available ring and the device's used ring, all in guest memory at
 * addresses the guest chose. Queue registers and ring indexes live in the
 * arena; the views of guest memory are per thread (rebuilt when the
 * addresses change).
 *
 * Nothing the guest wrote is trusted: every ring and buffer is mapped through
 * GuestMemory.slice (undefined outside guest memory), buffers the device
 * writes must not be in read-only memory, chain walks are bounded by the
 * queue size (and the indirect table size), and indexes are checked against
 * the queue size. A bad chain comes back with `error` set (the device answers
 * it with its error status); a bad ring (an available index running ahead, a
 * head beyond the queue) calls `onBroken` and the queue stops.
 */
import type { Arena } from '../../vmm/shared.js';
import type { ChainBatch } from './chain-batch.js';
import * as V from './constants.js';
import { PIECE, walkChain, type DescSink } from './desc-walk.js';

/** The part of GuestMemory a queue uses (tests supply a fake). */
export interface QueueMemory {
  slice(gpa: number, len: number): Uint8Array | undefined;
  readonly segments: readonly { gpa: number; size: number; readonly: boolean }[];
}

export interface Chain {
  head: number;
  /** Device-readable buffers, in chain order, then the device-writable ones. */
  readable: Uint8Array[];
  writable: Uint8Array[];
  readBytes: number;
  writeBytes: number;
  /** Set when the chain is unusable; the device completes it with its error status. */
  error?: string;
}

interface Rings { desc: DataView; avail: DataView; used: DataView }

const fence = new Int32Array(new SharedArrayBuffer(4));

export class Virtqueue {
  private readonly st;
  private rings: Rings | undefined;
  private key = [-1, -1, -1, -1];

  constructor(
    arena: Arena,
    readonly index: number,
    readonly maxSize: number,
    readonly mem: QueueMemory,
    private readonly features: () => bigint,
    private readonly onBroken: (why: string) => void,
  ) {
    this.st = arena.struct({
      size: 'u16', enabled: 'u8', broken: 'u8', vector: 'u16', lastAvail: 'u16', usedIdx: 'u16',
      signalled: 'u16', signalValid: 'u8', descLo: 'u32', descHi: 'u32', availLo: 'u32', availHi: 'u32', usedLo: 'u32', usedHi: 'u32',
    });
  }

  /** Back to the state after a device reset (any thread, under the lock). */
  reset(): void {
    const s = this.st;
    s.size = this.maxSize;
    s.enabled = 0; s.broken = 0; s.vector = V.NO_VECTOR;
    s.lastAvail = 0; s.usedIdx = 0; s.signalled = 0; s.signalValid = 0;
    s.descLo = 0; s.descHi = 0; s.availLo = 0; s.availHi = 0; s.usedLo = 0; s.usedHi = 0;
  }

  get size(): number { return this.st.size; }
  /** Modern interface: the driver may pick a smaller power of two before enabling. */
  set size(n: number) { if (!this.enabled && n >= 1 && n <= this.maxSize && (n & (n - 1)) === 0) this.st.size = n; }
  get enabled(): boolean { return this.st.enabled === 1; }
  set enabled(on: boolean) { this.st.enabled = on ? 1 : 0; }
  get broken(): boolean { return this.st.broken === 1; }
  get vector(): number { return this.st.vector; }
  set vector(v: number) { this.st.vector = v; }
  /** True when the queue may be processed. */
  get ready(): boolean { return this.st.enabled === 1 && this.st.broken === 0; }

  /** Ring address registers by name (modern interface: 32-bit halves). */
  reg(name: 'descLo' | 'descHi' | 'availLo' | 'availHi' | 'usedLo' | 'usedHi'): number { return this.st[name]; }
  setReg(name: 'descLo' | 'descHi' | 'availLo' | 'availHi' | 'usedLo' | 'usedHi', v: number): void {
    if (!this.enabled) this.st[name] = v;
  }

  /** Legacy interface: one page frame number places all three parts (0 disables the queue). */
  get pfn(): number { return this.enabled ? Math.floor(this.addr('desc') / 2 ** V.LEGACY_PFN_SHIFT) : 0; }
  set pfn(pfn: number) {
    if (pfn === 0) { this.reset(); return; }
    const n = this.maxSize;
    const desc = pfn * 2 ** V.LEGACY_PFN_SHIFT;
    const avail = desc + n * V.DESC_SIZE;
    const used = Math.ceil((avail + V.AVAIL_RING + 2 * n + 2) / V.LEGACY_VRING_ALIGN) * V.LEGACY_VRING_ALIGN;
    this.st.size = n;
    this.setAddr('desc', desc); this.setAddr('avail', avail); this.setAddr('used', used);
    this.st.enabled = 1;
  }

  addr(part: 'desc' | 'avail' | 'used'): number {
    const s = this.st;
    const [lo, hi] = part === 'desc' ? [s.descLo, s.descHi] : part === 'avail' ? [s.availLo, s.availHi] : [s.usedLo, s.usedHi];
    return hi * 2 ** 32 + lo;
  }

  private setAddr(part: 'desc' | 'avail' | 'used', a: number): void {
    const lo = a % 2 ** 32, hi = Math.floor(a / 2 ** 32);
    if (part === 'desc') { this.st.descLo = lo; this.st.descHi = hi; }
    else if (part === 'avail') { this.st.availLo = lo; this.st.availHi = hi; }
    else { this.st.usedLo = lo; this.st.usedHi = hi; }
  }

  private negotiated(f: bigint): boolean { return (this.features() & V.bit(f)) !== 0n; }

  /** This thread's views of the three rings, or undefined (and the queue broken) when they are not all in memory. */
  private map(): Rings | undefined {
    const n = this.st.size, d = this.addr('desc'), a = this.addr('avail'), u = this.addr('used');
    const k = this.key;
    if (this.rings && k[0] === n && k[1] === d && k[2] === a && k[3] === u) return this.rings;
    const desc = this.mem.slice(d, n * V.DESC_SIZE);
    const avail = this.mem.slice(a, V.AVAIL_RING + 2 * n + 2);
    const used = this.mem.slice(u, V.USED_RING + V.USED_ELEM_SIZE * n + 2);
    if (!desc || !avail || !used || !this.writable(u, used.length)) {
      this.rings = undefined;
      this.fail(`queue ${this.index}: rings outside guest memory`);
      return undefined;
    }
    const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.rings = { desc: dv(desc), avail: dv(avail), used: dv(used) };
    this.key = [n, d, a, u];
    return this.rings;
  }

  private fail(why: string): void {
    if (this.st.broken) return;
    this.st.broken = 1;
    this.onBroken(why);
  }

  /** Buffers the driver made available and the device has not taken. */
  pending(): number {
    if (!this.ready) return 0;
    const r = this.map();
    return r ? (r.avail.getUint16(2, true) - this.st.lastAvail) & 0xffff : 0;
  }

  /** Take the next available chain, or undefined (none, or the queue is not usable). */
  pop(): Chain | undefined {
    if (!this.ready) return undefined;
    const r = this.map();
    if (!r) return undefined;
    const n = this.st.size, last = this.st.lastAvail;
    const ahead = (r.avail.getUint16(2, true) - last) & 0xffff;
    if (ahead === 0) return undefined;
    if (ahead > n) { this.fail(`queue ${this.index}: available index runs ${ahead} entries ahead of a ${n}-entry queue`); return undefined; }
    const head = r.avail.getUint16(V.AVAIL_RING + 2 * (last % n), true);
    if (head >= n) { this.fail(`queue ${this.index}: head descriptor ${head} beyond the ${n}-entry queue`); return undefined; }
    this.st.lastAvail = (last + 1) & 0xffff;
    return this.walk(head, r.desc, n);
  }

  /**
   * Take up to `max` available chains into `b` (emptied first) in one pass
   * over the ring, as pop() would take them one by one; returns how many.
   * Stops early when the batch has no room for another chain (ChainBatch.hasRoom).
   */
  popBatch(b: ChainBatch, max: number): number {
    b.clear();
    if (!this.ready) return 0;
    const r = this.map();
    if (!r) return 0;
    const n = this.st.size;
    let last = this.st.lastAvail;
    const ahead = (r.avail.getUint16(2, true) - last) & 0xffff;
    if (ahead > n) { this.fail(`queue ${this.index}: available index runs ${ahead} entries ahead of a ${n}-entry queue`); return 0; }
    const indirect = this.negotiated(V.F_RING_INDIRECT_DESC);
    for (let k = Math.min(ahead, max); k > 0 && b.hasRoom; k--) {
      const head = r.avail.getUint16(V.AVAIL_RING + 2 * (last % n), true);
      if (head >= n) { this.fail(`queue ${this.index}: head descriptor ${head} beyond the ${n}-entry queue`); break; }
      last = (last + 1) & 0xffff;
      b.walk(head, r.desc, n, indirect, this.index);
    }
    this.st.lastAvail = last;
    return b.count;
  }

  /** Return the batch's chains to the driver, each with `len` bytes written; the used index moves once. */
  pushBatch(b: ChainBatch, len: number): void {
    if (!this.ready || b.count === 0) return;
    const r = this.map();
    if (!r) return;
    const n = this.st.size, used = r.used;
    let u = this.st.usedIdx;
    for (let i = 0; i < b.count; i++) {
      const o = V.USED_RING + V.USED_ELEM_SIZE * (u % n);
      used.setUint32(o, b.heads[i], true);
      used.setUint32(o + 4, len >>> 0, true);
      u = (u + 1) & 0xffff;
    }
    this.st.usedIdx = u;
    used.setUint16(2, u, true);
  }

  /** The walk's sink (desc-walk.ts), one per queue: pop() allocates only the Chain and its views. */
  private readonly sink = new ChainSink(this);

  private walk(head: number, ring: DataView, n: number): Chain {
    const c: Chain = { head, readable: [], writable: [], readBytes: 0, writeBytes: 0 };
    this.sink.chain = c;
    walkChain(head, ring, n, this.negotiated(V.F_RING_INDIRECT_DESC), this.sink, false);
    return c;
  }

  /** Add a buffer's views to chain `c`; why it cannot be used, or undefined. */
  addBuffer(c: Chain, gpa: number, len: number, write: boolean): string | undefined {
    if (len === 0) return undefined;
    if (write && !this.writable(gpa, len)) return `writable buffer 0x${gpa.toString(16)}+${len} in read-only memory`;
    const views: Uint8Array[] = [];
    for (let done = 0; done < len;) {
      const at = gpa + done;
      const n = Math.min(len - done, PIECE - (at % PIECE));
      const v = this.mem.slice(at, n);
      if (!v) return `buffer 0x${gpa.toString(16)}+${len} outside guest memory`;
      views.push(v);
      done += n;
    }
    (write ? c.writable : c.readable).push(...views);
    if (write) c.writeBytes += len; else c.readBytes += len;
    return undefined;
  }

  /** True unless some byte of the range is in a read-only segment (the boot ROM). */
  private writable(gpa: number, len: number): boolean {
    for (const s of this.mem.segments) if (s.readonly && gpa < s.gpa + s.size && s.gpa < gpa + len) return false;
    return true;
  }

  /** Return chain `head` to the driver with `len` bytes written. */
  push(head: number, len: number): void {
    if (!this.ready) return;
    const r = this.map();
    if (!r) return;
    const u = this.st.usedIdx;
    const o = V.USED_RING + V.USED_ELEM_SIZE * (u % this.st.size);
    r.used.setUint32(o, head, true);
    r.used.setUint32(o + 4, len >>> 0, true);
    this.st.usedIdx = (u + 1) & 0xffff;
    r.used.setUint16(2, this.st.usedIdx, true);
  }

  /** Whether the driver wants an interrupt for what was pushed since the last one (EVENT_IDX or NO_INTERRUPT). */
  needsInterrupt(): boolean {
    const r = this.ready ? this.map() : undefined;
    if (!r) return false;
    Atomics.exchange(fence, 0, 0); // the used index must be visible before we read the driver's wishes
    if (!this.negotiated(V.F_RING_EVENT_IDX)) return (r.avail.getUint16(0, true) & V.AVAIL_F_NO_INTERRUPT) === 0;
    const now = this.st.usedIdx, old = this.st.signalled, valid = this.st.signalValid;
    this.st.signalled = now;
    this.st.signalValid = 1;
    if (!valid) return true;
    const event = r.avail.getUint16(V.AVAIL_RING + 2 * this.st.size, true);
    return ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
  }

  /**
   * Ask the driver for notifications (true) or tell it they are not needed
   * while the device is busy (false). After turning them on, check pending()
   * again: the driver may have added buffers in between.
   */
  notifications(on: boolean): void {
    const r = this.ready ? this.map() : undefined;
    if (!r) return;
    if (this.negotiated(V.F_RING_EVENT_IDX)) {
      if (on) r.used.setUint16(V.USED_RING + V.USED_ELEM_SIZE * this.st.size, this.st.lastAvail, true);
    } else {
      r.used.setUint16(0, on ? 0 : V.USED_F_NO_NOTIFY, true);
    }
    if (on) Atomics.exchange(fence, 0, 0);
  }
}

/** Builds a Chain of views from Virtqueue.pop()'s walk; a bad buffer spoils the chain but the walk goes on. */
class ChainSink implements DescSink {
  chain!: Chain;
  tableView: DataView | undefined;
  constructor(private readonly q: Virtqueue) {}

  table(gpa: number, len: number): number {
    const t = this.q.mem.slice(gpa, len);
    if (!t) return -1;
    this.tableView = new DataView(t.buffer, t.byteOffset, t.byteLength);
    return 0;
  }

  buffer(gpa: number, len: number, write: boolean): string | undefined {
    return this.q.addBuffer(this.chain, gpa, len, write);
  }

  bad(why: string): void {
    this.chain.error ??= `queue ${this.q.index}, chain ${this.chain.head}: ${why}`;
  }
}
