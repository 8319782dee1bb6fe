/**
 * The device set every thread builds, in one fixed order: the platform
 * devices bhyve always has (RTC, ACPI PM block, HPET, reset paths), then the
 * PCI root with the configured slots, then the optional ones: QEMU's fw_cfg
 * (-l fwcfg=qemu) and the debug console port (-o lpc.debugcon=...).
 */
import type { MachineContext } from './context.js';
import { Rtc } from '../devices/rtc.js';
import { PowerManagement } from '../devices/pm.js';
import { Hpet } from '../devices/hpet.js';
import { ResetDevices, RESET_PORT } from '../devices/reset.js';
import { PciRoot } from '../devices/pci/root.js';
import { FwCfg } from '../devices/fwcfg/fwcfg.js';
import { fwcfgEnabled } from '../devices/fwcfg/setup.js';
import { DebugCon, DEBUGCON_KEY, prepareDebugCon } from '../devices/debugcon.js';
import '../devices/all.js';

export interface DeviceSet {
  rtc: Rtc;
  pm: PowerManagement;
  hpet: Hpet;
  reset: ResetDevices;
  pci: PciRoot;
  fwcfg?: FwCfg;
  debugcon?: DebugCon;
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
  const fwcfg = fwcfgEnabled(ctx.config) ? new FwCfg(ctx) : undefined;
  let debugcon: DebugCon | undefined;
  if (ctx.config.has(DEBUGCON_KEY)) {
    if (ctx.role === 'main') prepareDebugCon(ctx);
    debugcon = new DebugCon(ctx);
  }
  return { rtc, pm, hpet, reset, pci, fwcfg, debugcon, resync: () => pci.resync() };
}
