/**
 * The legacy (0.9.5) virtio PCI registers in I/O BAR 0: 32-bit features,
 * one page frame number per queue (fixed layout, fixed size), a 16-bit notify
 * register, status and ISR; with MSI-X enabled, two vector registers; then the
 * device configuration.
 */
import type { BusDevice } from '../../vmm/bus.js';
import * as V from './constants.js';
import type { VirtioDevice } from './device.js';

const ONES = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

export class LegacyRegs implements BusDevice {
  /** Bytes the BAR needs: the MSI-X header plus the device configuration. */
  readonly size: number;

  constructor(private readonly dev: VirtioDevice) {
    this.size = V.LEG_CONFIG_MSIX + dev.spec.configSize;
  }

  /** Where the device configuration starts now (it moves when MSI-X is enabled). */
  private get configBase(): number { return this.dev.msixEnabled ? V.LEG_CONFIG_MSIX : V.LEG_CONFIG; }

  read(off: number, size: number): number {
    const d = this.dev;
    const cfg = this.configBase;
    if (off >= cfg) return d.readConfig(off - cfg, size);
    const q = d.selectedQueue;
    let v: number;
    switch (off) {
      case V.LEG_HOST_FEATURES: v = Number(d.deviceFeatures & 0xffffffffn); break;
      case V.LEG_GUEST_FEATURES: v = Number(d.driverFeatures & 0xffffffffn); break;
      case V.LEG_QUEUE_PFN: v = q?.pfn ?? 0; break;
      case V.LEG_QUEUE_NUM: v = q?.maxSize ?? 0; break;
      case V.LEG_QUEUE_SEL: v = d.queueSel; break;
      case V.LEG_QUEUE_NOTIFY: v = 0; break;
      case V.LEG_STATUS: v = d.status; break;
      case V.LEG_ISR: v = d.readIsr(); break;
      case V.LEG_MSIX_CONFIG: v = d.msixConfig; break;
      case V.LEG_MSIX_QUEUE: v = q?.vector ?? V.NO_VECTOR; break;
      default: return ONES[size];
    }
    return v & ONES[size];
  }

  write(off: number, size: number, value: number): void {
    const d = this.dev;
    const cfg = this.configBase;
    if (off >= cfg) { d.writeConfig(off - cfg, size, value); return; }
    const q = d.selectedQueue;
    switch (off) {
      case V.LEG_GUEST_FEATURES: if (size === 4) { d.setDriverFeatures(0, value); d.setDriverFeatures(1, 0); } break;
      case V.LEG_QUEUE_PFN: if (q && size === 4) q.pfn = value >>> 0; break;
      case V.LEG_QUEUE_SEL: d.queueSel = value & 0xffff; break;
      case V.LEG_QUEUE_NOTIFY: d.notify(value & 0xffff); break;
      case V.LEG_STATUS: d.setStatus(value & 0xff, false); break;
      case V.LEG_MSIX_CONFIG: d.msixConfig = value & 0xffff; break;
      case V.LEG_MSIX_QUEUE: if (q) q.vector = d.vectorOk(value & 0xffff); break;
    }
  }
}
