/**
 * The host bridge at slot 0, as bhyve's pci_hostbridge.c: vendor/device
 * 0x1275:0x1275 (or AMD's 0x1022:0x7432 for amd_hostbridge), class "host
 * bridge", and a PCI Express root-port capability. The IDs can be
 * overridden with the `vendor` and `devid` config keys.
 */
import { registerPci, type PciBdf } from '../registry.js';
import type { MachineContext } from '../../vmm/context.js';
import { PciFunction } from './function.js';
import { CLASS_BRIDGE, HDRTYPE_NORMAL, PCIEM_TYPE_ROOT_PORT, SUBCLASS_BRIDGE_HOST } from './regs.js';

export const HOSTBRIDGE_IDS = { vendor: 0x1275, device: 0x1275 };
export const AMD_HOSTBRIDGE_IDS = { vendor: 0x1022, device: 0x7432 };

export class HostBridge extends PciFunction {
  constructor(ctx: MachineContext, prefix: string, bdf: PciBdf, ids: { vendor: number; device: number }) {
    super(ctx, bdf, `hostbridge@${prefix}`);
    this.setIds({
      vendor: ctx.config.int(`${prefix}.vendor`, ids.vendor, 0, 0xffff),
      device: ctx.config.int(`${prefix}.devid`, ids.device, 0, 0xffff),
      classCode: CLASS_BRIDGE,
      subclass: SUBCLASS_BRIDGE_HOST,
    });
    this.setHeaderType(HDRTYPE_NORMAL);
    this.addPcieCap(PCIEM_TYPE_ROOT_PORT);
  }
}

registerPci({
  name: 'hostbridge',
  options: { vendor: 'int', devid: 'int' },
  create: (ctx, prefix, bdf) => new HostBridge(ctx, prefix, bdf, HOSTBRIDGE_IDS),
});

registerPci({
  name: 'amd_hostbridge',
  options: { vendor: 'int', devid: 'int' },
  create: (ctx, prefix, bdf) => new HostBridge(ctx, prefix, bdf, AMD_HOSTBRIDGE_IDS),
});
