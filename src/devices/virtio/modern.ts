/**
 * The virtio 1.x PCI interface: vendor-specific capabilities pointing into
 * one memory BAR that holds four 4 KiB regions (common configuration, ISR
 * status, device configuration, notifications: queue N at N * 4), plus the
 * PCI configuration access capability (a window onto the BAR through config
 * space, which firmware uses when the BAR is out of its reach).
 */
import type { BusDevice } from '../../vmm/bus.js';
import * as V from './constants.js';
import type { VirtioDevice } from './device.js';

export const MODERN_COMMON = 0x0000;
export const MODERN_ISR = 0x1000;
export const MODERN_DEVICE = 0x2000;
export const MODERN_NOTIFY = 0x3000;
const REGION = 0x1000;
export const MODERN_BAR_SIZE = 0x4000;
export const NOTIFY_MULTIPLIER = 4;
/** The 1.0 common configuration (without queue_notify_data/queue_reset, which need features we do not offer). */
const COMMON_LEN = 0x38;
const ONES = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];
type AddrReg = 'descLo' | 'descHi' | 'availLo' | 'availHi' | 'usedLo' | 'usedHi';
const ADDR_REGS: Record<number, AddrReg> = {
  [V.COM_Q_DESCLO]: 'descLo', [V.COM_Q_DESCHI]: 'descHi', [V.COM_Q_AVAILLO]: 'availLo',
  [V.COM_Q_AVAILHI]: 'availHi', [V.COM_Q_USEDLO]: 'usedLo', [V.COM_Q_USEDHI]: 'usedHi',
};

export class ModernRegs implements BusDevice {
  /** Offset of the PCI configuration access capability in config space. */
  private readonly pciCfgCap: number;

  constructor(private readonly dev: VirtioDevice, private readonly bar: number) {
    dev.addBar(bar, { kind: 'mem64', size: MODERN_BAR_SIZE, device: this, prefetch: true });
    this.cap(V.CAP_COMMON_CFG, MODERN_COMMON, COMMON_LEN);
    const notify = this.cap(V.CAP_NOTIFY_CFG, MODERN_NOTIFY, Math.max(dev.queues.length, 1) * NOTIFY_MULTIPLIER, V.CAP_NOTIFY_LEN);
    dev.set32(notify + V.CAP_OFF_MULTIPLIER, NOTIFY_MULTIPLIER);
    this.cap(V.CAP_ISR_CFG, MODERN_ISR, 1);
    if (dev.spec.configSize > 0) this.cap(V.CAP_DEVICE_CFG, MODERN_DEVICE, dev.spec.configSize);
    this.pciCfgCap = dev.addCapability(V.PCI_CAP_VENDOR, V.CAP_PCI_CFG_LEN, [[V.CAP_OFF_BAR, 1, 0xff], [V.CAP_OFF_OFFSET, 4, 0xffffffff], [V.CAP_OFF_LENGTH, 4, 0xffffffff]]);
    dev.set8(this.pciCfgCap + 2, V.CAP_PCI_CFG_LEN);
    dev.set8(this.pciCfgCap + 3, V.CAP_PCI_CFG);
  }

  private cap(type: number, offset: number, length: number, capLen = V.CAP_LEN): number {
    const c = this.dev.addCapability(V.PCI_CAP_VENDOR, capLen);
    this.dev.set8(c + 2, capLen);
    this.dev.set8(c + 3, type);
    this.dev.set8(c + V.CAP_OFF_BAR, this.bar);
    this.dev.set32(c + V.CAP_OFF_OFFSET, offset);
    this.dev.set32(c + V.CAP_OFF_LENGTH, length);
    return c;
  }

  read(off: number, size: number): number {
    const d = this.dev;
    const region = off & ~(REGION - 1), o = off - region;
    if (region === MODERN_COMMON) return this.common(o, size) & ONES[size];
    if (region === MODERN_ISR) return o === 0 ? d.readIsr() : 0;
    if (region === MODERN_DEVICE) return d.readConfig(o, size);
    return 0;
  }

  write(off: number, size: number, value: number): void {
    const d = this.dev;
    const region = off & ~(REGION - 1), o = off - region;
    if (region === MODERN_COMMON) this.commonWrite(o, value >>> 0);
    else if (region === MODERN_DEVICE) d.writeConfig(o, size, value);
    else if (region === MODERN_NOTIFY && o % NOTIFY_MULTIPLIER === 0) d.notify(o / NOTIFY_MULTIPLIER);
  }

  private common(o: number, _size: number): number {
    const d = this.dev;
    const q = d.selectedQueue;
    switch (o) {
      case V.COM_DFSELECT: return d.dfSelect;
      case V.COM_DF: return d.dfSelect < 2 ? Number((d.deviceFeatures >> BigInt(32 * d.dfSelect)) & 0xffffffffn) : 0;
      case V.COM_GFSELECT: return d.gfSelect;
      case V.COM_GF: return d.gfSelect < 2 ? Number((d.driverFeatures >> BigInt(32 * d.gfSelect)) & 0xffffffffn) : 0;
      case V.COM_MSIX: return d.msixConfig;
      case V.COM_NUMQ: return d.queues.length;
      case V.COM_STATUS: return d.status;
      case V.COM_CFGGEN: return d.configGeneration;
      case V.COM_Q_SELECT: return d.queueSel;
    }
    if (!q) return o === V.COM_Q_MSIX ? V.NO_VECTOR : 0;
    switch (o) {
      case V.COM_Q_SIZE: return q.size;
      case V.COM_Q_MSIX: return q.vector;
      case V.COM_Q_ENABLE: return q.enabled ? 1 : 0;
      case V.COM_Q_NOFF: return q.index;
    }
    const reg = ADDR_REGS[o];
    return reg ? q.reg(reg) : 0;
  }

  private commonWrite(o: number, v: number): void {
    const d = this.dev;
    const q = d.selectedQueue;
    switch (o) {
      case V.COM_DFSELECT: d.dfSelect = v; return;
      case V.COM_GFSELECT: d.gfSelect = v; return;
      case V.COM_GF: d.setDriverFeatures(d.gfSelect, v); return;
      case V.COM_MSIX: d.msixConfig = v & 0xffff; return;
      case V.COM_STATUS: d.setStatus(v & 0xff, true); return;
      case V.COM_Q_SELECT: d.queueSel = v & 0xffff; return;
    }
    if (!q) return;
    switch (o) {
      case V.COM_Q_SIZE: q.size = v & 0xffff; return;
      case V.COM_Q_MSIX: q.vector = d.vectorOk(v & 0xffff); return;
      case V.COM_Q_ENABLE: if ((v & 0xffff) === 1) q.enabled = true; return;
    }
    const reg = ADDR_REGS[o];
    if (reg) q.setReg(reg, v);
  }

  // ---- VIRTIO_PCI_CAP_PCI_CFG: BAR access through config space -------------
  /** A config read at the window's data register, or undefined when `off` is elsewhere. */
  pciCfgRead(off: number, size: number): number | undefined {
    const a = this.window(off, size);
    return a === undefined ? undefined : this.read(a.offset, a.length);
  }

  pciCfgWrite(off: number, size: number, value: number): boolean {
    const a = this.window(off, size);
    if (a === undefined) return off >= this.pciCfgCap + V.CAP_OFF_PCI_CFG_DATA && off < this.pciCfgCap + V.CAP_PCI_CFG_LEN;
    this.write(a.offset, a.length, value & ONES[a.length]);
    return true;
  }

  private window(off: number, size: number): { offset: number; length: number } | undefined {
    const data = this.pciCfgCap + V.CAP_OFF_PCI_CFG_DATA;
    if (off !== data) return undefined;
    const d = this.dev;
    const bar = d.get8(this.pciCfgCap + V.CAP_OFF_BAR);
    const offset = d.get32(this.pciCfgCap + V.CAP_OFF_OFFSET), length = d.get32(this.pciCfgCap + V.CAP_OFF_LENGTH);
    if (bar !== this.bar || ![1, 2, 4].includes(length) || length > size || offset % length !== 0 || offset + length > MODERN_BAR_SIZE) return undefined;
    return { offset, length };
  }
}
