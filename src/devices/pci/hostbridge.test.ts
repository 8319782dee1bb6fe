import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GuestMemory } from '../../kvm/memory.js';
import { findPci } from '../registry.js';
import { HostBridge, MCH_PCIEXBAR, MCH_PCIEXBAR_HIGH, Q35_ECAM_BASE } from './hostbridge.js';
import { ICH9_ACPI_CNTL, ICH9_PMBASE } from './lpc.js';
import { ECAM_BASE, PciRoot } from './root.js';
import { testCtx } from './pci-test-ctx.js';
import { Arena } from '../../vmm/shared.js';
import { CAPID_EXPRESS, PCIR_CAP_PTR, PCIR_STATUS, STATUS_CAPLIST } from './regs.js';

const cf8 = (s: number, f: number, off: number): number => (0x80000000 | (s << 11) | (f << 8) | off) >>> 0;
const ecam = (base: number, s: number, off: number): number => base + (s << 15) + off;

function machine(opts: Record<string, string>) {
  const t = testCtx({ 'pci.0.0.0.device': 'hostbridge', 'pci.0.31.0.device': 'lpc', ...opts });
  const root = new PciRoot(t.ctx);
  root.populate();
  const cfg = (s: number, off: number, size = 4): number => { t.ctx.io.write(0xcf8, 4, cf8(s, 0, off & ~3)); return t.ctx.io.read(0xcfc + (off & 3), size)!; };
  const cfgw = (s: number, off: number, v: number): void => { t.ctx.io.write(0xcf8, 4, cf8(s, 0, off)); t.ctx.io.write(0xcfc, 4, v); };
  return { ...t, root, cfg, cfgw };
}

test('hostbridge: bhyve IDs and a PCI Express capability by default; ECAM at 0xE0000000', () => {
  const { ctx, root, cfg } = machine({});
  assert.equal(cfg(0, 0), 0x12751275);
  assert.ok(cfg(0, PCIR_STATUS, 2) & STATUS_CAPLIST);
  assert.equal(cfg(0, cfg(0, PCIR_CAP_PTR, 1), 1), CAPID_EXPRESS);
  assert.equal(root.ecamBase, ECAM_BASE);
  assert.equal(ctx.mmio.read(ecam(ECAM_BASE, 0, 0), 4), 0x12751275);
});

test('hostbridge model=q35: MCH IDs, ECAM at 0xB0000000 behind PCIEXBAR, which moves and disables it', () => {
  const { ctx, root, cfg, cfgw } = machine({ 'pci.0.0.0.model': 'q35' });
  assert.equal(cfg(0, 0), 0x29c08086);
  assert.equal(cfg(0, PCIR_STATUS, 2) & STATUS_CAPLIST, 0, 'no capabilities over the MCH registers');
  assert.equal(cfg(0, MCH_PCIEXBAR), (Q35_ECAM_BASE | 1) >>> 0);
  assert.equal(root.ecamBase, Q35_ECAM_BASE);
  assert.equal(ctx.mmio.read(ecam(Q35_ECAM_BASE, 31, 0), 4), 0x70008086, 'the LPC bridge through q35 ECAM');
  assert.equal(ctx.mmio.read(ecam(ECAM_BASE, 31, 0), 4), undefined, 'nothing left at bhyve\'s ECAM');
  // OVMF's sequence: disable, high dword, then base | size 256 buses | enable.
  cfgw(0, MCH_PCIEXBAR, 0);
  assert.equal(root.ecamBase, 0);
  assert.equal(ctx.mmio.read(ecam(Q35_ECAM_BASE, 31, 0), 4), undefined, 'disabled');
  cfgw(0, MCH_PCIEXBAR_HIGH, 0);
  cfgw(0, MCH_PCIEXBAR, 0x80000001);
  assert.equal(root.ecamBase, 0x80000000);
  assert.equal(ctx.mmio.read(ecam(0x80000000, 0, 0), 4), 0x29c08086);
  assert.equal(cfg(0, MCH_PCIEXBAR), 0x80000001, 'reads back');
  cfgw(0, MCH_PCIEXBAR, 0x80000003);
  assert.equal(root.ecamBase, 0, 'a 128-bus size is not decoded');
  ctx.mmio.register(0xfed00000, 0x400, {}, 'hpet');
  cfgw(0, MCH_PCIEXBAR, 0xf0000001);
  assert.equal(root.ecamBase, 0, 'a range over the HPET collides: left disabled');
});

test('hostbridge model=q35 refuses low memory reaching its ECAM; bad models are named', () => {
  const seg = (size: number) => ({ segments: [{ name: 'lowmem', gpa: 0, size, host: 0n, readonly: false, devmem: false }] }) as unknown as GuestMemory;
  const big = testCtx({ 'pci.0.0.0.device': 'hostbridge', 'pci.0.0.0.model': 'q35' });
  (big.ctx as { mem: GuestMemory }).mem = seg(3 * 2 ** 30);
  assert.throws(() => new PciRoot(big.ctx).populate(), { name: 'DeviceError', message: /q35 puts ECAM at 0xb0000000/ });
  const bad = testCtx({ 'pci.0.0.0.device': 'hostbridge', 'pci.0.0.0.model': 'i440fx' });
  assert.throws(() => new PciRoot(bad.ctx).populate(), { name: 'DeviceError', message: /model: 'i440fx' is not one of bhyve, q35/ });
  assert.ok(findPci('hostbridge')?.options.model);
  assert.ok(HostBridge);
});

test('other threads map ECAM where the main thread moved it', () => {
  const main = machine({ 'pci.0.0.0.model': 'q35' });
  const vcpu = testCtx({ 'pci.0.0.0.device': 'hostbridge', 'pci.0.31.0.device': 'lpc', 'pci.0.0.0.model': 'q35' }, { role: 'vcpu', arena: new Arena(main.ctx.arena.sab) });
  const root2 = new PciRoot(vcpu.ctx);
  root2.populate();
  assert.equal(vcpu.ctx.mmio.read(ecam(Q35_ECAM_BASE, 0, 0), 4), 0x29c08086);
  main.cfgw(0, MCH_PCIEXBAR, 0x90000001);
  root2.resync();
  assert.equal(vcpu.ctx.mmio.read(ecam(0x90000000, 0, 0), 4), 0x29c08086);
  assert.equal(vcpu.ctx.mmio.read(ecam(Q35_ECAM_BASE, 0, 0), 4), undefined);
});

test('lpc: ICH9 PMBASE and ACPI_CNTL show the PM block at 0x400, read-only', () => {
  const { cfg, cfgw } = machine({});
  assert.equal(cfg(31, ICH9_PMBASE), 0x401);
  assert.equal(cfg(31, ICH9_ACPI_CNTL, 1), 0x80);
  cfgw(31, ICH9_PMBASE, 0x601);
  cfgw(31, ICH9_ACPI_CNTL, 0);
  assert.equal(cfg(31, ICH9_PMBASE), 0x401);
  assert.equal(cfg(31, ICH9_ACPI_CNTL, 1), 0x80);
});
