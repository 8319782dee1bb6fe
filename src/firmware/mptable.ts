/**
 * Intel MultiProcessor Specification 1.4 table: the floating pointer at
 * `address` (bhyve: 0xF0000, MPTABLE_BASE) immediately followed by the
 * configuration table. Entries, in the order the spec requires: one
 * processor per vCPU, the PCI bus(es) then the ISA bus, the I/O APIC, the I/O
 * interrupt assignments (ExtINT on pin 0, ISA IRQs identity-mapped except
 * IRQ0 -> pin 2, PCI INTx from Platform.intxRoutes), and the local
 * interrupt assignments (LINT0 ExtINT, LINT1 NMI on every CPU).
 */

import { ByteWriter, FirmwareError } from './bytes.js';
import type { Platform } from './platform.js';

export class MpTableError extends FirmwareError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MpTableError';
  }
}

export const MPFP_SIGNATURE = '_MP_';
export const MPFP_LENGTH = 16;
export const MPCT_SIGNATURE = 'PCMP';
export const MPCT_HEADER_LENGTH = 44;
const MP_SPEC_REV = 4;
const MPFP_CHECKSUM = 10;
const MPCT_LENGTH = 4;
const MPCT_CHECKSUM = 7;
const MPCT_ENTRY_COUNT = 34;
export const MPCT_OEM_ID = 'BHyVe   ';
export const MPCT_PRODUCT_ID = 'Hypervisor  ';

// Entry types and sizes.
export const MP_ENTRY_PROCESSOR = 0;
export const MP_ENTRY_BUS = 1;
export const MP_ENTRY_IOAPIC = 2;
export const MP_ENTRY_IOINT = 3;
export const MP_ENTRY_LOCALINT = 4;
export const MP_PROCESSOR_ENTRY_LENGTH = 20;
export const MP_ENTRY_LENGTH = 8;

const CPU_ENABLED = 0x01;
const CPU_BOOTSTRAP = 0x02;
const IOAPIC_ENABLED = 0x01;
/** KVM's local APIC and I/O APIC version registers. */
const LAPIC_VERSION = 0x14;
const IOAPIC_VERSION = 0x11;
/** bhyve's fixed CPU signature (family 6, model 26, stepping 5) and feature flags. */
const CPU_SIGNATURE = (6 << 8) | (26 << 4) | 5;
const CPU_FEATURES = 0xbfebfbff;

// Interrupt types and flags (polarity bits 1:0, trigger bits 3:2).
export const MP_INT = 0;
export const MP_NMI = 1;
export const MP_EXTINT = 3;
export const MP_FLAGS_CONFORMING = 0;
export const MP_FLAGS_ISA_LEVEL_HIGH = 0x1 | (0x3 << 2);
export const MP_FLAGS_PCI = 0x3 | (0x3 << 2); // active-low, level
const ALL_LAPICS = 0xff;
const MAX_APIC_ID = 0xfe;
const ISA_IRQS = 16;
const PIT_IRQ = 0;
const PIT_PIN = 2;
const CASCADE_IRQ = 2;

interface IntEntry { type: number; kind: number; flags: number; bus: number; irq: number; dstId: number; dstPin: number }

export function buildMpTable(p: Platform, address: number): Uint8Array {
  if (!Number.isSafeInteger(address) || address % 16 !== 0 || address + MPFP_LENGTH > 0xffffffff) {
    throw new MpTableError(`MP table address 0x${address.toString(16)} must be 16-byte aligned below 4 GiB`);
  }
  if (!Number.isInteger(p.ncpus) || p.ncpus < 1 || p.ncpus - 1 > MAX_APIC_ID) {
    throw new MpTableError(`the MP table cannot describe ${p.ncpus} vCPUs (APIC ids 0-${MAX_APIC_ID})`);
  }
  const pciBuses = [...new Set([0, ...p.pciDevices.map((d) => d.bus), ...p.intxRoutes.map((r) => r.bus)])].sort((a, b) => a - b);
  const isaBus = pciBuses[pciBuses.length - 1] + 1;
  if (isaBus > 0xff) throw new MpTableError('no MP bus id left for the ISA bus');

  const w = new ByteWriter();
  // Floating pointer: no default configuration, virtual wire mode (no IMCR).
  w.ascii(MPFP_SIGNATURE, 4).u32(address + MPFP_LENGTH).u8(1).u8(MP_SPEC_REV).u8(0).zeros(5);
  w.patchChecksum(MPFP_CHECKSUM, 0, MPFP_LENGTH);

  const ct = w.length;
  w.ascii(MPCT_SIGNATURE, 4).u16(0).u8(MP_SPEC_REV).u8(0).ascii(MPCT_OEM_ID, 8).ascii(MPCT_PRODUCT_ID, 12);
  w.u32(0).u16(0 /* no OEM table */).u16(0 /* entry count */).u32(p.lapicAddress).u16(0).u8(0).u8(0);
  let count = 0;

  for (let id = 0; id < p.ncpus; id++, count++) {
    w.u8(MP_ENTRY_PROCESSOR).u8(id).u8(LAPIC_VERSION).u8(CPU_ENABLED | (id === 0 ? CPU_BOOTSTRAP : 0));
    w.u32(CPU_SIGNATURE).u32(CPU_FEATURES).zeros(8);
  }
  for (const bus of pciBuses) { w.u8(MP_ENTRY_BUS).u8(bus).ascii('PCI', 6); count++; }
  w.u8(MP_ENTRY_BUS).u8(isaBus).ascii('ISA', 6); count++;
  const io = p.ioapic;
  if (io.id > MAX_APIC_ID) throw new MpTableError(`I/O APIC id ${io.id} does not fit the MP table`);
  w.u8(MP_ENTRY_IOAPIC).u8(io.id).u8(IOAPIC_VERSION).u8(IOAPIC_ENABLED).u32(io.address); count++;

  for (const e of interruptEntries(p, isaBus)) {
    w.u8(e.type).u8(e.kind).u16(e.flags).u8(e.bus).u8(e.irq).u8(e.dstId).u8(e.dstPin);
    count++;
  }
  w.patchU16(ct + MPCT_LENGTH, w.length - ct);
  w.patchU16(ct + MPCT_ENTRY_COUNT, count);
  w.patchChecksum(ct + MPCT_CHECKSUM, ct, w.length);
  return w.finish();
}

function interruptEntries(p: Platform, isaBus: number): IntEntry[] {
  const io = p.ioapic;
  const pinOf = (gsi: number, what: string) => {
    const pin = gsi - io.gsiBase;
    if (!(pin >= 0 && pin < io.pins)) throw new MpTableError(`${what}: GSI ${gsi} is not an I/O APIC pin`);
    return pin;
  };
  const ioint = (kind: number, flags: number, bus: number, irq: number, pin: number): IntEntry =>
    ({ type: MP_ENTRY_IOINT, kind, flags, bus, irq, dstId: io.id, dstPin: pin });
  const out: IntEntry[] = [ioint(MP_EXTINT, MP_FLAGS_CONFORMING, isaBus, 0, 0)];
  for (let irq = 0; irq < ISA_IRQS; irq++) {
    if (irq === CASCADE_IRQ) continue;
    const pin = irq === PIT_IRQ ? PIT_PIN : irq;
    const flags = irq === p.pm.sciIrq ? MP_FLAGS_ISA_LEVEL_HIGH : MP_FLAGS_CONFORMING;
    out.push(ioint(MP_INT, flags, isaBus, irq, pinOf(io.gsiBase + pin, `ISA IRQ ${irq}`)));
  }
  const sorted = [...p.intxRoutes].sort((a, b) => a.bus - b.bus || a.slot - b.slot || a.pin - b.pin);
  for (const r of sorted) {
    if (!(r.slot >= 0 && r.slot < 32 && r.pin >= 0 && r.pin < 4)) throw new MpTableError(`bad INTx route ${r.bus}:${r.slot} pin ${r.pin}`);
    out.push(ioint(MP_INT, MP_FLAGS_PCI, r.bus, (r.slot << 2) | r.pin, pinOf(r.gsi, `INTx route ${r.bus}:${r.slot}`)));
  }
  const lint = (kind: number, pin: number): IntEntry =>
    ({ type: MP_ENTRY_LOCALINT, kind, flags: MP_FLAGS_CONFORMING, bus: isaBus, irq: 0, dstId: ALL_LAPICS, dstPin: pin });
  out.push(lint(MP_EXTINT, 0), lint(MP_NMI, 1));
  return out;
}
