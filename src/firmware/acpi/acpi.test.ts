import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { byteSum } from '../bytes.js';
import { BHYVE_ACPI_BASE, type Platform, defaultPlatform } from '../platform.js';
import { type AcpiLayout, buildAcpi } from './build.js';
import { FADT_HW_REDUCED_ACPI, FADT_OFF, FADT_PWR_BUTTON, FADT_RESET_REG_SUP, FADT_TMR_VAL_EXT } from './fadt.js';
import { isLegacyRsdpAddress } from './sdt.js';
import { MADT_IOAPIC, MADT_ISO, MADT_LAPIC, MADT_LAPIC_NMI, MADT_X2APIC, MADT_X2APIC_NMI } from './tables.js';

function platform(over: Partial<Platform> = {}, ncpus = 4): Platform {
  const p = defaultPlatform({
    ncpus, memSize: 6 * 1024 ** 3, vmName: 'testvm', uuid: new Uint8Array(16), lpcSlot: 31,
    comPorts: [{ name: 'COM1', port: 0x3f8, irq: 4 }, { name: 'COM2', port: 0x2f8, irq: 3 }],
    intxRoutes: [{ bus: 0, slot: 3, pin: 0, gsi: 16 }, { bus: 0, slot: 4, pin: 1, gsi: 17 }],
  });
  return { ...p, ...over };
}

function table(l: AcpiLayout, sig: string): DataView {
  const t = l.tables.find((x) => x.sig === sig);
  assert.ok(t, `no ${sig}`);
  const base = l.tables[0].address;
  return new DataView(l.bytes.buffer, l.bytes.byteOffset + t.address - base, t.length);
}
const bytesOf = (v: DataView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
const sigOf = (v: DataView, off = 0, n = 4) => Buffer.from(bytesOf(v).subarray(off, off + n)).toString('latin1');

test('tables are laid out contiguously and aligned, RSDP first', () => {
  const l = buildAcpi(platform(), BHYVE_ACPI_BASE);
  assert.equal(l.rsdpAddress, BHYVE_ACPI_BASE);
  assert.ok(isLegacyRsdpAddress(l.rsdpAddress));
  assert.deepEqual(l.tables.map((t) => t.sig), ['RSDP', 'RSDT', 'XSDT', 'FACP', 'FACS', 'APIC', 'HPET', 'MCFG', 'DSDT']);
  let end = BHYVE_ACPI_BASE;
  for (const t of l.tables) {
    assert.ok(t.address >= end, `${t.sig} overlaps`);
    assert.equal(t.address % (t.sig === 'FACS' ? 64 : 16), 0, `${t.sig} alignment`);
    end = t.address + t.length;
  }
  assert.equal(end - BHYVE_ACPI_BASE, l.bytes.length);
  assert.ok(end <= 0x100000, 'fits below 1 MiB');
  assert.throws(() => buildAcpi(platform(), BHYVE_ACPI_BASE + 4), /16-byte aligned/);
});

test('signatures, lengths and checksums', () => {
  const l = buildAcpi(platform(), 0x7ff0000);
  for (const t of l.tables) {
    const v = table(l, t.sig);
    if (t.sig === 'RSDP') {
      assert.equal(sigOf(v, 0, 8), 'RSD PTR ');
      assert.equal(byteSum(bytesOf(v).subarray(0, 20)), 0);
      assert.equal(byteSum(bytesOf(v)), 0);
      assert.equal(v.getUint8(15), 2);
      assert.equal(v.getUint32(20, true), 36);
      continue;
    }
    assert.equal(sigOf(v), t.sig);
    assert.equal(v.getUint32(4, true), t.length);
    if (t.sig !== 'FACS') {
      assert.equal(byteSum(bytesOf(v)), 0, `${t.sig} checksum`);
      assert.equal(sigOf(v, 10, 6), 'BHYVE ');
    }
  }
});

test('RSDP, RSDT and XSDT point at the right tables', () => {
  const l = buildAcpi(platform(), BHYVE_ACPI_BASE);
  const at = (sig: string) => l.tables.find((t) => t.sig === sig)!.address;
  const rsdp = table(l, 'RSDP');
  assert.equal(rsdp.getUint32(16, true), at('RSDT'));
  assert.equal(Number(rsdp.getBigUint64(24, true)), at('XSDT'));
  const xsdt = table(l, 'XSDT');
  const rsdt = table(l, 'RSDT');
  const want = ['FACP', 'APIC', 'HPET', 'MCFG'].map(at);
  assert.deepEqual(Array.from({ length: (xsdt.byteLength - 36) / 8 }, (_, i) => Number(xsdt.getBigUint64(36 + 8 * i, true))), want);
  assert.deepEqual(Array.from({ length: (rsdt.byteLength - 36) / 4 }, (_, i) => rsdt.getUint32(36 + 4 * i, true)), want);
});

test('FADT: PM blocks, SCI, reset register and flags', () => {
  const p = platform();
  const l = buildAcpi(p, BHYVE_ACPI_BASE);
  const f = table(l, 'FACP');
  const at = (sig: string) => l.tables.find((t) => t.sig === sig)!.address;
  assert.equal(f.getUint32(FADT_OFF.firmwareCtrl, true), at('FACS'));
  assert.equal(f.getUint32(FADT_OFF.dsdt, true), at('DSDT'));
  assert.equal(Number(f.getBigUint64(FADT_OFF.xFirmwareCtrl, true)), at('FACS'));
  assert.equal(Number(f.getBigUint64(FADT_OFF.xDsdt, true)), at('DSDT'));
  assert.equal(f.getUint16(FADT_OFF.sciInt, true), 9);
  assert.equal(f.getUint32(FADT_OFF.smiCmd, true), 0xb2);
  assert.equal(f.getUint8(FADT_OFF.acpiEnable), 0xa0);
  assert.equal(f.getUint8(FADT_OFF.acpiDisable), 0xa1);
  assert.equal(f.getUint32(FADT_OFF.pm1aEvtBlk, true), 0x400);
  assert.equal(f.getUint32(FADT_OFF.pm1aCntBlk, true), 0x404);
  assert.equal(f.getUint32(FADT_OFF.pmTmrBlk, true), 0x408);
  assert.deepEqual([f.getUint8(FADT_OFF.pm1EvtLen), f.getUint8(FADT_OFF.pm1CntLen), f.getUint8(FADT_OFF.pmTmrLen)], [4, 2, 4]);
  const gas = (off: number) => [f.getUint8(off), f.getUint8(off + 1), Number(f.getBigUint64(off + 4, true))];
  assert.deepEqual(gas(FADT_OFF.xPm1aEvtBlk), [1, 32, 0x400]);
  assert.deepEqual(gas(FADT_OFF.xPm1aCntBlk), [1, 16, 0x404]);
  assert.deepEqual(gas(FADT_OFF.xPmTmrBlk), [1, 32, 0x408]);
  assert.deepEqual(gas(FADT_OFF.resetReg), [1, 8, 0xcf9]);
  assert.equal(f.getUint8(FADT_OFF.resetValue), 6);
  assert.equal(f.getUint8(FADT_OFF.century), 0x32);
  const flags = f.getUint32(FADT_OFF.flags, true);
  assert.ok(flags & FADT_RESET_REG_SUP);
  assert.ok(flags & FADT_TMR_VAL_EXT);
  assert.equal(flags & FADT_HW_REDUCED_ACPI, 0);
  assert.equal(flags & FADT_PWR_BUTTON, 0, 'fixed-feature power button');
  const p24 = platform({ pm: { ...p.pm, timer32: false } });
  assert.equal(table(buildAcpi(p24, BHYVE_ACPI_BASE), 'FACP').getUint32(FADT_OFF.flags, true) & FADT_TMR_VAL_EXT, 0);
});

interface MadtEntry { type: number; data: DataView }
function madtEntries(v: DataView): MadtEntry[] {
  const out: MadtEntry[] = [];
  for (let off = 44; off < v.byteLength;) {
    const len = v.getUint8(off + 1);
    assert.ok(len >= 2);
    out.push({ type: v.getUint8(off), data: new DataView(v.buffer, v.byteOffset + off, len) });
    off += len;
  }
  return out;
}

test('MADT: a local APIC per vCPU, the I/O APIC, overrides and LINT1 NMI', () => {
  const l = buildAcpi(platform(), BHYVE_ACPI_BASE);
  const m = table(l, 'APIC');
  assert.equal(m.getUint32(36, true), 0xfee00000);
  assert.equal(m.getUint32(40, true), 1);
  const e = madtEntries(m);
  const lapics = e.filter((x) => x.type === MADT_LAPIC);
  assert.deepEqual(lapics.map((x) => [x.data.getUint8(2), x.data.getUint8(3), x.data.getUint32(4, true)]), [[0, 0, 1], [1, 1, 1], [2, 2, 1], [3, 3, 1]]);
  const ioapic = e.filter((x) => x.type === MADT_IOAPIC);
  assert.equal(ioapic.length, 1);
  assert.equal(ioapic[0].data.getUint32(4, true), 0xfec00000);
  assert.equal(ioapic[0].data.getUint32(8, true), 0);
  const isos = e.filter((x) => x.type === MADT_ISO).map((x) => [x.data.getUint8(3), x.data.getUint32(4, true), x.data.getUint16(8, true)]);
  assert.deepEqual(isos, [[0, 2, 0x5], [9, 9, 0xd]]);
  const nmi = e.filter((x) => x.type === MADT_LAPIC_NMI);
  assert.deepEqual(nmi.map((x) => [x.data.getUint8(2), x.data.getUint8(5)]), [[0xff, 1]]);
  assert.equal(e.filter((x) => x.type === MADT_X2APIC || x.type === MADT_X2APIC_NMI).length, 0);
});

test('MADT: x2APIC structures for APIC ids from 255, x2APIC NMI', () => {
  const l = buildAcpi(platform({ x2apic: true }, 300), BHYVE_ACPI_BASE);
  const e = madtEntries(table(l, 'APIC'));
  assert.equal(e.filter((x) => x.type === MADT_LAPIC).length, 255);
  const x2 = e.filter((x) => x.type === MADT_X2APIC);
  assert.equal(x2.length, 45);
  assert.deepEqual([x2[0].data.getUint32(4, true), x2[0].data.getUint32(12, true)], [255, 255]);
  assert.equal(e.filter((x) => x.type === MADT_X2APIC_NMI).length, 1);
  assert.throws(() => buildAcpi(platform({}, 300), BHYVE_ACPI_BASE), /x2APIC/);
});

test('HPET and MCFG tables, and their absence', () => {
  const l = buildAcpi(platform(), BHYVE_ACPI_BASE);
  const h = table(l, 'HPET');
  assert.equal(h.getUint32(36, true), 0x8086a701); // bhyve's vhpet: 8 timers, 64-bit, legacy capable
  assert.equal(Number(h.getBigUint64(44, true)), 0xfed00000);
  const m = table(l, 'MCFG');
  assert.equal(m.byteLength, 60);
  assert.equal(Number(m.getBigUint64(44, true)), 0xe0000000);
  assert.deepEqual([m.getUint16(52, true), m.getUint8(54), m.getUint8(55)], [0, 0, 255]);
  const bare = buildAcpi(platform({ hpet: undefined, ecam: undefined }), BHYVE_ACPI_BASE);
  assert.deepEqual(bare.tables.map((t) => t.sig), ['RSDP', 'RSDT', 'XSDT', 'FACP', 'FACS', 'APIC', 'DSDT']);
  assert.equal(table(bare, 'XSDT').byteLength, 36 + 16);
});

test('DSDT contains the expected objects', () => {
  const dsdt = Buffer.from(bytesOf(table(buildAcpi(platform(), BHYVE_ACPI_BASE), 'DSDT')));
  for (const n of ['_S5_', 'PC00', '_PRT', '_CRS', 'HPET', 'SYSR', 'ISA_', 'RTC_', 'COM1', 'COM2', 'TIMR']) {
    assert.ok(dsdt.includes(n), `DSDT lacks ${n}`);
  }
  assert.throws(() => buildAcpi(platform({ intxRoutes: [{ bus: 1, slot: 0, pin: 0, gsi: 16 }] }), BHYVE_ACPI_BASE), /root bus/);
  assert.throws(() => buildAcpi(platform({ intxRoutes: [{ bus: 0, slot: 0, pin: 0, gsi: 40 }] }), BHYVE_ACPI_BASE), /I\/O APIC pin/);
  const p = platform();
  assert.throws(() => buildAcpi(platform({ pciWindows: { ...p.pciWindows, io: [0x100, 0xffff] } }), BHYVE_ACPI_BASE), /I\/O window/);
});

function haveIasl(): boolean {
  const r = spawnSync('iasl', ['-v'], { encoding: 'utf8' });
  return !r.error;
}

test('iasl disassembles every table cleanly', (t) => {
  if (!haveIasl()) {
    t.skip('iasl not installed: apt-get install acpica-tools to run this test');
    return;
  }
  const l = buildAcpi(platform(), BHYVE_ACPI_BASE);
  const dir = mkdtempSync(join(tmpdir(), 'bhyve-ts-acpi-'));
  try {
    const dsl: Record<string, string> = {};
    for (const tb of l.tables.filter((x) => x.sig !== 'RSDP')) {
      const file = join(dir, `${tb.sig.toLowerCase()}.dat`);
      writeFileSync(file, bytesOf(table(l, tb.sig)));
      const r = spawnSync('iasl', ['-d', file], { encoding: 'utf8', cwd: dir });
      assert.equal(r.status, 0, `iasl -d ${tb.sig}: ${r.stdout}${r.stderr}`);
      dsl[tb.sig] = readFileSync(file.replace(/\.dat$/, '.dsl'), 'utf8');
      assert.doesNotMatch(dsl[tb.sig], /\*\*\*\*|Error|Invalid/, `${tb.sig} disassembly reports a problem`);
    }
    const d = dsl.DSDT;
    for (const want of ['Device (PC00)', 'EisaId ("PNP0A08")', 'EisaId ("PNP0A03")', 'Method (_BBN, 0', 'Name (_PRT, Package (0x02)',
      'WordBusNumber (ResourceProducer', 'QWordMemory', 'Device (HPET)', 'EisaId ("PNP0103")', 'Device (ISA)',
      'Device (COM1)', 'Device (COM2)', 'EisaId ("PNP0501")', 'Device (RTC)', 'EisaId ("PNP0B00")', 'Name (_S5, Package']) {
      assert.ok(d.includes(want), `DSDT disassembly lacks ${want}`);
    }
    assert.match(dsl.APIC, /Processor Local APIC/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
