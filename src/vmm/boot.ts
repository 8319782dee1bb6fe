/**
 * Before the first instruction: firmware tables (MP table, SMBIOS, ACPI
 * with -A) in guest memory, and the boot path: a boot ROM (vCPU 0 at the
 * reset vector, KVM's reset state) or Linux loaded directly. With
 * -l fwcfg=qemu the same platform's tables (ACPI always) are also offered
 * through fw_cfg, where firmware such as SeaBIOS looks for them.
 */
import type { ConfigTree } from '../config/tree.js';
import type { Topology } from '../kvm/cpuid.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { Layout } from './layout.js';
import type { Machine } from './machine.js';
import { defaultPlatform, type Platform } from '../firmware/platform.js';
import { buildBiosArea } from '../firmware/bios.js';
import { e820Map } from '../firmware/e820.js';
import { defaultUuid } from '../firmware/smbios.js';
import { LPC_UARTS } from '../devices/pci/lpc.js';
import { applyBootEntry, loadLinux } from '../boot/linux.js';
import { pvmHost } from '../kvm/vm.js';
import { fwcfgEnabled, publishFwCfg } from '../devices/fwcfg/setup.js';

export interface GuestSetup {
  config: ConfigTree; machine: Machine; layout: Layout; vcpus: Vcpu[]; topology: Topology; vmName: string; host: string;
}

export function platformOf(s: GuestSetup): Platform {
  const pci = s.machine.devices.pci;
  const fns = pci.functions();
  const lpc = fns.find((f) => f.name === 'lpc');
  const seen = new Set<string>();
  const intxRoutes = pci.intxRoutes().filter((r) => {
    const k = `${r.bus}.${r.slot}.${r.pin}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  }).map((r) => ({ bus: r.bus, slot: r.slot, pin: r.pin - 1, gsi: r.gsi })); // the root numbers INTA-D 1-4, the tables 0-3
  const p = defaultPlatform({
    ncpus: s.topology.cpus,
    memSize: s.layout.lowmem + s.layout.highmem,
    vmName: s.vmName,
    uuid: s.config.get('uuid') ?? defaultUuid(s.host, s.vmName),
    x2apic: s.config.bool('x86.x2apic', false),
    lpcSlot: lpc?.slot,
    comPorts: lpc ? LPC_UARTS.map((u) => ({ name: u.name.toUpperCase(), port: u.base, irq: u.irq })) : [],
    pciDevices: fns.map((f) => ({ bus: f.bus, slot: f.slot, func: f.func, vendor: f.vendor, device: f.device, class: (f.classCode << 16) | (f.subclass << 8) | f.progIf })),
    intxRoutes,
  });
  p.topology = { sockets: s.topology.sockets, cores: s.topology.cores, threads: s.topology.threads };
  // A q35-model host bridge puts ECAM elsewhere (see hostbridge.ts); the tables follow it.
  if (p.ecam) {
    if (pci.ecamBase) p.ecam.base = pci.ecamBase;
    else p.ecam = undefined;
  }
  return p;
}

export function setupGuest(s: GuestSetup): void {
  const mem = s.machine.ctx.mem;
  const platform = platformOf(s);
  if (fwcfgEnabled(s.config)) publishFwCfg(s.machine.ctx, platform);
  const area = buildBiosArea(platform, { acpi: s.config.bool('acpi_tables', false), mptable: s.config.bool('x86.mptable', true) });
  const alias = s.layout.romAlias;
  let rsdp = area.rsdpAddress;
  for (const b of area.blobs) {
    // Below 1 MiB the boot ROM's shadow copy wins; firmware brings its own tables there.
    if (alias && b.address < alias.gpa + alias.size && alias.gpa < b.address + b.bytes.length) {
      if (b.name === 'acpi') rsdp = undefined;
      continue;
    }
    mem.write(b.address, b.bytes);
  }
  const kernel = s.config.get('boot.kernel');
  if (kernel) {
    const entry = loadLinux(mem, {
      kernel,
      initrd: s.config.get('boot.initrd'),
      cmdline: s.config.str('boot.cmdline', 'console=ttyS0'),
      e820: e820Map(platform),
      rsdp,
      ncpus: s.topology.cpus,
      unpack: s.config.str('boot.unpack', 'auto') === 'auto' ? pvmHost() && 'if-possible' : s.config.bool('boot.unpack', false),
    });
    applyBootEntry(s.vcpus[0], entry);
  }
}
