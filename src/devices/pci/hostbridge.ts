/**
 * The host bridge at slot 0, as bhyve's pci_hostbridge.c: vendor/device
 * 0x1275:0x1275 (or AMD's 0x1022:0x7432 for amd_hostbridge), class "host
 * bridge", and a PCI Express root-port capability. The IDs can be
 * overridden with the `vendor` and `devid` config keys.
 *
 * `model=q35` (a bhyve-ts addition) makes it look like the memory controller
 * hub of QEMU's q35 machine instead, 8086:29c0, which firmware built for
 * QEMU (Debian's OVMF) insists on: no PCI Express capability, and ECAM
 * behind the MCH's PCIEXBAR register (0x60, 64 bits: enable in bit 0, size
 * in bits 2:1, base from bit 28), at 0xB0000000 as QEMU puts it. Firmware
 * reprograms PCIEXBAR and ECAM follows; only the 256-bus size is decoded.
 */
import { registerPci, DeviceError, type PciBdf } from '../registry.js';
import type { MachineContext } from '../../vmm/context.js';
import { PciFunction } from './function.js';
import { CLASS_BRIDGE, HDRTYPE_NORMAL, PCIEM_TYPE_ROOT_PORT, SUBCLASS_BRIDGE_HOST } from './regs.js';
import type { PciRoot } from './root.js';

export const HOSTBRIDGE_IDS = { vendor: 0x1275, device: 0x1275 };
export const AMD_HOSTBRIDGE_IDS = { vendor: 0x1022, device: 0x7432 };
export const Q35_MCH_IDS = { vendor: 0x8086, device: 0x29c0 };
export const HOSTBRIDGE_MODELS = ['bhyve', 'q35'];
/** q35 MCH: PCI Express register range base address (low dword; the high dword follows). */
export const MCH_PCIEXBAR = 0x60;
export const MCH_PCIEXBAR_HIGH = 0x64;
export const MCH_PCIEXBAR_EN = 0x1;
/** Size field: 0 = 256 buses (the only size decoded here). */
export const MCH_PCIEXBAR_LENGTH = 0x6;
export const MCH_PCIEXBAR_BASE_MASK = 0xf0000000;
export const Q35_ECAM_BASE = 0xb0000000;

export class HostBridge extends PciFunction {
  private root: PciRoot | undefined;

  constructor(ctx: MachineContext, prefix: string, bdf: PciBdf, ids: { vendor: number; device: number }, readonly q35 = false) {
    super(ctx, bdf, `hostbridge@${prefix}`);
    this.setIds({
      vendor: ctx.config.int(`${prefix}.vendor`, ids.vendor, 0, 0xffff),
      device: ctx.config.int(`${prefix}.devid`, ids.device, 0, 0xffff),
      classCode: CLASS_BRIDGE,
      subclass: SUBCLASS_BRIDGE_HOST,
    });
    this.setHeaderType(HDRTYPE_NORMAL);
    if (q35) this.set32(MCH_PCIEXBAR, Q35_ECAM_BASE | MCH_PCIEXBAR_EN);
    else this.addPcieCap(PCIEM_TYPE_ROOT_PORT);
  }

  protected override onAttach(root: PciRoot): void {
    this.root = root;
    if (this.q35 && this.ctx.role === 'main') root.setEcamBase(Q35_ECAM_BASE);
  }

  protected override cfgWriteHook(off: number, size: number, val: number): boolean {
    if (!this.q35 || off < MCH_PCIEXBAR || off >= MCH_PCIEXBAR_HIGH + 4) return false;
    for (let i = 0; i < size; i++) this.cfg[off + i] = (val >>> (8 * i)) & 0xff; // the guest's write, on any thread
    const low = this.get32(MCH_PCIEXBAR);
    const high = this.get32(MCH_PCIEXBAR_HIGH) & 0xf; // bits 35:32 on q35
    const on = (low & MCH_PCIEXBAR_EN) !== 0 && (low & MCH_PCIEXBAR_LENGTH) === 0;
    this.root?.setEcamBase(on ? high * 2 ** 32 + ((low & MCH_PCIEXBAR_BASE_MASK) >>> 0) : 0);
    return true;
  }
}

function hostBridgeModel(ctx: MachineContext, prefix: string): boolean {
  const model = ctx.config.str(`${prefix}.model`, 'bhyve');
  if (!HOSTBRIDGE_MODELS.includes(model)) throw new DeviceError(`${prefix}.model: '${model}' is not one of ${HOSTBRIDGE_MODELS.join(', ')}`);
  if (model !== 'q35') return false;
  const lowmem = ctx.mem?.segments.find((s) => s.name === 'lowmem');
  if (lowmem && lowmem.gpa + lowmem.size > Q35_ECAM_BASE) {
    throw new DeviceError(`${prefix}.model: q35 puts ECAM at 0xb0000000, below the end of low memory (use -m 2816M or less)`);
  }
  return true;
}

registerPci({
  name: 'hostbridge',
  options: { vendor: 'int', devid: 'int', model: 'string' },
  create: (ctx, prefix, bdf) => {
    const q35 = hostBridgeModel(ctx, prefix);
    return new HostBridge(ctx, prefix, bdf, q35 ? Q35_MCH_IDS : HOSTBRIDGE_IDS, q35);
  },
});

registerPci({
  name: 'amd_hostbridge',
  options: { vendor: 'int', devid: 'int' },
  create: (ctx, prefix, bdf) => new HostBridge(ctx, prefix, bdf, AMD_HOSTBRIDGE_IDS),
});
