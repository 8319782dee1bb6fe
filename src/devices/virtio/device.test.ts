import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PciRoot } from '../pci/root.js';
import * as R from '../pci/regs.js';
import * as V from './constants.js';
import { VirtioRnd } from './rnd.js';
import { IO_BAR, MODERN_BAR_ADDR, MSIX_BAR_ADDR, placeBars, TestDriver, virtioTestCtx } from './virtio-test-ctx.js';

const BDF = { bus: 0, slot: 4, func: 0 };

function rnd(config: Record<string, string> = {}) {
  const t = virtioTestCtx(config);
  const dev = new VirtioRnd(t.ctx, 'pci.0.4.0', BDF);
  new PciRoot(t.ctx).add(dev);
  placeBars(dev);
  return { t, dev, drv: new TestDriver(t) };
}

/** Vendor capabilities: [cfg_type, bar, offset, length]. */
function virtioCaps(dev: VirtioRnd): number[][] {
  const out: number[][] = [];
  for (let c = dev.cfgRead(R.PCIR_CAP_PTR, 1); c; c = dev.cfgRead(c + 1, 1)) {
    if (dev.cfgRead(c, 1) === V.PCI_CAP_VENDOR) out.push([dev.cfgRead(c + 3, 1), dev.cfgRead(c + 4, 1), dev.cfgRead(c + 8, 4), dev.cfgRead(c + 12, 4)]);
  }
  return out;
}

test('a transitional device: IDs, the legacy I/O BAR, MSI-X, and the 1.x capabilities', () => {
  const { dev } = rnd();
  assert.equal(dev.cfgRead(0, 4), 0x10051af4);
  assert.equal(dev.cfgRead(R.PCIR_SUBVEND, 4), 0x00041af4);
  assert.equal(dev.cfgRead(R.PCIR_REVID, 1), 0);
  assert.deepEqual(virtioCaps(dev), [
    [V.CAP_COMMON_CFG, 4, 0, 0x38], [V.CAP_NOTIFY_CFG, 4, 0x3000, 4], [V.CAP_ISR_CFG, 4, 0x1000, 1], [V.CAP_PCI_CFG, 0, 0, 0],
  ]);
  assert.deepEqual(dev.barInfo().map((b) => [b.index, b.kind]), [[0, 'io'], [1, 'mem32'], [4, 'mem64']]);
});

test('-W: MSI instead of MSI-X', () => {
  const { dev } = rnd({ virtio_msix: 'false' });
  const ids: number[] = [];
  for (let c = dev.cfgRead(R.PCIR_CAP_PTR, 1); c; c = dev.cfgRead(c + 1, 1)) ids.push(dev.cfgRead(c, 1));
  assert.ok(ids.includes(R.CAPID_MSI) && !ids.includes(R.CAPID_MSIX));
});

test('FEATURES_OK needs VERSION_1 through the modern interface; unoffered bits are dropped', () => {
  const { drv, dev } = rnd();
  const f = drv.deviceFeatures();
  assert.equal(f & V.bit(V.F_VERSION_1), V.bit(V.F_VERSION_1));
  assert.equal(drv.negotiate(V.bit(V.F_RING_INDIRECT_DESC)) & V.STATUS_FEATURES_OK, 0);
  assert.equal(drv.negotiate(V.bit(V.F_VERSION_1) | (1n << 3n)) & V.STATUS_FEATURES_OK, V.STATUS_FEATURES_OK);
  assert.equal(dev.driverFeatures, V.bit(V.F_VERSION_1));
});

test('doorbells follow the BARs: legacy port with datamatch, modern notify address', () => {
  const { t, dev } = rnd();
  const b = () => t.bindings.get('virtio-rnd@pci.0.4.0.q0')!;
  assert.deepEqual(b()[0], { pio: true, addr: IO_BAR + V.LEG_QUEUE_NOTIFY, len: 2, datamatch: 0 });
  assert.deepEqual(b()[1], { pio: false, addr: MODERN_BAR_ADDR + 0x3000, len: 0 });
  dev.cfgWrite(R.PCIR_BAR0 + 16, 4, MODERN_BAR_ADDR + 0x10000);
  assert.equal(b()[1]?.addr, MODERN_BAR_ADDR + 0x13000);
  dev.cfgWrite(R.PCIR_COMMAND, 2, 0);
  assert.deepEqual(b(), [undefined, undefined]);
});

/** Offset of capability `id` in config space. */
function capAt(dev: VirtioRnd, id: number): number {
  for (let c = dev.cfgRead(R.PCIR_CAP_PTR, 1); c; c = dev.cfgRead(c + 1, 1)) if (dev.cfgRead(c, 1) === id) return c;
  throw new Error(`no capability ${id}`);
}

function enableMsix(t: ReturnType<typeof rnd>['t'], dev: VirtioRnd): void {
  for (const v of [0, 1]) {
    t.ctx.mmio.write(MSIX_BAR_ADDR + 16 * v, 4, 0xfee00000);
    t.ctx.mmio.write(MSIX_BAR_ADDR + 16 * v + 8, 4, 0x40 + v);
    t.ctx.mmio.write(MSIX_BAR_ADDR + 16 * v + 12, 4, 0);
  }
  const c = capAt(dev, R.CAPID_MSIX);
  dev.cfgWrite(c + 2, 2, R.MSIXCTRL_ENABLE);
}

test('requests run only after DRIVER_OK, on the doorbell; MSI-X goes out through the irqfd', () => {
  const { t, dev, drv } = rnd();
  enableMsix(t, dev);
  drv.negotiate(V.bit(V.F_VERSION_1));
  drv.setupQueue(0, 0x100000, undefined, 1);
  drv.submit(0, [[0x200000, 64, true]]);
  t.runDoorbells();
  assert.deepEqual(drv.used(0), [], 'nothing before DRIVER_OK');
  drv.driverOk();
  assert.equal(t.rung.size, 1, 'DRIVER_OK kicks queues');
  t.runDoorbells();
  assert.deepEqual(drv.used(0), [[0, 64]]);
  assert.ok(t.ram.subarray(0x200000, 0x200040).some((b) => b !== 0));
  assert.deepEqual(t.msis, [{ name: 'virtio-rnd@pci.0.4.0.v1', address: 0xfee00000n, data: 0x41 }]);
  assert.deepEqual(t.irqs, [], 'no KVM_SIGNAL_MSI, no INTx');
});

test('a masked MSI-X vector is held in the PBA and sent on unmask', () => {
  const { t, dev, drv } = rnd();
  enableMsix(t, dev);
  t.ctx.mmio.write(MSIX_BAR_ADDR + 16 + 12, 4, 1);
  drv.negotiate(V.bit(V.F_VERSION_1));
  drv.setupQueue(0, 0x100000, undefined, 1);
  drv.driverOk();
  drv.submit(0, [[0x200000, 8, true]]);
  t.runDoorbells();
  assert.equal(t.msis.length, 0);
  t.ctx.mmio.write(MSIX_BAR_ADDR + 16 + 12, 4, 0);
  assert.equal(t.msis.length, 1);
});

test('INTx without MSI-X: ISR set, line raised; reading the ISR clears it and lowers the line', () => {
  const { t, drv } = rnd();
  drv.negotiate(V.bit(V.F_VERSION_1));
  drv.setupQueue(0, 0x100000);
  drv.driverOk();
  drv.submit(0, [[0x200000, 8, true]]);
  t.runDoorbells();
  const gsi = 16 + ((BDF.slot + 0) & 3);
  assert.deepEqual(t.irqs.filter((i) => i.gsi === gsi).map((i) => i.level), [true]);
  assert.equal(drv.isr(), V.ISR_QUEUE);
  assert.deepEqual(t.irqs.filter((i) => i.gsi === gsi).map((i) => i.level), [true, false]);
  assert.equal(drv.isr(), 0);
});

test('a head beyond the queue: DEVICE_NEEDS_RESET and a configuration interrupt; reset recovers', () => {
  const { t, dev, drv } = rnd();
  drv.negotiate(V.bit(V.F_VERSION_1));
  drv.setupQueue(0, 0x100000);
  drv.driverOk();
  const epoch = dev.epoch;
  drv.offer(0, 64);
  t.runDoorbells();
  assert.equal(drv.common(0x14, 1) & V.STATUS_NEEDS_RESET, V.STATUS_NEEDS_RESET);
  assert.equal(drv.isr(), V.ISR_CONFIG);
  assert.equal(drv.common(0x15, 1), 1, 'configuration generation bumped');
  drv.negotiate(V.bit(V.F_VERSION_1));
  assert.equal(drv.common(0x14, 1) & V.STATUS_NEEDS_RESET, 0);
  assert.notEqual(dev.epoch, epoch);
  drv.setupQueue(0, 0x100000);
  drv.driverOk();
  drv.submit(0, [[0x200000, 8, true]]);
  t.runDoorbells();
  assert.deepEqual(drv.used(0), [[0, 8]]);
});

test('queue registers: size must be a power of two, fixed once enabled; absent queues read 0', () => {
  const { drv } = rnd();
  drv.common(0x16, 2, 0);
  assert.equal(drv.common(0x18, 2), 64);
  drv.common(0x18, 2, 48);
  assert.equal(drv.common(0x18, 2), 64);
  drv.common(0x18, 2, 16);
  assert.equal(drv.common(0x18, 2), 16);
  drv.common(0x1c, 2, 1);
  drv.common(0x18, 2, 32);
  drv.common(0x20, 4, 0x1234);
  assert.deepEqual([drv.common(0x18, 2), drv.common(0x20, 4)], [16, 0]);
  drv.common(0x16, 2, 5);
  assert.deepEqual([drv.common(0x18, 2), drv.common(0x1a, 2)], [0, 0xffff]);
  assert.equal(drv.common(0x12, 2), 1, 'num_queues');
});

test('the PCI configuration access capability reaches the modern BAR', () => {
  const { dev } = rnd();
  const c = capAt(dev, V.PCI_CAP_VENDOR);
  let cap = c;
  while (dev.cfgRead(cap + 3, 1) !== V.CAP_PCI_CFG) cap = dev.cfgRead(cap + 1, 1);
  dev.cfgWrite(cap + 4, 1, 4);
  dev.cfgWrite(cap + 8, 4, 0x12); // num_queues
  dev.cfgWrite(cap + 12, 4, 2);
  assert.equal(dev.cfgRead(cap + 16, 4), 1);
  dev.cfgWrite(cap + 8, 4, 0x14);
  dev.cfgWrite(cap + 12, 4, 1);
  dev.cfgWrite(cap + 16, 1, 1);
  assert.equal(dev.status, 1, 'a status write through the window');
  dev.cfgWrite(cap + 4, 1, 2);
  assert.equal(dev.cfgRead(cap + 16, 4), 0, 'another BAR: nothing');
});

test('legacy interface: 32-bit features, PFN queues, port notify, MSI-X vector registers', () => {
  const { t, dev } = rnd();
  const io = (off: number, size: number, v?: number): number => {
    if (v === undefined) return t.ctx.io.read(IO_BAR + off, size) ?? -1;
    t.ctx.io.write(IO_BAR + off, size, v);
    return 0;
  };
  assert.equal(io(V.LEG_HOST_FEATURES, 4), Number(dev.deviceFeatures & 0xffffffffn));
  io(V.LEG_STATUS, 1, 3);
  io(V.LEG_GUEST_FEATURES, 4, 0xffffffff);
  assert.equal(io(V.LEG_GUEST_FEATURES, 4), Number(dev.deviceFeatures & 0xffffffffn));
  io(V.LEG_QUEUE_SEL, 2, 0);
  assert.equal(io(V.LEG_QUEUE_NUM, 2), 64);
  io(V.LEG_QUEUE_PFN, 4, 0x100);
  assert.equal(io(V.LEG_QUEUE_PFN, 4), 0x100);
  io(V.LEG_STATUS, 1, 7);
  assert.equal(io(V.LEG_MSIX_CONFIG, 2), 0, 'device configuration (empty) here without MSI-X');
  enableMsix(t, dev);
  io(V.LEG_MSIX_QUEUE, 2, 1);
  assert.equal(io(V.LEG_MSIX_QUEUE, 2), 1);
  io(V.LEG_MSIX_QUEUE, 2, 7);
  assert.equal(io(V.LEG_MSIX_QUEUE, 2), 0xffff, 'no such vector');
  io(V.LEG_MSIX_QUEUE, 2, 1);
  // a chain at the legacy layout: desc 0x100000, avail 0x100400, used 0x101000
  t.dv.setBigUint64(0x100000, 0x200000n, true);
  t.dv.setUint32(0x100008, 32, true);
  t.dv.setUint16(0x10000c, 2, true);
  t.dv.setUint16(0x100404, 0, true);
  t.dv.setUint16(0x100402, 1, true);
  io(V.LEG_QUEUE_NOTIFY, 2, 0);
  t.runDoorbells();
  assert.equal(t.dv.getUint16(0x101002, true), 1);
  assert.equal(t.dv.getUint32(0x101008, true), 32);
  assert.equal(t.msis.at(-1)?.data, 0x41);
  io(V.LEG_STATUS, 1, 0);
  assert.equal(io(V.LEG_QUEUE_PFN, 4), 0, 'reset');
});

test('fuzz: random register writes, ring contents and notifications never throw', () => {
  let seed = 7;
  const rand = (n: number) => Math.floor(((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * n);
  for (let round = 0; round < 40; round++) {
    const { t, dev } = rnd(round % 2 ? { virtio_msix: 'false' } : {});
    if (round % 2 === 0) enableMsix(t, dev);
    for (let i = 0; i < 300; i++) {
      const size = [1, 2, 4][rand(3)];
      const v = rand(2 ** 32) & [0, 0xff, 0xffff, 0, 0xffffffff][size];
      switch (rand(5)) {
        case 0: t.ctx.io.write(0xc000 + rand(32), size, v); break;
        case 1: t.ctx.mmio.write(0xc2000000 + rand(0x40), size, rand(4) === 0 ? v : v & 0x1ff); break;
        case 2: t.ctx.mmio.write(0xc2003000 + 4 * rand(3), 2, rand(2)); break;
        case 3: dev.cfgWrite(0x40 + 4 * rand(40), 4, v); break;
        case 4: t.dv.setUint32(0x100000 + 4 * rand(0x3000), rand(4) ? rand(0x400000) : v, true); break;
      }
      if (rand(4) === 0) {
        // an occasionally sane queue so chains get walked
        t.ctx.mmio.write(0xc2000000 + 0x20, 4, 0x100000);
        t.ctx.mmio.write(0xc2000000 + 0x28, 4, 0x101000);
        t.ctx.mmio.write(0xc2000000 + 0x30, 4, 0x102000);
        t.ctx.mmio.write(0xc2000000 + 0x1c, 2, 1);
        t.ctx.mmio.write(0xc2000000 + 0x14, 1, 0x0f);
      }
      t.runDoorbells();
      t.ctx.io.read(0xc000 + rand(32), size);
      t.ctx.mmio.read(0xc2000000 + rand(0x4000), size);
    }
  }
});
