import { test } from 'node:test';
import assert from 'node:assert/strict';
import { byteSum } from '../../firmware/bytes.js';
import { defaultPlatform } from '../../firmware/platform.js';
import { FADT_OFF } from '../../firmware/acpi/fadt.js';
import * as L from './loader.js';

/**
 * Run a table-loader script as firmware does: each ALLOCATE places a copy of
 * the file at the next free address (aligned), ADD_POINTER adds the source
 * file's address, ADD_CHECKSUM subtracts the range's sum from the byte.
 */
function runLoader(script: Uint8Array, files: Map<string, Uint8Array>) {
  const placed = new Map<string, { addr: number; data: Uint8Array; zone: number }>();
  let high = 0x7ff0000, fseg = 0xf0000;
  const name = (b: Uint8Array, at: number) => new TextDecoder().decode(b.subarray(at, at + L.FW_CFG_NAME_SIZE)).replace(/\0+$/, '');
  for (let o = 0; o < script.length; o += L.LOADER_COMMAND_SIZE) {
    const c = script.subarray(o, o + L.LOADER_COMMAND_SIZE);
    const dv = new DataView(c.buffer, c.byteOffset, c.byteLength);
    const type = dv.getUint32(0, true);
    if (type === L.LOADER_ALLOCATE) {
      const f = name(c, 4), align = dv.getUint32(60, true), zone = c[64];
      const data = files.get(f)!.slice();
      let addr: number;
      if (zone === L.LOADER_ZONE_FSEG) { addr = Math.ceil(fseg / align) * align; fseg = addr + data.length; } else { addr = Math.ceil(high / align) * align; high = addr + data.length; }
      placed.set(f, { addr, data, zone });
    } else if (type === L.LOADER_ADD_POINTER) {
      const dest = placed.get(name(c, 4))!, src = placed.get(name(c, 60))!;
      const off = dv.getUint32(116, true), size = c[120];
      const p = new DataView(dest.data.buffer, dest.data.byteOffset + off, size);
      if (size === 4) p.setUint32(0, p.getUint32(0, true) + src.addr, true);
      else p.setBigUint64(0, p.getBigUint64(0, true) + BigInt(src.addr), true);
    } else if (type === L.LOADER_ADD_CHECKSUM) {
      const f = placed.get(name(c, 4))!;
      const off = dv.getUint32(60, true), start = dv.getUint32(64, true), len = dv.getUint32(68, true);
      f.data[off] = (f.data[off] - byteSum(f.data.subarray(start, start + len))) & 0xff;
    } else {
      assert.fail(`unknown loader command ${type}`);
    }
  }
  return placed;
}

test('table loader: commands are 128 bytes with NUL-padded names', () => {
  const b = new L.TableLoader().allocate('etc/x', 64, L.LOADER_ZONE_HIGH).addPointer('a', 'b', 8, 4).addChecksum('a', 9, 0, 36).finish();
  assert.equal(b.length, 3 * L.LOADER_COMMAND_SIZE);
  const dv = new DataView(b.buffer);
  assert.deepEqual([dv.getUint32(0, true), dv.getUint32(128, true), dv.getUint32(256, true)], [1, 2, 3]);
  assert.equal(new TextDecoder().decode(b.subarray(4, 9)), 'etc/x');
  assert.equal(b[9], 0);
  assert.equal(dv.getUint32(60, true), 64);
  assert.equal(b[64], L.LOADER_ZONE_HIGH);
  assert.throws(() => new L.TableLoader().allocate('x'.repeat(56), 1, 1), /1-55 characters/);
});

test('ACPI through the loader: a valid RSDP -> XSDT/RSDT -> FADT -> DSDT/FACS chain wherever it lands', () => {
  const p = defaultPlatform({ ncpus: 2, memSize: 512 * 2 ** 20, vmName: 'vm', uuid: '12345678-1234-1234-1234-123456789abc', lpcSlot: 31 });
  const acpi = L.acpiForLoader(p);
  assert.equal(acpi.rsdp.length, 36);
  const placed = runLoader(acpi.loader, new Map([[L.ACPI_TABLES_FILE, acpi.tables], [L.ACPI_RSDP_FILE, acpi.rsdp]]));
  const rsdp = placed.get(L.ACPI_RSDP_FILE)!, tables = placed.get(L.ACPI_TABLES_FILE)!;
  assert.equal(rsdp.zone, L.LOADER_ZONE_FSEG);
  assert.equal(tables.addr % 64, 0);
  assert.equal(byteSum(rsdp.data.subarray(0, 20)), 0, 'RSDP checksum');
  assert.equal(byteSum(rsdp.data), 0, 'RSDP extended checksum');
  const at = (addr: number) => tables.data.subarray(addr - tables.addr);
  const table = (addr: number) => {
    const t = at(addr);
    const len = new DataView(t.buffer, t.byteOffset).getUint32(4, true);
    assert.equal(byteSum(t.subarray(0, len)), 0, `${new TextDecoder().decode(t.subarray(0, 4))} checksum`);
    return { sig: new TextDecoder().decode(t.subarray(0, 4)), dv: new DataView(t.buffer, t.byteOffset, len), len };
  };
  const rdv = new DataView(rsdp.data.buffer, rsdp.data.byteOffset);
  const rsdt = table(rdv.getUint32(16, true));
  const xsdt = table(Number(rdv.getBigUint64(24, true)));
  assert.deepEqual([rsdt.sig, xsdt.sig], ['RSDT', 'XSDT']);
  const listed = [];
  for (let o = 36; o < xsdt.len; o += 8) {
    const addr = Number(xsdt.dv.getBigUint64(o, true));
    assert.equal(rsdt.dv.getUint32(36 + (o - 36) / 2, true), addr, 'RSDT and XSDT agree');
    listed.push(table(addr));
  }
  assert.deepEqual(listed.map((t) => t.sig), ['FACP', 'APIC', 'HPET', 'MCFG']);
  const fadt = listed[0].dv;
  const dsdtAddr = Number(fadt.getBigUint64(FADT_OFF.xDsdt, true));
  assert.equal(fadt.getUint32(FADT_OFF.dsdt, true), dsdtAddr);
  assert.equal(table(dsdtAddr).sig, 'DSDT');
  const facs = Number(fadt.getBigUint64(FADT_OFF.xFirmwareCtrl, true));
  assert.equal(fadt.getUint32(FADT_OFF.firmwareCtrl, true), facs);
  assert.equal(facs % 64, 0, 'FACS 64-byte aligned');
  assert.equal(new TextDecoder().decode(at(facs).subarray(0, 4)), 'FACS');
  assert.ok(acpi.tables.subarray(0, 36).every((b) => b === 0), 'no stray RSDP copy in the tables file');
});
