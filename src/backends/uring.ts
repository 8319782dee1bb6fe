/**
 * A small io_uring for batches of writes on one fd: the tap back-end sends a
 * burst of frames with one system call instead of one each (the per-call
 * cost of a foreign call dominates small frames). Each frame is a chain of a
 * ChainBatch, whose iovecs already point into guest memory: a one-buffer
 * frame is an IORING_OP_WRITE of that buffer, a longer one an
 * IORING_OP_WRITEV of the batch's iovecs, so nothing is copied or rebuilt.
 * Set up lazily by the thread that uses it (the I/O thread) and private to
 * it; a kernel without io_uring (or with it disabled) gets `undefined` from
 * create(), and the caller falls back to writev.
 *
 * Layout (x86-64): io_uring_params is 120 bytes, with the submission queue
 * offsets at 40 and the completion queue offsets at 80; an SQE is 64 bytes,
 * a CQE 16. No polling threads; io_uring_enter both submits and waits, so the
 * system call orders every ring access. SUBMIT_ALL keeps one bad entry from
 * holding back the ones after it.
 */
import type { ChainBatch } from '../devices/virtio/chain-batch.js';
import { errno, koffi, mmap, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, close } from '../kvm/libc.js';

const libc = koffi.load('libc.so.6');
const syscallSetup = libc.func('long syscall(long nr, unsigned int entries, void *params)');
const syscallEnter = libc.func('long syscall(long nr, int fd, unsigned int submit, unsigned int complete, unsigned int flags, uintptr_t sig, size_t sz)');

const SYS_IO_URING_SETUP = 425, SYS_IO_URING_ENTER = 426;
const PARAMS_SIZE = 120, SQ_OFF = 40, CQ_OFF = 80;
const OFF_SQ_RING = 0, OFF_CQ_RING = 0x8000000, OFF_SQES = 0x10000000;
const FEAT_SINGLE_MMAP = 1;
const ENTER_GETEVENTS = 1;
const SETUP_SUBMIT_ALL = 1 << 7, SETUP_COOP_TASKRUN = 1 << 8, SETUP_SINGLE_ISSUER = 1 << 12;
const OP_WRITEV = 2, OP_WRITE = 23;
const SQE_SIZE = 64, CQE_SIZE = 16, IOVEC_SIZE = 16;
const SQE_WORDS = SQE_SIZE / 4;
const TWO32 = 2 ** 32;
const EINTR = 4, EIO = 5;
const MAX_WAITS = 100;

function map(fd: number, len: number, off: number): DataView | undefined {
  const p = BigInt(mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off) as number | bigint);
  if (p === MAP_FAILED) return undefined;
  return new DataView(koffi.view(p, len));
}

export class WritevRing {
  private constructor(
    private readonly ring: number,
    readonly entries: number,
    private readonly sq: DataView,
    private readonly cq: DataView,
    private readonly sqes: Uint32Array,
    private readonly o: { sqHead: number; sqTail: number; sqMask: number; cqHead: number; cqTail: number; cqMask: number; cqes: number },
    /**
     * The fd every entry writes to. Not a registered file: the ring's
     * reference would outlive the process for a moment, and a tap the VMM
     * created must go away with it.
     */
    private readonly file: number,
  ) {}

  /** A ring of `entries` (a power of two) writing to `target`; undefined when io_uring is unusable. */
  static create(entries: number, target: number): WritevRing | undefined {
    let params = Buffer.alloc(PARAMS_SIZE);
    let fd = -1;
    // Newer flags first (5.19+), then none.
    for (const flags of [SETUP_SUBMIT_ALL | SETUP_COOP_TASKRUN | SETUP_SINGLE_ISSUER, SETUP_SUBMIT_ALL, 0]) {
      params = Buffer.alloc(PARAMS_SIZE);
      params.writeUInt32LE(flags, 8);
      fd = Number(syscallSetup(SYS_IO_URING_SETUP, entries, params));
      if (fd >= 0) break;
    }
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
    // Slot i of the submission array always names SQE i: entries are filled in ring order.
    for (let i = 0; i < sqEntries; i++) sq.setUint32(o.sqArray + i * 4, i, true);
    const words = new Uint32Array(sqes.buffer, sqes.byteOffset, sqEntries * SQE_WORDS);
    return new WritevRing(fd, sqEntries, sq, cq, words, o, target);
  }

  /**
   * Write every chain of `b` not marked `drop` to the target, in order, with one
   * system call; at most `entries` chains. Each chain's result (bytes or
   * -errno) goes to b.result; returns how many were written, or -1 when the
   * ring failed (nothing is known to be sent: the caller may retry another way).
   */
  writeBatch(b: ChainBatch): number {
    if (b.count > this.entries) throw new RangeError(`${b.count} frames for a ${this.entries}-entry ring`);
    const { sq, sqes, o, file } = this;
    const iov = b.iov;
    let tail = sq.getUint32(o.sqTail, true);
    const mask = sq.getUint32(o.sqMask, true);
    let n = 0;
    for (let i = 0; i < b.count; i++) {
      if (b.drop[i]) continue;
      b.result[i] = -EIO;
      const w = (tail & mask) * SQE_WORDS;
      const p = b.first[i], cnt = b.nRead[i];
      if (cnt === 1) {
        sqes[w] = OP_WRITE; sqes[w + 4] = iov[4 * p]; sqes[w + 5] = iov[4 * p + 1]; sqes[w + 6] = iov[4 * p + 2];
      } else {
        const at = b.iovAddr + p * IOVEC_SIZE;
        sqes[w] = OP_WRITEV; sqes[w + 4] = at % TWO32; sqes[w + 5] = Math.floor(at / TWO32); sqes[w + 6] = cnt;
      }
      sqes[w + 1] = file;
      sqes[w + 2] = 0xffffffff; sqes[w + 3] = 0xffffffff; // offset -1: the file's own position (a tap has none)
      sqes[w + 7] = 0;
      sqes[w + 8] = i; sqes[w + 9] = 0; // user_data: the chain's index
      for (let k = 10; k < SQE_WORDS; k++) sqes[w + k] = 0;
      tail = (tail + 1) >>> 0;
      n++;
    }
    if (n === 0) return 0;
    sq.setUint32(o.sqTail, tail, true);
    // Submit and wait; a signal may cut the wait short (the entries are submitted by then): wait again.
    if (Number(syscallEnter(SYS_IO_URING_ENTER, this.ring, n, n, ENTER_GETEVENTS, 0, 0)) < 0 && errno() !== EINTR) return -1;
    let seen = this.reap(b);
    for (let tries = 0; seen < n && tries < MAX_WAITS; tries++) {
      // Entries left behind by a failed one (kernels without SUBMIT_ALL) go in with the wait.
      const left = (tail - sq.getUint32(o.sqHead, true)) >>> 0;
      syscallEnter(SYS_IO_URING_ENTER, this.ring, left, n - seen, ENTER_GETEVENTS, 0, 0);
      seen += this.reap(b);
    }
    let ok = 0;
    for (let i = 0; i < b.count; i++) if (!b.drop[i] && b.result[i] >= 0) ok++;
    return ok;
  }

  /** Record the completions waiting (result by chain index); returns how many. */
  private reap(b: ChainBatch): number {
    const { cq, o } = this;
    let head = cq.getUint32(o.cqHead, true);
    const tail = cq.getUint32(o.cqTail, true), mask = cq.getUint32(o.cqMask, true);
    let seen = 0;
    for (; head !== tail; head = (head + 1) >>> 0, seen++) {
      const c = o.cqes + (head & mask) * CQE_SIZE;
      const i = cq.getUint32(c, true);
      if (i < b.count) b.result[i] = cq.getInt32(c + 8, true);
    }
    cq.setUint32(o.cqHead, head, true);
    return seen;
  }
}
