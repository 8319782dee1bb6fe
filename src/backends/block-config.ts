/**
 * Options of the block back-end as bhyve spells them (block_if.c): the
 * legacy `-s` option string, the config keys, `sectorsize=` and the default
 * serial number.
 */
import { createHash } from 'node:crypto';
import type { ConfigTree } from '../config/tree.js';
import { parseBool } from '../config/tree.js';

export class BlockError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BlockError';
  }
}

const DEFAULT_SECTOR = 512;
const MAX_SECTOR = 65536;
/** Serial numbers are at most 20 characters (the ATA IDENTIFY and virtio-blk id fields). */
export const SERIAL_MAX = 20;

export interface BlockOptions {
  ro?: boolean;
  /** O_DIRECT (bhyve's `nocache`). */
  nocache?: boolean;
  /** O_SYNC (bhyve's `direct`, also `sync`). */
  direct?: boolean;
  /** Never report discard support (bhyve's `nodelete`). */
  nodelete?: boolean;
  /** bhyve's `sectorsize=logical[/physical]`. */
  sectorsize?: string;
  /** bhyve's `ser=`; default: derived from the path. */
  serial?: string;
}

/** The config keys bhyve's block_if reads, for a device's `options` declaration. */
export const BLOCK_OPTION_KEYS = {
  path: 'path', ro: 'bool', nocache: 'bool', direct: 'bool', sync: 'bool', nodelete: 'bool',
  sectorsize: 'string', ser: 'string', bootindex: 'int',
} as const;

/** bhyve's default identifier: "BHYVE-XXXX-XXXX-XXXX" from the MD5 of the path. */
export function defaultSerial(path: string): string {
  const d = createHash('md5').update(path).digest();
  const h = (i: number): string => d[i].toString(16).toUpperCase().padStart(2, '0');
  return `BHYVE-${h(0)}${h(1)}-${h(2)}${h(3)}-${h(4)}${h(5)}`;
}

/** Parse `logical[/physical]`; throws BlockError naming the path. */
export function parseSectorSize(path: string, v: string): [number, number] {
  const m = /^(\d+)(?:\/(\d+))?$/.exec(v);
  const bad = (why: string): BlockError => new BlockError(`disk image ${path}: bad sectorsize '${v}' (${why})`);
  if (!m) throw bad('expected logical[/physical]');
  const l = Number(m[1]);
  const p = m[2] === undefined ? l : Number(m[2]);
  const pow2 = (x: number): boolean => x > 0 && (x & (x - 1)) === 0;
  if (!pow2(l) || !pow2(p)) throw bad('sizes must be powers of two');
  if (l < DEFAULT_SECTOR || p > MAX_SECTOR) throw bad(`sizes must be within ${DEFAULT_SECTOR}-${MAX_SECTOR}`);
  if (l > p) throw bad('logical is larger than physical');
  return [l, p];
}

/** bhyve's blockif_legacy_config: the first token is the path, the rest key=value or bare flags. */
export function blockLegacyConfig(config: ConfigTree, prefix: string, opts: string): void {
  if (opts === '') return;
  const toks = opts.split(',');
  config.set(`${prefix}.path`, toks[0]);
  for (const tok of toks.slice(1)) {
    if (tok === '') continue;
    const eq = tok.indexOf('=');
    if (eq < 0) config.set(`${prefix}.${tok}`, 'true');
    else config.set(`${prefix}.${tok.slice(0, eq)}`, tok.slice(eq + 1));
  }
}

/** Read bhyve's block keys under `prefix`; the path is undefined when not configured. */
export function parseBlockOptions(config: ConfigTree, prefix: string): { path: string | undefined; opts: BlockOptions } {
  const b = (k: string): boolean => {
    const v = config.get(`${prefix}.${k}`);
    return v === undefined ? false : parseBool(`${prefix}.${k}`, v);
  };
  return {
    path: config.get(`${prefix}.path`),
    opts: {
      ro: b('ro'), nocache: b('nocache'), direct: b('direct') || b('sync'), nodelete: b('nodelete'),
      sectorsize: config.get(`${prefix}.sectorsize`), serial: config.get(`${prefix}.ser`),
    },
  };
}

