/**
 * Lay out all ACPI tables contiguously at a guest-physical base address:
 * RSDP, RSDT, XSDT, FADT, FACS, MADT, HPET, MCFG, DSDT (each 16-byte
 * aligned, the FACS 64-byte aligned). bhyve uses base 0xF2400
 * (BHYVE_ACPI_BASE), which also puts the RSDP where a legacy BIOS-booted
 * OS scans for it (0xE0000-0xFFFFF); other bases need the RSDP address to be
 * handed over (boot_params.acpi_rsdp_addr, PVH start_info.rsdp_paddr).
 */

import type { Platform } from '../platform.js';
import { buildDsdt } from './dsdt.js';
import { FACS_ALIGN, FADT_LENGTH, buildFacs, buildFadt } from './fadt.js';
import { AcpiError, RSDP_LENGTH, buildRsdp, buildRsdt, buildXsdt, rsdtLength, xsdtLength } from './sdt.js';
import { buildHpet, buildMadt, buildMcfg } from './tables.js';

export interface AcpiTableInfo { sig: string; address: number; length: number }

export interface AcpiLayout {
  rsdpAddress: number;
  /** The whole region, to be copied to guest memory at `tables[0].address` (the base). */
  bytes: Uint8Array;
  tables: AcpiTableInfo[];
}

const TABLE_ALIGN = 16;
const RSDP_ALIGN = 16;
const FOUR_GIB = 0x100000000;

interface Slot { sig: string; length: number; align: number; bytes?: Uint8Array; address: number }

export function buildAcpi(p: Platform, baseAddress: number): AcpiLayout {
  if (!Number.isSafeInteger(baseAddress) || baseAddress < 0 || baseAddress % RSDP_ALIGN !== 0) {
    throw new AcpiError(`ACPI base 0x${baseAddress.toString(16)} must be 16-byte aligned`);
  }
  // Tables whose content does not depend on where things are.
  const fixed = new Map<string, Uint8Array>();
  fixed.set('FACS', buildFacs());
  fixed.set('APIC', buildMadt(p));
  if (p.hpet) fixed.set('HPET', buildHpet(p.hpet));
  if (p.ecam) fixed.set('MCFG', buildMcfg(p.ecam));
  fixed.set('DSDT', buildDsdt(p));

  const listed = ['FACP', 'APIC', ...(p.hpet ? ['HPET'] : []), ...(p.ecam ? ['MCFG'] : [])];
  const slots: Slot[] = [
    { sig: 'RSDP', length: RSDP_LENGTH, align: RSDP_ALIGN, address: 0 },
    { sig: 'RSDT', length: rsdtLength(listed.length), align: TABLE_ALIGN, address: 0 },
    { sig: 'XSDT', length: xsdtLength(listed.length), align: TABLE_ALIGN, address: 0 },
    { sig: 'FACP', length: FADT_LENGTH, align: TABLE_ALIGN, address: 0 },
  ];
  for (const [sig, bytes] of fixed) {
    slots.push({ sig, bytes, length: bytes.length, align: sig === 'FACS' ? FACS_ALIGN : TABLE_ALIGN, address: 0 });
  }
  let next = baseAddress;
  for (const s of slots) {
    s.address = Math.ceil(next / s.align) * s.align;
    next = s.address + s.length;
  }
  if (next > FOUR_GIB) throw new AcpiError('ACPI tables must lie below 4 GiB');

  const at = (sig: string) => {
    const s = slots.find((x) => x.sig === sig);
    if (!s) throw new AcpiError(`internal: no slot for ${sig}`);
    return s;
  };
  const addresses = listed.map((sig) => at(sig).address);
  at('RSDP').bytes = buildRsdp(at('RSDT').address, at('XSDT').address);
  at('RSDT').bytes = buildRsdt(addresses);
  at('XSDT').bytes = buildXsdt(addresses);
  at('FACP').bytes = buildFadt(p, at('FACS').address, at('DSDT').address);

  const bytes = new Uint8Array(next - baseAddress);
  for (const s of slots) {
    if (!s.bytes || s.bytes.length !== s.length) throw new AcpiError(`internal: ${s.sig} length mismatch`);
    bytes.set(s.bytes, s.address - baseAddress);
  }
  return {
    rsdpAddress: at('RSDP').address,
    bytes,
    tables: slots.map((s) => ({ sig: s.sig, address: s.address, length: s.length })),
  };
}
