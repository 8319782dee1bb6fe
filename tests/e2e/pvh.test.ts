/**
 * The PVH boot path (-o boot.kernel=ELF with a XEN_ELFNOTE_PHYS32_ENTRY
 * note): the start info's memory map describes -m, and with -A the ACPI
 * tables are reachable from the RSDP with valid checksums.
 *
 * The guest's 32-bit code comes in two files: pvh64.elf (an x86-64 ELF with
 * an 8-byte entry note, the shape of Linux's vmlinux) for most tests, and
 * pvh.elf (an i386 ELF32 with a 4-byte note).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allLines, boot, describe, findLine, guestFile, skipWithoutKvm, Status, type RunResult } from './harness.js';

const MiB = 2n ** 20n;
const GiB = 2n ** 30n;
const E820_RAM = 1;

interface Entry {
  addr: bigint;
  size: bigint;
  type: number;
}

function pvhArgs(extra: string[], kernel = 'pvh64.elf'): string[] {
  return ['-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio', '-o', `boot.kernel=${guestFile(kernel)}`, ...extra, 'pvh'];
}

function memmap(r: RunResult): Entry[] {
  const why = describe(r);
  const n = findLine(r, /^MEMMAP entries (\d+)$/);
  assert.ok(n, why);
  const entries = allLines(r, /^E820 addr ([0-9a-f]{16}) size ([0-9a-f]{16}) type (\d+)$/).map((m) => ({
    addr: BigInt(`0x${m[1]}`),
    size: BigInt(`0x${m[2]}`),
    type: Number(m[3]),
  }));
  assert.equal(entries.length, Number(n[1]), why);
  const sorted = [...entries].sort((a, b) => (a.addr < b.addr ? -1 : 1));
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(sorted[i - 1].addr + sorted[i - 1].size <= sorted[i].addr, `memmap entries overlap\n${why}`);
  }
  return entries;
}

function ramTotal(entries: Entry[]): bigint {
  return entries.filter((e) => e.type === E820_RAM).reduce((n, e) => n + e.size, 0n);
}

function checkStart(r: RunResult): void {
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.match(r.lines[0] ?? '', /^PVH magic 336ec578 version [1-9]/, why);
  assert.equal(r.lines.at(-1), 'DONE', why);
}

test('pvh: -m 512M memory map and ACPI tables with -A', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(pvhArgs(['-A', '-m', '512M', '-c', '2']));
  const why = describe(r);
  checkStart(r);

  const entries = memmap(r);
  const total = ramTotal(entries);
  assert.ok(total <= 512n * MiB && total >= 512n * MiB - MiB, `RAM in the memmap (${total}) is -m less at most the legacy hole\n${why}`);
  assert.ok(entries.some((e) => e.type === E820_RAM && e.addr <= 0x100000n && e.addr + e.size >= 0x200000n), `RAM at 1 MiB, where the kernel is\n${why}`);
  assert.ok(entries.every((e) => e.type !== E820_RAM || e.addr + e.size <= 512n * MiB), `no RAM above -m\n${why}`);

  const rsdp = findLine(r, /^RSDP ([0-9a-f]{8})( scan)? rev (\d+) rsdt ([0-9a-f]{8}) xsdt ([0-9a-f]{16}) csum (ok|bad)$/);
  assert.ok(rsdp, why);
  assert.equal(rsdp[2], undefined, `the start info carries the RSDP address\n${why}`);
  assert.equal(rsdp[6], 'ok', `RSDP checksum\n${why}`);

  const tables = allLines(r, /^TABLE (\S{4}) addr ([0-9a-f]{8}) len ([0-9a-f]{8}) csum (ok|bad)$/);
  const sigs = tables.map((m) => m[1]);
  for (const sig of ['APIC', 'FACP', 'DSDT', 'HPET', 'MCFG']) {
    assert.ok(sigs.includes(sig), `table ${sig} present\n${why}`);
  }
  assert.ok(sigs[0] === 'XSDT' || sigs[0] === 'RSDT', why);
  for (const m of tables) assert.equal(m[4], 'ok', `${m[1]} checksum\n${why}`);
  assert.ok(!r.lines.some((l) => l.startsWith('TABLE unreadable')), why);
  assert.ok(r.lines.includes('MADT lapics 2 ioapics 1'), `MADT lists 2 CPUs and the IOAPIC\n${why}`);
});

test('pvh: -m 5G puts the memory above 3 GiB at 4 GiB', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(pvhArgs(['-A', '-m', '5G']));
  const why = describe(r);
  checkStart(r);
  const entries = memmap(r);
  const total = ramTotal(entries);
  assert.ok(total <= 5n * GiB && total >= 5n * GiB - MiB, `RAM total ${total}\n${why}`);
  const high = entries.find((e) => e.type === E820_RAM && e.addr === 4n * GiB);
  assert.ok(high, `RAM entry at 4 GiB\n${why}`);
  assert.equal(high.size, 2n * GiB, why);
  assert.ok(
    entries.every((e) => e.type !== E820_RAM || e.addr + e.size <= 3n * GiB || e.addr >= 4n * GiB),
    `no RAM in the PCI hole (3-4 GiB)\n${why}`,
  );
  assert.ok(r.lines.includes('MADT lapics 1 ioapics 1'), why);
});

test('pvh: an ELF32 (i386) kernel boots the same way', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(pvhArgs(['-A', '-m', '256M'], 'pvh.elf'));
  const why = describe(r);
  checkStart(r);
  const total = ramTotal(memmap(r));
  assert.ok(total <= 256n * MiB && total >= 255n * MiB, `RAM total ${total}\n${why}`);
  assert.ok(r.lines.includes('MADT lapics 1 ioapics 1'), why);
});
