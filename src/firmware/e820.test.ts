import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BOOT_E820_ENTRY_SIZE, E820_RAM, E820_RESERVED, PVH_MEMMAP_ENTRY_SIZE, e820Map, encodeBootE820, encodePvhMemmap,
} from './e820.js';
import { type Platform, defaultPlatform } from './platform.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function platform(memSize: number, over: Partial<Platform> = {}): Platform {
  return { ...defaultPlatform({ ncpus: 1, memSize, vmName: 'vm', uuid: new Uint8Array(16) }), ...over };
}

test('map with high memory: RAM, BIOS area, ECAM, MMIO, RAM above 4 GiB', () => {
  assert.deepEqual(e820Map(platform(6 * GiB)), [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x100000 - 0x9fc00, type: E820_RESERVED },
    { addr: 0x100000, size: 3 * GiB - 0x100000, type: E820_RAM },
    { addr: 0xe0000000, size: 256 * MiB, type: E820_RESERVED },
    { addr: 0xfec00000, size: 0x100000000 - 0xfec00000, type: E820_RESERVED },
    { addr: 4 * GiB, size: 3 * GiB, type: E820_RAM },
  ]);
});

test('small guest: no high RAM; boot ROM below the I/O APIC extends the reservation', () => {
  const m = e820Map(platform(256 * MiB, { bootrom: { address: 0xfe000000, size: 0x2000000 }, ecam: undefined }));
  assert.deepEqual(m.map((e) => [e.addr, e.type]), [[0, 1], [0x9fc00, 2], [0x100000, 1], [0xfe000000, 2]]);
  assert.equal(m[2].size, 255 * MiB);
  assert.equal(m[3].size, 32 * MiB);
});

test('bad low memory is refused', () => {
  assert.throws(() => e820Map(platform(GiB, { memory: { lowmem: 3.5 * GiB, highmem: 0 } })), /3 GiB/);
  assert.throws(() => e820Map(platform(GiB, { memory: { lowmem: 0x1000, highmem: 0 } })), /low memory/);
  const p = platform(3 * GiB);
  assert.throws(() => e820Map({ ...p, ecam: { base: 0x80000000, busStart: 0, busEnd: 255 } }), /overlap/);
});

test('zero-page and PVH encodings', () => {
  const m = e820Map(platform(6 * GiB));
  const z = encodeBootE820(m);
  assert.equal(z.length, m.length * BOOT_E820_ENTRY_SIZE);
  const zv = new DataView(z.buffer);
  assert.equal(Number(zv.getBigUint64(2 * 20, true)), 0x100000);
  assert.equal(Number(zv.getBigUint64(2 * 20 + 8, true)), 3 * GiB - 0x100000);
  assert.equal(zv.getUint32(2 * 20 + 16, true), E820_RAM);
  const pvh = encodePvhMemmap(m);
  assert.equal(pvh.length, m.length * PVH_MEMMAP_ENTRY_SIZE);
  const pv = new DataView(pvh.buffer);
  assert.equal(Number(pv.getBigUint64(5 * 24, true)), 4 * GiB);
  assert.equal(pv.getUint32(5 * 24 + 16, true), E820_RAM);
  assert.equal(pv.getUint32(5 * 24 + 20, true), 0);
  assert.throws(() => encodeBootE820(new Array(129).fill(m[0])), /exceed/);
});
