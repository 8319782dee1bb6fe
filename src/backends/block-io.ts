/**
 * O_DIRECT needs the buffer address, the file offset and the length aligned
 * (to the device's logical block size). The caller's buffer is tried first
 * (guest memory usually is aligned); when the kernel refuses it (EINVAL), or
 * the range is not aligned, the I/O goes through a page-aligned bounce
 * buffer from mmap, with read-modify-write for partial blocks.
 */
import * as fs from 'node:fs';
import { koffi, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, mmap, PROT_READ, PROT_WRITE } from '../kvm/libc.js';

/** Offsets/lengths the bounce path aligns to (a page: covers 512 and 4096-byte sectors). */
const ALIGN = 4096;
/** The smallest alignment worth trying without bouncing. */
const MIN_ALIGN = 512;
const BOUNCE_BYTES = 1 << 20;

const down = (x: number, a: number): number => Math.floor(x / a) * a;
const up = (x: number, a: number): number => Math.ceil(x / a) * a;

export class BounceBuffer {
  private buf: Uint8Array | undefined;

  constructor(private readonly fd: number, private readonly size: number) {}

  private get mem(): Uint8Array {
    if (!this.buf) {
      const p = BigInt(mmap(0, BOUNCE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) as number | bigint);
      if (p === MAP_FAILED || p >= 2n ** 63n) throw new Error('cannot allocate an O_DIRECT bounce buffer');
      this.buf = new Uint8Array(koffi.view(p, BOUNCE_BYTES));
    }
    return this.buf;
  }

  /** Read into `out`; always handles the request (returns true). */
  read(offset: number, out: Uint8Array): boolean {
    if (this.tryDirect(offset, out, false)) return true;
    const step = BOUNCE_BYTES - ALIGN;
    for (let done = 0; done < out.length; done += step) {
      const off = offset + done, n = Math.min(step, out.length - done);
      const s = down(off, ALIGN), e = up(off + n, ALIGN);
      this.fill(s, e - s);
      out.set(this.mem.subarray(off - s, off - s + n), done);
    }
    return true;
  }

  /** Write `data`; always handles the request (returns true). */
  write(offset: number, data: Uint8Array): boolean {
    if (this.tryDirect(offset, data, true)) return true;
    const step = BOUNCE_BYTES - ALIGN;
    for (let done = 0; done < data.length; done += step) {
      const off = offset + done, n = Math.min(step, data.length - done);
      const s = down(off, ALIGN), e = up(off + n, ALIGN);
      if (s !== off || e !== off + n) this.fill(s, e - s);
      this.mem.set(data.subarray(done, done + n), off - s);
      // Never extend the file past its (sector-rounded) size.
      const end = Math.min(e, up(this.size, MIN_ALIGN));
      let w = 0;
      while (s + w < end) w += fs.writeSync(this.fd, this.mem, w, end - s - w, s + w);
    }
    return true;
  }

  private fill(pos: number, len: number): void {
    const m = this.mem;
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, m, done, len - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    m.fill(0, done, len);
  }

  /** Try the caller's buffer; false when the kernel refuses it for alignment. */
  private tryDirect(offset: number, b: Uint8Array, write: boolean): boolean {
    if (offset % MIN_ALIGN !== 0 || b.length % MIN_ALIGN !== 0 || b.length === 0) return b.length === 0;
    try {
      let done = 0;
      while (done < b.length) {
        const n = write ? fs.writeSync(this.fd, b, done, b.length - done, offset + done)
          : fs.readSync(this.fd, b, done, b.length - done, offset + done);
        if (n === 0) { b.fill(0, done); break; }
        done += n;
      }
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EINVAL') return false;
      throw e;
    }
  }
}
