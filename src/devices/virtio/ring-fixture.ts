/**
 * For the virtqueue tests: a fake guest memory (RAM at 0 and a read-only ROM
 * high up) and a queue on it, with helpers to write descriptors and offer
 * chains the way a driver does.
 */
import { Arena } from '../../vmm/shared.js';
import * as V from './constants.js';
import { Virtqueue, type QueueMemory } from './virtqueue.js';

export const RAM = 1 << 20;
export const ROM_BASE = 0xf0000000, ROM_SIZE = 0x10000;
export const DESC = 0x1000, AVAIL = 0x2000, USED = 0x3000, N = 8;

export type FakeMem = QueueMemory & { ram: Uint8Array; rom: Uint8Array; dv: DataView };

/** Guest RAM at 0 (1 MiB) and a read-only ROM high up; `ram` may be shared between two memories. */
export function fakeMem(ram: Uint8Array = new Uint8Array(RAM), rom: Uint8Array = new Uint8Array(ROM_SIZE)): FakeMem {
  return {
    ram, rom, dv: new DataView(ram.buffer),
    segments: [{ gpa: 0, size: RAM, readonly: false }, { gpa: ROM_BASE, size: ROM_SIZE, readonly: true }],
    slice(gpa, len) {
      if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) return undefined;
      if (gpa + len <= RAM) return ram.subarray(gpa, gpa + len);
      if (gpa >= ROM_BASE && gpa + len <= ROM_BASE + ROM_SIZE) return rom.subarray(gpa - ROM_BASE, gpa - ROM_BASE + len);
      return undefined;
    },
  };
}

/** A ready queue of `size` entries on `mem`; `desc` writes a descriptor, `offer` makes a chain available. */
export function queueOn(mem: FakeMem, features = V.bit(V.F_RING_INDIRECT_DESC), size = N) {
  const broken: string[] = [];
  const q = new Virtqueue(new Arena(undefined, 1 << 16), 0, size, mem, () => features, (why) => broken.push(why));
  q.reset();
  q.setReg('descLo', DESC); q.setReg('availLo', AVAIL); q.setReg('usedLo', USED);
  q.enabled = true;
  let idx = 0;
  const desc = (i: number, addr: number | bigint, len: number, flags: number, next = 0, table = DESC): void => {
    const o = table + 16 * i;
    mem.dv.setBigUint64(o, BigInt(addr), true);
    mem.dv.setUint32(o + 8, len >>> 0, true);
    mem.dv.setUint16(o + 12, flags, true);
    mem.dv.setUint16(o + 14, next, true);
  };
  const offer = (head: number): void => {
    mem.dv.setUint16(AVAIL + 4 + 2 * (idx % size), head, true);
    idx = (idx + 1) & 0xffff;
    mem.dv.setUint16(AVAIL + 2, idx, true);
  };
  return { mem, q, broken, desc, offer };
}
