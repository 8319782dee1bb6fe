/**
 * MADT ("APIC"), HPET and MCFG tables.
 */

import { ByteWriter } from '../bytes.js';
import type { EcamInfo, HpetInfo, Platform } from '../platform.js';
import { AcpiError, GAS_SYSTEM_MEMORY, finishSdt, startSdt, writeGas } from './sdt.js';

// MADT (ACPI 5.2.12).
export const MADT_REVISION = 4;
export const MADT_PCAT_COMPAT = 1;
export const MADT_LAPIC = 0;
export const MADT_IOAPIC = 1;
export const MADT_ISO = 2;
export const MADT_LAPIC_NMI = 4;
export const MADT_X2APIC = 9;
export const MADT_X2APIC_NMI = 0x0a;
const LAPIC_ENABLED = 1;
/** APIC ids from here on need a Processor Local x2APIC structure. */
export const X2APIC_ID_MIN = 255;
const ALL_PROCESSORS_UID8 = 0xff;
const ALL_PROCESSORS_UID32 = 0xffffffff;
const NMI_LINT = 1;

// MPS INTI flags (polarity bits 1:0, trigger mode bits 3:2).
export const INTI_ACTIVE_HIGH = 0x1;
export const INTI_ACTIVE_LOW = 0x3;
export const INTI_EDGE = 0x1 << 2;
export const INTI_LEVEL = 0x3 << 2;

const ISA_BUS = 0;
const PIT_IRQ = 0;
const PIT_GSI = 2;

export function buildMadt(p: Platform): Uint8Array {
  if (!Number.isInteger(p.ncpus) || p.ncpus < 1) throw new AcpiError(`bad vCPU count ${p.ncpus}`);
  if (p.ncpus > X2APIC_ID_MIN && !p.x2apic) throw new AcpiError(`${p.ncpus} vCPUs need x2APIC mode (APIC ids above 254)`);
  const w = startSdt('APIC', MADT_REVISION);
  w.u32(p.lapicAddress).u32(MADT_PCAT_COMPAT);
  for (let id = 0; id < p.ncpus; id++) {
    if (id < X2APIC_ID_MIN) w.u8(MADT_LAPIC).u8(8).u8(id).u8(id).u32(LAPIC_ENABLED);
    else w.u8(MADT_X2APIC).u8(16).u16(0).u32(id).u32(LAPIC_ENABLED).u32(id);
  }
  const io = p.ioapic;
  w.u8(MADT_IOAPIC).u8(12).u8(io.id).u8(0).u32(io.address).u32(io.gsiBase);
  // The PIT's IRQ0 arrives on pin 2; the SCI is level-triggered, active-high.
  iso(w, PIT_IRQ, PIT_GSI, INTI_ACTIVE_HIGH | INTI_EDGE);
  if (p.pm.sciIrq < 16) iso(w, p.pm.sciIrq, p.pm.sciIrq, INTI_ACTIVE_HIGH | INTI_LEVEL);
  w.u8(MADT_LAPIC_NMI).u8(6).u8(ALL_PROCESSORS_UID8).u16(INTI_ACTIVE_HIGH | INTI_EDGE).u8(NMI_LINT);
  if (p.x2apic) {
    w.u8(MADT_X2APIC_NMI).u8(12).u16(INTI_ACTIVE_HIGH | INTI_EDGE).u32(ALL_PROCESSORS_UID32).u8(NMI_LINT).zeros(3);
  }
  return finishSdt(w);
}

function iso(w: ByteWriter, irq: number, gsi: number, flags: number): void {
  w.u8(MADT_ISO).u8(10).u8(ISA_BUS).u8(irq).u32(gsi).u16(flags);
}

// HPET description table (IA-PC HPET spec 1.0a, 3.2.4).
const HPET_REV_ID = 0x01;
const HPET_COUNT_SIZE_64 = 1 << 13;
const HPET_LEGACY_ROUTE_CAPABLE = 1 << 15;
const HPET_PAGE_PROTECT_4K = 1;
export const HPET_TABLE_LENGTH = 56;
export const HPET_MMIO_SIZE = 0x400;

/** The low 32 bits of the HPET General Capabilities and ID register (the table's Event Timer Block ID). */
export function hpetBlockId(h: HpetInfo): number {
  if (!Number.isInteger(h.timers) || h.timers < 1 || h.timers > 32) throw new AcpiError(`bad HPET timer count ${h.timers}`);
  return (HPET_REV_ID | ((h.timers - 1) << 8) | HPET_COUNT_SIZE_64 | HPET_LEGACY_ROUTE_CAPABLE | ((h.vendorId & 0xffff) << 16)) >>> 0;
}

export function buildHpet(h: HpetInfo): Uint8Array {
  const w = startSdt('HPET', 1);
  w.u32(hpetBlockId(h));
  writeGas(w, { space: GAS_SYSTEM_MEMORY, bitWidth: 0, access: 0, address: h.address });
  w.u8(0 /* HPET number */).u16(h.minTick ?? 0).u8(HPET_PAGE_PROTECT_4K);
  return finishSdt(w);
}

// MCFG (PCI Firmware spec 3.0, 4.1.2).
export const MCFG_LENGTH = 60;

export function buildMcfg(e: EcamInfo): Uint8Array {
  if (!(e.busStart >= 0 && e.busEnd <= 255 && e.busStart <= e.busEnd)) throw new AcpiError(`bad ECAM bus range ${e.busStart}-${e.busEnd}`);
  if (e.base % (1 << 20) !== 0) throw new AcpiError(`ECAM base 0x${e.base.toString(16)} is not 1 MiB aligned`);
  const w = startSdt('MCFG', 1);
  w.zeros(8);
  w.u64(e.base).u16(0 /* segment */).u8(e.busStart).u8(e.busEnd).u32(0);
  return finishSdt(w);
}
