/**
 * The device set every thread builds, in one fixed order: the platform
 * devices bhyve always has (RTC, ACPI PM block, HPET, reset paths), then the
 * PCI root with the configured slots.
 */
import type { MachineContext } from './context.js';
import { Rtc } from '../devices/rtc.js';
import { PowerManagement } from '../devices/pm.js';
import { Hpet } from '../devices/hpet.js';
import { ResetDevices, RESET_PORT } from '../devices/reset.js';
import { PciRoot } from '../devices/pci/root.js';
import '../devices/all.js';

export interface DeviceSet {
  rtc: Rtc;
  pm: PowerManagement;
  hpet: Hpet;
  reset: ResetDevices;
  pci: PciRoot;
  resync(): void;
}

export function buildDevices(ctx: MachineContext, mem: { lowmem: number; highmem: number }): DeviceSet {
  const rtc = new Rtc(ctx, mem);
  const pm = new PowerManagement(ctx);
  const hpet = new Hpet(ctx);
  const reset = new ResetDevices(ctx);
  ctx.io.register(RESET_PORT, 1, {
    read: () => reset.control.read(),
    write: (_o, _s, v) => reset.control.write(v),
  }, 'reset-control');
  ctx.onHost('powerbutton', () => { pm.powerButton(); });
  const pci = new PciRoot(ctx, { highmem: mem.highmem });
  if (ctx.role === 'main') pci.prepare();
  pci.populate();
  return { rtc, pm, hpet, reset, pci, resync: () => pci.resync() };
}
