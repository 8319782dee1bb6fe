/**
 * The platform description the firmware tables are generated from: a plain
 * value, so the ACPI, MP table, SMBIOS and E820 builders are pure functions.
 * Address ranges given as [first, last] are inclusive.
 */

/** Where bhyve places its tables in the BIOS area (bhyverun/acpi.c, mptbl.c, smbiostbl.c). */
export const MPTABLE_BASE = 0xf0000;
export const SMBIOS_BASE = 0xf1000;
export const BHYVE_ACPI_BASE = 0xf2400;

export const GiB = 1024 * 1024 * 1024;
export const LOWMEM_LIMIT = 3 * GiB;
export const HIGHMEM_BASE = 4 * GiB;

export const DEFAULT_LAPIC_ADDRESS = 0xfee00000;
export const DEFAULT_IOAPIC_ADDRESS = 0xfec00000;
export const DEFAULT_HPET_ADDRESS = 0xfed00000;
export const DEFAULT_ECAM_BASE = 0xe0000000;

export interface IoApicInfo { id: number; address: number; gsiBase: number; pins: number }

export interface HpetInfo {
  address: number;
  /** Number of comparators (1..32). */
  timers: number;
  /** Minimum periodic tick in counter ticks (ACPI HPET table); 0 when absent. */
  minTick?: number;
  /** PCI vendor id reported in the capabilities register. */
  vendorId: number;
}

export interface PmInfo {
  pm1aEvt: number;
  pm1aCnt: number;
  pmTmr: number;
  smiCmd: number;
  acpiEnable: number;
  acpiDisable: number;
  /** ISA IRQ of the SCI (identity-mapped to the same GSI). */
  sciIrq: number;
  /** The PM timer counts 32 bits (FADT TMR_VAL_EXT); default true. */
  timer32?: boolean;
}

/** ECAM: `base` is the address of bus 0 (as in MCFG); buses busStart..busEnd decode. */
export interface EcamInfo { base: number; busStart: number; busEnd: number }

export interface PciWindows {
  io: [number, number];
  mem32: [number, number];
  mem64: [number, number];
}

export interface PciDeviceInfo { bus: number; slot: number; func: number; vendor: number; device: number; class: number }

/** A PCI INTx pin (0 = INTA .. 3 = INTD) of a slot routed to an I/O APIC GSI. */
export interface IntxRoute { bus: number; slot: number; pin: number; gsi: number }

export interface ComPort { name: string; port: number; irq: number }

export interface LpcInfo {
  present: boolean;
  /** Location of the LPC bridge on the root bus; when given, its devices sit under \_SB.PC00.ISA. */
  slot?: number;
  func?: number;
  comPorts: ComPort[];
}

export interface SmbiosStrings {
  biosVendor: string;
  biosVersion: string;
  biosReleaseDate: string;
  systemManufacturer: string;
  systemProduct: string;
  systemVersion: string;
  systemSerial: string;
  systemSku: string;
  systemFamily: string;
  chassisManufacturer: string;
  chassisVersion: string;
  chassisSerial: string;
  chassisAssetTag: string;
  chassisSku: string;
}

/** bhyve's smbiostbl.c strings (BIOS version/date of the original smbiostbl.c). */
export const DEFAULT_SMBIOS_STRINGS: Readonly<SmbiosStrings> = Object.freeze({
  biosVendor: 'BHYVE',
  biosVersion: '1.00',
  biosReleaseDate: '03/14/2014',
  systemManufacturer: 'FreeBSD',
  systemProduct: 'BHYVE',
  systemVersion: '1.0',
  systemSerial: 'None',
  systemSku: 'None',
  systemFamily: 'Virtual Machine',
  chassisManufacturer: 'FreeBSD',
  chassisVersion: '1.0',
  chassisSerial: 'None',
  chassisAssetTag: 'None',
  chassisSku: 'None',
});

export interface Platform {
  /** vCPUs, with local APIC ids 0..ncpus-1. */
  ncpus: number;
  /** SMBIOS topology; default ncpus sockets of 1 core, 1 thread. */
  topology?: { sockets: number; cores: number; threads: number };
  /** RAM: [0, lowmem) (at most 3 GiB) and [4 GiB, 4 GiB + highmem). */
  memory: { lowmem: number; highmem: number };
  ioapic: IoApicInfo;
  lapicAddress: number;
  hpet?: HpetInfo;
  pm: PmInfo;
  ecam?: EcamInfo;
  pciWindows: PciWindows;
  pciDevices: PciDeviceInfo[];
  intxRoutes: IntxRoute[];
  lpc: LpcInfo;
  rtc: { port: number; irq: number };
  /** A UUID string (stored with its first three fields little-endian, like bhyve -U),
   * or 16 bytes stored verbatim in SMBIOS type 1 (like bhyve's MD5-derived default). */
  uuid: string | Uint8Array;
  vmName: string;
  smbios: SmbiosStrings;
  x2apic: boolean;
  /** The boot ROM mapped just below 4 GiB, if any (reserved in the E820 map). */
  bootrom?: { address: number; size: number };
}

/** bhyve's split of guest memory: up to 3 GiB low, the rest from 4 GiB. */
export function splitMemory(size: number): { lowmem: number; highmem: number } {
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`bad memory size ${size}`);
  return size > LOWMEM_LIMIT ? { lowmem: LOWMEM_LIMIT, highmem: size - LOWMEM_LIMIT } : { lowmem: size, highmem: 0 };
}

export interface PlatformOptions {
  ncpus: number;
  memSize: number;
  vmName: string;
  uuid: string | Uint8Array;
  x2apic?: boolean;
  lpcSlot?: number;
  comPorts?: ComPort[];
  pciDevices?: PciDeviceInfo[];
  intxRoutes?: IntxRoute[];
  hpet?: boolean;
}

const MEM64_ALIGN = 32 * GiB;
const MEM64_SIZE = 32 * GiB;

/** A platform with bhyve's fixed addresses; callers fill in the devices. */
export function defaultPlatform(o: PlatformOptions): Platform {
  const memory = splitMemory(o.memSize);
  const mem64Base = Math.ceil((HIGHMEM_BASE + memory.highmem) / MEM64_ALIGN) * MEM64_ALIGN;
  return {
    ncpus: o.ncpus,
    memory,
    ioapic: { id: 0, address: DEFAULT_IOAPIC_ADDRESS, gsiBase: 0, pins: 24 },
    lapicAddress: DEFAULT_LAPIC_ADDRESS,
    hpet: o.hpet === false ? undefined : { address: DEFAULT_HPET_ADDRESS, timers: 8, minTick: 0, vendorId: 0x8086 },
    pm: { pm1aEvt: 0x400, pm1aCnt: 0x404, pmTmr: 0x408, smiCmd: 0xb2, acpiEnable: 0xa0, acpiDisable: 0xa1, sciIrq: 9, timer32: true },
    ecam: { base: DEFAULT_ECAM_BASE, busStart: 0, busEnd: 255 },
    pciWindows: { io: [0x2000, 0xffff], mem32: [0xc0000000, 0xdfffffff], mem64: [mem64Base, mem64Base + MEM64_SIZE - 1] },
    pciDevices: o.pciDevices ?? [],
    intxRoutes: o.intxRoutes ?? [],
    lpc: { present: o.lpcSlot !== undefined, slot: o.lpcSlot, func: 0, comPorts: o.comPorts ?? [] },
    rtc: { port: 0x70, irq: 8 },
    uuid: o.uuid,
    vmName: o.vmName,
    smbios: { ...DEFAULT_SMBIOS_STRINGS },
    x2apic: o.x2apic ?? false,
  };
}

const ECAM_BUS_BYTES = 1 << 20;

/** The address range the ECAM buses decode. */
export function ecamRange(ecam: EcamInfo): { start: number; size: number } {
  return { start: ecam.base + ecam.busStart * ECAM_BUS_BYTES, size: (ecam.busEnd - ecam.busStart + 1) * ECAM_BUS_BYTES };
}
