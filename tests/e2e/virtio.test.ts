/**
 * virtio-blk and virtio-rnd driven by the project's own guest (tests/guests/
 * virtio.S): the modern interface with MSI-X, MSI (-W) and INTx, the legacy
 * interface, hostile descriptor chains, a read-only disk, and the data that
 * reaches the host file. Also the start-up errors of virtio-blk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { boot, describe, ensureGuests, rom, romArgs, runVmm, skipWithoutKvm, Status, type RunResult } from './harness.js';

const SIZE = 16 << 20;
const HOST_SECTOR = 16;

/** A 16 MiB image with "HOSTDATA" and a byte ramp in sector 16. */
function image(): { dir: string; path: string; content: Uint8Array } {
  const dir = mkdtempSync(join(tmpdir(), 'bhyve-virtio-'));
  const path = join(dir, 'disk.img');
  const content = new Uint8Array(SIZE);
  const o = HOST_SECTOR * 512;
  content.set(Buffer.from('HOSTDATA'), o);
  for (let i = 8; i < 512; i++) content[o + i] = i & 0xff;
  writeFileSync(path, content);
  return { dir, path, content };
}

function runBlk(guest: string, disk: string, extra: string[] = [], env?: Record<string, string>): Promise<RunResult> {
  return boot(romArgs(guest, extra, ['-s', '0,hostbridge', '-s', `3,virtio-blk,${disk}`, '-s', '31,lpc']), { env });
}

const line = (r: RunResult, prefix: string): string | undefined => r.lines.find((l) => l.startsWith(prefix));

/** The request lines every virtio-blk run prints, for a writable disk. */
const EXPECTED: [string, string][] = [
  ['write ', 'write status 00 len 00000001'],
  ['read ', 'read status 00 len 00001001'],
  ['hostread ', 'hostread status 00 len 00000201'],
  ['hostdata ', 'hostdata 54534f48 41544144 fffefdfc'],
  ['flush ', 'flush status 00 len 00000001'],
  ['getid ', 'getid status 00 len 00000015'],
  ['indirect ', 'indirect status 00 len 00000201'],
  ['indirect data', 'indirect data b10c0000 b10c007f'],
  ['beyond ', 'beyond status 01 len 00000001'],
  ['unsupported ', 'unsupported status 02 len 00000001'],
  ['hostile-addr ', 'hostile-addr status 01 len 00000001'],
  ['hostile-len ', 'hostile-len status 01 len 00000001'],
  ['hostile-loop ', 'hostile-loop status 01 len 00000001'],
  ['hostile-next ', 'hostile-next status ee len 00000000'],
  ['hostile-indirect ', 'hostile-indirect status ee len 00000000'],
];

function checkBlk(r: RunResult, opts: { irq: string; legacy?: boolean; ro?: boolean }): void {
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.equal(r.lines.at(-1), 'DONE', why);
  assert.equal(line(r, 'virtio found'), `virtio found slot 03 ${opts.legacy ? 'legacy' : 'modern'}`, why);
  assert.ok(line(r, 'irq ')?.startsWith(`irq ${opts.irq}`), why);
  assert.ok(!r.lines.includes('features rejected'), why);
  assert.equal(line(r, 'capacity'), `capacity ${(SIZE / 512).toString(16).padStart(8, '0')} blk_size 00000200`, why);
  for (const [prefix, want] of EXPECTED) {
    // A read-only disk refuses the write, so the reads find its zeros.
    const ro: Record<string, string> = { 'write ': 'write status 01 len 00000001', 'indirect data': 'indirect data 00000000 00000000' };
    const expect = (opts.ro && ro[prefix]) || want;
    assert.equal(line(r, prefix), expect, `${prefix}\n${why}`);
  }
  const ready = opts.legacy ? 0x07 : 0x0f;
  const needsReset = (ready | 0x40).toString(16).padStart(2, '0');
  assert.equal(line(r, 'hostile-head'), `hostile-head device status ${needsReset}`, why);
  assert.equal(line(r, 'hostile-idx'), `hostile-idx device status ${needsReset}`, why);
  assert.equal(r.lines.filter((l) => l === 'recovered status 00 len 00001001').length, 2, why);
  const verify = r.lines.filter((l) => l.startsWith('verify'));
  assert.deepEqual(verify, Array(3).fill(opts.ro ? 'verify bad at 0000' : 'verify ok'), why);
  const m = line(r, 'interrupts')?.match(/^interrupts (\d+) timeouts (\d+)$/);
  assert.ok(m && Number(m[1]) > 0 && m[2] === '0', `interrupts delivered, no timeouts\n${why}`);
  assert.doesNotMatch(r.stdout, /TIMEOUT|EXCEPTION/, why);
}

/** What the guest wrote: 4 KiB at sector 2, dword i = 0xB10C0000 + i. */
function checkFile(path: string, before: Uint8Array): void {
  const after = new Uint8Array(readFileSync(path));
  const dv = new DataView(after.buffer, after.byteOffset);
  for (let i = 0; i < 1024; i++) assert.equal(dv.getUint32(1024 + 4 * i, true), 0xb10c0000 + i, `dword ${i} of sector 2`);
  assert.deepEqual(after.subarray(0, 1024), before.subarray(0, 1024), 'sectors 0-1 untouched');
  assert.deepEqual(after.subarray(5120), before.subarray(5120), 'the rest untouched');
}

const cases: { name: string; guest: string; extra?: string[]; irq: string; legacy?: boolean; env?: Record<string, string> }[] = [
  { name: 'modern interface, MSI-X', guest: 'vblk', irq: 'msix' },
  { name: 'modern interface, MSI (-W)', guest: 'vblk', extra: ['-W'], irq: 'msi' },
  { name: 'modern interface, INTx', guest: 'vblk-intx', irq: 'intx' },
  // vCPU 0's thread built its buses before the guest turned memory decoding
  // on during the head start: it must map the BARs before its first exit (a
  // loaded CI host once gave all-ones registers here).
  { name: 'modern interface, INTx, vCPU 0 taken over after its BARs moved', guest: 'vblk-intx', irq: 'intx', env: { BHYVE_TEST_LATE_HANDOFF: '1' } },
  { name: 'legacy interface, MSI-X', guest: 'vblk-legacy', irq: 'msix', legacy: true },
];

for (const c of cases) {
  test(`virtio-blk: ${c.name}: requests, hostile chains, recovery, data in the file`, async (t) => {
    if (skipWithoutKvm(t)) return;
    const img = image();
    try {
      const r = await runBlk(c.guest, `${img.path},ser=E2ESERIAL`, c.extra, c.env);
      checkBlk(r, c);
      assert.equal(line(r, 'serial'), "serial 'E2ESERIAL'", describe(r));
      checkFile(img.path, img.content);
    } finally {
      rmSync(img.dir, { recursive: true, force: true });
    }
  });
}

test('virtio-blk: ro: the write gets an I/O error and the file is untouched', async (t) => {
  if (skipWithoutKvm(t)) return;
  const img = image();
  try {
    const r = await runBlk('vblk', `${img.path},ro`);
    checkBlk(r, { irq: 'msix', ro: true });
    assert.match(line(r, 'serial') ?? '', /^serial 'BHYVE-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}'$/, describe(r));
    assert.deepEqual(new Uint8Array(readFileSync(img.path)), img.content);
  } finally {
    rmSync(img.dir, { recursive: true, force: true });
  }
});

test('virtio-rnd: random bytes, a hostile buffer, then more bytes', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('vrnd', [], ['-s', '0,hostbridge', '-s', '4,virtio-rnd', '-s', '31,lpc']));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.equal(r.lines.at(-1), 'DONE', why);
  assert.equal(line(r, 'virtio found'), 'virtio found slot 04 modern', why);
  assert.equal(line(r, 'rnd1 '), 'rnd1 len 00000040', why);
  assert.equal(line(r, 'rnd2 '), 'rnd2 len 00000040', why);
  const m = line(r, 'rnd equal')?.match(/^rnd equal (\d+) zero (\d+)$/);
  assert.ok(m && Number(m[1]) < 2 && Number(m[2]) < 2, `two requests differ and are not zero\n${why}`);
  assert.equal(line(r, 'rnd-hostile'), 'rnd-hostile len 00000000', why);
  assert.equal(line(r, 'rnd3 '), 'rnd3 len 00000010', why);
});

const bad: { what: string; slot: string; names: string }[] = [
  { what: 'no image', slot: '3,virtio-blk', names: 'a disk image is required' },
  { what: 'a missing image', slot: '3,virtio-blk,/nonexistent/bhyve-ts.img', names: '/nonexistent/bhyve-ts.img does not exist' },
  { what: 'an unknown option', slot: '3,virtio-blk,/dev/null,bogus=1', names: 'bogus' },
  { what: 'a bad sector size', slot: '3,virtio-blk,IMG,sectorsize=1000', names: 'sectorsize' },
];

for (const c of bad) {
  test(`virtio-blk: ${c.what} is one line on stderr and a non-zero status`, async () => {
    const img = image();
    try {
      const slot = c.slot.replace('IMG', img.path);
      ensureGuests();
      const r = await runVmm(['-s', '0,hostbridge', '-s', slot, '-s', '31,lpc', '-l', 'com1,stdio', '-l', `bootrom,${rom('hello')}`, 'vm'], { timeoutMs: 30_000 });
      const why = describe(r);
      assert.ok(r.status !== null && r.status !== 0, why);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, why);
      assert.ok(lines[0].includes(c.names), why);
    } finally {
      rmSync(img.dir, { recursive: true, force: true });
    }
  });
}
