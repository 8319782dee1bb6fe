import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildBiosArea } from './bios.js';
import { BHYVE_ACPI_BASE, MPTABLE_BASE, SMBIOS_BASE, defaultPlatform } from './platform.js';

const platform = (ncpus: number) => defaultPlatform({ ncpus, memSize: 2 * 1024 ** 3, vmName: 'vm', uuid: new Uint8Array(16), lpcSlot: 1 });

test('all three table sets at bhyve\'s addresses', () => {
  const a = buildBiosArea(platform(4));
  assert.deepEqual(a.blobs.map((b) => [b.name, b.address]), [['mptable', MPTABLE_BASE], ['smbios', SMBIOS_BASE], ['acpi', BHYVE_ACPI_BASE]]);
  assert.equal(a.rsdpAddress, BHYVE_ACPI_BASE);
  for (let i = 1; i < a.blobs.length; i++) assert.ok(a.blobs[i - 1].address + a.blobs[i - 1].bytes.length <= a.blobs[i].address);
});

test('-Y and no -A leave tables out; too many CPUs for a slot is an error', () => {
  const a = buildBiosArea(platform(1), { acpi: false, mptable: false });
  assert.deepEqual(a.blobs.map((b) => b.name), ['smbios']);
  assert.equal(a.rsdpAddress, undefined);
  assert.throws(() => buildBiosArea(platform(200), { mptable: false }), /smbios tables need/);
});
