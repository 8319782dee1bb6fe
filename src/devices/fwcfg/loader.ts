/**
 * ACPI tables for firmware that loads them through fw_cfg (SeaBIOS, OVMF):
 * QEMU's "linker/loader" script etc/table-loader, a sequence of 128-byte
 * commands the firmware runs in order:
 *   ALLOCATE      copy a fw_cfg file into guest memory (high RAM or the
 *                 0xE0000-0xFFFFF F-segment), at an alignment
 *   ADD_POINTER   add the address a file was placed at to a little-endian
 *                 pointer of 1-8 bytes inside another (or the same) file
 *   ADD_CHECKSUM  fix an 8-bit checksum byte over a range of a file
 * The tables come from src/firmware's builders laid out from address 0, so
 * every pointer between them already holds its target's offset in
 * etc/acpi/tables; the RSDP, which firmware wants in the F-segment, is the
 * separate file etc/acpi/rsdp.
 */
import { asciiBytes, FirmwareError } from '../../firmware/bytes.js';
import { buildAcpi } from '../../firmware/acpi/build.js';
import { FADT_OFF } from '../../firmware/acpi/fadt.js';
import { RSDP_LENGTH, SDT_HEADER_LENGTH } from '../../firmware/acpi/sdt.js';
import type { Platform } from '../../firmware/platform.js';

export const TABLE_LOADER_FILE = 'etc/table-loader';
export const ACPI_TABLES_FILE = 'etc/acpi/tables';
export const ACPI_RSDP_FILE = 'etc/acpi/rsdp';

export const LOADER_ALLOCATE = 1;
export const LOADER_ADD_POINTER = 2;
export const LOADER_ADD_CHECKSUM = 3;
export const LOADER_ZONE_HIGH = 1;
export const LOADER_ZONE_FSEG = 2;
export const LOADER_COMMAND_SIZE = 128;
/** File names in commands (and in the fw_cfg directory) fill 56 bytes, NUL-padded. */
export const FW_CFG_NAME_SIZE = 56;

const RSDP_CHECKSUM = 8;
const RSDP_V1_LENGTH = 20;
const RSDP_EXT_CHECKSUM = 32;
const RSDP_RSDT = 16;
const RSDP_XSDT = 24;
const SDT_CHECKSUM = 9;
const TABLES_ALIGN = 64; // the FACS wants 64
const RSDP_ALIGN = 16;

export class TableLoader {
  private readonly cmds: Uint8Array[] = [];

  private command(type: number): DataView {
    const b = new Uint8Array(LOADER_COMMAND_SIZE);
    this.cmds.push(b);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, type, true);
    return dv;
  }

  allocate(file: string, align: number, zone: number): this {
    const dv = this.command(LOADER_ALLOCATE);
    putName(dv, 4, file);
    dv.setUint32(4 + FW_CFG_NAME_SIZE, align, true);
    dv.setUint8(8 + FW_CFG_NAME_SIZE, zone);
    return this;
  }

  /** The `size`-byte pointer at `offset` in `dest` gets `src`'s address added. */
  addPointer(dest: string, src: string, offset: number, size: number): this {
    const dv = this.command(LOADER_ADD_POINTER);
    putName(dv, 4, dest);
    putName(dv, 4 + FW_CFG_NAME_SIZE, src);
    dv.setUint32(4 + 2 * FW_CFG_NAME_SIZE, offset, true);
    dv.setUint8(8 + 2 * FW_CFG_NAME_SIZE, size);
    return this;
  }

  /** The byte at `offset` in `file` makes bytes [start, start+length) sum to zero. */
  addChecksum(file: string, offset: number, start: number, length: number): this {
    const dv = this.command(LOADER_ADD_CHECKSUM);
    putName(dv, 4, file);
    dv.setUint32(4 + FW_CFG_NAME_SIZE, offset, true);
    dv.setUint32(8 + FW_CFG_NAME_SIZE, start, true);
    dv.setUint32(12 + FW_CFG_NAME_SIZE, length, true);
    return this;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.cmds.length * LOADER_COMMAND_SIZE);
    this.cmds.forEach((c, i) => out.set(c, i * LOADER_COMMAND_SIZE));
    return out;
  }
}

function putName(dv: DataView, at: number, name: string): void {
  const b = asciiBytes(name);
  if (b.length === 0 || b.length >= FW_CFG_NAME_SIZE) throw new FirmwareError(`fw_cfg name '${name}' must be 1-${FW_CFG_NAME_SIZE - 1} characters`);
  new Uint8Array(dv.buffer, dv.byteOffset + at, FW_CFG_NAME_SIZE).set(b);
}

export interface LoaderAcpi { rsdp: Uint8Array; tables: Uint8Array; loader: Uint8Array }

/** The platform's ACPI tables as the three fw_cfg files QEMU offers. */
export function acpiForLoader(p: Platform): LoaderAcpi {
  const acpi = buildAcpi(p, 0);
  const tables = acpi.bytes.slice();
  const rsdp = tables.slice(0, RSDP_LENGTH);
  tables.fill(0, 0, RSDP_LENGTH); // the RSDP's slot at offset 0 stays unused in etc/acpi/tables
  const at = (sig: string) => {
    const t = acpi.tables.find((x) => x.sig === sig);
    if (!t) throw new FirmwareError(`ACPI: no ${sig} table`);
    return t;
  };
  const l = new TableLoader()
    .allocate(ACPI_TABLES_FILE, TABLES_ALIGN, LOADER_ZONE_HIGH)
    .allocate(ACPI_RSDP_FILE, RSDP_ALIGN, LOADER_ZONE_FSEG);
  const T = ACPI_TABLES_FILE;
  const rsdt = at('RSDT');
  for (let o = SDT_HEADER_LENGTH; o < rsdt.length; o += 4) l.addPointer(T, T, rsdt.address + o, 4);
  const xsdt = at('XSDT');
  for (let o = SDT_HEADER_LENGTH; o < xsdt.length; o += 8) l.addPointer(T, T, xsdt.address + o, 8);
  const fadt = at('FACP').address;
  l.addPointer(T, T, fadt + FADT_OFF.firmwareCtrl, 4).addPointer(T, T, fadt + FADT_OFF.dsdt, 4);
  l.addPointer(T, T, fadt + FADT_OFF.xFirmwareCtrl, 8).addPointer(T, T, fadt + FADT_OFF.xDsdt, 8);
  for (const t of acpi.tables) {
    if (t.sig === 'RSDP' || t.sig === 'FACS') continue;
    l.addChecksum(T, t.address + SDT_CHECKSUM, t.address, t.length);
  }
  l.addPointer(ACPI_RSDP_FILE, T, RSDP_RSDT, 4).addPointer(ACPI_RSDP_FILE, T, RSDP_XSDT, 8);
  l.addChecksum(ACPI_RSDP_FILE, RSDP_CHECKSUM, 0, RSDP_V1_LENGTH);
  l.addChecksum(ACPI_RSDP_FILE, RSDP_EXT_CHECKSUM, 0, RSDP_LENGTH);
  return { rsdp, tables, loader: l.finish() };
}
