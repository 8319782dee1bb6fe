import assert from 'node:assert/strict';
import { test } from 'node:test';
import { byteSum } from './bytes.js';
import {
  MP_ENTRY_BUS, MP_ENTRY_IOAPIC, MP_ENTRY_IOINT, MP_ENTRY_LOCALINT, MP_ENTRY_PROCESSOR, MP_EXTINT, MP_FLAGS_PCI,
  MP_INT, MP_NMI, buildMpTable,
} from './mptable.js';
import { MPTABLE_BASE, type Platform, defaultPlatform } from './platform.js';

function platform(over: Partial<Platform> = {}): Platform {
  const p = defaultPlatform({
    ncpus: 3, memSize: 1024 ** 3, vmName: 'vm', uuid: new Uint8Array(16),
    intxRoutes: [{ bus: 0, slot: 4, pin: 0, gsi: 16 }, { bus: 0, slot: 3, pin: 1, gsi: 17 }],
  });
  return { ...p, ...over };
}

interface Entry { type: number; b: Uint8Array; v: DataView }

function parse(bytes: Uint8Array, address: number) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(Buffer.from(bytes.subarray(0, 4)).toString(), '_MP_');
  assert.equal(byteSum(bytes.subarray(0, 16)), 0, 'floating pointer checksum');
  assert.equal(v.getUint8(8), 1);
  assert.equal(v.getUint8(9), 4);
  const ct = v.getUint32(4, true) - address;
  assert.equal(ct, 16);
  assert.equal(Buffer.from(bytes.subarray(ct, ct + 4)).toString(), 'PCMP');
  const len = v.getUint16(ct + 4, true);
  assert.equal(ct + len, bytes.length);
  assert.equal(byteSum(bytes.subarray(ct, ct + len)), 0, 'configuration table checksum');
  const count = v.getUint16(ct + 34, true);
  const entries: Entry[] = [];
  for (let off = ct + 44; off < ct + len;) {
    const type = v.getUint8(off);
    const n = type === MP_ENTRY_PROCESSOR ? 20 : 8;
    entries.push({ type, b: bytes.subarray(off, off + n), v: new DataView(bytes.buffer, bytes.byteOffset + off, n) });
    off += n;
  }
  assert.equal(entries.length, count);
  return { lapic: v.getUint32(ct + 36, true), entries };
}

test('floating pointer, header and checksums', () => {
  const t = parse(buildMpTable(platform(), MPTABLE_BASE), MPTABLE_BASE);
  assert.equal(t.lapic, 0xfee00000);
  const types = t.entries.map((e) => e.type);
  assert.deepEqual(types, [...types].sort((a, b) => a - b), 'entries sorted by type');
});

test('one processor entry per vCPU, CPU 0 is the bootstrap processor', () => {
  const t = parse(buildMpTable(platform(), MPTABLE_BASE), MPTABLE_BASE);
  const cpus = t.entries.filter((e) => e.type === MP_ENTRY_PROCESSOR);
  assert.deepEqual(cpus.map((e) => [e.b[1], e.b[3]]), [[0, 3], [1, 1], [2, 1]]);
});

test('buses, I/O APIC and interrupt assignments', () => {
  const t = parse(buildMpTable(platform(), MPTABLE_BASE), MPTABLE_BASE);
  const buses = t.entries.filter((e) => e.type === MP_ENTRY_BUS).map((e) => [e.b[1], Buffer.from(e.b.subarray(2, 8)).toString()]);
  assert.deepEqual(buses, [[0, 'PCI   '], [1, 'ISA   ']]);
  const io = t.entries.filter((e) => e.type === MP_ENTRY_IOAPIC);
  assert.equal(io.length, 1);
  assert.equal(io[0].b[3] & 1, 1);
  assert.equal(io[0].v.getUint32(4, true), 0xfec00000);

  const ints = t.entries.filter((e) => e.type === MP_ENTRY_IOINT)
    .map((e) => ({ kind: e.b[1], flags: e.v.getUint16(2, true), bus: e.b[4], irq: e.b[5], pin: e.b[7] }));
  assert.deepEqual(ints[0], { kind: MP_EXTINT, flags: 0, bus: 1, irq: 0, pin: 0 });
  const isa = ints.filter((i) => i.bus === 1 && i.kind === MP_INT);
  assert.equal(isa.length, 15); // IRQs 0-15 but the cascade
  assert.equal(isa.find((i) => i.irq === 0)?.pin, 2);
  assert.equal(isa.find((i) => i.irq === 2), undefined);
  assert.deepEqual(isa.find((i) => i.irq === 9), { kind: MP_INT, flags: 0xd, bus: 1, irq: 9, pin: 9 });
  const pci = ints.filter((i) => i.bus === 0);
  assert.deepEqual(pci, [
    { kind: MP_INT, flags: MP_FLAGS_PCI, bus: 0, irq: (3 << 2) | 1, pin: 17 },
    { kind: MP_INT, flags: MP_FLAGS_PCI, bus: 0, irq: (4 << 2) | 0, pin: 16 },
  ]);

  const lints = t.entries.filter((e) => e.type === MP_ENTRY_LOCALINT).map((e) => [e.b[1], e.b[6], e.b[7]]);
  assert.deepEqual(lints, [[MP_EXTINT, 0xff, 0], [MP_NMI, 0xff, 1]]);
});

test('PCI buses beyond 0 get bus entries; ISA takes the next id', () => {
  const p = platform({ intxRoutes: [{ bus: 2, slot: 0, pin: 0, gsi: 18 }] });
  const t = parse(buildMpTable(p, 0x9fc00), 0x9fc00);
  const buses = t.entries.filter((e) => e.type === MP_ENTRY_BUS).map((e) => e.b[1]);
  assert.deepEqual(buses, [0, 2, 3]);
});

test('errors', () => {
  assert.throws(() => buildMpTable(platform(), MPTABLE_BASE + 8), /16-byte aligned/);
  assert.throws(() => buildMpTable(platform({ ncpus: 256 }), MPTABLE_BASE), /cannot describe 256 vCPUs/);
  assert.throws(() => buildMpTable(platform({ intxRoutes: [{ bus: 0, slot: 1, pin: 0, gsi: 99 }] }), MPTABLE_BASE), /not an I\/O APIC pin/);
});
