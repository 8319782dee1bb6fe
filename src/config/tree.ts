/**
 * The configuration tree, after bhyve_config(5): dotted keys, string values,
 * typed on read. The command line only fills this tree; everything else reads it.
 */

export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

export type ConfigNode = Map<string, ConfigNode | string>;

export class ConfigTree {
  readonly root: ConfigNode = new Map();

  set(key: string, value: string): void {
    const parts = splitKey(key);
    let node = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i];
      let child = node.get(p);
      if (typeof child === 'string') throw new ConfigError(`config key '${parts.slice(0, i + 1).join('.')}' is a value, cannot hold '${key}'`);
      if (!child) node.set(p, (child = new Map()));
      node = child;
    }
    const leaf = parts[parts.length - 1];
    if (node.get(leaf) instanceof Map) throw new ConfigError(`config key '${key}' is a node, not a value`);
    node.set(leaf, value);
  }

  /** Set only when absent (used for defaults implied by other options). */
  setDefault(key: string, value: string): void {
    if (this.get(key) === undefined) this.set(key, value);
  }

  get(key: string): string | undefined {
    const v = this.lookup(key);
    return typeof v === 'string' ? v : undefined;
  }

  node(key: string): ConfigNode | undefined {
    const v = this.lookup(key);
    return v instanceof Map ? v : undefined;
  }

  has(key: string): boolean { return this.lookup(key) !== undefined; }

  delete(key: string): void {
    const parts = splitKey(key);
    const parent = parts.length === 1 ? this.root : this.node(parts.slice(0, -1).join('.'));
    parent?.delete(parts[parts.length - 1]);
  }

  private lookup(key: string): ConfigNode | string | undefined {
    let node: ConfigNode | string | undefined = this.root;
    for (const p of key.split('.')) {
      if (!(node instanceof Map)) return undefined;
      node = node.get(p);
    }
    return node;
  }

  /** All leaves as [key, value], depth first, in insertion order. */
  entries(node: ConfigNode = this.root, prefix = ''): [string, string][] {
    const out: [string, string][] = [];
    for (const [k, v] of node) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (typeof v === 'string') out.push([key, v]);
      else out.push(...this.entries(v, key));
    }
    return out;
  }

  dump(): string {
    return this.entries().map(([k, v]) => `${k}=${v}`).join('\n') + '\n';
  }

  // Typed readers. Each names the key when the value is bad.
  bool(key: string, dflt: boolean): boolean {
    const v = this.get(key);
    return v === undefined ? dflt : parseBool(key, v);
  }

  int(key: string, dflt: number, min = -Infinity, max = Infinity): number {
    const v = this.get(key);
    return v === undefined ? dflt : parseIntIn(key, v, min, max);
  }

  str(key: string, dflt: string): string;
  str(key: string): string | undefined;
  str(key: string, dflt?: string): string | undefined {
    return this.get(key) ?? dflt;
  }
}

export function splitKey(key: string): string[] {
  const parts = key.split('.');
  if (parts.some((p) => p === '' || /[=\s]/.test(p))) throw new ConfigError(`bad config key '${key}'`);
  return parts;
}

export function parseBool(key: string, v: string): boolean {
  switch (v.toLowerCase()) {
    case 'true': case 'on': case 'yes': case '1': return true;
    case 'false': case 'off': case 'no': case '0': return false;
  }
  throw new ConfigError(`${key}: '${v}' is not a boolean (true/false)`);
}

export function parseIntIn(key: string, v: string, min: number, max: number): number {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(v)) throw new ConfigError(`${key}: '${v}' is not a number`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(`${key}: ${v} is out of range (${min}..${max})`);
  return n;
}

/** bhyve's expand_number(3): bytes, or with a suffix k/m/g/t (powers of 1024). */
export function parseSize(key: string, v: string, unitIfBare = 1): number {
  const m = /^(\d+)([kmgtpe]?)b?$/i.exec(v.trim());
  if (!m) throw new ConfigError(`${key}: '${v}' is not a size`);
  const mult = { '': unitIfBare, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 }[m[2].toLowerCase()]!;
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${key}: '${v}' is too large`);
  return n;
}
