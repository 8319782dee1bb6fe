import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../kvm/memory.js';
import { BIOS_ALIAS_MAX, buildLayout, loadBootrom } from './layout.js';

const MiB = 2 ** 20;
const dir = mkdtempSync(join(tmpdir(), 'layout-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function rom(size: number): string {
  const path = join(dir, `rom-${size}`);
  writeFileSync(path, Uint8Array.from({ length: size }, (_, i) => (i * 7 + (i >> 12)) & 0xff));
  return path;
}

test('a 512 KiB ROM: read-only at 4 GiB, its last 256 KiB shadowed in writable RAM at 0xC0000', () => {
  const path = rom(512 * 1024);
  const l = buildLayout(16 * MiB, false, path);
  assert.deepEqual(l.romAlias, { gpa: 0xc0000, size: BIOS_ALIAS_MAX });
  const ram = l.segments.find((s) => s.name === 'lowmem')!;
  assert.deepEqual([ram.gpa, ram.size, ram.readonly], [0, 16 * MiB, false], 'one RAM slot covers the shadow');
  const romSeg = l.segments.find((s) => s.name === 'bootrom')!;
  assert.deepEqual([romSeg.gpa, romSeg.readonly], [2 ** 32 - 512 * 1024, true]);
  const mem = new GuestMemory(l.segments);
  loadBootrom(l, path, (gpa, d) => mem.write(gpa, d));
  assert.deepEqual(mem.read(0xc0000, 64), mem.read(2 ** 32 - BIOS_ALIAS_MAX, 64));
  assert.deepEqual(mem.read(0xffff0, 16), mem.read(2 ** 32 - 16, 16), 'the reset vector\'s code is below 1 MiB too');
});

test('a ROM smaller than 256 KiB is shadowed whole, ending at 1 MiB', () => {
  const path = rom(8192);
  const l = buildLayout(4 * MiB, false, path);
  assert.deepEqual(l.romAlias, { gpa: MiB - 8192, size: 8192 });
  const mem = new GuestMemory(l.segments);
  loadBootrom(l, path, (gpa, d) => mem.write(gpa, d));
  assert.deepEqual(mem.read(MiB - 8192, 8192), mem.read(2 ** 32 - 8192, 8192));
});

test('a variable store sits right below the ROM, writable, and guest writes reach its file', () => {
  const path = rom(64 * 1024);
  const vars = join(dir, 'vars.fd');
  writeFileSync(vars, new Uint8Array(16 * 1024).fill(0xff));
  const l = buildLayout(4 * MiB, false, path, vars);
  const seg = l.segments.find((s) => s.name === 'bootvars')!;
  assert.deepEqual([seg.gpa, seg.size, seg.readonly, seg.devmem], [2 ** 32 - 80 * 1024, 16 * 1024, false, true]);
  const mem = new GuestMemory(l.segments);
  loadBootrom(l, path, (gpa, d) => mem.write(gpa, d));
  assert.equal(mem.read(seg.gpa, 1)[0], 0xff, 'the file\'s contents');
  mem.write(seg.gpa + 100, Uint8Array.of(0x12, 0x34));
  assert.deepEqual([...readFileSync(vars).subarray(100, 102)], [0x12, 0x34]);
  assert.equal(mem.read(2 ** 32 - 64 * 1024, 1)[0], 0, 'the ROM follows');
});

test('bad variable stores are named', () => {
  const path = rom(8192);
  assert.throws(() => buildLayout(4 * MiB, false, path, join(dir, 'nope.fd')), { name: 'LayoutError', message: /bootvars .*nope\.fd: no such file/ });
  const odd = join(dir, 'odd.fd');
  writeFileSync(odd, new Uint8Array(100));
  assert.throws(() => buildLayout(4 * MiB, false, path, odd), { name: 'LayoutError', message: /not a multiple of the page size/ });
  assert.throws(() => buildLayout(4 * MiB, false, undefined, odd), { name: 'LayoutError', message: /needs a boot ROM/ });
});
