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
    let done = 0;
    while (done < len) {
      const n = this.piece(gpa + done, len - done);
      out.set(this.copyView(gpa + done, n), done);
      done += n;
    }
    return out;
  }

  /** Copy in (ignores read-only: loaders use it to fill ROMs); throws when outside memory. */
  write(gpa: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const n = this.piece(gpa + done, data.length - done);
      this.copyView(gpa + done, n).set(data.subarray(done, done + n));
      done += n;
    }
  }

  /** How much of [gpa, gpa+len) lies in one segment and one view-sized piece of it. */
  private piece(gpa: number, len: number): number {
    const hit = this.locate(gpa);
    if (!hit) throw new MemoryError(`guest address 0x${gpa.toString(16)} is not memory`);
    const [, s] = hit;
    return Math.min(len, s.gpa + s.size - gpa, CHUNK - ((gpa - s.gpa) % CHUNK));
  }

  /**
   * A view for a copy within one piece: the piece's view when this thread
   * has it, else (for a small copy) a view of just that range, so that a
   * loader writing a few tables does not make, and pay for, a view of all
   * of RAM (see `views`).
   */
  private copyView(gpa: number, n: number): Uint8Array {
    const [i, s] = this.locate(gpa)!;
    const off = gpa - s.gpa;
    if (n <= SMALL_COPY && !this.views[i][Math.floor(off / CHUNK)]) {
      return new Uint8Array(koffi.view(s.host + BigInt(off), n));
    }
    return this.slice(gpa, n)!;
  }

  dataView(gpa: number, len: number): DataView | undefined {
    const s = this.slice(gpa, len);
    return s && new DataView(s.buffer, s.byteOffset, s.byteLength);
  }
}
