import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigTree } from '../../config/tree.js';
import { validate } from '../../config/schema.js';
import * as R from '../pci/regs.js';
import { ahciLegacyConfig } from './ahci.js';
import { Driver, h2d, makeAhci, tmpFile } from './ahci-test-ctx.js';
import * as A from './regs.js';

const disk = (): string => tmpFile('disk.img', 1 << 20);

test('PCI identity, ABAR and HBA capabilities as bhyve', () => {
  const t = makeAhci('ahci-hd', disk());
  const { hba } = t;
  assert.equal(hba.get16(R.PCIR_VENDOR), 0x8086);
  assert.equal(hba.get16(R.PCIR_DEVICE), 0x2821);
  assert.equal(hba.get8(R.PCIR_CLASS), 0x01);
  assert.equal(hba.get8(R.PCIR_SUBCLASS), 0x06);
  assert.equal(hba.get8(R.PCIR_PROGIF), 0x01);
  const bar = hba.barInfo().find((b) => b.index === 5)!;
  assert.equal(bar.kind, 'mem32');
  assert.equal(bar.size, 0x2000); // 0x100 + 32 ports * 0x80, rounded up
  const d = new Driver(t);
  const cap = d.reg(A.HBA_CAP);
  assert.equal(cap & 0x1f, 31, 'NP: 32 ports');
  assert.equal((cap >>> 8) & 0x1f, 31, 'NCS: 32 slots');
  assert.ok(cap & A.CAP_SNCQ && cap & A.CAP_S64A && cap & A.CAP_SCLO);
  assert.equal(d.reg(A.HBA_VS), 0x10300);
  assert.equal(d.reg(A.HBA_PI), 1);
  assert.equal(d.reg(A.HBA_GHC) >>> 0, A.GHC_AE >>> 0);
  assert.equal(d.reg(A.HBA_CAP2), A.CAP2_APST);
  // sub-dword reads of the version register
  assert.equal(hba.abarRead(A.HBA_VS + 2, 2), 1);
  assert.equal(hba.abarRead(A.HBA_VS + 1, 1), 3);
});

test('port signatures and link status: disk, CD, empty port', () => {
  const t = makeAhci('ahci', `hd:${disk()},cd:${tmpFile('cd.iso', 2048 * 16)}`);
  const d = new Driver(t);
  assert.equal(d.reg(A.HBA_PI), 0b11);
  assert.equal(d.preg(0, A.P_SIG), A.SIG_ATA);
  assert.equal(d.preg(1, A.P_SIG) >>> 0, A.SIG_ATAPI);
  assert.equal(d.preg(2, A.P_SIG) >>> 0, 0xffffffff);
  assert.equal(d.preg(0, A.P_SSTS) & 0xf, A.SSTS_DET_PHY_ONLINE);
  assert.equal(d.preg(2, A.P_SSTS) & 0xf, 0);
  assert.equal(d.preg(0, A.P_TFD) & 0xff, A.ATA_S_READY | A.ATA_S_DSC | A.ATA_S_DMA);
  assert.ok(d.preg(0, A.P_CMD) & A.PCMD_CPS);
});

test('a port without configured ports: bhyve\'s six empty ports', () => {
  const t = makeAhci('ahci', '');
  const d = new Driver(t);
  assert.equal(d.reg(A.HBA_CAP) & 0x1f, 5);
  assert.equal(d.reg(A.HBA_PI), 0);
});

test('PxCMD start/stop, FR/CR, CLO; GHC.HR resets the ports', () => {
  const t = makeAhci('ahci-hd', disk());
  const d = new Driver(t);
  d.start(0);
  const cmd = d.preg(0, A.P_CMD);
  assert.ok(cmd & A.PCMD_CR && cmd & A.PCMD_FR && cmd & A.PCMD_ST);
  d.setPreg(0, A.P_CMD, A.PCMD_FRE);
  assert.equal(d.preg(0, A.P_CMD) & (A.PCMD_CR | A.PCMD_ST), 0);
  d.setPreg(0, A.P_IE, 0xffffffff);
  assert.equal(d.preg(0, A.P_IE) >>> 0, A.P_IE_MASK >>> 0);
  d.setReg(A.HBA_GHC, A.GHC_IE);
  d.setReg(A.HBA_GHC, A.GHC_HR);
  assert.equal(d.reg(A.HBA_GHC) >>> 0, A.GHC_AE >>> 0);
  assert.equal(d.preg(0, A.P_IE), 0);
  assert.equal(d.preg(0, A.P_CMD) & A.PCMD_FRE, 0);
  assert.equal(d.preg(0, A.P_SIG), A.SIG_ATA);
  // writes other than aligned dwords are ignored
  t.hba.abarWrite(A.PORT_BASE + A.P_IE, 2, 0xffff);
  assert.equal(d.preg(0, A.P_IE), 0);
});

test('COMRESET through PxSCTL.DET posts the signature FIS', () => {
  const t = makeAhci('ahci-cd', tmpFile('cd.iso', 2048 * 4));
  const d = new Driver(t);
  d.start(0);
  d.setPreg(0, A.P_CMD, A.PCMD_FRE); // stopped, FIS receive on
  d.setPreg(0, A.P_SCTL, A.SCTL_DET_RESET);
  d.setPreg(0, A.P_SCTL, 0);
  const f = d.ram(0x10000 + 0x400 + A.RFIS_RFIS, 20);
  assert.equal(f[0], A.FIS_REG_D2H);
  assert.equal(f[5], 0x14);
  assert.equal(f[6], 0xeb);
});

test('INTx when MSI is off: level follows IS; GHC.IE gates it', () => {
  const t = makeAhci('ahci-hd', disk());
  const d = new Driver(t);
  const seen: boolean[] = [];
  const root = { intxLine: (_pirq: number, level: boolean) => seen.push(level) };
  t.hba.intPin = 1;
  t.hba.attach(root as never);
  d.start(0);
  d.setPreg(0, A.P_IE, A.PIS_DHRS);
  d.setReg(A.HBA_GHC, A.GHC_IE);
  d.issue(0, 0, { cfis: h2d(A.ATA_FLUSHCACHE48) });
  assert.deepEqual(seen, [true]);
  assert.equal(d.reg(A.HBA_IS), 1);
  d.setPreg(0, A.P_IS, A.PIS_DHRS);
  d.setReg(A.HBA_IS, 1);
  assert.deepEqual(seen, [true, false]);
});

test('MSI: one message per port when enough are enabled', () => {
  const t = makeAhci('ahci', `hd:${disk()},hd:${disk()}`);
  const d = new Driver(t);
  const cap = t.hba.get8(R.PCIR_CAP_PTR);
  assert.equal(t.hba.get8(cap), R.CAPID_MSI);
  assert.equal((t.hba.get16(cap + 2) >> 1) & 7, 4, '16 messages offered');
  t.hba.cfgWrite(cap + 4, 4, 0xfee00000);
  t.hba.cfgWrite(cap + 12, 2, 0x40);
  t.hba.cfgWrite(cap + 2, 2, R.MSICTRL_ENABLE | (4 << R.MSICTRL_MME_SHIFT));
  d.setReg(A.HBA_GHC, A.GHC_IE);
  for (const n of [0, 1]) {
    d.start(n);
    d.setPreg(n, A.P_IE, A.PIS_DHRS);
    d.issue(n, 0, { cfis: h2d(A.ATA_CHECK_POWER_MODE) });
  }
  const msis = t.irqs.filter((e) => e.kind === 'msi');
  assert.deepEqual(msis.map((m) => m.data), [0x40, 0x41]);
  assert.equal(msis[0].address, 0xfee00000n);
});

test('legacy config: bhyve\'s multi-port form and its errors', () => {
  const c = new ConfigTree();
  c.set('pci.0.1.0.device', 'ahci');
  ahciLegacyConfig(c, 'pci.0.1.0', 'hd:/a.img,ro,sectorsize=4096,cd:/b.iso,hd:/c.img,ser=XYZ');
  assert.equal(c.get('pci.0.1.0.port.0.type'), 'hd');
  assert.equal(c.get('pci.0.1.0.port.0.path'), '/a.img');
  assert.equal(c.get('pci.0.1.0.port.0.ro'), 'true');
  assert.equal(c.get('pci.0.1.0.port.0.sectorsize'), '4096');
  assert.equal(c.get('pci.0.1.0.port.1.type'), 'cd');
  assert.equal(c.get('pci.0.1.0.port.1.path'), '/b.iso');
  assert.equal(c.get('pci.0.1.0.port.2.path'), '/c.img');
  assert.equal(c.get('pci.0.1.0.port.2.ser'), 'XYZ');
  validate(c);
  assert.throws(() => ahciLegacyConfig(new ConfigTree(), 'p', '/no/type.img'), /missing or invalid type for port 0/);
  const bad = new ConfigTree();
  bad.set('pci.0.1.0.device', 'ahci');
  bad.set('pci.0.1.0.port.0.bogus', '1');
  assert.throws(() => validate(bad), /no option 'port.0.bogus'/);
});

test('start-up errors name the port and the image', () => {
  assert.throws(() => makeAhci('ahci-hd', '/nonexistent/x.img'), /ahci at pci\.0\.4\.0 port 0: disk image \/nonexistent\/x\.img does not exist/);
  const p = disk();
  makeAhci('ahci-hd', p);
  assert.throws(() => makeAhci('ahci-hd', p), /is locked/);
  assert.throws(() => makeAhci('ahci-hd', `${disk()},sectorsize=3`), /bad sectorsize/);
});
