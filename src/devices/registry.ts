/**
 * Device emulations register themselves here by name, as bhyve's
 * PCI_EMUL_SET does. `-s slot,NAME,opts` looks the name up.
 */
import type { ConfigTree } from '../config/tree.js';
import type { MachineContext } from '../vmm/context.js';
import type { PciFunction } from './pci/function.js';

export class DeviceError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DeviceError';
  }
}

/** Option value types a device declares for its config node (pci.B.S.F.KEY). */
export type OptionType = 'string' | 'bool' | 'int' | 'size' | 'path';

export interface PciBdf { bus: number; slot: number; func: number }

export interface PciEmulation {
  /** The name used with -s (e.g. "hostbridge", "virtio-blk"). */
  readonly name: string;
  /** Keys allowed under the device's config node, beyond `device`. */
  readonly options: Record<string, OptionType>;
  /**
   * Gives guest pages back to the host 4 KiB at a time (a balloon): guest
   * RAM then stays off transparent huge pages (see src/vmm/layout.ts).
   */
  readonly returnsPages?: boolean;
  /**
   * Turn the legacy option string of `-s slot,name,OPTS` into config keys
   * under `prefix` (e.g. "pci.0.2.0"). Default: bhyve's pci_parse_legacy_config
   * (key=value sets key; a bare word sets it to "true").
   */
  legacyConfig?(config: ConfigTree, prefix: string, opts: string): void;
  /**
   * Open host resources once, on the main thread, before any device is built
   * (files, ttys); store what the device needs in ctx.resources under `prefix`.
   * Errors here are user errors: throw DeviceError with one clear line.
   */
  prepare?(ctx: MachineContext, prefix: string, bdf: PciBdf): void;
  /** Build the function's model; runs on every thread in the same order. */
  create(ctx: MachineContext, prefix: string, bdf: PciBdf): PciFunction;
}

const pciEmulations = new Map<string, PciEmulation>();

export function registerPci(emu: PciEmulation): void {
  if (pciEmulations.has(emu.name)) throw new DeviceError(`PCI emulation '${emu.name}' registered twice`);
  pciEmulations.set(emu.name, emu);
}

export function findPci(name: string): PciEmulation | undefined {
  return pciEmulations.get(name);
}

export function pciNames(): string[] {
  return [...pciEmulations.keys()].sort();
}

/** The default legacy option parser (bhyve's pci_parse_legacy_config). */
export function parseLegacyOptions(config: ConfigTree, prefix: string, opts: string): void {
  for (const tok of opts.split(',')) {
    if (tok === '') continue;
    const eq = tok.indexOf('=');
    if (eq < 0) config.set(`${prefix}.${tok}`, 'true');
    else config.set(`${prefix}.${tok.slice(0, eq)}`, tok.slice(eq + 1));
  }
}
