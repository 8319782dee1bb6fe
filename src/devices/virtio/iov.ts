/** Scatter-gather lists of guest buffers (views from GuestMemory.slice), treated as one byte stream. */

export function iovLength(iov: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of iov) n += b.length;
  return n;
}

/** The views covering bytes [start, start+len) of the stream (clipped to its end). */
export function iovSlice(iov: readonly Uint8Array[], start: number, len: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  const end = start + len;
  for (const b of iov) {
    const bEnd = pos + b.length;
    if (bEnd > start && pos < end) out.push(b.subarray(Math.max(start - pos, 0), Math.min(end, bEnd) - pos));
    pos = bEnd;
    if (pos >= end) break;
  }
  return out;
}

/** Copy up to `len` bytes from `start` of the stream into a new array (shorter when the stream ends). */
export function iovRead(iov: readonly Uint8Array[], start: number, len: number): Uint8Array {
  const parts = iovSlice(iov, start, len);
  const out = new Uint8Array(iovLength(parts));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Copy `data` into the stream at `start`; returns the bytes written (fewer when the stream ends). */
export function iovWrite(iov: readonly Uint8Array[], start: number, data: Uint8Array): number {
  let o = 0;
  for (const p of iovSlice(iov, start, data.length)) { p.set(data.subarray(o, o + p.length)); o += p.length; }
  return o;
}
