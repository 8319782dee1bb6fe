import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { byteSum } from './bytes.js';
import { type Platform, SMBIOS_BASE, defaultPlatform } from './platform.js';
import {
  SMBIOS_ENTRY_LENGTH, TYPE_ARRAY_MAPPED, TYPE_DEVICE_MAPPED, TYPE_MEMORY_ARRAY, TYPE_MEMORY_DEVICE, TYPE_PROCESSOR, TYPE_SYSTEM,
  buildSmbios, defaultUuid, formatUuid, parseUuid, smbiosUuidBytes,
} from './smbios.js';

const UUID = '12345678-9abc-def0-1122-334455667788';

function platform(over: Partial<Platform> = {}, memSize = 6 * 1024 ** 3): Platform {
  return { ...defaultPlatform({ ncpus: 2, memSize, vmName: 'testvm', uuid: UUID }), ...over };
}

interface Struct { type: number; length: number; handle: number; v: DataView; strings: string[]; total: number }

function parse(bytes: Uint8Array, address: number) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(Buffer.from(bytes.subarray(0, 4)).toString(), '_SM_');
  assert.equal(v.getUint8(5), SMBIOS_ENTRY_LENGTH);
  assert.equal(byteSum(bytes.subarray(0, SMBIOS_ENTRY_LENGTH)), 0, 'entry point checksum');
  assert.equal(Buffer.from(bytes.subarray(0x10, 0x15)).toString(), '_DMI_');
  assert.equal(byteSum(bytes.subarray(0x10, SMBIOS_ENTRY_LENGTH)), 0, 'intermediate checksum');
  assert.deepEqual([v.getUint8(6), v.getUint8(7), v.getUint8(0x1e)], [2, 8, 0x28]);
  const tableLen = v.getUint16(0x16, true);
  const start = v.getUint32(0x18, true) - address;
  const count = v.getUint16(0x1c, true);
  assert.equal(start + tableLen, bytes.length);
  const structs: Struct[] = [];
  for (let off = start; off < start + tableLen;) {
    const length = v.getUint8(off + 1);
    let p = off + length;
    const strings: string[] = [];
    if (bytes[p] === 0) p += 2;
    else {
      while (bytes[p] !== 0) {
        const end = bytes.indexOf(0, p);
        strings.push(Buffer.from(bytes.subarray(p, end)).toString('latin1'));
        p = end + 1;
      }
      p += 1;
    }
    structs.push({ type: v.getUint8(off), length, handle: v.getUint16(off + 2, true), v: new DataView(bytes.buffer, bytes.byteOffset + off, length), strings, total: p - off });
    off = p;
  }
  assert.equal(structs.length, count);
  assert.equal(v.getUint16(8, true), Math.max(...structs.map((s) => s.total)), 'max structure size');
  return structs;
}

const str = (s: Struct, off: number) => s.strings[s.v.getUint8(off) - 1];

test('entry point, structure order, lengths and unique handles', () => {
  const s = parse(buildSmbios(platform(), SMBIOS_BASE), SMBIOS_BASE);
  assert.deepEqual(s.map((x) => x.type), [0, 1, 3, 4, 4, 16, 17, 17, 19, 19, 20, 20, 32, 127]);
  assert.deepEqual(s.map((x) => x.length), [24, 27, 22, 42, 42, 23, 40, 40, 31, 31, 35, 35, 11, 4]);
  assert.equal(new Set(s.map((x) => x.handle)).size, s.length);
  assert.deepEqual(s[0].strings, ['BHYVE', '1.00', '03/14/2014']);
  assert.equal(s[0].v.getUint16(6, true), 0xf000);
});

test('system structure: strings and the UUID encoded like bhyve -U', () => {
  const sys = parse(buildSmbios(platform(), SMBIOS_BASE), SMBIOS_BASE).find((x) => x.type === TYPE_SYSTEM)!;
  assert.equal(str(sys, 4), 'FreeBSD');
  assert.equal(str(sys, 5), 'BHYVE');
  assert.equal(str(sys, 0x1a), 'Virtual Machine');
  const uuid = Buffer.from(new Uint8Array(sys.v.buffer, sys.v.byteOffset + 8, 16)).toString('hex');
  assert.equal(uuid, '78563412bc9af0de1122334455667788');
});

test('processors per socket with topology', () => {
  const s = parse(buildSmbios(platform({ topology: { sockets: 2, cores: 4, threads: 2 } }), SMBIOS_BASE), SMBIOS_BASE);
  const cpus = s.filter((x) => x.type === TYPE_PROCESSOR);
  assert.deepEqual(cpus.map((c) => str(c, 4)), ['CPU #0', 'CPU #1']);
  assert.deepEqual([cpus[0].v.getUint8(0x23), cpus[0].v.getUint8(0x25)], [4, 8]);
});

test('memory array, devices and mapped addresses cover low and high RAM', () => {
  const s = parse(buildSmbios(platform(), SMBIOS_BASE), SMBIOS_BASE);
  const arr = s.find((x) => x.type === TYPE_MEMORY_ARRAY)!;
  assert.equal(arr.v.getUint16(0x0d, true), 2);
  assert.equal(Number(arr.v.getBigUint64(0x0f, true)), 6 * 1024 ** 3);
  const devs = s.filter((x) => x.type === TYPE_MEMORY_DEVICE);
  assert.ok(devs.every((d) => d.v.getUint16(4, true) === arr.handle));
  assert.deepEqual(devs.map((d) => d.v.getUint16(0x0c, true)), [3072, 3072]); // MiB
  const maps = s.filter((x) => x.type === TYPE_ARRAY_MAPPED);
  assert.deepEqual(maps.map((m) => [m.v.getUint32(4, true), m.v.getUint32(8, true), m.v.getUint16(0x0c, true)]),
    [[0, 3 * 1024 * 1024 - 1, arr.handle], [4 * 1024 * 1024, 7 * 1024 * 1024 - 1, arr.handle]]);
  const dmaps = s.filter((x) => x.type === TYPE_DEVICE_MAPPED);
  assert.deepEqual(dmaps.map((m) => [m.v.getUint16(0x0c, true), m.v.getUint16(0x0e, true)]),
    devs.map((d, i) => [d.handle, maps[i].handle]));
});

test('small and huge memory sizes use the KiB and extended encodings', () => {
  const small = parse(buildSmbios(platform({ memory: { lowmem: 16 * 1024 * 1024, highmem: 0 } }), SMBIOS_BASE), SMBIOS_BASE);
  const dev = small.filter((x) => x.type === TYPE_MEMORY_DEVICE);
  assert.equal(dev.length, 1);
  assert.equal(dev[0].v.getUint16(0x0c, true), 0x8000 | 16384);
  const huge = parse(buildSmbios(platform({ memory: { lowmem: 3 * 1024 ** 3, highmem: 5 * 1024 ** 4 } }), SMBIOS_BASE), SMBIOS_BASE);
  const hi = huge.filter((x) => x.type === TYPE_MEMORY_DEVICE)[1];
  assert.equal(hi.v.getUint16(0x0c, true), 0x7fff);
  assert.equal(hi.v.getUint32(0x1c, true), 5 * 1024 * 1024);
  const map = huge.filter((x) => x.type === TYPE_ARRAY_MAPPED)[1];
  assert.equal(map.v.getUint32(4, true), 0xffffffff);
  assert.equal(Number(map.v.getBigUint64(0x0f, true)), 4 * 1024 ** 3);
  assert.equal(Number(map.v.getBigUint64(0x17, true)), 4 * 1024 ** 3 + 5 * 1024 ** 4 - 1);
});

test('parseUuid and formatUuid round-trip; malformed input is named', () => {
  assert.equal(formatUuid(parseUuid(UUID)), UUID);
  assert.equal(formatUuid(parseUuid(UUID.toUpperCase())), UUID);
  for (const bad of ['', '1234', `${UUID}0`, UUID.replace(/-/g, ''), 'g2345678-9abc-def0-1122-334455667788', `${UUID}\n`]) {
    assert.throws(() => parseUuid(bad), (e: Error) => e.name === 'SmbiosError' && e.message.includes(JSON.stringify(bad)) && !e.message.includes('\n'));
  }
  assert.throws(() => buildSmbios(platform({ uuid: 'nope' }), SMBIOS_BASE), /invalid UUID "nope"/);
  assert.throws(() => smbiosUuidBytes(new Uint8Array(15)), /16 bytes/);
});

test('defaultUuid is bhyve\'s MD5 of the VM name and the padded hostname', () => {
  const u = defaultUuid('host.example', 'testvm');
  assert.equal(Buffer.from(u).toString('hex'), '4960251c30cc37f59feea27e63d8f353');
  assert.equal(u[6] >> 4, 3);
  assert.equal(u[8] & 0xc0, 0x80);
  assert.notDeepEqual(defaultUuid('host.example', 'other'), u);
  // Stored verbatim, as bhyve does for the derived UUID.
  const sys = parse(buildSmbios(platform({ uuid: u }), SMBIOS_BASE), SMBIOS_BASE).find((x) => x.type === TYPE_SYSTEM)!;
  assert.deepEqual(new Uint8Array(sys.v.buffer, sys.v.byteOffset + 8, 16), u);
});

test('address must be 16-byte aligned', () => {
  assert.throws(() => buildSmbios(platform(), SMBIOS_BASE + 1), /16-byte aligned/);
});

test('dmidecode decodes the tables', (t) => {
  if (spawnSync('dmidecode', ['--version']).error) {
    t.skip('dmidecode not installed: apt-get install dmidecode to run this test');
    return;
  }
  // With address 0 the bytes are exactly a dmidecode dump: entry point, table at 0x20.
  const dir = mkdtempSync(join(tmpdir(), 'bhyve-ts-smbios-'));
  try {
    const file = join(dir, 'smbios.bin');
    writeFileSync(file, buildSmbios(platform(), 0));
    const r = spawnSync('dmidecode', ['--from-dump', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /Invalid|wrong|truncated|Bad/i);
    for (const want of ['SMBIOS 2.8 present', '14 structures', 'Vendor: BHYVE', 'Manufacturer: FreeBSD', `UUID: ${UUID}`,
      'Socket Designation: CPU #1', 'Maximum Capacity: 6 GB', 'Ending Address: 0x001BFFFFFFF', 'End Of Table']) {
      assert.ok(r.stdout.includes(want), `dmidecode output lacks ${want}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
