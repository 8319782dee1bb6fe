/**
 * The base of every virtio PCI device: a transitional function (as QEMU and
 * bhyve offer them) with the legacy 0.9.5 registers in I/O BAR 0 and the 1.x
 * capabilities in a memory BAR (modern.ts), feature negotiation, device
 * status and reset, the virtqueues, and interrupts: MSI-X by default (one
 * vector per queue plus one for configuration changes), single-vector MSI
 * with `-W` (virtio_msix=false), level-triggered INTx otherwise.
 *
 * Queue notifications are doorbells bound with KVM_IOEVENTFD to the legacy
 * and modern notify registers: the kernel signals them and the device's
 * onQueue() runs on the I/O thread, never on a vCPU. MSI and MSI-X messages go
 * out through one irqfd per vector. All state is in the arena.
 */
import type { Doorbell, IrqFd, MachineContext } from '../../vmm/context.js';
import { DeviceError, type PciBdf } from '../registry.js';
import { PciFunction } from '../pci/function.js';
import { CMD_MEMEN, CMD_PORTEN, PCIR_COMMAND } from '../pci/regs.js';
import * as V from './constants.js';
import { LegacyRegs } from './legacy.js';
import { ModernRegs, MODERN_NOTIFY, NOTIFY_MULTIPLIER } from './modern.js';
import { Virtqueue, type Chain } from './virtqueue.js';

export interface VirtioSpec {
  /** Device type (the subsystem ID): 1 net, 2 block, 4 entropy, 5 balloon. */
  deviceType: number;
  /** Transitional PCI device ID (0x1000 + n). */
  pciDevice: number;
  classCode: number;
  subclass: number;
  progIf?: number;
  /** Maximum size of each queue (a power of two), one entry per queue. */
  queueSizes: number[];
  /** Device-specific feature bits; the transport adds VERSION_1, INDIRECT_DESC and EVENT_IDX. */
  features: bigint;
  /** Bytes of device configuration (kept in the arena: `devcfg`). */
  configSize: number;
}

export const LEGACY_BAR = 0;
export const MSIX_BAR = 1;
export const MODERN_BAR = 4;
const TRANSPORT_FEATURES = V.bit(V.F_VERSION_1) | V.bit(V.F_RING_INDIRECT_DESC) | V.bit(V.F_RING_EVENT_IDX);

export abstract class VirtioDevice extends PciFunction {
  readonly queues: Virtqueue[];
  /** The device configuration area (device-specific layout, little-endian). */
  readonly devcfg: Uint8Array;
  protected readonly devcfgView: DataView;
  readonly deviceFeatures: bigint;
  readonly useMsix: boolean;
  private readonly vst;
  private readonly doorbells: Doorbell[];
  private readonly irqfds: IrqFd[];
  private readonly legacy: LegacyRegs;
  private readonly modern: ModernRegs;

  constructor(ctx: MachineContext, bdf: PciBdf, name: string, readonly spec: VirtioSpec) {
    super(ctx, bdf, name);
    if (!ctx.doorbell || !ctx.irqfd) throw new DeviceError(`${name}: this machine has no I/O thread support`);
    this.deviceFeatures = spec.features | TRANSPORT_FEATURES;
    this.useMsix = ctx.config.bool('virtio_msix', true);
    this.vst = ctx.arena.struct({
      status: 'u8', isr: 'u8', cfgGen: 'u8', dfSelect: 'u32', gfSelect: 'u32', gfLo: 'u32', gfHi: 'u32',
      queueSel: 'u16', msixConfig: 'u16', epoch: 'u32',
    });
    this.devcfg = ctx.arena.bytes(spec.configSize);
    this.devcfgView = new DataView(this.devcfg.buffer, this.devcfg.byteOffset, this.devcfg.byteLength);
    const features = () => this.driverFeatures;
    this.queues = spec.queueSizes.map((n, i) => new Virtqueue(ctx.arena, i, n, ctx.mem, features, (why) => this.needsReset(why)));
    this.doorbells = this.queues.map((q) => ctx.doorbell!(`${name}.q${q.index}`, () => this.doorbellRang(q)));
    const vectors = this.useMsix ? this.queues.length + 1 : 1;
    this.irqfds = Array.from({ length: vectors }, (_, v) => ctx.irqfd!(`${name}.v${v}`));

    this.setIds({
      vendor: V.VIRTIO_VENDOR, device: spec.pciDevice, classCode: spec.classCode, subclass: spec.subclass,
      progIf: spec.progIf, revision: 0, subvendor: V.VIRTIO_VENDOR, subdevice: spec.deviceType,
    });
    this.legacy = new LegacyRegs(this);
    this.addBar(LEGACY_BAR, { kind: 'io', size: this.legacy.size, device: this.legacy });
    if (this.useMsix) this.addMsixCap(vectors, MSIX_BAR);
    else this.addMsiCap(1);
    this.modern = new ModernRegs(this, MODERN_BAR);
    this.requestIntx();
    if (ctx.role === 'main') this.reset();
  }

  // ---- for the device model ------------------------------------------------
  /** The guest notified `q` (I/O thread, under the device lock, only after DRIVER_OK). */
  protected abstract onQueue(q: Virtqueue): void;
  /** The driver reset the device (any thread, under the lock); queues are already reset. */
  protected onReset(): void {}
  /** The driver set DRIVER_OK. */
  protected onDriverOk(): void {}
  /** A driver write to the device configuration (default: read-only). */
  protected configWrite(_off: number, _size: number, _value: number): void {}

  get driverFeatures(): bigint { return (BigInt(this.vst.gfHi) << 32n) | BigInt(this.vst.gfLo); }
  negotiated(feature: bigint): boolean { return (this.driverFeatures & V.bit(feature)) !== 0n; }
  get status(): number { return this.vst.status; }
  get driverOk(): boolean { return (this.vst.status & (V.STATUS_DRIVER_OK | V.STATUS_NEEDS_RESET)) === V.STATUS_DRIVER_OK; }
  /** Bumped by every reset: work begun before one must not complete after it. */
  get epoch(): number { return this.vst.epoch; }

  /** Raise the used-buffer interrupt of `q` if the driver wants one now. */
  interrupt(q: Virtqueue): void {
    if (q.needsInterrupt()) this.raise(V.ISR_QUEUE, q.vector);
  }

  /** The device configuration changed (bump the generation, interrupt). */
  configChanged(): void {
    this.vst.cfgGen = (this.vst.cfgGen + 1) & 0xff;
    if (this.vst.status & V.STATUS_DRIVER_OK) this.raise(V.ISR_CONFIG, this.vst.msixConfig);
  }

  /** Something the guest did makes the device unusable until reset (DEVICE_NEEDS_RESET). */
  needsReset(_why: string): void {
    if (this.vst.status & V.STATUS_NEEDS_RESET) return;
    this.vst.status |= V.STATUS_NEEDS_RESET;
    this.configChanged();
  }

  /**
   * Serve every available chain of `q` with `handle` (which returns the bytes
   * it wrote), with driver notifications off meanwhile, then interrupt once.
   */
  protected serve(q: Virtqueue, handle: (c: Chain) => number): void {
    for (;;) {
      q.notifications(false);
      for (let c = q.pop(); c; c = q.pop()) q.push(c.head, handle(c));
      q.notifications(true);
      if (q.pending() === 0) break;
    }
    this.interrupt(q);
  }

  /** Have onQueue(q) run on the I/O thread (from any thread). */
  kick(q: Virtqueue): void { this.doorbells[q.index].ring(); }

  /**
   * Run `fn` without the device lock (slow host I/O); the caller holds it
   * (onQueue does). Returns false when the device was reset meanwhile: the
   * caller must then drop what it was completing.
   */
  protected unlocked(fn: () => void): boolean {
    const e = this.vst.epoch;
    this.ctx.arena.unlock();
    try { fn(); } finally { this.ctx.arena.lock(); }
    return this.vst.epoch === e;
  }

  // ---- for the register interfaces (legacy.ts, modern.ts) -----------------
  get queueSel(): number { return this.vst.queueSel; }
  set queueSel(v: number) { this.vst.queueSel = v; }
  get selectedQueue(): Virtqueue | undefined { return this.queues[this.vst.queueSel]; }
  get dfSelect(): number { return this.vst.dfSelect; }
  set dfSelect(v: number) { this.vst.dfSelect = v; }
  get gfSelect(): number { return this.vst.gfSelect; }
  set gfSelect(v: number) { this.vst.gfSelect = v; }
  get configGeneration(): number { return this.vst.cfgGen; }
  get msixConfig(): number { return this.vst.msixConfig; }
  set msixConfig(v: number) { this.vst.msixConfig = this.vectorOk(v); }

  /** A vector the driver asked for, or NO_VECTOR when it does not exist. */
  vectorOk(v: number): number { return this.useMsix && v < this.queues.length + 1 ? v : V.NO_VECTOR; }

  /** Driver features, 32 bits at a time; bits the device does not offer are dropped. */
  setDriverFeatures(word: number, value: number): void {
    if (this.vst.status & V.STATUS_FEATURES_OK || word > 1) return;
    const offered = Number((this.deviceFeatures >> BigInt(32 * word)) & 0xffffffffn);
    if (word === 0) this.vst.gfLo = (value & offered) >>> 0;
    else if (word === 1) this.vst.gfHi = (value & offered) >>> 0;
  }

  /** A status write; 0 resets. `modern`: written through the 1.x interface. */
  setStatus(v: number, modern: boolean): void {
    v &= 0xff;
    if (v === 0) { this.reset(); return; }
    const old = this.vst.status;
    if (v & V.STATUS_FEATURES_OK && !(old & V.STATUS_FEATURES_OK)) {
      if (modern && !this.negotiated(V.F_VERSION_1)) v &= ~V.STATUS_FEATURES_OK;
    }
    this.vst.status = v | (old & V.STATUS_NEEDS_RESET);
    if (v & V.STATUS_DRIVER_OK && !(old & V.STATUS_DRIVER_OK)) {
      this.onDriverOk();
      for (const q of this.queues) if (q.ready) this.kick(q);
    }
  }

  /** ISR status: reading clears it and lowers INTx. */
  readIsr(): number {
    const v = this.vst.isr;
    this.vst.isr = 0;
    if (v) this.intx(false);
    return v;
  }

  /** A notify register write (when KVM did not take it). */
  notify(index: number): void {
    const q = this.queues[index];
    if (q) this.kick(q);
  }

  readConfig(off: number, size: number): number {
    if (off < 0 || off + size > this.devcfg.length) return 0;
    return size === 1 ? this.devcfgView.getUint8(off) : size === 2 ? this.devcfgView.getUint16(off, true) : this.devcfgView.getUint32(off, true);
  }

  writeConfig(off: number, size: number, value: number): void {
    if (off >= 0 && off + size <= this.devcfg.length) this.configWrite(off, size, value);
  }

  // ---- internals --------------------------------------------------------------
  private doorbellRang(q: Virtqueue): void {
    if (this.driverOk && q.ready) this.onQueue(q);
  }

  private raise(isrBit: number, vector: number): void {
    if (this.msixEnabled) {
      if (vector !== V.NO_VECTOR) this.msi(vector);
      return;
    }
    this.vst.isr |= isrBit;
    if (!this.msi(0)) this.intx(true);
  }

  protected override deliverMsi(vector: number, address: bigint, data: number): void {
    const fd = this.irqfds[vector];
    if (fd) fd.msi(address, data);
    else this.ctx.irq.msi(address, data);
  }

  private reset(): void {
    const s = this.vst;
    s.status = 0; s.dfSelect = 0; s.gfSelect = 0; s.gfLo = 0; s.gfHi = 0; s.queueSel = 0;
    s.msixConfig = V.NO_VECTOR;
    s.epoch = (s.epoch + 1) >>> 0;
    if (s.isr) { s.isr = 0; this.intx(false); }
    for (const q of this.queues) q.reset();
    this.onReset();
  }

  protected override cfgReadHook(off: number, size: number): number | undefined {
    return this.modern.pciCfgRead(off, size);
  }

  protected override cfgWriteHook(off: number, size: number, val: number): boolean {
    return this.modern.pciCfgWrite(off, size, val);
  }

  // ---- notify registers follow the BARs -----------------------------------
  override cfgWrite(off: number, size: number, val: number): void {
    super.cfgWrite(off, size, val);
    this.bindDoorbells();
  }

  override mapWanted(): void {
    super.mapWanted();
    if (this.ctx.role === 'main') this.bindDoorbells();
  }

  /** Bind each queue's doorbell to the legacy notify port (slot 0) and its modern notify address (slot 1). */
  private bindDoorbells(): void {
    const cmd = this.get16(PCIR_COMMAND);
    const io = cmd & CMD_PORTEN ? this.barAddress(LEGACY_BAR) : undefined;
    const mem = cmd & CMD_MEMEN ? this.barAddress(MODERN_BAR) : undefined;
    for (const q of this.queues) {
      const d = this.doorbells[q.index];
      d.bind(io ? { pio: true, addr: io + V.LEG_QUEUE_NOTIFY, len: 2, datamatch: q.index } : undefined, 0);
      const at = mem ? mem + MODERN_NOTIFY + q.index * NOTIFY_MULTIPLIER : undefined;
      if (at === undefined) d.bind(undefined, 1);
      else if (!d.bind({ pio: false, addr: at, len: 0 }, 1)) d.bind({ pio: false, addr: at, len: 2 }, 1);
    }
  }
}
