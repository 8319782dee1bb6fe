/**
 * The physical region descriptor table (PRDT) of a command: each entry
 * names a guest-physical buffer (DBA, DBC+1 bytes). Entries are checked
 * against guest memory before any byte moves; an entry outside guest memory
 * (or, for device-to-memory transfers, in read-only device memory) makes
 * the whole command fail, never a host access.
 */
import type { GuestMemory } from '../../kvm/memory.js';
import { PRD_DBC_MASK, PRD_SIZE } from './regs.js';

/** GuestMemory views are cut at 4 GiB within a segment (see memory.ts). */
const VIEW_CHUNK = 2 ** 32;

export interface Prd { gpa: number; len: number }

/** Parse `count` entries from a copy of the PRDT bytes. */
export function parsePrdt(table: Uint8Array, count: number): Prd[] {
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const out: Prd[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * PRD_SIZE;
    const gpa = dv.getUint32(o + 4, true) * 2 ** 32 + ((dv.getUint32(o, true) & ~1) >>> 0);
    out.push({ gpa, len: (dv.getUint32(o + 12, true) & PRD_DBC_MASK) + 1 });
  }
  return out;
}

/** Views of [gpa, gpa+len), split where guest memory's views split; undefined when any byte is not usable. */
export function guestViews(mem: GuestMemory, gpa: number, len: number, toGuest: boolean, out: Uint8Array[]): boolean {
  while (len > 0) {
    const seg = mem.segments.find((s) => gpa >= s.gpa && gpa < s.gpa + s.size);
    if (!seg || (toGuest && seg.readonly)) return false;
    const off = gpa - seg.gpa;
    const chunkEnd = seg.gpa + (Math.floor(off / VIEW_CHUNK) + 1) * VIEW_CHUNK;
    const n = Math.min(len, seg.gpa + seg.size - gpa, chunkEnd - gpa);
    const v = mem.slice(gpa, n);
    if (!v) return false;
    out.push(v);
    gpa += n;
    len -= n;
  }
  return true;
}

export interface SgList {
  views: Uint8Array[];
  /** Bytes the views cover: min(limit, the PRDT's total). */
  bytes: number;
}

/**
 * Map the first `limit` bytes the PRDT describes (fewer when the PRDT is
 * shorter). Undefined when a used entry is outside guest memory.
 */
export function mapSg(mem: GuestMemory, prds: Prd[], limit: number, toGuest: boolean): SgList | undefined {
  const views: Uint8Array[] = [];
  let bytes = 0;
  for (const prd of prds) {
    if (bytes >= limit) break;
    const n = Math.min(prd.len, limit - bytes);
    if (!guestViews(mem, prd.gpa, n, toGuest, views)) return undefined;
    bytes += n;
  }
  return { views, bytes };
}

/** Copy `data` into the views; returns the bytes copied. */
export function copyToSg(sg: SgList, data: Uint8Array): number {
  let done = 0;
  for (const v of sg.views) {
    if (done >= data.length) break;
    const n = Math.min(v.length, data.length - done);
    v.set(data.subarray(done, done + n));
    done += n;
  }
  return done;
}

/** Gather the views into one buffer. */
export function copyFromSg(sg: SgList): Uint8Array {
  const out = new Uint8Array(sg.bytes);
  let done = 0;
  for (const v of sg.views) {
    out.set(v, done);
    done += v.length;
  }
  return out;
}
