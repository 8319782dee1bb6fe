/**
 * Shared device state.
 *
 * Every vCPU runs on a worker thread of its own and handles its exits there,
 * synchronously. Device models are plain code instantiated once per thread in
 * the same order; all of their mutable state lives in one SharedArrayBuffer
 * (the arena), so every thread sees the same registers. One lock (the device
 * lock) serializes emulation: a vCPU takes it around an exit, the main thread
 * takes it around host events (console input, timers, signals).
 */

export type FieldType = 'u8' | 'u16' | 'u32' | 'i32' | 'f64';
const SIZE: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, i32: 4, f64: 8 };

export class ArenaError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ArenaError';
  }
}

/** Fixed offsets at the start of the arena. */
const LOCK_WORD = 0;
/** Bumped whenever a bus layout changes (a BAR moved); threads resync when it differs. */
const GENERATION_WORD = 1;
const HEADER_BYTES = 64;

export class Arena {
  readonly sab: SharedArrayBuffer;
  readonly view: DataView;
  readonly words: Int32Array;
  private next = HEADER_BYTES;

  constructor(sab?: SharedArrayBuffer, size = 1 << 20) {
    this.sab = sab ?? new SharedArrayBuffer(size);
    this.view = new DataView(this.sab);
    this.words = new Int32Array(this.sab);
  }

  /** Reserve `bytes` aligned to `align`; deterministic, so every thread gets the same offset. */
  alloc(bytes: number, align = 8): number {
    const off = (this.next + align - 1) & ~(align - 1);
    if (off + bytes > this.sab.byteLength) throw new ArenaError(`shared arena full (${this.sab.byteLength} bytes)`);
    this.next = off + bytes;
    return off;
  }

  bytes(len: number): Uint8Array {
    return new Uint8Array(this.sab, this.alloc(len, 8), len);
  }

  int32(count: number): Int32Array {
    return new Int32Array(this.sab, this.alloc(count * 4, 8), count);
  }

  /** A struct of named numeric fields backed by the arena. */
  struct<S extends Record<string, FieldType>>(spec: S): { [K in keyof S]: number } {
    const obj = {} as { [K in keyof S]: number };
    const v = this.view;
    for (const [name, type] of Object.entries(spec)) {
      const off = this.alloc(SIZE[type], SIZE[type]);
      let get: () => number;
      let set: (x: number) => void;
      switch (type) {
        case 'u8': get = () => v.getUint8(off); set = (x) => v.setUint8(off, x); break;
        case 'u16': get = () => v.getUint16(off, true); set = (x) => v.setUint16(off, x, true); break;
        case 'u32': get = () => v.getUint32(off, true); set = (x) => v.setUint32(off, x >>> 0, true); break;
        case 'i32': get = () => v.getInt32(off, true); set = (x) => v.setInt32(off, x | 0, true); break;
        case 'f64': get = () => v.getFloat64(off, true); set = (x) => v.setFloat64(off, x, true); break;
      }
      Object.defineProperty(obj, name, { get, set, enumerable: true });
    }
    return obj;
  }

  get generation(): number { return Atomics.load(this.words, GENERATION_WORD); }
  bumpGeneration(): void { Atomics.add(this.words, GENERATION_WORD, 1); }

  /** Take the device lock (spins briefly, then waits). */
  lock(): void {
    const w = this.words;
    for (let i = 0; i < 100; i++) if (Atomics.compareExchange(w, LOCK_WORD, 0, 1) === 0) return;
    while (Atomics.exchange(w, LOCK_WORD, 2) !== 0) Atomics.wait(w, LOCK_WORD, 2);
  }

  unlock(): void {
    if (Atomics.exchange(this.words, LOCK_WORD, 0) === 2) Atomics.notify(this.words, LOCK_WORD, 1);
  }

  /** Run `fn` under the device lock. */
  locked<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }
}

/** A byte FIFO in the arena (single lock protects it). */
export class SharedFifo {
  private readonly buf: Uint8Array;
  private readonly st: { head: number; count: number };
  constructor(arena: Arena, readonly capacity: number) {
    this.buf = arena.bytes(capacity);
    this.st = arena.struct({ head: 'u32', count: 'u32' });
  }
  get length(): number { return this.st.count; }
  get full(): boolean { return this.st.count >= this.capacity; }
  push(b: number): boolean {
    if (this.st.count >= this.capacity) return false;
    this.buf[(this.st.head + this.st.count) % this.capacity] = b;
    this.st.count = this.st.count + 1;
    return true;
  }
  shift(): number {
    if (this.st.count === 0) return -1;
    const b = this.buf[this.st.head];
    this.st.head = (this.st.head + 1) % this.capacity;
    this.st.count = this.st.count - 1;
    return b;
  }
  clear(): void { this.st.head = 0; this.st.count = 0; }
}
