/**
 * The one walk of a descriptor chain, with every check the guest's values
 * need: descriptor indices within the queue or indirect table, loops,
 * indirect tables (negotiated, not nested, no NEXT, a sane length, in guest
 * memory), device-readable buffers before device-writable ones, addresses a
 * Number can hold. Where buffers and indirect tables go is the sink's
 * business: Virtqueue.pop() builds a Chain of views, ChainBatch (the
 * transmit fast path) builds iovecs without allocating.
 */
import * as V from './constants.js';

/** Guest-physical pieces are cut at 4 GiB multiples (GuestMemory views are 4 GiB chunks). */
export const PIECE = 2 ** 32;
/** A high address word above this puts the address beyond Number.MAX_SAFE_INTEGER. */
const SAFE_HI = 0x1fffff;

export interface DescSink {
  /**
   * An indirect table of `len` bytes at `gpa`: sets `tableView` and returns
   * the table's offset in it, or -1 when it is not in guest memory.
   */
  table(gpa: number, len: number): number;
  tableView: DataView | undefined;
  /** A buffer (len may be 0): why it cannot be used, or undefined. */
  buffer(gpa: number, len: number, write: boolean): string | undefined;
  /** The chain is bad (the first reason is the one to keep). */
  bad(why: string): void;
}

/**
 * Walk chain `head` of the `n`-entry descriptor table `ring`. A bad buffer
 * spoils the chain; with `stopOnBadBuffer` false the walk goes on so that a
 * device can still find its status byte at the end.
 */
export function walkChain(head: number, ring: DataView, n: number, indirectOk: boolean, sink: DescSink, stopOnBadBuffer: boolean): void {
  let table = ring, base = 0, count = n, idx = head, steps = 0, indirect = false, wrote = false;
  for (;;) {
    if (idx >= count) return sink.bad(`descriptor index ${idx} beyond the ${count}-entry ${indirect ? 'indirect table' : 'queue'}`);
    if (++steps > count) return sink.bad('the chain loops');
    const o = base + idx * V.DESC_SIZE;
    const lo = table.getUint32(o, true), hi = table.getUint32(o + 4, true);
    const len = table.getUint32(o + 8, true);
    const flags = table.getUint16(o + 12, true);
    const addr = hi * PIECE + lo, huge = hi > SAFE_HI;
    if (flags & V.DESC_F_INDIRECT) {
      if (huge) return sink.bad('indirect table outside guest memory');
      if (indirect) return sink.bad('nested indirect table');
      if (!indirectOk) return sink.bad('indirect descriptor not negotiated');
      if (flags & V.DESC_F_NEXT) return sink.bad('indirect descriptor with NEXT set');
      if (len === 0 || len % V.DESC_SIZE !== 0 || len / V.DESC_SIZE > V.INDIRECT_MAX) return sink.bad(`bad indirect table length ${len}`);
      const at = sink.table(addr, len);
      if (at < 0 || !sink.tableView) return sink.bad('indirect table outside guest memory');
      table = sink.tableView; base = at;
      count = len / V.DESC_SIZE; idx = 0; steps = 0; indirect = true;
      continue;
    }
    const write = (flags & V.DESC_F_WRITE) !== 0;
    if (!write && wrote) return sink.bad('a device-readable buffer after a device-writable one');
    wrote ||= write;
    const why = huge ? `buffer 0x${((BigInt(hi) << 32n) | BigInt(lo)).toString(16)}+${len} outside guest memory` : sink.buffer(addr, len, write);
    if (why) {
      sink.bad(why);
      if (stopOnBadBuffer) return;
    }
    if (!(flags & V.DESC_F_NEXT)) return;
    idx = table.getUint16(o + 14, true);
  }
}
