/**
 * The base of every emulated PCI function, after bhyve's pci_devinst: a
 * 4 KiB config space in the shared arena, BARs, a capability list with MSI,
 * MSI-X and PCI Express helpers, and an INTx line routed by the root.
 *
 * The set* helpers are for construction and write only on the main thread
 * (the arena is shared; it is initialised once). Everything a guest changes
 * at run time is read back from config space, so every thread agrees.
 */
import type { MachineContext } from '../../vmm/context.js';
import { DeviceError, type PciBdf } from '../registry.js';
import { BarSet, type BarInfo, type BarSpec } from './bars.js';
import { MsixTable, MSIX_MAX_VECTORS } from './msix.js';
import * as R from './regs.js';
import type { PciRoot } from './root.js';

export type { BarInfo, BarKind, BarSpec } from './bars.js';

const INTX_IDLE = 0, INTX_ASSERTED = 1, INTX_PENDING = 2;
const MSI_CAP_LEN = 14;
const MSIX_CAP_LEN = 12;
const PCIE_CAP_LEN = 60;
/** Control registers of the PCI Express capability (guest-writable), by offset in the capability. */
const PCIE_CONTROLS = [0x08, 0x10, 0x18, 0x1c, 0x28, 0x30, 0x38];

export class PciFunction {
  /** Config space (4 KiB) in the arena. */
  readonly cfg: Uint8Array;
  protected readonly primary: boolean;
  private readonly dv: DataView;
  /** Guest-writable bits of the first 256 bytes (static after construction). */
  private readonly wmask = new Uint8Array(R.CFG_STD);
  private readonly bars: BarSet;
  private readonly lintr: { state: number };
  private lastCap = 0;
  private capEnd = R.CAP_START;
  private msiCap = 0;
  private msixTable: MsixTable | undefined;
  private router: PciRoot | undefined;
  /** Set by requestIntx(); the root assigns `intPin` (1-4 = INTA-D) and `pirq` when the function is added. */
  wantsIntx = false;
  intPin = 0;
  pirq = -1;

  constructor(readonly ctx: MachineContext, readonly bdf: PciBdf, readonly name: string) {
    this.primary = ctx.role === 'main';
    this.cfg = ctx.arena.bytes(R.CFG_SIZE);
    this.dv = new DataView(this.cfg.buffer, this.cfg.byteOffset, R.CFG_SIZE);
    this.bars = new BarSet(ctx, name, this.dv);
    this.lintr = ctx.arena.struct({ state: 'u8' });
    this.wmask.fill(0xff, R.CAP_START); // device-specific registers are plain storage, as in bhyve
    this.setMask(R.PCIR_COMMAND, 2, R.CMD_WRITABLE);
    this.setMask(R.PCIR_CACHELNSZ, 2, 0xffff);
    this.setMask(R.PCIR_INTLINE, 1, 0xff);
    this.set8(R.PCIR_INTLINE, 0xff);
  }

  // ---- construction helpers -------------------------------------------------
  set8(off: number, v: number): void { if (this.primary) this.dv.setUint8(off, v); }
  set16(off: number, v: number): void { if (this.primary) this.dv.setUint16(off, v, true); }
  set32(off: number, v: number): void { if (this.primary) this.dv.setUint32(off, v >>> 0, true); }
  get8(off: number): number { return this.dv.getUint8(off); }
  get16(off: number): number { return this.dv.getUint16(off, true); }
  get32(off: number): number { return this.dv.getUint32(off, true); }

  setIds(ids: { vendor: number; device: number; classCode: number; subclass: number; progIf?: number; revision?: number; subvendor?: number; subdevice?: number }): void {
    this.set16(R.PCIR_VENDOR, ids.vendor);
    this.set16(R.PCIR_DEVICE, ids.device);
    this.set8(R.PCIR_CLASS, ids.classCode);
    this.set8(R.PCIR_SUBCLASS, ids.subclass);
    this.set8(R.PCIR_PROGIF, ids.progIf ?? 0);
    this.set8(R.PCIR_REVID, ids.revision ?? 0);
    if (ids.subvendor !== undefined) this.set16(R.PCIR_SUBVEND, ids.subvendor);
    if (ids.subdevice !== undefined) this.set16(R.PCIR_SUBDEV, ids.subdevice);
  }

  setHeaderType(t: number): void { this.set8(R.PCIR_HDRTYPE, t & ~R.HDRTYPE_MFDEV); }
  /** Ask for an INTx pin; the root picks the least used pin of the slot (bhyve's pci_lintr_request). */
  requestIntx(): void { this.wantsIntx = true; }

  /** Declare BAR `index`; the root assigns its address. Sizes round up to a power of two. */
  addBar(index: number, spec: BarSpec): void {
    this.set32(R.PCIR_BAR0 + 4 * index, this.bars.declare(index, spec));
  }

  /** Add a capability of `len` bytes; returns its offset. `writable` lists [offset in cap, bytes, mask]. */
  addCapability(id: number, len: number, writable: [number, number, number][] = []): number {
    const off = this.capEnd;
    const end = off + ((len + 3) & ~3);
    if (end > R.CFG_STD) throw new DeviceError(`${this.name}: no room for capability ${id}`);
    this.set8(this.lastCap ? this.lastCap + 1 : R.PCIR_CAP_PTR, off);
    this.set16(R.PCIR_STATUS, this.get16(R.PCIR_STATUS) | R.STATUS_CAPLIST);
    this.set8(off, id);
    this.set8(off + 1, 0);
    this.wmask.fill(0, off, end);
    for (const [o, n, m] of writable) this.setMask(off + o, n, m);
    this.lastCap = off;
    this.capEnd = end;
    return off;
  }

  /** MSI capability with 64-bit addresses and `msgnum` messages (a power of two, 1-32). */
  addMsiCap(msgnum: number): void {
    if (![1, 2, 4, 8, 16, 32].includes(msgnum)) throw new DeviceError(`${this.name}: bad MSI message count ${msgnum}`);
    const ctl = R.MSICTRL_ENABLE | R.MSICTRL_MME_MASK;
    this.msiCap = this.addCapability(R.CAPID_MSI, MSI_CAP_LEN, [[2, 2, ctl], [4, 4, 0xfffffffc], [8, 4, 0xffffffff], [12, 2, 0xffff]]);
    this.set16(this.msiCap + 2, R.MSICTRL_64BIT | (Math.log2(msgnum) << R.MSICTRL_MMC_SHIFT));
  }

  /** MSI-X capability with `count` vectors; its table and PBA take BAR `barIndex` (a 32-bit memory BAR). */
  addMsixCap(count: number, barIndex: number): void {
    if (!Number.isInteger(count) || count < 1 || count > MSIX_MAX_VECTORS) throw new DeviceError(`${this.name}: bad MSI-X vector count ${count}`);
    const cap = this.addCapability(R.CAPID_MSIX, MSIX_CAP_LEN, [[2, 2, R.MSIXCTRL_ENABLE | R.MSIXCTRL_FUNCTION_MASK]]);
    const table = new MsixTable(this.ctx, count, this.primary, () => this.get16(cap + 2), (v, a, d) => this.deliverMsi(v, a, d));
    this.msixTable = table;
    this.addBar(barIndex, { kind: 'mem32', size: table.barSize, device: table });
    this.set16(cap + 2, count - 1);
    this.set32(cap + 4, barIndex);
    this.set32(cap + 8, table.pbaOffset | barIndex);
  }

  /** PCI Express capability (version 2) of port `type`; endpoints on bus 0 become root-complex integrated. */
  addPcieCap(type: number): void {
    if (type === R.PCIEM_TYPE_ENDPOINT && this.bdf.bus === 0) type = R.PCIEM_TYPE_ROOT_INT_EP;
    const off = this.addCapability(R.CAPID_EXPRESS, PCIE_CAP_LEN, PCIE_CONTROLS.map((o) => [o, 2, 0xffff] as [number, number, number]));
    this.set16(off + 2, 0x2 | type);
    if (type !== R.PCIEM_TYPE_ROOT_INT_EP) {
      this.set32(off + 0x0c, 0x411); // link capabilities: gen1, x1
      this.set16(off + 0x12, 0x11); // link status: gen1, x1
    }
  }

  // ---- interrupts ------------------------------------------------------------
  get msiEnabled(): boolean { return this.msiCap !== 0 && (this.get16(this.msiCap + 2) & R.MSICTRL_ENABLE) !== 0; }
  get msixEnabled(): boolean { return this.msixTable?.enabled ?? false; }

  /**
   * Send message `vector` by MSI-X when enabled, else by MSI when enabled.
   * Returns false when neither is on (the caller may use INTx instead).
   */
  msi(vector: number): boolean {
    if (this.msixTable?.enabled) return this.msixTable.fire(vector);
    if (!this.msiEnabled) return false;
    const ctrl = this.get16(this.msiCap + 2);
    const mmc = (ctrl >> R.MSICTRL_MMC_SHIFT) & 7;
    const n = 1 << Math.min(mmc, (ctrl & R.MSICTRL_MME_MASK) >> R.MSICTRL_MME_SHIFT);
    if (!Number.isInteger(vector) || vector < 0 || vector >= n) return false;
    const addr = (BigInt(this.get32(this.msiCap + 8)) << 32n) | BigInt(this.get32(this.msiCap + 4));
    this.deliverMsi(vector, addr, (this.get16(this.msiCap + 12) & ~(n - 1)) | vector);
    return true;
  }

  /**
   * Send message `vector` (an MSI-X entry or an MSI message number) once
   * enabled and unmasked. Default: ctx.irq.msi; a function may override it to
   * raise the message through an irqfd of its own.
   */
  protected deliverMsi(_vector: number, address: bigint, data: number): void {
    this.ctx.irq.msi(address, data);
  }

  /** Drive the INTx line (level-triggered; shared lines are wired-OR at the root). */
  intx(level: boolean): void {
    if (!this.router || this.intPin === 0) return;
    const s = this.lintr.state;
    if (level && s === INTX_IDLE) {
      if (this.intxPermitted()) this.lintrSet(INTX_ASSERTED, true);
      else this.lintr.state = INTX_PENDING;
    } else if (!level && s === INTX_ASSERTED) {
      this.lintrSet(INTX_IDLE, false);
    } else if (!level && s === INTX_PENDING) {
      this.lintr.state = INTX_IDLE;
    }
    const st = this.get16(R.PCIR_STATUS);
    this.dv.setUint16(R.PCIR_STATUS, level ? st | R.STATUS_INTX : st & ~R.STATUS_INTX, true);
  }

  /** Called by the root when the function is added (every thread). */
  attach(root: PciRoot): void {
    this.router = root;
    this.onAttach(root);
  }

  /** Hook for functions that need the root (the LPC bridge: PIRQ registers, ISA IRQs). */
  protected onAttach(_root: PciRoot): void {}

  private intxPermitted(): boolean {
    return !this.msiEnabled && !this.msixEnabled && (this.get16(R.PCIR_COMMAND) & R.CMD_INTXDIS) === 0;
  }

  private lintrSet(state: number, level: boolean): void {
    this.lintr.state = state;
    this.router?.intxLine(this.pirq, level);
  }

  private lintrUpdate(): void {
    const s = this.lintr.state;
    if (s === INTX_ASSERTED && !this.intxPermitted()) {
      this.router?.intxLine(this.pirq, false);
      this.lintr.state = INTX_PENDING;
    } else if (s === INTX_PENDING && this.intxPermitted()) {
      this.lintrSet(INTX_ASSERTED, true);
    }
  }

  // ---- config space access ---------------------------------------------------
  /** Device-specific read override: return a value to answer the read, or undefined for the default. */
  protected cfgReadHook(_off: number, _size: number): number | undefined { return undefined; }
  /** Device-specific write override: return true when the write was handled. */
  protected cfgWriteHook(_off: number, _size: number, _val: number): boolean { return false; }

  /** A config read; `off` is aligned to `size` (1, 2, 4) and inside the 4 KiB space. */
  cfgRead(off: number, size: number): number {
    const v = this.cfgReadHook(off, size);
    if (v !== undefined) return v >>> 0;
    return size === 1 ? this.get8(off) : size === 2 ? this.get16(off) : this.get32(off);
  }

  /** A config write; may move BARs (bumping the arena generation) and change interrupt state. */
  cfgWrite(off: number, size: number, val: number): void {
    if (this.cfgWriteHook(off, size, val)) return;
    if (off >= R.PCIR_BAR0 && off < R.PCIR_BAR_END) {
      if (size === 4 && this.bars.write((off - R.PCIR_BAR0) >> 2, val >>> 0)) this.ctx.arena.bumpGeneration();
      return;
    }
    if (off >= R.CFG_STD) return;
    const oldCmd = this.get16(R.PCIR_COMMAND);
    for (let i = 0; i < size; i++) {
      const m = this.wmask[off + i];
      if (m) this.cfg[off + i] = (this.cfg[off + i] & ~m) | ((val >>> (8 * i)) & m);
    }
    if ((this.get16(R.PCIR_COMMAND) ^ oldCmd) & (R.CMD_PORTEN | R.CMD_MEMEN)) this.ctx.arena.bumpGeneration();
    this.lintrUpdate();
    this.msixTable?.flush();
  }

  // ---- BARs on the buses -----------------------------------------------------
  barInfo(): BarInfo[] { return this.bars.info(); }
  /** The BAR's programmed address, or undefined when it cannot be represented (beyond 2^53). */
  barAddress(idx: number): number | undefined { return this.bars.address(idx); }

  /** Root use: program BAR `idx` with `addr` (main thread, during setup). */
  assignBar(idx: number, addr: number): void {
    const regs = this.bars.registers(idx, addr);
    if (!regs) return;
    this.set32(R.PCIR_BAR0 + 4 * idx, regs[0]);
    if (regs[1] !== undefined) this.set32(R.PCIR_BAR0 + 4 * idx + 4, regs[1]);
  }

  /** Root use: turn on decoding for the declared BAR types, and bus mastering (bhyve's pci.enable_bars). */
  enableDecode(): void {
    this.set16(R.PCIR_COMMAND, this.get16(R.PCIR_COMMAND) | R.CMD_BUSMASTER | this.bars.decodeBits());
  }

  /** Remove this thread's registrations that no longer match config space. */
  unmapStale(): void { this.bars.unmapStale(); }
  /** Register live BARs not yet on this thread's buses. */
  mapWanted(): void { this.bars.mapWanted(); }

  /** Bring this thread's buses in line with config space. */
  resync(): void {
    this.bars.unmapStale();
    this.bars.mapWanted();
  }

  private setMask(off: number, bytes: number, mask: number): void {
    for (let i = 0; i < bytes; i++) this.wmask[off + i] = (mask >>> (8 * i)) & 0xff;
  }
}
