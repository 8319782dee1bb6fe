/**
 * A machine context for unit tests of virtio devices: the PCI test context
 * plus 4 MiB of fake guest RAM at 0, doorbells run on demand (as the I/O
 * thread would, under the device lock) and irqfds that record their messages.
 */
import type { IoEventSpec } from '../../kvm/vm.js';
import type { GuestMemory } from '../../kvm/memory.js';
import type { MachineContext } from '../../vmm/context.js';
import { testCtx, type TestCtx } from '../pci/pci-test-ctx.js';
import type { QueueMemory } from './virtqueue.js';
import type { PciFunction } from '../pci/function.js';
import { PCIR_BAR0, PCIR_COMMAND } from '../pci/regs.js';

export const TEST_RAM = 4 << 20;
export const IO_BAR = 0xc000, MSIX_BAR_ADDR = 0xc1000000, MODERN_BAR_ADDR = 0xc2000000;

export interface VirtioTestCtx extends TestCtx {
  ram: Uint8Array;
  dv: DataView;
  rung: Set<string>;
  bindings: Map<string, (IoEventSpec | undefined)[]>;
  msis: { name: string; address: bigint; data: number }[];
  /** Run the handler of every rung doorbell once, under the device lock. */
  runDoorbells(): void;
}

export function virtioTestCtx(config: Record<string, string> = {}, resources?: Map<string, unknown>): VirtioTestCtx {
  const t = testCtx(config, { resources });
  const ram = new Uint8Array(TEST_RAM);
  const mem: QueueMemory = {
    segments: [{ gpa: 0, size: TEST_RAM, readonly: false }],
    slice: (gpa, len) => (Number.isSafeInteger(gpa) && Number.isSafeInteger(len) && gpa >= 0 && len >= 0 && gpa + len <= TEST_RAM ? ram.subarray(gpa, gpa + len) : undefined),
  };
  const handlers = new Map<string, () => void>();
  const rung = new Set<string>();
  const bindings = new Map<string, (IoEventSpec | undefined)[]>();
  const msis: VirtioTestCtx['msis'] = [];
  let gsi = 24;
  const ctx: MachineContext = {
    ...t.ctx,
    mem: mem as unknown as GuestMemory,
    doorbell(name, handler) {
      handlers.set(name, handler);
      bindings.set(name, []);
      return {
        fd: -1,
        ring: () => { rung.add(name); },
        bind: (spec, slot = 0) => { bindings.get(name)![slot] = spec; return true; },
      };
    },
    irqfd(name) {
      return { gsi: gsi++, fd: -1, msi: (address, data) => { msis.push({ name, address, data }); } };
    },
  };
  const runDoorbells = (): void => {
    const names = [...rung];
    rung.clear();
    for (const n of names) ctx.arena.locked(() => handlers.get(n)!());
  };
  return { ...t, ctx, ram, dv: new DataView(ram.buffer), rung, bindings, msis, runDoorbells };
}

/** Place the BARs of a virtio function (I/O 0, MSI-X 1, modern 4) and turn decoding on. */
export function placeBars(fn: PciFunction): void {
  fn.cfgWrite(PCIR_BAR0, 4, IO_BAR);
  fn.cfgWrite(PCIR_BAR0 + 4, 4, MSIX_BAR_ADDR);
  fn.cfgWrite(PCIR_BAR0 + 16, 4, MODERN_BAR_ADDR);
  fn.cfgWrite(PCIR_BAR0 + 20, 4, 0);
  fn.cfgWrite(PCIR_COMMAND, 2, 0x7);
  fn.mapWanted();
}

const COMMON = 0x0000, ISR = 0x1000, DEVICE = 0x2000, NOTIFY = 0x3000;

/**
 * A driver for tests, through the modern interface: negotiates, places
 * queue `q` at `base` (descriptors, avail at +0x1000, used at +0x2000) and
 * submits chains built from [gpa, len, writable] buffers.
 */
export class TestDriver {
  private nextAvail = new Map<number, number>();
  private usedSeen = new Map<number, number>();
  private sizes = new Map<number, number>();
  private queueBase = new Map<number, number>();

  constructor(readonly t: VirtioTestCtx) {}

  common(off: number, size: number, v?: number): number {
    if (v === undefined) return this.t.ctx.mmio.read(MODERN_BAR_ADDR + COMMON + off, size) ?? -1;
    this.t.ctx.mmio.write(MODERN_BAR_ADDR + COMMON + off, size, v);
    return 0;
  }
  device(off: number, size: number): number { return this.t.ctx.mmio.read(MODERN_BAR_ADDR + DEVICE + off, size) ?? -1; }
  isr(): number { return this.t.ctx.mmio.read(MODERN_BAR_ADDR + ISR, 1) ?? -1; }

  deviceFeatures(): bigint {
    this.common(0x00, 4, 0);
    const lo = this.common(0x04, 4);
    this.common(0x00, 4, 1);
    return (BigInt(this.common(0x04, 4)) << 32n) | BigInt(lo);
  }

  /** Reset, ACK, DRIVER, write `features`, FEATURES_OK; returns the status read back. */
  negotiate(features: bigint): number {
    this.common(0x14, 1, 0);
    this.common(0x14, 1, 1);
    this.common(0x14, 1, 3);
    this.common(0x08, 4, 0);
    this.common(0x0c, 4, Number(features & 0xffffffffn));
    this.common(0x08, 4, 1);
    this.common(0x0c, 4, Number(features >> 32n));
    this.common(0x14, 1, 0x0b);
    return this.common(0x14, 1);
  }

  setupQueue(q: number, base: number, size?: number, vector = 0xffff): void {
    this.common(0x16, 2, q);
    if (size !== undefined) this.common(0x18, 2, size);
    this.sizes.set(q, this.common(0x18, 2));
    this.common(0x1a, 2, vector);
    this.common(0x20, 4, base); this.common(0x24, 4, 0);
    this.common(0x28, 4, base + 0x1000); this.common(0x2c, 4, 0);
    this.common(0x30, 4, base + 0x2000); this.common(0x34, 4, 0);
    this.common(0x1c, 2, 1);
    this.nextAvail.set(q, 0);
    this.usedSeen.set(q, 0);
    this.queueBase.set(q, base);
  }

  driverOk(): void { this.common(0x14, 1, this.common(0x14, 1) | 4); }

  /** Write descriptors (head first) for `bufs`, offer the head, notify through the notify region. */
  submit(q: number, bufs: [gpa: number, len: number, writable: boolean][], head = 0): void {
    const base = this.queueBase.get(q)!, n = this.sizes.get(q)!, dv = this.t.dv;
    bufs.forEach(([gpa, len, w], i) => {
      const o = base + 16 * ((head + i) % n);
      dv.setBigUint64(o, BigInt(gpa), true);
      dv.setUint32(o + 8, len, true);
      dv.setUint16(o + 12, (w ? 2 : 0) | (i < bufs.length - 1 ? 1 : 0), true);
      dv.setUint16(o + 14, (head + i + 1) % n, true);
    });
    this.offer(q, head);
  }

  /** Put `head` in the available ring and notify. */
  offer(q: number, head: number): void {
    const base = this.queueBase.get(q)!, n = this.sizes.get(q)!, dv = this.t.dv;
    const idx = this.nextAvail.get(q)!;
    dv.setUint16(base + 0x1000 + 4 + 2 * (idx % n), head, true);
    dv.setUint16(base + 0x1000 + 2, (idx + 1) & 0xffff, true);
    this.nextAvail.set(q, (idx + 1) & 0xffff);
    this.t.ctx.mmio.write(MODERN_BAR_ADDR + NOTIFY + 4 * q, 2, q);
  }

  /** Used entries not seen yet: [id, len]. */
  used(q: number): [number, number][] {
    const base = this.queueBase.get(q)! + 0x2000, n = this.sizes.get(q)!, dv = this.t.dv;
    const out: [number, number][] = [];
    const idx = dv.getUint16(base + 2, true);
    for (let s = this.usedSeen.get(q)!; s !== idx; s = (s + 1) & 0xffff) {
      out.push([dv.getUint32(base + 4 + 8 * (s % n), true), dv.getUint32(base + 8 + 8 * (s % n), true)]);
    }
    this.usedSeen.set(q, idx);
    return out;
  }
}
