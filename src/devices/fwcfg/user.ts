/**
 * User fw_cfg files, bhyve's `-f [name=]NAME,string=TEXT|file=PATH`: in the
 * config tree as fwcfg.N.name with fwcfg.N.string or fwcfg.N.file (N counts
 * from 0 in command-line order). A string item holds the text and its
 * terminating NUL; a file item holds the bytes of a regular file, read once
 * at start-up.
 */
import { readFileSync, statSync } from 'node:fs';
import { ConfigError, type ConfigTree } from '../../config/tree.js';
import { FW_CFG_NAME_SIZE } from './loader.js';

export interface UserFile { name: string; data: Uint8Array }

const MAX_FILE = 0xffffffff;

export function checkFwCfgName(name: string, what: string): void {
  if (name === '' || name.length >= FW_CFG_NAME_SIZE || !/^[\x21-\x7e]+$/.test(name)) {
    throw new ConfigError(`${what}: fw_cfg name '${name}' must be 1-${FW_CFG_NAME_SIZE - 1} printable characters`);
  }
}

/** The user items configured so far. */
function indices(config: ConfigTree): number[] {
  const node = config.node('fwcfg');
  if (!node) return [];
  return [...node.keys()].filter((k) => /^\d+$/.test(k)).map(Number).sort((a, b) => a - b);
}

/** Parse one -f argument into the next fwcfg.N node. */
export function parseFwCfgArg(config: ConfigTree, arg: string): void {
  const what = `-f ${arg}`;
  const body = arg.startsWith('name=') ? arg.slice('name='.length) : arg;
  const comma = body.indexOf(',');
  if (comma < 0) throw new ConfigError(`${what}: expected [name=]NAME,string=TEXT or [name=]NAME,file=PATH`);
  const name = body.slice(0, comma);
  const value = body.slice(comma + 1);
  checkFwCfgName(name, what);
  const m = /^(string|file)=(.*)$/s.exec(value);
  if (!m) throw new ConfigError(`${what}: expected string=TEXT or file=PATH after the name`);
  if (m[1] === 'file' && m[2] === '') throw new ConfigError(`${what}: file= needs a path`);
  const used = indices(config);
  const n = used.length ? used[used.length - 1] + 1 : 0;
  config.set(`fwcfg.${n}.name`, name);
  config.set(`fwcfg.${n}.${m[1]}`, m[2]);
}

/** Main thread, at start-up: every user item with its contents. */
export function loadUserFiles(config: ConfigTree): UserFile[] {
  const out: UserFile[] = [];
  for (const n of indices(config)) {
    const key = `fwcfg.${n}`;
    const name = config.get(`${key}.name`);
    const text = config.get(`${key}.string`);
    const path = config.get(`${key}.file`);
    if (name === undefined) throw new ConfigError(`${key}.name: missing`);
    checkFwCfgName(name, `${key}.name`);
    if ((text === undefined) === (path === undefined)) throw new ConfigError(`${key}: give exactly one of string= and file=`);
    if (text !== undefined) {
      out.push({ name, data: new TextEncoder().encode(text + '\0') });
      continue;
    }
    try {
      const st = statSync(path!);
      if (!st.isFile()) throw new ConfigError(`fw_cfg ${name}: ${path} is not a regular file`);
      if (st.size > MAX_FILE) throw new ConfigError(`fw_cfg ${name}: ${path} is larger than 4 GiB`);
      out.push({ name, data: new Uint8Array(readFileSync(path!)) });
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw new ConfigError(`fw_cfg ${name}: cannot read ${path} (${err.code ?? err.message})`, { cause: e });
    }
  }
  return out;
}
