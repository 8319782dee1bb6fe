/**
 * Guest physical memory as bhyve lays it out: RAM below the PCI hole
 * (lowmem, at most 3 GiB), the rest above 4 GiB (highmem), and named
 * device-memory segments (the boot ROM first) mapped where their owner says.
 *
 * Host memory is mmap'd once by the main thread; every thread views it
 * through koffi.view in pieces of at most 4 GiB.
 */
import { koffi } from './libc.js';

export const GiB = 2 ** 30;
export const MiB = 2 ** 20;
export const KiB = 2 ** 10;
/** bhyve's default lowmem limit: the PCI hole starts here. */
export const LOWMEM_LIMIT = 3 * GiB;
export const HIGHMEM_BASE = 4 * GiB;
const CHUNK = 4 * GiB;
/** Copies up to this size, on a thread without the segment's view yet, get a view of their own range. */
const SMALL_COPY = MiB;

export class MemoryError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MemoryError';
  }
}

/** A region of guest-physical space backed by host memory. */
export interface Segment {
  name: string;
  gpa: number;
  size: number;
  /** Host virtual address of the first byte. */
  host: bigint;
  readonly: boolean;
  /** devmem segments (boot ROM, framebuffer) are not RAM. */
  devmem: boolean;
}

/** A serialisable description, passed to vCPU threads. */
export type SegmentSpec = Segment;

export class GuestMemory {
  readonly segments: Segment[];
  /**
   * Views made on first use: V8 counts a view's bytes as external memory, and
   * a large one sets off a full garbage collection on the thread that makes
   * it, which a thread that never touches guest memory need not pay.
   */
  private readonly views: (Uint8Array | undefined)[][];

  constructor(segments: Segment[]) {
    this.segments = [...segments].sort((a, b) => a.gpa - b.gpa);
    this.views = this.segments.map(() => []);
  }

  private view(i: number, chunk: number): Uint8Array {
    let v = this.views[i][chunk];
    if (!v) {
      const s = this.segments[i];
      const off = chunk * CHUNK;
      v = new Uint8Array(koffi.view(s.host + BigInt(off), Math.min(CHUNK, s.size - off)));
      this.views[i][chunk] = v;
    }
    return v;
  }

  /** Total RAM (not devmem) in bytes. */
  get ramSize(): number {
    return this.segments.filter((s) => !s.devmem).reduce((n, s) => n + s.size, 0);
  }

  segment(name: string): Segment | undefined {
    return this.segments.find((s) => s.name === name);
  }

  private locate(gpa: number): [number, Segment] | undefined {
    for (let i = 0; i < this.segments.length; i++) {
      const s = this.segments[i];
      if (gpa >= s.gpa && gpa < s.gpa + s.size) return [i, s];
    }
    return undefined;
  }

  /**
   * A view of [gpa, gpa+len) without copying, or undefined when the range is
   * not entirely inside one segment (and one 4 GiB piece of it). Use for any
   * guest-supplied address: it never reaches outside guest memory.
   */
  slice(gpa: number, len: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) return undefined;
    const hit = this.locate(gpa);
    if (!hit) return undefined;
    const [i, s] = hit;
    const off = gpa - s.gpa;
    if (off + len > s.size) return undefined;
    const chunk = Math.floor(off / CHUNK);
    const coff = off - chunk * CHUNK;
    const v = this.view(i, chunk);
    if (coff + len > v.length) return undefined;
    return v.subarray(coff, coff + len);
  }

  /** Copy out; throws MemoryError when any byte is outside guest memory. */
  read(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.pieces(gpa, len, (view, done) => out.set(view, done));
    return out;
  }

  /** Copy in (ignores read-only: loaders use it to fill ROMs); throws when outside memory. */
  write(gpa: number, data: Uint8Array): void {
    this.pieces(gpa, data.length, (view, done) => view.set(data.subarray(done, done + view.length)));
  }

  /**
   * Visit [gpa, gpa+len) a piece at a time (one segment, one 4 GiB chunk).
   * Each piece is seen through its chunk's view when this thread has it,
   * else (a small copy) through a view of just that range, so that a loader
   * writing a few tables does not make, and pay for, a view of all of RAM
   * (see `views`).
   */
  private pieces(gpa: number, len: number, fn: (view: Uint8Array, done: number) => void): void {
    for (let done = 0; done < len;) {
      const at = gpa + done;
      const hit = this.locate(at);
      if (!hit) throw new MemoryError(`guest address 0x${at.toString(16)} is not memory`);
      const [i, s] = hit;
      const off = at - s.gpa, chunk = Math.floor(off / CHUNK), coff = off - chunk * CHUNK;
      const n = Math.min(len - done, s.size - off, CHUNK - coff);
      const view = n <= SMALL_COPY && !this.views[i][chunk]
        ? new Uint8Array(koffi.view(s.host + BigInt(off), n))
        : this.view(i, chunk).subarray(coff, coff + n);
      fn(view, done);
      done += n;
    }
  }

  dataView(gpa: number, len: number): DataView | undefined {
    const s = this.slice(gpa, len);
    return s && new DataView(s.buffer, s.byteOffset, s.byteLength);
  }
}
