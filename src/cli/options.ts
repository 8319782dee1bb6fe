/**
 * bhyve(8)'s command line, turned into the configuration tree. Every option
 * is shorthand for one or more `-o key=value`.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, ConfigTree } from '../config/tree.js';
import { findPci, parseLegacyOptions, pciNames } from '../devices/registry.js';
import { lpcLegacyConfig } from '../devices/pci/lpc.js';
import { parseFwCfgArg } from '../devices/fwcfg/user.js';

export const USAGE = `Usage: bhyve [-aehuwxACDHPSWY]
       [-c [[cpus=]numcpus][,sockets=n][,cores=n][,threads=n]]
       [-f [name=]name,(string|file)=value] [-k config_file] [-l lpc]
       [-m mem] [-o var=value] [-p vcpu:hostcpu] [-s pci] [-U uuid] vmname
       -A: create ACPI tables
       -a: local apic is in xAPIC mode (default)
       -C: include guest memory in core file
       -c: number of CPUs and/or topology specification
       -D: destroy on power-off
       -e: exit on unhandled I/O access
       -f: fw_cfg file for the guest (with -l fwcfg=qemu)
       -H: vmexit from the guest on HLT
       -h: help
       -k: key=value flat config file
       -l: LPC device configuration (com1,stdio | bootrom,FILE | fwcfg=qemu | help)
       -m: memory size (bare number: MiB; suffixes K M G T)
       -o: set config 'var' to 'value'
       -P: vmexit from the guest on pause
       -p: pin 'vcpu' to 'hostcpu'
       -S: guest memory cannot be paged
       -s: <slot,driver,configinfo> PCI slot config (-s help lists drivers)
       -U: UUID
       -u: RTC keeps UTC time
       -W: force virtio to use single-vector MSI
       -w: ignore unimplemented MSRs
       -x: local APIC is in x2APIC mode
       -Y: disable MPtable generation
       -o boot.kernel=PATH, boot.initrd=PATH, boot.cmdline=STRING: load Linux directly
`;

/** Options that take an argument (getopt "c:f:G:k:K:l:m:o:p:r:s:U:"). */
const WITH_ARG = new Set('cfGgkKlmoprsU'.split(''));
const FLAGS = new Set('aAbCDehHPSuwWxY'.split(''));

export type CliResult =
  | { kind: 'run'; config: ConfigTree }
  | { kind: 'help'; text: string; status: number };

export function parseArgs(argv: string[]): CliResult {
  const config = new ConfigTree();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { i++; break; }
    if (!a.startsWith('-') || a === '-') break;
    for (let j = 1; j < a.length; j++) {
      const c = a[j];
      if (WITH_ARG.has(c)) {
        let arg = a.slice(j + 1);
        if (arg === '') {
          if (++i >= argv.length) throw new ConfigError(`option -${c} requires an argument`);
          arg = argv[i];
        }
        const r = applyOption(config, c, arg);
        if (r) return r;
        break;
      }
      if (!FLAGS.has(c)) throw new ConfigError(`unknown option -${c}`);
      const r = applyFlag(config, c);
      if (r) return r;
    }
  }
  const rest = argv.slice(i);
  if (rest.length > 1) throw new ConfigError(`unexpected argument '${rest[1]}' after the VM name`);
  if (rest.length === 1) config.set('name', rest[0]);
  if (!config.bool('config.dump', false) && config.get('name') === undefined) {
    return { kind: 'help', text: USAGE, status: 4 };
  }
  return { kind: 'run', config };
}

function applyFlag(config: ConfigTree, c: string): CliResult | undefined {
  switch (c) {
    case 'a': config.set('x86.x2apic', 'false'); break;
    case 'A': config.set('acpi_tables', 'true'); break;
    case 'b': throw new ConfigError('-b: the bvmconsole device exists only for FreeBSD kernels and is not supported');
    case 'C': config.set('memory.guest_in_core', 'true'); break;
    case 'D': config.set('destroy_on_poweroff', 'true'); break;
    case 'e': config.set('x86.strictio', 'true'); break;
    case 'h': return { kind: 'help', text: USAGE, status: 0 };
    case 'H': config.set('x86.vmexit_on_hlt', 'true'); break;
    case 'P': config.set('x86.vmexit_on_pause', 'true'); break;
    case 'S': config.set('memory.wired', 'true'); break;
    case 'u': config.set('rtc.use_localtime', 'false'); break;
    case 'w': config.set('x86.strictmsr', 'false'); break;
    case 'W': config.set('virtio_msix', 'false'); break;
    case 'x': config.set('x86.x2apic', 'true'); break;
    case 'Y': config.set('x86.mptable', 'false'); break;
  }
  return undefined;
}

function applyOption(config: ConfigTree, c: string, arg: string): CliResult | undefined {
  switch (c) {
    case 'c': parseTopology(config, arg); break;
    case 'f': parseFwCfgArg(config, arg); break;
    case 'g': case 'G': parseGdb(config, arg); break;
    case 'k': readConfigFile(config, arg); break;
    case 'K': config.set('keyboard.layout', arg); break;
    case 'l': {
      const names = parseLpc(config, arg);
      if (names) return { kind: 'help', text: names.join('\n') + '\n', status: 0 };
      break;
    }
    case 'm': config.set('memory.size', arg); break;
    case 'o': setPair(config, arg, '-o'); break;
    case 'p': parsePin(config, arg); break;
    case 'r': throw new ConfigError(`-r ${arg}: restoring a checkpoint is not supported`);
    case 's':
      if (arg === 'help') return { kind: 'help', text: pciNames().join('\n') + '\n', status: 0 };
      parseSlot(config, arg);
      break;
    case 'U': config.set('uuid', arg); break;
  }
  return undefined;
}

function setPair(config: ConfigTree, arg: string, what: string): void {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new ConfigError(`${what} ${arg}: expected key=value`);
  config.set(arg.slice(0, eq), arg.slice(eq + 1));
}

/** bhyve_config(5) file: one key=value a line; '#' starts a comment. */
export function readConfigFile(config: ConfigTree, path: string): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`-k ${path}: cannot read config file (${(e as NodeJS.ErrnoException).code})`);
  }
  text.split('\n').forEach((line, n) => {
    const s = line.replace(/#.*/, '').trim();
    if (s === '') return;
    try {
      setPair(config, s, `${path}:${n + 1}:`);
    } catch (e) {
      throw new ConfigError(`${path}:${n + 1}: ${(e as Error).message}`);
    }
  });
}

/** -c [[cpus=]n][,sockets=n][,cores=n][,threads=n] */
export function parseTopology(config: ConfigTree, arg: string): void {
  const num = (k: string, v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new ConfigError(`-c ${arg}: bad ${k} '${v}'`);
    return v;
  };
  arg.split(',').forEach((tok, idx) => {
    const eq = tok.indexOf('=');
    if (eq < 0) {
      if (idx !== 0) throw new ConfigError(`-c ${arg}: '${tok}' must be key=value`);
      config.set('cpus', num('cpus', tok));
      return;
    }
    const key = tok.slice(0, eq);
    if (!['cpus', 'sockets', 'cores', 'threads'].includes(key)) throw new ConfigError(`-c ${arg}: unknown topology key '${key}'`);
    config.set(key, num(key, tok.slice(eq + 1)));
  });
}

function parseGdb(config: ConfigTree, arg: string): void {
  let s = arg;
  if (s.startsWith('w')) { config.set('gdb.wait', 'true'); s = s.slice(1); }
  const colon = s.lastIndexOf(':');
  if (colon >= 0) { config.set('gdb.address', s.slice(0, colon)); s = s.slice(colon + 1); }
  if (!/^\d+$/.test(s)) throw new ConfigError(`-G ${arg}: bad port`);
  config.set('gdb.port', s);
}

/** -p vcpu:hostcpu (repeatable; adds the host CPU to the vCPU's set) */
function parsePin(config: ConfigTree, arg: string): void {
  const m = /^(\d+):(\d+)$/.exec(arg);
  if (!m) throw new ConfigError(`-p ${arg}: expected vcpu:hostcpu`);
  const key = `vcpu.${Number(m[1])}.cpuset`;
  const old = config.get(key);
  config.set(key, old ? `${old},${Number(m[2])}` : String(Number(m[2])));
}

/** -l com1,stdio | -l bootrom,FILE[,VARS] | -l fwcfg=qemu | -l help (returns the names) */
export function parseLpc(config: ConfigTree, arg: string): string[] | undefined {
  try {
    return lpcLegacyConfig(config, arg);
  } catch (e) {
    throw new ConfigError(`-l ${arg}: ${(e as Error).message}`, { cause: e });
  }
}

/** -s slot,emulation[,conf] with slot = pcislot[:function] | bus:pcislot:function */
export function parseSlot(config: ConfigTree, arg: string): void {
  const parts = arg.split(',');
  const slotStr = parts[0];
  const emu = parts[1];
  if (emu === undefined || emu === '') throw new ConfigError(`-s ${arg}: expected slot,emulation[,conf]`);
  const nums = slotStr.split(':');
  if (nums.length > 3 || nums.some((n) => !/^\d+$/.test(n))) throw new ConfigError(`-s ${arg}: bad slot '${slotStr}'`);
  const v = nums.map(Number);
  const [bus, slot, func] = nums.length === 3 ? v : nums.length === 2 ? [0, v[0], v[1]] : [0, v[0], 0];
  if (bus > 255) throw new ConfigError(`-s ${arg}: bus ${bus} out of range (0-255)`);
  if (slot > 31) throw new ConfigError(`-s ${arg}: slot ${slot} out of range (0-31)`);
  if (func > 7) throw new ConfigError(`-s ${arg}: function ${func} out of range (0-7)`);
  const prefix = `pci.${bus}.${slot}.${func}`;
  if (config.has(`${prefix}.device`)) throw new ConfigError(`-s ${arg}: slot ${bus}:${slot}:${func} is already in use`);
  const e = findPci(emu);
  if (!e) throw new ConfigError(`-s ${arg}: unknown device emulation '${emu}'`);
  config.set(`${prefix}.device`, emu);
  const conf = parts.slice(2).join(',');
  if (conf !== '') (e.legacyConfig ?? parseLegacyOptions)(config, prefix, conf);
}
