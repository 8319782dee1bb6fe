/**
 * virtio-balloon driven by the project's own guest (tests/guests/vballoon.S):
 * the guest writes to PAGES pages, the test reads the VMM's resident set
 * (VmRSS), lets the guest inflate the balloon with those pages, and reads it
 * again: it must have dropped by most of them, and the pages read as zero in
 * the guest. Frames outside RAM (the ROM, the PCI hole, 16 TiB, the LAPIC)
 * are ignored, and the pages work again after deflating.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { describe, ensureGuests, findLine, rom, rssBytes, Status, skipWithoutKvm } from './harness.js';
import { startVmm } from './netns.js';

const PAGES = 16384; // 64 MiB
const MiB = 2 ** 20;

before(() => ensureGuests());

test('virtio-balloon: inflating touched pages gives them back to the host (VmRSS drops), deflating takes them back', async (t) => {
  if (skipWithoutKvm(t)) return;
  const vm = startVmm(undefined, ['-m', '256M', '-s', '0,hostbridge', '-s', `4,virtio-balloon,pages=${PAGES}`, '-s', '31,lpc',
    '-l', 'com1,stdio', '-l', `bootrom,${rom('vballoon')}`, 'balloon']);
  await vm.waitLine(/^TOUCHED \d+/);
  const before = rssBytes(vm.pid);
  vm.send('g');
  await vm.waitLine(/^ROM (ok|bad)/);
  const after = rssBytes(vm.pid);
  vm.send('g');
  const r = await vm.done;
  t.diagnostic(`VmRSS ${(before / MiB).toFixed(1)} MiB after touching, ${(after / MiB).toFixed(1)} MiB after inflating`);
  const why = `VmRSS ${(before / MiB).toFixed(1)} MiB -> ${(after / MiB).toFixed(1)} MiB\n${describe(r)}`;
  assert.equal(r.status, Status.PowerOff, why);
  assert.equal(findLine(r, /^balloon io \S+ target (\d+)/)?.[1], String(PAGES), why);
  assert.equal(findLine(r, /^INFLATED (\d+)/)?.[1], String(PAGES), why);
  assert.equal(findLine(r, /^ZERO (\d+)/)?.[1], String(PAGES), `every inflated page reads as zero\n${why}`);
  assert.ok(before - after >= (PAGES * 4096 * 3) / 4, `the resident set dropped by most of the ${PAGES * 4 / 1024} MiB\n${why}`);
  assert.ok(findLine(r, /^BAD used \d+/), why);
  assert.ok(findLine(r, /^ROM ok$/), `frames outside RAM were left alone\n${why}`);
  assert.equal(findLine(r, /^DEFLATED (\d+)/)?.[1], String(PAGES), why);
  assert.ok(findLine(r, /^RETOUCH ok$/), why);
});
