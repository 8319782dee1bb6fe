/**
 * AHCI driven by the project's own guest (tests/guests/ahci.S): IDENTIFY,
 * a write through two PRD entries checked in the host file, an NCQ
 * read-back, hostile PRDs and command tables, READ CAPACITY and READ(10) of
 * an ISO made here with xorriso; the man page's example (eight ahci-hd
 * functions and an ahci-cd) and bhyve's multi-port `ahci,hd:...,cd:...`
 * form; `ro`, `nocache`, `direct`; and the start-up errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { closeBlock, openBlock } from '../../src/backends/block.js';
import { boot, describe, ensureGuests, findLine, romArgs, runVmm, skipWithoutKvm, Status, type RunResult } from './harness.js';

const SECTORS = 2048;
let dir = '';
let iso = '';
let isoBlocks = 0;

/** A disk image whose sector 0 starts with `tag` (8 bytes) and whose sector 2 holds a known filler. */
function disk(name: string, tag: string): string {
  const p = path.join(dir, name);
  const b = Buffer.alloc(SECTORS * 512, 0x11);
  b.write(tag.padEnd(8, '.').slice(0, 8), 0, 'latin1');
  fs.writeFileSync(p, b);
  return p;
}

before(() => {
  ensureGuests();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ahci-e2e-'));
  const src = path.join(dir, 'isodir');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'hello.txt'), 'hello from the CD\n');
  iso = path.join(dir, 'cd.iso');
  execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'BHYVETS', '-o', iso, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  isoBlocks = fs.statSync(iso).size / 2048;
});
after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

const where = (slot: number, fn: number, port: number): string =>
  `${slot.toString(16).padStart(2, '0')}.${fn}.${port.toString(16).padStart(2, '0')}`;
const hex = (s: string): string => Buffer.from(s, 'latin1').toString('hex');

/** The sectors the guest wrote at LBA 2 of a disk at slot.fn port. */
function expectWritten(file: string, slot: number, fn: number, port: number, why: string): void {
  const b = fs.readFileSync(file);
  const got = b.subarray(1024, 2048);
  assert.equal(got.subarray(0, 4).toString('latin1'), 'AHCI', `${file} got the guest's write\n${why}`);
  assert.deepEqual([...got.subarray(4, 8)], [slot, fn, port, 0x5a], `${file}: written by ${where(slot, fn, port)}\n${why}`);
  for (let i = 8; i < 1024; i++) if (got[i] !== (i & 0xff)) assert.fail(`${file}: byte ${1024 + i} is ${got[i]}\n${why}`);
  assert.equal(b[2048], 0x11, `${file}: nothing written past the two sectors\n${why}`);
  assert.equal(b.length, SECTORS * 512, `${file}: size unchanged`);
}

function checkDisk(r: RunResult, file: string, tag: string, slot: number, fn: number, port: number, why: string): void {
  const w = where(slot, fn, port);
  assert.ok(r.lines.includes(`PORT ${w} sig 00000101 ssts 00000133`), `${w} is a disk\n${why}`);
  const id = findLine(r, new RegExp(`^ID ${w.replace(/\./g, '\\.')} sectors ([0-9a-f]{8}) model (.*)$`));
  assert.ok(id, `IDENTIFY on ${w}\n${why}`);
  assert.equal(parseInt(id[1], 16), SECTORS);
  assert.equal(id[2].trim(), 'BHYVE SATA DISK');
  assert.ok(r.lines.includes(`SEC0 ${w} ${hex(tag.padEnd(8, '.').slice(0, 8))}`), `${w} read its own image\n${why}`);
  assert.ok(r.lines.includes(`WRITE ${w} ok`), `${w} write\n${why}`);
  assert.ok(r.lines.includes(`READBACK ${w} ok`), `${w} NCQ read-back\n${why}`);
  expectWritten(file, slot, fn, port, why);
}

function checkCd(r: RunResult, slot: number, fn: number, port: number, why: string): void {
  const w = where(slot, fn, port);
  assert.ok(r.lines.includes(`PORT ${w} sig eb140101 ssts 00000133`), `${w} is ATAPI\n${why}`);
  const last = (isoBlocks - 1).toString(16).padStart(8, '0');
  assert.ok(r.lines.includes(`CD ${w} last ${last} bsize 00000800`), `READ CAPACITY on ${w}\n${why}`);
  assert.ok(r.lines.includes(`PVD ${w} CD001`), `READ(10) of the volume descriptor on ${w}\n${why}`);
}

function checkHostile(r: RunResult, w: string, why: string): void {
  for (const n of [1, 2, 3]) {
    const m = findLine(r, new RegExp(`^HOSTILE ${w.replace(/\./g, '\\.')} ${n} tfd ([0-9a-f]{8}) is ([0-9a-f]{8})$`));
    assert.ok(m, `hostile case ${n}\n${why}`);
    assert.equal(parseInt(m[1], 16) & 0x01, 1, `case ${n}: ERR in the task file\n${why}`);
    assert.equal(parseInt(m[1], 16) & 0x400, 0x400, `case ${n}: ABORT\n${why}`);
    assert.ok((parseInt(m[2], 16) & 0x40000000) !== 0, `case ${n}: PxIS.TFES\n${why}`);
  }
  assert.ok(r.lines.includes(`RECOVER ${w} ok`), `the port recovers\n${why}`);
}

test('ahci: the man page example, eight ahci-hd functions and an ahci-cd', async (t) => {
  if (skipWithoutKvm(t)) return;
  const disks = Array.from({ length: 8 }, (_, i) => disk(`disk.${i + 1}`, `DISK${i + 1}`));
  const slots = ['-s', '0,amd_hostbridge', '-s', '31,lpc'];
  disks.forEach((d, i) => slots.push('-s', `1:${i},ahci-hd,${d}`));
  slots.push('-s', `2,ahci-cd,${iso}`);
  const r = await boot(romArgs('ahci', [], slots));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.equal(r.lines.at(-1), 'DONE', why);
  assert.equal(r.lines.filter((l) => l.startsWith('HBA ')).length, 9, why);
  assert.ok(r.lines.includes('HBA 01.0 pi 00000001 cap ff30ff3f'), why);
  disks.forEach((d, i) => checkDisk(r, d, `DISK${i + 1}`, 1, i, 0, why));
  checkCd(r, 2, 0, 0, why);
  checkHostile(r, where(1, 0, 0), why);
});

test('ahci: the multi-port form ahci,hd:...,cd:... with eight disks and a CD', async (t) => {
  if (skipWithoutKvm(t)) return;
  const disks = Array.from({ length: 8 }, (_, i) => disk(`mp.${i}`, `PORT${i}`));
  const spec = [...disks.map((d) => `hd:${d}`), `cd:${iso}`].join(',');
  const r = await boot(romArgs('ahci', [], ['-s', '0,hostbridge', '-s', '31,lpc', '-s', `4,ahci,${spec}`]));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.equal(r.lines.at(-1), 'DONE', why);
  assert.ok(r.lines.includes('HBA 04.0 pi 000001ff cap ff30ff3f'), why);
  disks.forEach((d, i) => checkDisk(r, d, `PORT${i}`, 4, 0, i, why));
  checkCd(r, 4, 0, 8, why);
  checkHostile(r, where(4, 0, 0), why);
});

test('ahci: ro refuses the write (file untouched); nocache and direct work', async (t) => {
  if (skipWithoutKvm(t)) return;
  const ro = disk('ro.img', 'READONLY');
  const before = fs.readFileSync(ro);
  const nc = disk('nc.img', 'NOCACHE');
  const r = await boot(romArgs('ahci', [], ['-s', '0,hostbridge', '-s', '31,lpc', '-s', `3,ahci-hd,${ro},ro`,
    '-s', `5,ahci-hd,${nc},nocache,direct,sectorsize=512/4096,ser=NCSERIAL`]));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.ok(r.lines.includes(`SEC0 ${where(3, 0, 0)} ${hex('READONLY')}`), why);
  assert.match(r.lines.find((l) => l.startsWith(`WRITE ${where(3, 0, 0)}`)) ?? '', / err tfd 00000441$/, why);
  assert.deepEqual(fs.readFileSync(ro), before, 'the read-only image is untouched');
  checkDisk(r, nc, 'NOCACHE', 5, 0, 0, why);
});

const startupErrors: { what: string; dev: () => string; names: RegExp }[] = [
  { what: 'a missing image', dev: () => '3,ahci-hd,/nonexistent/bhyve-ts/disk.img', names: /\/nonexistent\/bhyve-ts\/disk\.img does not exist/ },
  { what: 'an image locked by another user', dev: () => `3,ahci-hd,${iso}`, names: /is locked by another process/ },
  { what: 'a bad sectorsize', dev: () => `3,ahci-hd,${disk('ss.img', 'SS')},sectorsize=1000`, names: /bad sectorsize '1000'/ },
  { what: 'an unknown option', dev: () => `3,ahci-hd,${disk('opt.img', 'OPT')},bogus`, names: /port\.0\.bogus/ },
  { what: 'ahci-hd without an image', dev: () => '3,ahci-hd', names: /ahci-hd at pci\.0\.3\.0: missing disk image path/ },
  { what: 'a port without a type', dev: () => `3,ahci,${disk('nt.img', 'NT')}`, names: /missing or invalid type for port 0/ },
];

for (const c of startupErrors) {
  test(`ahci: ${c.what} is one line on stderr and status 4`, async () => {
    // Another user of the image: this process holds it open (exclusively locked) through the same back-end.
    const holder = c.what.includes('locked') ? openBlock(iso) : undefined;
    try {
      const r = await runVmm(romArgs('ahci', [], ['-s', '0,hostbridge', '-s', '31,lpc', '-s', c.dev()]), { timeoutMs: 30_000 });
      const why = describe(r);
      assert.equal(r.status, Status.Error, why);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, `one line\n${why}`);
      assert.match(lines[0], c.names, why);
    } finally {
      if (holder) closeBlock(holder);
    }
  });
}
