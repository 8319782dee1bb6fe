/**
 * The boot order firmware reads from the fw_cfg file "bootorder": one
 * OpenFirmware device path a line, most preferred first, from the devices
 * configured with `bootindex=N` (as bhyve and QEMU). Paths have QEMU's shape,
 * which SeaBIOS matches ("/pci@i0cf8/*@SLOT[,FUNC]" prefixes; the function
 * only when not 0) and OVMF translates:
 *   /pci@i0cf8/scsi@4                        virtio-blk in slot 4
 *   /pci@i0cf8/sata@5/drive@2/disk@0         port 2 of an AHCI controller
 *
 * Emulations that can boot declare the option with `...BOOTINDEX_OPTION` in
 * their option list; multi-port AHCI may also set `port.N.bootindex`.
 */
import { ConfigError, type ConfigTree } from '../../config/tree.js';
import type { OptionType } from '../registry.js';
import { configuredFunctions } from '../pci/root.js';

export const BOOTORDER_FILE = 'bootorder';
/** Spread into a PCI emulation's `options`. */
export const BOOTINDEX_OPTION: Record<string, OptionType> = { bootindex: 'int' };
export const PCI_ROOT_PATH = '/pci@i0cf8';
const AHCI_PORTS = 32;
const MAX_BOOTINDEX = 0x7fffffff;

/** The OpenFirmware node name of a device emulation (what QEMU calls it). */
function nodeName(device: string): string {
  if (device === 'virtio-blk' || device === 'virtio-scsi') return 'scsi';
  if (device === 'virtio-net' || device === 'e1000') return 'ethernet';
  if (device.startsWith('ahci')) return 'sata';
  if (device === 'nvme') return 'nvme';
  return 'pci';
}

export interface BootEntry { bootindex: number; path: string; key: string }

/** The device path of PCI function slot/func on bus 0, plus a child path. */
export function pciDevicePath(device: string, slot: number, func: number, child = ''): string {
  return `${PCI_ROOT_PATH}/${nodeName(device)}@${slot.toString(16)}${func ? `,${func.toString(16)}` : ''}${child}`;
}

function readIndex(config: ConfigTree, key: string): number | undefined {
  const v = config.get(key);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v.trim()) || Number(v) > MAX_BOOTINDEX) throw new ConfigError(`${key}: '${v}' is not a boot index (0-${MAX_BOOTINDEX})`);
  return Number(v);
}

/** Every configured boot device, ordered by bootindex; two devices may not share one. */
export function bootOrderEntries(config: ConfigTree): BootEntry[] {
  const out: BootEntry[] = [];
  for (const f of configuredFunctions(config)) {
    const found: { key: string; port?: number }[] = [{ key: `${f.prefix}.bootindex` }];
    if (f.device.startsWith('ahci')) {
      for (let p = 0; p < AHCI_PORTS; p++) found.push({ key: `${f.prefix}.port.${p}.bootindex`, port: p });
    }
    for (const { key, port } of found) {
      const bootindex = readIndex(config, key);
      if (bootindex === undefined) continue;
      if (f.bdf.bus !== 0) throw new ConfigError(`${key}: boot devices must be on PCI bus 0`);
      // The single-disk AHCI forms (ahci-hd, ahci-cd) attach their drive to port 0.
      const child = f.device.startsWith('ahci') ? `/drive@${(port ?? 0).toString(16)}/disk@0` : '';
      out.push({ bootindex, key, path: pciDevicePath(f.device, f.bdf.slot, f.bdf.func, child) });
    }
  }
  out.sort((a, b) => a.bootindex - b.bootindex);
  for (let i = 1; i < out.length; i++) {
    if (out[i].bootindex === out[i - 1].bootindex) {
      throw new ConfigError(`${out[i].key}: boot index ${out[i].bootindex} is already used by ${out[i - 1].key}`);
    }
  }
  return out;
}

/** The "bootorder" file: paths separated by newlines, NUL-terminated (as QEMU); undefined when empty. */
export function bootOrderFile(entries: readonly BootEntry[]): Uint8Array | undefined {
  if (entries.length === 0) return undefined;
  return new TextEncoder().encode(entries.map((e) => e.path).join('\n') + '\0');
}
