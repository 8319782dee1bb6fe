/**
 * Main thread, at start-up: gather what `-l fwcfg=qemu` offers (platform
 * tables, boot order, user files) and publish the item table for the FwCfg
 * device of every thread.
 */
import type { ConfigTree } from '../../config/tree.js';
import type { Platform } from '../../firmware/platform.js';
import type { MachineContext } from '../../vmm/context.js';
import { bootOrderEntries, bootOrderFile } from './bootorder.js';
import { FWCFG_RESOURCE } from './fwcfg.js';
import { buildFwCfgItems } from './items.js';
import { loadUserFiles } from './user.js';

/** PCI emulations that give the guest a display. */
const DISPLAY_DEVICES = new Set(['fbuf', 'vga']);

export function fwcfgEnabled(config: ConfigTree): boolean {
  return config.get('lpc.fwcfg') === 'qemu';
}

/**
 * Whether firmware should use COM1 as its console (QEMU's -nographic, which
 * makes SeaBIOS mirror its screen there): by default when COM1 has a
 * back-end and no display device is configured; `fwcfg.nographic` overrides.
 */
export function nographic(config: ConfigTree): boolean {
  const displays = config.entries().some(([k, v]) => /^pci\.\d+\.\d+\.\d+\.device$/.test(k) && DISPLAY_DEVICES.has(v));
  return config.bool('fwcfg.nographic', config.has('lpc.com1.path') && !displays);
}

export function publishFwCfg(ctx: MachineContext, platform: Platform): void {
  const config = ctx.config;
  const items = buildFwCfgItems({
    platform,
    bootorder: bootOrderFile(bootOrderEntries(config)),
    nographic: nographic(config),
    userFiles: loadUserFiles(config),
  });
  ctx.resources.set(FWCFG_RESOURCE, items);
}
