/**
 * Debian's SeaBIOS on bhyve-ts through -l fwcfg=qemu: first on its own (the
 * fw_cfg items it reads, its console on COM1, a user item from -f), then
 * booting GRUB (Debian's grub-pc-bin, images from scripts/build-grub-images.sh)
 * from a virtio-blk disk, an AHCI disk and an AHCI CD-ROM: GRUB reads a file
 * from the image's file system, prints it on COM1 and powers the VM off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, runVmm, skipWithoutKvm, Status, type RunResult } from './harness.js';
import { DISK_MODELS, GRUB_END, GRUB_START, GRUB_TIMEOUT_MS, bhyveArgs, ensureGrubImages, payload, SEABIOS } from './seabios.js';

const tmp = mkdtempSync(join(tmpdir(), 'bhyve-seabios-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** Everything about a run plus the end of SeaBIOS's debug log (port 0x402). */
function explain(r: RunResult, log: string): string {
  let dbg = '';
  try {
    dbg = readFileSync(log, 'latin1').split('\n').slice(-40).join('\n');
  } catch {
    dbg = '(no debug log)';
  }
  return `${describe(r)}\n--- SeaBIOS debug log (tail) ---\n${dbg}`;
}

/** The COM1 lines GRUB printed between its markers (sercon's escapes and CRs removed). */
function grubLines(r: RunResult): string[] | undefined {
  const clean = r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '').replace(/\r/g, '');
  const a = clean.indexOf(GRUB_START), b = clean.indexOf(GRUB_END);
  if (a < 0 || b < a) return undefined;
  return clean.slice(a + GRUB_START.length, b).split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

test('SeaBIOS runs to its boot attempt: fw_cfg files, SMBIOS UUID, console on COM1, -f boot-fail-wait', { timeout: GRUB_TIMEOUT_MS }, async (t) => {
  if (skipWithoutKvm(t)) return;
  ensureGrubImages();
  const log = join(tmp, 'nodisk.log');
  const wait = join(tmp, 'boot-fail-wait');
  writeFileSync(wait, Uint8Array.of(1, 0, 0, 0)); // retry after 1 ms: SeaBIOS resets, bhyve exits 0
  const uuid = '5bd6e3a1-7f0e-4c2d-9a8b-0123456789ab';
  const r = await runVmm([
    '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio', '-l', 'fwcfg=qemu', '-l', `bootrom,${SEABIOS}`,
    '-f', `etc/boot-fail-wait,file=${wait}`, '-U', uuid, '-o', `lpc.debugcon=${log}`, '-m', '256M', 'nodisk',
  ], { timeoutMs: GRUB_TIMEOUT_MS });
  const why = explain(r, log);
  assert.equal(r.timedOut, false, why);
  assert.equal(r.status, Status.Reset, why);
  assert.match(r.stdout, /SeaBIOS \(version /, why);
  assert.match(r.stdout, new RegExp(`Machine UUID ${uuid}`), why);
  assert.match(r.stdout, /No bootable device/, why);
  const dbg = readFileSync(log, 'latin1');
  for (const want of ['Found QEMU fw_cfg', 'QEMU fw_cfg DMA interface supported', 'qemu/e820: addr 0x0000000000000000 len 0x0000000010000000 [RAM]',
    'Found 1 cpu(s) max supported 1 cpu(s)', 'ACPI: parse DSDT', 'sercon: using ioport 0x3f8', 'Found 4 serial ports']) {
    assert.ok(dbg.includes(want), `debug log lacks '${want}'\n${why}`);
  }
});

for (const m of DISK_MODELS) {
  test(`SeaBIOS boots GRUB from ${m.device}; GRUB prints a file from its file system on COM1`, { timeout: GRUB_TIMEOUT_MS + 10_000 }, async (t) => {
    if (skipWithoutKvm(t)) return;
    ensureGrubImages();
    const log = join(tmp, `${m.device}.log`);
    const r = await runVmm(bhyveArgs(m, ['-o', `lpc.debugcon=${log}`]), { timeoutMs: GRUB_TIMEOUT_MS });
    const why = explain(r, log);
    assert.equal(r.timedOut, false, why);
    assert.deepEqual(grubLines(r), [payload()], why);
    assert.equal(r.status, Status.PowerOff, `GRUB's halt powers off through ACPI\n${why}`);
  });
}

test('bootindex picks the boot disk: SeaBIOS reads the bootorder file', { timeout: GRUB_TIMEOUT_MS + 10_000 }, async (t) => {
  if (skipWithoutKvm(t)) return;
  ensureGrubImages();
  const blank = join(tmp, 'blank.img');
  writeFileSync(blank, new Uint8Array(1 << 20)); // no boot sector: booting it first would fail
  const log = join(tmp, 'bootorder.log');
  const vblk = DISK_MODELS[0];
  const args = bhyveArgs({ ...vblk, opts: [...vblk.opts, 'bootindex=1'] }, ['-s', `3,virtio-blk,${blank},ro`, '-o', `lpc.debugcon=${log}`]);
  const r = await runVmm(args, { timeoutMs: GRUB_TIMEOUT_MS });
  if (/has no option 'bootindex'/.test(r.stderr)) {
    t.skip('virtio-blk does not take bootindex= yet');
    return;
  }
  const why = explain(r, log);
  assert.equal(r.timedOut, false, why);
  assert.ok(readFileSync(log, 'latin1').includes('Searching bootorder for: /pci@i0cf8/*@4'), why);
  assert.deepEqual(grubLines(r), [payload()], why);
  assert.equal(r.status, Status.PowerOff, why);
});
