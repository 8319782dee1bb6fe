import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../kvm/memory.js';
import { BIOS_ALIAS_MAX, buildLayout, loadBootrom } from './layout.js';

const MiB = 2 ** 20;
const dir = mkdtempSync(join(tmpdir(), 'layout-'));

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
