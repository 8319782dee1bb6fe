/**
 * The AHCI device emulations, registered as bhyve names them:
 *   -s S,ahci-hd,PATH[,opts]   one SATA disk on port 0
 *   -s S,ahci-cd,PATH[,opts]   one ATAPI CD/DVD on port 0
 *   -s S,ahci,hd:PATH[,opts],cd:PATH[,opts],...   ports 0, 1, ... in order
 * Config keys (bhyve's): pci.B.S.F.port.N.type (hd|cd), .path and the block
 * options (ro, nocache, direct, sync, nodelete, sectorsize, ser), plus the
 * IDENTIFY strings rev, model and nmrr (rotation rate) and bootindex.
 */
import { BLOCK_OPTION_KEYS, BlockError, blockLegacyConfig, parseBlockOptions, prepareBlock } from '../../backends/block.js';
import type { ConfigTree } from '../../config/tree.js';
import type { MachineContext } from '../../vmm/context.js';
import { DeviceError, registerPci, type OptionType, type PciBdf } from '../registry.js';
import { AhciHba, portKey, type PortConfig } from './hba.js';
import type { PortKind } from './port.js';
import { MAX_PORTS } from './regs.js';

const PORT_KEYS: Record<string, OptionType> = { ...BLOCK_OPTION_KEYS, type: 'string', rev: 'string', model: 'string', nmrr: 'int' };

/** Every port.N.KEY the emulations accept. */
export const AHCI_OPTIONS: Record<string, OptionType> = Object.fromEntries(
  Array.from({ length: MAX_PORTS }, (_, n) => Object.entries(PORT_KEYS).map(([k, t]) => [`port.${n}.${k}`, t])).flat(),
);

function legacyPort(config: ConfigTree, prefix: string, port: number, type: PortKind, opts: string): void {
  config.set(`${prefix}.port.${port}.type`, type);
  blockLegacyConfig(config, `${prefix}.port.${port}`, opts);
}

/** bhyve's pci_ahci_legacy_config: "hd:PATH,opts,cd:PATH,..." (ports in order; empty entries skip a port). */
export function ahciLegacyConfig(config: ConfigTree, prefix: string, opts: string): void {
  if (opts === '') return;
  let rest: string | undefined = opts;
  for (let port = 0; port < MAX_PORTS && rest !== undefined; port++) {
    let type: PortKind | undefined;
    let cur: string = rest;
    if (cur.startsWith('hd:') || cur.startsWith('cd:')) {
      type = cur.slice(0, 2) as PortKind;
      cur = cur.slice(3);
    }
    const hd: number = cur.indexOf(',hd:'), cd: number = cur.indexOf(',cd:');
    const cut = hd < 0 ? cd : cd < 0 ? hd : Math.min(hd, cd);
    const here = cut < 0 ? cur : cur.slice(0, cut);
    rest = cut < 0 ? undefined : cur.slice(cut + 1);
    if (here === '') continue;
    if (!type) throw new DeviceError(`ahci: missing or invalid type for port ${port}: "${here}" (expected hd:PATH or cd:PATH)`);
    legacyPort(config, prefix, port, type, here);
  }
}

/** The configured ports (by index) of the device at `prefix`. */
export function portConfigs(config: ConfigTree, prefix: string): (PortConfig | undefined)[] {
  const out: (PortConfig | undefined)[] = [];
  for (let n = 0; n < MAX_PORTS; n++) {
    const p = `${prefix}.port.${n}`;
    const type = config.get(`${p}.type`);
    if (type === undefined) { out.push(undefined); continue; }
    const kind: PortKind = type === 'hd' ? 'hd' : 'cd';
    const nmrr = config.get(`${p}.nmrr`);
    out.push({
      kind, serial: config.get(`${p}.ser`), revision: config.get(`${p}.rev`), model: config.get(`${p}.model`),
      rotationRate: nmrr === undefined ? undefined : config.int(`${p}.nmrr`, 0, 0, 0xffff),
    });
  }
  return out;
}

function prepare(ctx: MachineContext, prefix: string): void {
  for (let n = 0; n < MAX_PORTS; n++) {
    const p = `${prefix}.port.${n}`;
    const type = ctx.config.get(`${p}.type`);
    if (type === undefined) continue;
    const where = `ahci at ${prefix} port ${n}`;
    if (type !== 'hd' && type !== 'cd') throw new DeviceError(`${where}: type must be hd or cd, not "${type}"`);
    const { path, opts } = parseBlockOptions(ctx.config, p);
    if (path === undefined || path === '') throw new DeviceError(`${where}: missing disk image path`);
    // A CD is never written: open it read-only, so one ISO can serve several VMs.
    if (type === 'cd') opts.ro = true;
    try {
      prepareBlock(ctx, portKey(prefix, n), path, opts);
    } catch (e) {
      if (e instanceof BlockError) throw new DeviceError(`${where}: ${e.message}`, { cause: e });
      throw e;
    }
  }
}

const create = (ctx: MachineContext, prefix: string, bdf: PciBdf): AhciHba => new AhciHba(ctx, prefix, bdf, portConfigs(ctx.config, prefix));

registerPci({ name: 'ahci', options: AHCI_OPTIONS, legacyConfig: ahciLegacyConfig, prepare, create });
for (const kind of ['hd', 'cd'] as const) {
  const name = `ahci-${kind}`;
  registerPci({
    name, options: AHCI_OPTIONS, create,
    legacyConfig: (config, prefix, opts) => legacyPort(config, prefix, 0, kind, opts),
    prepare(ctx, prefix) {
      // As bhyve: the single-port forms always have port 0, so they need an image.
      if (ctx.config.get(`${prefix}.port.0.type`) === undefined) throw new DeviceError(`${name} at ${prefix}: missing disk image path`);
      prepare(ctx, prefix);
    },
  });
}
