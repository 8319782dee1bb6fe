/**
 * The fw_cfg items of `-l fwcfg=qemu`, built once on the main thread from the
 * platform description and handed to every thread (FWCFG_RESOURCE):
 *   signature "QEMU", ID (traditional + DMA interface), UUID, RAM size,
 *   NOGRAPHIC, CPU counts, boot menu off, IRQ0 override, the file directory,
 * and the files
 *   bootorder                         from bootindex= options (bootorder.ts)
 *   etc/acpi/rsdp, etc/acpi/tables,   the ACPI tables and QEMU's table-loader
 *   etc/table-loader                  script placing them (loader.ts)
 *   etc/e820                          RAM and reserved ranges
 *   etc/smbios/smbios-anchor,         SMBIOS 2.8 entry point and structures
 *   etc/smbios/smbios-tables
 *   user files                        -f NAME,string=|file= (user.ts)
 * The directory lists files sorted by name; file keys count up from 0x20 in
 * that order.
 */
import { ByteWriter, FirmwareError, asciiBytes } from '../../firmware/bytes.js';
import { E820_RAM, E820_RESERVED, type E820Entry } from '../../firmware/e820.js';
import { HIGHMEM_BASE, type Platform, ecamRange } from '../../firmware/platform.js';
import { SMBIOS_ENTRY_LENGTH, SMBIOS_TABLE_OFFSET, buildSmbios, parseUuid } from '../../firmware/smbios.js';
import { ACPI_RSDP_FILE, ACPI_TABLES_FILE, FW_CFG_NAME_SIZE, TABLE_LOADER_FILE, acpiForLoader } from './loader.js';
import * as F from './fwcfg.js';
import type { UserFile } from './user.js';
import { BOOTORDER_FILE } from './bootorder.js';

export const E820_FILE = 'etc/e820';
export const SMBIOS_ANCHOR_FILE = 'etc/smbios/smbios-anchor';
export const SMBIOS_TABLES_FILE = 'etc/smbios/smbios-tables';
const DIR_ENTRY_SIZE = 4 + 2 + 2 + FW_CFG_NAME_SIZE;
const E820_ENTRY_SIZE = 20;

export interface FwCfgInputs {
  platform: Platform;
  /** The bootorder file, if any device has a bootindex. */
  bootorder?: Uint8Array;
  /** Firmware may use the serial port as its console (QEMU -nographic). */
  nographic: boolean;
  userFiles: readonly UserFile[];
}

const u16 = (v: number) => new ByteWriter().u16(v).finish();
const u32 = (v: number) => new ByteWriter().u32(v).finish();
const u64 = (v: number) => new ByteWriter().u64(v).finish();

/** The e820 map QEMU gives firmware: RAM below and above the hole, and the ECAM. */
export function fwcfgE820(p: Platform): E820Entry[] {
  const map: E820Entry[] = [{ addr: 0, size: p.memory.lowmem, type: E820_RAM }];
  if (p.ecam) {
    const { start, size } = ecamRange(p.ecam);
    map.push({ addr: start, size, type: E820_RESERVED });
  }
  if (p.memory.highmem > 0) map.push({ addr: HIGHMEM_BASE, size: p.memory.highmem, type: E820_RAM });
  return map;
}

/** struct e820_entry { u64 address; u64 length; u32 type; } packed, little-endian. */
export function encodeE820(entries: readonly E820Entry[]): Uint8Array {
  const w = new ByteWriter();
  for (const e of entries) w.u64(e.addr).u64(e.size).u32(e.type);
  if (w.length !== entries.length * E820_ENTRY_SIZE) throw new FirmwareError('internal: e820 entry size');
  return w.finish();
}

/** QEMU's UUID item: the 16 bytes in RFC 4122 (string) order. */
function uuidItem(uuid: string | Uint8Array): Uint8Array {
  return typeof uuid === 'string' ? parseUuid(uuid) : uuid.slice();
}

/** The file directory: u32 count, then {u32 size; u16 key; u16 0; char name[56]}, big-endian. */
export function encodeDirectory(files: readonly { name: string; key: number; size: number }[]): Uint8Array {
  const out = new Uint8Array(4 + files.length * DIR_ENTRY_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, files.length, false);
  files.forEach((f, i) => {
    const at = 4 + i * DIR_ENTRY_SIZE;
    dv.setUint32(at, f.size, false);
    dv.setUint16(at + 4, f.key, false);
    out.set(asciiBytes(f.name), at + 8);
  });
  return out;
}

export function buildFwCfgItems(inp: FwCfgInputs): F.FwCfgItems {
  const p = inp.platform;
  const items = new Map<number, Uint8Array>();
  items.set(F.FW_CFG_SIGNATURE, asciiBytes('QEMU'));
  items.set(F.FW_CFG_ID, u32(F.FW_CFG_VERSION | F.FW_CFG_VERSION_DMA));
  items.set(F.FW_CFG_UUID, uuidItem(p.uuid));
  items.set(F.FW_CFG_RAM_SIZE, u64(p.memory.lowmem + p.memory.highmem));
  items.set(F.FW_CFG_NOGRAPHIC, u16(inp.nographic ? 1 : 0));
  items.set(F.FW_CFG_NB_CPUS, u16(p.ncpus));
  items.set(F.FW_CFG_MAX_CPUS, u16(p.ncpus));
  items.set(F.FW_CFG_BOOT_MENU, u16(0));
  // The PIT's IRQ 0 reaches I/O APIC pin 2 (the MADT's override): firmware's MP table says so too.
  items.set(F.FW_CFG_IRQ0_OVERRIDE, u32(1));

  const files = new Map<string, Uint8Array>();
  const add = (name: string, data: Uint8Array, what = 'fw_cfg') => {
    if (files.has(name)) throw new FirmwareError(`${what}: fw_cfg file '${name}' already exists`);
    if (name.length === 0 || name.length >= FW_CFG_NAME_SIZE) throw new FirmwareError(`${what}: fw_cfg name '${name}' is too long`);
    files.set(name, data);
  };
  if (inp.bootorder) add(BOOTORDER_FILE, inp.bootorder);
  const acpi = acpiForLoader(p);
  add(ACPI_RSDP_FILE, acpi.rsdp);
  add(ACPI_TABLES_FILE, acpi.tables);
  add(TABLE_LOADER_FILE, acpi.loader);
  add(E820_FILE, encodeE820(fwcfgE820(p)));
  const smbios = buildSmbios(p, 0);
  add(SMBIOS_ANCHOR_FILE, smbios.slice(0, SMBIOS_ENTRY_LENGTH));
  add(SMBIOS_TABLES_FILE, smbios.slice(SMBIOS_TABLE_OFFSET));
  for (const u of inp.userFiles) add(u.name, u.data, `-f ${u.name}`);

  const names = [...files.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (names.length > F.FW_CFG_FILE_SLOTS) throw new FirmwareError(`too many fw_cfg files (${names.length})`);
  const dir = names.map((name, i) => ({ name, key: F.FW_CFG_FILE_FIRST + i, size: files.get(name)!.length }));
  for (const d of dir) items.set(d.key, files.get(d.name)!);
  items.set(F.FW_CFG_FILE_DIR, encodeDirectory(dir));
  return { items: [...items.entries()] };
}
