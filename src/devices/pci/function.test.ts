import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BusDevice } from '../../vmm/bus.js';
import type { MachineContext } from '../../vmm/context.js';
import { Arena } from '../../vmm/shared.js';
import { PciFunction } from './function.js';
import * as R from './regs.js';
import { testCtx } from './pci-test-ctx.js';

class Dummy extends PciFunction {
  readonly hits: string[] = [];
  constructor(ctx: MachineContext, slot = 3) {
    super(ctx, { bus: 0, slot, func: 0 }, `dummy@${slot}`);
    const dev = (tag: string): BusDevice => ({ read: (o) => { this.hits.push(`${tag}:${o}`); return 0x5a; } });
    this.setIds({ vendor: 0x10dd, device: 0x0001, classCode: 0x02, subclass: 0x00, revision: 7 });
    this.addBar(0, { kind: 'io', size: 8, device: dev('io') });
    this.addBar(1, { kind: 'mem32', size: 3000, device: dev('m32') });
    this.addBar(2, { kind: 'mem64', size: 2 ** 33, device: dev('m64'), prefetch: true });
    this.addMsiCap(4);
    this.addMsixCap(3, 4);
  }
}

test('identity registers and read sizes; header registers are read-only', () => {
  const { ctx } = testCtx();
  const f = new Dummy(ctx);
  assert.equal(f.cfgRead(0, 4), 0x000110dd);
  assert.equal(f.cfgRead(2, 2), 0x0001);
  assert.equal(f.cfgRead(8, 4), 0x02000007);
  f.cfgWrite(0, 4, 0xffffffff);
  f.cfgWrite(0x08, 4, 0);
  assert.equal(f.cfgRead(0, 4), 0x000110dd);
  assert.equal(f.cfgRead(8, 1), 7);
  f.cfgWrite(R.PCIR_COMMAND, 2, 0xffff);
  assert.equal(f.cfgRead(R.PCIR_COMMAND, 2), R.CMD_WRITABLE);
  f.cfgWrite(R.PCIR_INTLINE, 1, 11);
  assert.equal(f.cfgRead(R.PCIR_INTLINE, 1), 11);
});

test('BAR sizing: all-ones reads back the size mask with the type bits', () => {
  const { ctx } = testCtx();
  const f = new Dummy(ctx);
  const bar = (i: number): number => R.PCIR_BAR0 + 4 * i;
  f.cfgWrite(bar(0), 4, 0xffffffff);
  assert.equal(f.cfgRead(bar(0), 4), 0xfffffff9, 'I/O BARs keep 32 bits (SeaBIOS sizes them so)');
  f.cfgWrite(bar(1), 4, 0xffffffff);
  assert.equal(f.cfgRead(bar(1), 4), 0xfffff000, '3000 bytes round up to 4 KiB');
  f.cfgWrite(bar(2), 4, 0xffffffff);
  f.cfgWrite(bar(3), 4, 0xffffffff);
  assert.equal(f.cfgRead(bar(2), 4), 0x0000000c, '64-bit, prefetchable; 8 GiB leaves no low address bits');
  assert.equal(f.cfgRead(bar(3), 4), 0xfffffffe);
  f.cfgWrite(bar(5), 4, 0xffffffff);
  assert.equal(f.cfgRead(bar(5), 4), 0, 'undeclared BAR');
  f.cfgWrite(bar(0), 2, 0x1234);
  assert.equal(f.cfgRead(bar(0), 4), 0xfffffff9, 'partial BAR writes are ignored');
  f.cfgWrite(bar(3), 4, 0x9);
  f.cfgWrite(bar(2), 4, 0);
  assert.equal(f.barAddress(2), 0x8_0000_0000);
});

test('decode bits put BARs on the buses; moving a BAR bumps the generation', () => {
  const { ctx } = testCtx();
  const f = new Dummy(ctx);
  f.assignBar(0, 0x2000);
  f.assignBar(1, 0xc0000000);
  f.resync();
  assert.equal(ctx.io.read(0x2000, 1), undefined, 'decoding off');
  const g0 = ctx.arena.generation;
  f.cfgWrite(R.PCIR_COMMAND, 2, R.CMD_PORTEN | R.CMD_MEMEN);
  assert.notEqual(ctx.arena.generation, g0);
  f.resync();
  assert.equal(ctx.io.read(0x2003, 1), 0x5a);
  assert.equal(ctx.mmio.read(0xc0000ffc, 4), 0x5a);
  assert.deepEqual(f.hits, ['io:3', 'm32:4092']);
  const g1 = ctx.arena.generation;
  f.cfgWrite(R.PCIR_BAR0, 4, 0x3000);
  assert.notEqual(ctx.arena.generation, g1);
  f.resync();
  assert.equal(ctx.io.read(0x2000, 1), undefined);
  assert.equal(ctx.io.read(0x3000, 1), 0x5a);
  f.cfgWrite(R.PCIR_COMMAND, 2, 0);
  f.resync();
  assert.equal(ctx.io.read(0x3000, 1), undefined);
  assert.equal(ctx.mmio.read(0xc0000000, 4), undefined);
});

test('a BAR moved onto another device stays off the bus instead of throwing', () => {
  const { ctx } = testCtx();
  ctx.io.register(0x3f8, 8, {}, 'com1');
  const f = new Dummy(ctx);
  f.cfgWrite(R.PCIR_COMMAND, 2, R.CMD_PORTEN);
  f.cfgWrite(R.PCIR_BAR0, 4, 0x3f8);
  assert.doesNotThrow(() => f.resync());
  f.cfgWrite(R.PCIR_BAR0, 4, 0x4000);
  f.resync();
  assert.equal(ctx.io.read(0x4000, 1), 0x5a);
  assert.equal(ctx.io.claimed(0x3f8), true, 'the other device keeps its ports');
});

test('capability list: MSI then MSI-X, chained from 0x34', () => {
  const { ctx } = testCtx();
  const f = new Dummy(ctx);
  assert.ok(f.cfgRead(R.PCIR_STATUS, 2) & R.STATUS_CAPLIST);
  const msi = f.cfgRead(R.PCIR_CAP_PTR, 1);
  assert.equal(msi, 0x40);
  assert.equal(f.cfgRead(msi, 1), R.CAPID_MSI);
  const msix = f.cfgRead(msi + 1, 1);
  assert.equal(msix, 0x50);
  assert.equal(f.cfgRead(msix, 1), R.CAPID_MSIX);
  assert.equal(f.cfgRead(msix + 1, 1), 0);
  assert.equal(f.cfgRead(msi + 2, 2), R.MSICTRL_64BIT | (2 << 1));
  assert.equal(f.cfgRead(msix + 2, 2), 2, 'table size N-1');
  assert.equal(f.cfgRead(msix + 4, 4), 4, 'table in BAR 4 at 0');
  assert.equal(f.cfgRead(msix + 8, 4), 0x1004, 'PBA at 4 KiB in BAR 4');
  assert.deepEqual(f.barInfo().find((b) => b.index === 4), { index: 4, kind: 'mem32', size: 8192, addr: 0 });
});

test('MSI: disabled until enabled; multiple messages replace the low data bits', () => {
  const { ctx, irqs } = testCtx();
  const f = new Dummy(ctx);
  const cap = 0x40;
  assert.equal(f.msi(0), false);
  f.cfgWrite(cap + 4, 4, 0xfee00000);
  f.cfgWrite(cap + 8, 4, 0);
  f.cfgWrite(cap + 12, 2, 0x4040);
  f.cfgWrite(cap, 4, 0xffff0000 | ((2 << 4) | 1) << 16 | 0xff); // id/next stay; MME=4, enable
  assert.equal(f.cfgRead(cap, 2), 0x5005, 'capability header is read-only');
  assert.equal(f.msiEnabled, true);
  assert.equal(f.msi(3), true);
  assert.equal(f.msi(4), false);
  assert.deepEqual(irqs, [{ kind: 'msi', address: 0xfee00000n, data: 0x4043 }]);
});

test('MSI-X: masked vectors pend in the PBA and go out when unmasked', () => {
  const { ctx, irqs } = testCtx();
  const f = new Dummy(ctx);
  const cap = 0x50;
  const table = f.barInfo().find((b) => b.index === 4)!;
  f.assignBar(4, 0xc0000000);
  f.cfgWrite(R.PCIR_COMMAND, 2, R.CMD_MEMEN);
  f.resync();
  assert.equal(table.size, 8192);
  const base = 0xc0000000 + 16 * 1;
  assert.equal(ctx.mmio.read(base + 12, 4), 1, 'vectors start masked');
  ctx.mmio.write(base, 4, 0xfee01000);
  ctx.mmio.write(base + 4, 4, 0);
  ctx.mmio.write(base + 8, 4, 0x31);
  assert.equal(f.msi(1), false, 'MSI-X not enabled yet');
  f.cfgWrite(cap + 2, 2, R.MSIXCTRL_ENABLE);
  assert.equal(f.msixEnabled, true);
  assert.equal(f.msi(1), true);
  assert.equal(irqs.length, 0);
  assert.equal(ctx.mmio.read(0xc0001000, 4), 0b10, 'pending bit 1');
  ctx.mmio.write(base + 12, 4, 0);
  assert.deepEqual(irqs, [{ kind: 'msi', address: 0xfee01000n, data: 0x31 }]);
  assert.equal(ctx.mmio.read(0xc0001000, 4), 0);
  f.cfgWrite(cap + 2, 2, R.MSIXCTRL_ENABLE | R.MSIXCTRL_FUNCTION_MASK);
  f.msi(1);
  assert.equal(irqs.length, 1);
  f.cfgWrite(cap + 2, 2, R.MSIXCTRL_ENABLE);
  assert.equal(irqs.length, 2, 'clearing the function mask sends the pending vector');
  assert.equal(f.msi(3), false, 'no such vector');
});

test('state set on the main thread is seen by a vCPU-thread build of the same function', () => {
  const main = testCtx();
  const f = new Dummy(main.ctx);
  f.assignBar(0, 0x2100);
  f.cfgWrite(R.PCIR_COMMAND, 2, R.CMD_PORTEN);
  const vcpu = testCtx({}, { role: 'vcpu', arena: new Arena(main.ctx.arena.sab) });
  const g = new Dummy(vcpu.ctx);
  assert.equal(g.cfgRead(0, 4), 0x000110dd);
  g.resync();
  assert.equal(vcpu.ctx.io.read(0x2100, 1), 0x5a);
});
