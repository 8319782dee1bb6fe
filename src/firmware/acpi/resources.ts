/**
 * ACPI resource descriptors (ACPI 6.x section 6.4), for _CRS ResourceTemplates.
 * Only the forms our DSDT uses. Ranges are [min, max] inclusive.
 */

import { ByteWriter, FirmwareError, concat } from '../bytes.js';
import { type Aml, buffer } from './aml.js';

// Small items: tag byte = (item << 3) | length.
const SMALL_IRQ_NOFLAGS = 0x22; // item 0x04, 2 bytes
const SMALL_IO = 0x47; // item 0x08, 7 bytes
const SMALL_END_TAG = 0x79; // item 0x0F, 1 byte
// Large items: tag byte = 0x80 | item, then a u16 length.
const LARGE_MEMORY32_FIXED = 0x86;
const LARGE_DWORD_ADDRESS = 0x87;
const LARGE_WORD_ADDRESS = 0x88;
const LARGE_EXTENDED_IRQ = 0x89;
const LARGE_QWORD_ADDRESS = 0x8a;

const IO_DECODE16 = 0x01;
const MEM_READ_WRITE = 0x01;

// Address space descriptors.
const SPACE_MEMORY = 0;
const SPACE_IO = 1;
const SPACE_BUS = 2;
const GEN_MIN_FIXED = 0x04;
const GEN_MAX_FIXED = 0x08;
const IO_RANGE_ENTIRE = 0x03;
const MEM_CACHE_SHIFT = 1;

// Extended interrupt flags.
const INT_CONSUMER = 0x01;
const INT_EDGE = 0x02;
const INT_ACTIVE_LOW = 0x04;
const INT_SHARED = 0x08;

export type Cacheability = 'noncacheable' | 'cacheable' | 'writecombining' | 'prefetchable';
const CACHE_BITS: Record<Cacheability, number> = { noncacheable: 0, cacheable: 1, writecombining: 2, prefetchable: 3 };

/** IO (Decode16, min, max, align, length). */
export function io(min: number, max: number, align: number, length: number): Uint8Array {
  return new ByteWriter().u8(SMALL_IO).u8(IO_DECODE16).u16(min).u16(max).u8(align).u8(length).finish();
}

/** A fixed-address I/O range: IO (Decode16, base, base, 1, length). */
export function ioFixed(base: number, length: number): Uint8Array { return io(base, base, 1, length); }

/** IRQNoFlags () {irqs}: ISA IRQs, edge, active-high, exclusive. */
export function irqNoFlags(irqs: readonly number[]): Uint8Array {
  let mask = 0;
  for (const irq of irqs) {
    if (!Number.isInteger(irq) || irq < 0 || irq > 15) throw new FirmwareError(`bad ISA IRQ ${irq}`);
    mask |= 1 << irq;
  }
  return new ByteWriter().u8(SMALL_IRQ_NOFLAGS).u16(mask).finish();
}

export interface InterruptOptions { edge?: boolean; activeLow?: boolean; shared?: boolean }

/** Interrupt (ResourceConsumer, Level|Edge, ActiveHigh|ActiveLow, Exclusive|Shared) {gsis}. */
export function interrupt(gsis: readonly number[], opts: InterruptOptions = {}): Uint8Array {
  if (gsis.length < 1 || gsis.length > 255) throw new FirmwareError(`bad interrupt list of ${gsis.length}`);
  const flags = INT_CONSUMER | (opts.edge ? INT_EDGE : 0) | (opts.activeLow ? INT_ACTIVE_LOW : 0) | (opts.shared ? INT_SHARED : 0);
  const w = new ByteWriter().u8(LARGE_EXTENDED_IRQ).u16(2 + 4 * gsis.length).u8(flags).u8(gsis.length);
  for (const g of gsis) w.u32(g);
  return w.finish();
}

/** Memory32Fixed (ReadWrite|ReadOnly, base, length). */
export function memory32Fixed(base: number, length: number, writable = true): Uint8Array {
  return new ByteWriter().u8(LARGE_MEMORY32_FIXED).u16(9).u8(writable ? MEM_READ_WRITE : 0).u32(base).u32(length).finish();
}

type FieldWidth = 2 | 4 | 8;

function addressSpace(tag: number, width: FieldWidth, space: number, typeFlags: number, min: number, max: number): Uint8Array {
  if (!(max >= min)) throw new FirmwareError(`bad address range [${min}, ${max}]`);
  const w = new ByteWriter().u8(tag).u16(3 + 5 * width).u8(space);
  w.u8(GEN_MIN_FIXED | GEN_MAX_FIXED).u8(typeFlags); // ResourceProducer, PosDecode
  const field = (v: number) => (width === 2 ? w.u16(v) : width === 4 ? w.u32(v) : w.u64(v));
  field(0); // granularity
  field(min);
  field(max);
  field(0); // translation offset
  field(max - min + 1);
  return w.finish();
}

/** WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len). */
export function wordBusNumber(min: number, max: number): Uint8Array {
  return addressSpace(LARGE_WORD_ADDRESS, 2, SPACE_BUS, 0, min, max);
}

/** WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, ..., TypeStatic). */
export function wordIO(min: number, max: number): Uint8Array {
  return addressSpace(LARGE_WORD_ADDRESS, 2, SPACE_IO, IO_RANGE_ENTIRE, min, max);
}

function memFlags(cache: Cacheability): number { return MEM_READ_WRITE | (CACHE_BITS[cache] << MEM_CACHE_SHIFT); }

/** DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, cache, ReadWrite, ..., AddressRangeMemory, TypeStatic). */
export function dwordMemory(min: number, max: number, cache: Cacheability = 'noncacheable'): Uint8Array {
  return addressSpace(LARGE_DWORD_ADDRESS, 4, SPACE_MEMORY, memFlags(cache), min, max);
}

/** QWordMemory, like dwordMemory with 64-bit fields. */
export function qwordMemory(min: number, max: number, cache: Cacheability = 'noncacheable'): Uint8Array {
  return addressSpace(LARGE_QWORD_ADDRESS, 8, SPACE_MEMORY, memFlags(cache), min, max);
}

/** ResourceTemplate () { descriptors }: a Buffer ending with an EndTag (checksum 0 = not checked). */
export function resourceTemplate(descriptors: readonly Uint8Array[]): Aml {
  return buffer(concat([...descriptors, Uint8Array.of(SMALL_END_TAG, 0)]));
}
