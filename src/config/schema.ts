/**
 * The keys the tree may hold, with their types, after bhyve_config(5).
 * Device keys under pci.B.S.F are declared by each emulation (registry.ts).
 */
import { ConfigError, ConfigTree, parseBool, parseIntIn, parseSize } from './tree.js';
import { findPci, type OptionType } from '../devices/registry.js';

/** auto_bool: 'auto' or a boolean. */
export type KeyType = OptionType | 'uuid' | 'auto_bool';

interface KeySpec { pattern: RegExp; type: KeyType; doc: string }

const k = (p: string, type: KeyType, doc: string): KeySpec => ({
  pattern: new RegExp('^' + p.replace(/\./g, '\\.').replace(/N/g, '\\d+').replace(/\*/g, '[^.]+') + '$'), type, doc,
});

export const GLOBAL_KEYS: KeySpec[] = [
  k('name', 'string', 'VM name'),
  k('cpus', 'int', 'number of vCPUs'),
  k('sockets', 'int', 'sockets'),
  k('cores', 'int', 'cores per socket'),
  k('threads', 'int', 'threads per core'),
  k('vmm.maxcpu', 'int', 'highest vCPU count allowed (default: host CPUs)'),
  k('memory.size', 'size', 'guest memory (bare number: MiB)'),
  k('memory.wired', 'bool', 'wire guest memory (-S)'),
  k('memory.guest_in_core', 'bool', 'include guest memory in core dumps (-C)'),
  k('acpi_tables', 'bool', 'generate ACPI tables (-A)'),
  k('destroy_on_poweroff', 'bool', 'destroy the VM on power-off (-D)'),
  k('rtc.use_localtime', 'bool', 'RTC keeps local time (-u: UTC)'),
  k('uuid', 'uuid', 'SMBIOS system UUID (-U)'),
  k('keyboard.layout', 'string', 'keyboard layout (-K)'),
  k('x86.mptable', 'bool', 'generate the MP table (-Y disables)'),
  k('x86.x2apic', 'bool', 'x2APIC mode (-x)'),
  k('x86.strictio', 'bool', 'exit on unemulated I/O ports (-e)'),
  k('x86.strictmsr', 'bool', 'inject #GP on unimplemented MSRs (-w disables)'),
  k('x86.vmexit_on_hlt', 'bool', 'yield the vCPU on HLT (-H)'),
  k('x86.vmexit_on_pause', 'bool', 'exit on PAUSE (-P)'),
  k('x86.physbits', 'int', 'physical address bits CPUID reports (default: the host\'s)'),
  k('virtio_msix', 'bool', 'virtio uses MSI-X (-W: MSI)'),
  k('vcpu.N.cpuset', 'string', 'host CPUs a vCPU is pinned to (-p)'),
  k('lpc.bootrom', 'path', 'boot ROM image (-l bootrom,FILE)'),
  k('lpc.bootvars', 'path', 'UEFI variable store'),
  k('lpc.fwcfg', 'string', 'fw_cfg interface (bhyve|qemu)'),
  k('lpc.debugcon', 'string', 'debug console port 0x402 sink (stdio or a file)'),
  k('fwcfg.N.name', 'string', 'fw_cfg file name of a user item (-f)'),
  k('fwcfg.N.string', 'string', 'fw_cfg user item: this text and a NUL (-f NAME,string=)'),
  k('fwcfg.N.file', 'path', 'fw_cfg user item: the contents of this file (-f NAME,file=)'),
  k('fwcfg.nographic', 'bool', 'fw_cfg NOGRAPHIC: firmware console on COM1 (default: COM1 set, no display)'),
  k('lpc.com1.path', 'string', 'COM1 back-end'),
  k('lpc.com2.path', 'string', 'COM2 back-end'),
  k('lpc.com3.path', 'string', 'COM3 back-end'),
  k('lpc.com4.path', 'string', 'COM4 back-end'),
  k('boot.kernel', 'path', 'Linux kernel (bzImage or ELF vmlinux with a PVH note)'),
  k('boot.initrd', 'path', 'initial ramdisk'),
  k('boot.cmdline', 'string', 'kernel command line'),
  k('boot.unpack', 'auto_bool', "bzImage: decompress the payload on the host and enter through PVH (auto: on PVM hosts)"),
  k('config.dump', 'bool', 'print the configuration and exit'),
  k('gdb.port', 'string', 'gdb stub port (-G)'),
  k('gdb.wait', 'bool', 'wait for gdb before starting'),
  k('gdb.address', 'string', 'gdb stub address'),
  k('pci.N.N.N.device', 'string', 'device emulation in a slot'),
];

export function checkValue(key: string, type: KeyType, v: string): void {
  switch (type) {
    case 'bool': parseBool(key, v); break;
    case 'auto_bool':
      if (v === 'auto') break;
      try { parseBool(key, v); } catch { throw new ConfigError(`${key}: '${v}' is not auto, true or false`); }
      break;
    case 'int': parseIntIn(key, v, 0, Number.MAX_SAFE_INTEGER); break;
    case 'size': parseSize(key, v, 2 ** 20); break;
    case 'uuid':
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) throw new ConfigError(`${key}: '${v}' is not a UUID`);
      break;
  }
}

/** Every leaf must be a known key with a well-formed value. */
export function validate(tree: ConfigTree): void {
  for (const [key, value] of tree.entries()) {
    const dev = /^pci\.(\d+)\.(\d+)\.(\d+)\.(.+)$/.exec(key);
    if (dev && dev[4] !== 'device') {
      const prefix = `pci.${dev[1]}.${dev[2]}.${dev[3]}`;
      const name = tree.get(`${prefix}.device`);
      const emu = name === undefined ? undefined : findPci(name);
      if (!emu) throw new ConfigError(`unknown config key '${key}' (no device at ${prefix})`);
      const t = emu.options[dev[4]];
      if (!t) throw new ConfigError(`unknown config key '${key}': ${name} has no option '${dev[4]}'`);
      checkValue(key, t, value);
      continue;
    }
    const spec = GLOBAL_KEYS.find((s) => s.pattern.test(key));
    if (!spec) throw new ConfigError(`unknown config key '${key}'`);
    checkValue(key, spec.type, value);
  }
}
