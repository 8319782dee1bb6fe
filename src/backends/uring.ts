/**
 * A small io_uring for batches of writev calls on one fd: the tap back-end
 * sends a burst of frames with one system call instead of one each (the
 * per-call cost of a foreign call dominates small frames). Set up lazily by
 * the thread that uses it (the I/O thread) and private to it; a kernel
 * without io_uring (or with it disabled) gets `undefined` from create(), and
 * the caller falls back to writev.
 *
 * Layout (x86-64): io_uring_params is 120 bytes, with the submission queue
 * offsets at 40 and the completion queue offsets at 80; an SQE is 64 bytes,
 * a CQE 16. Only IORING_OP_WRITEV, no polling threads; io_uring_enter both
 * submits and waits, so the system call orders every ring access.
 */
import { errno, koffi, mmap, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, close } from '../kvm/libc.js';

const libc = koffi.load('libc.so.6');
const syscallSetup = libc.func('long syscall(long nr, unsigned int entries, void *params)');
const syscallEnter = libc.func('long syscall(long nr, int fd, unsigned int submit, unsigned int complete, unsigned int flags, uintptr_t sig, size_t sz)');

const SYS_IO_URING_SETUP = 425, SYS_IO_URING_ENTER = 426;
const PARAMS_SIZE = 120, SQ_OFF = 40, CQ_OFF = 80;
const OFF_SQ_RING = 0, OFF_CQ_RING = 0x8000000, OFF_SQES = 0x10000000;
const FEAT_SINGLE_MMAP = 1;
const ENTER_GETEVENTS = 1;
const OP_WRITEV = 2;
const SQE_SIZE = 64, CQE_SIZE = 16, IOVEC_SIZE = 16;
const TWO32 = 2 ** 32;
const EINTR = 4, EIO = 5;
const MAX_WAITS = 100;

function map(fd: number, len: number, off: number): DataView | undefined {
  const p = BigInt(mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off) as number | bigint);
  if (p === MAP_FAILED) return undefined;
  return new DataView(koffi.view(p, len));
}

export class WritevRing {
  private readonly bases = new WeakMap<ArrayBufferLike, number>();

  private constructor(
    private readonly ring: number,
    readonly entries: number,
    private readonly sq: DataView,
    private readonly cq: DataView,
    private readonly sqes: DataView,
    private readonly o: { sqHead: number; sqTail: number; sqMask: number; sqArray: number; cqHead: number; cqTail: number; cqMask: number; cqes: number },
    /** Room for every frame's iovecs; its address goes into the SQEs. */
    private readonly iov: Buffer,
    private readonly iovAddr: number,
  ) {}

  /** A ring of `entries` (a power of two) with room for `iovecs` buffers in flight; undefined when io_uring is unusable. */
  static create(entries: number, iovecs: number): WritevRing | undefined {
    const params = Buffer.alloc(PARAMS_SIZE);
    const fd = Number(syscallSetup(SYS_IO_URING_SETUP, entries, params));
    if (fd < 0) return undefined;
    const u32 = (o: number): number => params.readUInt32LE(o);
    const sqEntries = u32(0), cqEntries = u32(4), features = u32(20);
    const o = {
      sqHead: u32(SQ_OFF), sqTail: u32(SQ_OFF + 4), sqMask: u32(SQ_OFF + 8), sqArray: u32(SQ_OFF + 24),
      cqHead: u32(CQ_OFF), cqTail: u32(CQ_OFF + 4), cqMask: u32(CQ_OFF + 8), cqes: u32(CQ_OFF + 20),
    };
    const sqLen = o.sqArray + sqEntries * 4, cqLen = o.cqes + cqEntries * CQE_SIZE;
    const single = (features & FEAT_SINGLE_MMAP) !== 0;
    const sq = map(fd, single ? Math.max(sqLen, cqLen) : sqLen, OFF_SQ_RING);
    const cq = single ? sq : map(fd, cqLen, OFF_CQ_RING);
    const sqes = map(fd, sqEntries * SQE_SIZE, OFF_SQES);
    if (!sq || !cq || !sqes) { close(fd); return undefined; }
    const iov = Buffer.alloc(iovecs * IOVEC_SIZE);
    return new WritevRing(fd, sqEntries, sq, cq, sqes, o, iov, Number(koffi.address(iov)));
  }

  private addressOf(b: Uint8Array): number {
    let base = this.bases.get(b.buffer);
    if (base === undefined) {
      base = Number(koffi.address(b.buffer));
      this.bases.set(b.buffer, base);
    }
    return base + b.byteOffset;
  }

  /**
   * writev(fd, frame) for every frame, in order, with one system call; at
   * most `entries` frames and as many buffers as the ring was made for.
   * Returns each frame's result (bytes or -errno), or undefined when the
   * ring failed (nothing is known to be sent: the caller may retry another way).
   */
  writevAll(fd: number, frames: readonly (readonly Uint8Array[])[]): number[] | undefined {
    const n = frames.length;
    if (n === 0) return [];
    if (n > this.entries) throw new RangeError(`${n} frames for a ${this.entries}-entry ring`);
    const { sq, sqes, o, iov } = this;
    let tail = sq.getUint32(o.sqTail, true);
    const mask = sq.getUint32(o.sqMask, true);
    let slot = 0;
    for (let i = 0; i < n; i++) {
      const bufs = frames[i];
      if ((slot + bufs.length) * IOVEC_SIZE > iov.length) throw new RangeError('too many buffers for the ring');
      const at = this.iovAddr + slot * IOVEC_SIZE;
      for (const b of bufs) {
        const a = b.length ? this.addressOf(b) : 0;
        const p = slot++ * IOVEC_SIZE;
        iov.writeUInt32LE(a % TWO32, p); iov.writeUInt32LE(Math.floor(a / TWO32), p + 4);
        iov.writeUInt32LE(b.length, p + 8); iov.writeUInt32LE(0, p + 12);
      }
      const idx = tail & mask, s = idx * SQE_SIZE;
      for (let k = 0; k < SQE_SIZE; k += 8) sqes.setBigUint64(s + k, 0n, true);
      sqes.setUint8(s, OP_WRITEV);
      sqes.setInt32(s + 4, fd, true);
      sqes.setInt32(s + 8, -1, true); sqes.setInt32(s + 12, -1, true); // offset -1: the file's own position (a tap has none)
      sqes.setUint32(s + 16, at % TWO32, true); sqes.setUint32(s + 20, Math.floor(at / TWO32), true);
      sqes.setUint32(s + 24, bufs.length, true);
      sqes.setUint32(s + 32, i, true); // user_data: the frame's index
      sq.setUint32(o.sqArray + idx * 4, idx, true);
      tail = (tail + 1) >>> 0;
    }
    sq.setUint32(o.sqTail, tail, true);
    // Submit and wait; a signal may cut the wait short (the entries are submitted by then): wait again.
    if (Number(syscallEnter(SYS_IO_URING_ENTER, this.ring, n, n, ENTER_GETEVENTS, 0, 0)) < 0 && errno() !== EINTR) return undefined;
    const out = new Array<number>(n).fill(-EIO);
    let seen = this.reap(out);
    for (let tries = 0; seen < n && tries < MAX_WAITS; tries++) {
      syscallEnter(SYS_IO_URING_ENTER, this.ring, 0, n - seen, ENTER_GETEVENTS, 0, 0);
      seen += this.reap(out);
    }
    return out;
  }

  /** Record the completions waiting (result by frame index); returns how many. */
  private reap(out: number[]): number {
    const { cq, o } = this;
    let head = cq.getUint32(o.cqHead, true);
    const tail = cq.getUint32(o.cqTail, true), mask = cq.getUint32(o.cqMask, true);
    let seen = 0;
    for (; head !== tail; head = (head + 1) >>> 0, seen++) {
      const c = o.cqes + (head & mask) * CQE_SIZE;
      const i = cq.getUint32(c, true);
      if (i < out.length) out[i] = cq.getInt32(c + 8, true);
    }
    cq.setUint32(o.cqHead, head, true);
    return seen;
  }
}
