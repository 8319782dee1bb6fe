import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MachineContext } from '../../vmm/context.js';
import { DeviceError, type PciBdf } from '../registry.js';
import { PciFunction, type BarSpec } from './function.js';
import './hostbridge.js';
import './lpc.js';
import './uart-pci.js';
import * as R from './regs.js';
import { ECAM_BASE, PciRoot } from './root.js';
import { testCtx } from './pci-test-ctx.js';

class Fn extends PciFunction {
  constructor(ctx: MachineContext, bdf: PciBdf, bars: [number, BarSpec['kind'], number][] = [], intx = false) {
    super(ctx, bdf, `fn@${bdf.bus}.${bdf.slot}.${bdf.func}`);
    this.setIds({ vendor: 0x1af4, device: 0x1000 + bdf.slot, classCode: 0x02, subclass: 0 });
    for (const [i, kind, size] of bars) this.addBar(i, { kind, size, device: { read: () => 0x77 } });
    if (intx) this.requestIntx();
  }
}

const cf8 = (b: number, s: number, f: number, off: number): number => (0x80000000 | (b << 16) | (s << 11) | (f << 8) | off) >>> 0;

test('config mechanism #1: address register, byte/word offsets, absent functions', () => {
  const { ctx } = testCtx();
  const root = new PciRoot(ctx);
  root.add(new Fn(ctx, { bus: 0, slot: 2, func: 0 }));
  root.finalize();
  ctx.io.write(0xcf8, 4, cf8(0, 2, 0, 0));
  assert.equal(ctx.io.read(0xcf8, 4), cf8(0, 2, 0, 0));
  assert.equal(ctx.io.read(0xcfc, 4), 0x10021af4);
  assert.equal(ctx.io.read(0xcfe, 2), 0x1002);
  assert.equal(ctx.io.read(0xcfd, 1), 0x1a);
  assert.equal(ctx.io.read(0xcfd, 2), 0xffff, 'unaligned');
  ctx.io.write(0xcf8, 4, cf8(0, 2, 0, 0x0b));
  assert.equal(ctx.io.read(0xcf8, 4), cf8(0, 2, 0, 0x08), 'low two bits are dropped');
  assert.equal(ctx.io.read(0xcff, 1), 0x02, 'class code');
  ctx.io.write(0xcf8, 4, cf8(0, 3, 0, 0));
  assert.equal(ctx.io.read(0xcfc, 4), 0xffffffff, 'absent function');
  ctx.io.write(0xcf8, 4, cf8(0, 2, 0, 0) & 0x7fffffff);
  assert.equal(ctx.io.read(0xcfc, 4), 0xffffffff, 'enable bit clear');
  assert.equal(ctx.io.read(0xcf8, 1), 0xff, 'byte access to the address register');
  assert.equal(ctx.io.claimed(0xcf9), false, '0xCF9 is left to the reset control register');
});

test('ECAM decodes bus/slot/function/register, including extended space', () => {
  const { ctx } = testCtx();
  const root = new PciRoot(ctx);
  root.add(new Fn(ctx, { bus: 2, slot: 5, func: 3 }));
  root.finalize();
  const at = (b: number, s: number, f: number, off: number): number => ECAM_BASE + (b << 20) + (s << 15) + (f << 12) + off;
  assert.equal(ctx.mmio.read(at(2, 5, 3, 0), 4), 0x10051af4);
  assert.equal(ctx.mmio.read(at(2, 5, 3, 0x100), 4), 0, 'no extended capabilities');
  assert.equal(ctx.mmio.read(at(2, 5, 2, 0), 4), 0xffffffff);
  ctx.mmio.write(at(2, 5, 3, R.PCIR_INTLINE), 1, 9);
  assert.equal(ctx.mmio.read(at(2, 5, 3, R.PCIR_INTLINE), 1), 9);
  assert.equal(ctx.mmio.read(at(255, 31, 7, 0xffc), 4), 0xffffffff);
});

test('the multi-function bit is set when a slot has more than function 0', () => {
  const { ctx } = testCtx();
  const root = new PciRoot(ctx);
  root.add(new Fn(ctx, { bus: 0, slot: 1, func: 0 }));
  root.add(new Fn(ctx, { bus: 0, slot: 1, func: 2 }));
  root.add(new Fn(ctx, { bus: 0, slot: 4, func: 0 }));
  root.finalize();
  const hdr = (s: number, f: number, size = 1): number => {
    ctx.io.write(0xcf8, 4, cf8(0, s, f, 0x0c));
    return ctx.io.read(size === 1 ? 0xcfe : 0xcfc, size)!;
  };
  assert.equal(hdr(1, 0), 0x80);
  assert.equal(hdr(1, 2), 0x80);
  assert.equal(hdr(4, 0), 0x00);
  assert.equal(hdr(1, 0, 4) >>> 16 & 0xff, 0x80);
  assert.throws(() => root.add(new Fn(ctx, { bus: 0, slot: 4, func: 0 })), DeviceError);
});

test('BAR allocation: largest first, naturally aligned, in bhyve windows', () => {
  const { ctx } = testCtx({}, {});
  const root = new PciRoot(ctx, { highmem: 3 * 2 ** 30 });
  const a = new Fn(ctx, { bus: 0, slot: 1, func: 0 }, [[0, 'io', 8], [1, 'mem32', 4096], [2, 'mem64', 2 ** 30]]);
  const b = new Fn(ctx, { bus: 0, slot: 2, func: 0 }, [[0, 'io', 256], [1, 'mem32', 2 ** 20], [2, 'mem64', 16384]]);
  root.add(a);
  root.add(b);
  root.finalize();
  const bars = root.functions().flatMap((f) => f.bars.map((x) => ({ slot: f.slot, ...x })));
  const find = (slot: number, index: number) => bars.find((x) => x.slot === slot && x.index === index)!;
  assert.equal(find(2, 0).addr, 0x2000, 'the 256-byte I/O BAR first');
  assert.equal(find(1, 0).addr, 0x2100);
  assert.equal(find(2, 1).addr, 0xc0000000, 'the 1 MiB BAR first');
  assert.equal(find(2, 2).addr, 0xc0100000, 'a small 64-bit BAR stays below 4 GiB');
  assert.equal(find(1, 1).addr, 0xc0104000);
  assert.equal(find(1, 2).addr, 32 * 2 ** 30, 'large 64-bit BARs above roundup(4 GiB + highmem, 32 GiB)');
  for (const x of bars) assert.equal(x.addr % x.size, 0, `BAR ${x.slot}/${x.index} aligned`);
  const w = root.windows()[0];
  assert.deepEqual([w.ioBase, w.mem32Base, w.mem64Base], [0x2000, 0xc0000000, 32 * 2 ** 30]);
  assert.ok(w.ioLimit > 0x2108 && w.mem32Limit > 0xc0105000);
  assert.equal(ctx.io.read(0x2100, 1), 0x77, 'pci.enable_bars defaults on without a boot ROM');
  assert.equal(ctx.mmio.read(32 * 2 ** 30 + 8, 4), 0x77);
});

test('with a boot ROM BARs are assigned but decoding is left to the firmware', () => {
  const { ctx } = testCtx({ 'lpc.bootrom': '/rom' });
  const root = new PciRoot(ctx);
  root.add(new Fn(ctx, { bus: 0, slot: 1, func: 0 }, [[0, 'io', 8]]));
  root.finalize();
  assert.equal(root.functions()[0].bars[0].addr, 0x2000);
  assert.equal(ctx.io.read(0x2000, 1), undefined);
  ctx.io.write(0xcf8, 4, cf8(0, 1, 0, R.PCIR_COMMAND));
  ctx.io.write(0xcfc, 2, R.CMD_PORTEN);
  assert.equal(ctx.io.read(0x2000, 1), 0x77, 'a config write resyncs the writing thread');
});

test('INTx: least used pin per slot, swizzled to GSI 16-19, wired-OR', () => {
  const { ctx, irqs } = testCtx();
  const root = new PciRoot(ctx);
  const f0 = new Fn(ctx, { bus: 0, slot: 3, func: 0 }, [], true);
  const f1 = new Fn(ctx, { bus: 0, slot: 3, func: 1 }, [], true);
  const g = new Fn(ctx, { bus: 0, slot: 4, func: 0 }, [], true);
  const h = new Fn(ctx, { bus: 0, slot: 8, func: 0 }, [], true);
  [f0, f1, g, h].forEach((f) => root.add(f));
  root.finalize();
  assert.deepEqual(root.intxRoutes().map((r) => [r.slot, r.func, r.pin, r.gsi]), [[3, 0, 1, 19], [3, 1, 2, 16], [4, 0, 1, 16], [8, 0, 1, 16]]);
  assert.equal(f0.cfgRead(R.PCIR_INTPIN, 1), 1);
  assert.equal(f1.cfgRead(R.PCIR_INTPIN, 1), 2);
  const isa = root.pirqRoutes();
  assert.equal(f1.cfgRead(R.PCIR_INTLINE, 1), isa[0]);
  assert.equal(f0.cfgRead(R.PCIR_INTLINE, 1), isa[3]);
  assert.ok(isa[0] !== undefined && isa[3] !== undefined && isa[1] === undefined);
  f1.intx(true);
  g.intx(true);
  assert.deepEqual(irqs, [{ kind: 'line', gsi: 16, level: true }, { kind: 'line', gsi: isa[0], level: true }]);
  assert.ok(f1.cfgRead(R.PCIR_STATUS, 2) & R.STATUS_INTX);
  f1.intx(false);
  assert.equal(irqs.length, 2, 'the line stays up while another function holds it');
  g.intx(false);
  assert.deepEqual(irqs.slice(2), [{ kind: 'line', gsi: 16, level: false }, { kind: 'line', gsi: isa[0], level: false }]);
  f0.cfgWrite(R.PCIR_COMMAND, 2, R.CMD_INTXDIS);
  f0.intx(true);
  assert.equal(irqs.length, 4, 'INTx disabled: pending only');
  f0.cfgWrite(R.PCIR_COMMAND, 2, 0);
  assert.deepEqual(irqs[4], { kind: 'line', gsi: 19, level: true });
});

test('populate: hostbridge, lpc with PIRQ registers, uart; firmware listing', () => {
  const { ctx, irqs } = testCtx({
    'pci.0.0.0.device': 'hostbridge', 'pci.0.1.0.device': 'lpc', 'pci.0.3.0.device': 'uart', 'pci.enable_bars': 'true',
  });
  const root = new PciRoot(ctx);
  root.prepare();
  root.populate();
  const fns = root.functions();
  assert.deepEqual(fns.map((f) => [f.slot, f.vendor, f.device, f.classCode, f.subclass]),
    [[0, 0x1275, 0x1275, 6, 0], [1, 0x8086, 0x7000, 6, 1], [3, 0x131f, 0x2000, 7, 0]]);
  assert.deepEqual(fns[2].bars, [{ index: 0, kind: 'io', size: 8, addr: 0x2000 }]);
  assert.deepEqual(fns[2].intx, { pin: 1, gsi: 19 });
  const hb = (off: number): number => { ctx.io.write(0xcf8, 4, cf8(0, 0, 0, off & ~3)); return ctx.io.read(0xcfc + (off & 3), 1)!; };
  assert.equal(hb(R.PCIR_CAP_PTR), 0x40);
  assert.equal(hb(0x40), R.CAPID_EXPRESS);
  assert.equal(hb(0x42), 0x42, 'PCIe v2, root port');
  const lpcCfg = (off: number, size: number, v?: number): number | undefined => {
    ctx.io.write(0xcf8, 4, cf8(0, 1, 0, off & ~3));
    if (v === undefined) return ctx.io.read(0xcfc + (off & 3), size);
    ctx.io.write(0xcfc + (off & 3), size, v);
    return undefined;
  };
  const isaD = root.pirqRoutes()[3]!;
  assert.notEqual(isaD, 3);
  assert.notEqual(isaD, 4, 'COM IRQs are reserved');
  assert.equal(lpcCfg(0x63, 1), isaD);
  assert.equal(lpcCfg(0x60, 4), (isaD << 24 | 0x808080) >>> 0);
  assert.equal(lpcCfg(0x68, 4), 0x80808080);
  lpcCfg(0x63, 1, 0x8b);
  assert.equal(root.pirqRoutes()[3], undefined);
  assert.equal(lpcCfg(0x63, 1), 0x8b & 0x8f);
  // COM1 lives at 0x3F8 and pulses IRQ 4.
  ctx.io.write(0x3f9, 1, 0x02);
  assert.deepEqual(irqs.at(-1), { kind: 'pulse', gsi: 4 });
  // The PCI UART's INTx goes to GSI 19 while enabled.
  ctx.io.write(0x2001, 1, 0x02);
  assert.deepEqual(irqs.at(-1), { kind: 'line', gsi: 19, level: true });
});

test('lpc: only on bus 0, only one', () => {
  const one = testCtx({ 'pci.1.1.0.device': 'lpc' });
  assert.throws(() => new PciRoot(one.ctx).populate(), { name: 'DeviceError', message: 'lpc bridge must be on bus 0' });
  const two = testCtx({ 'pci.0.1.0.device': 'lpc', 'pci.0.2.0.device': 'lpc' });
  assert.throws(() => new PciRoot(two.ctx).populate(), { name: 'DeviceError', message: 'only one lpc bridge is allowed' });
  const bad = testCtx({ 'pci.0.1.0.device': 'nosuch' });
  assert.throws(() => new PciRoot(bad.ctx).populate(), /unknown device "nosuch"/);
});
