import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigTree } from '../../config/tree.js';
import { defaultPlatform } from '../../firmware/platform.js';
import { bootOrderEntries, bootOrderFile, pciDevicePath } from './bootorder.js';
import * as F from './fwcfg.js';
import { buildFwCfgItems, fwcfgE820 } from './items.js';
import { loadUserFiles, parseFwCfgArg } from './user.js';
import { nographic } from './setup.js';
import { parseArgs } from '../../cli/options.js';
import { validate } from '../../config/schema.js';

const tree = (kv: Record<string, string>) => {
  const t = new ConfigTree();
  for (const [k, v] of Object.entries(kv)) t.set(k, v);
  return t;
};
const text = (b: Uint8Array) => new TextDecoder().decode(b);

test('boot order: QEMU-style paths by bootindex, AHCI ports, function numbers in hex', () => {
  const c = tree({
    'pci.0.4.0.device': 'virtio-blk', 'pci.0.4.0.bootindex': '2',
    'pci.0.5.0.device': 'ahci-cd', 'pci.0.5.0.bootindex': '1',
    'pci.0.6.0.device': 'ahci', 'pci.0.6.0.port.3.bootindex': '7',
    'pci.0.31.2.device': 'virtio-net', 'pci.0.31.2.bootindex': '5',
    'pci.0.7.0.device': 'virtio-blk',
    'pci.0.8.0.device': 'ahci-hd', 'pci.0.8.0.port.0.bootindex': '3',
  });
  const e = bootOrderEntries(c);
  assert.deepEqual(e.map((x) => x.path), [
    '/pci@i0cf8/sata@5/drive@0/disk@0', '/pci@i0cf8/scsi@4', '/pci@i0cf8/sata@8/drive@0/disk@0', '/pci@i0cf8/ethernet@1f,2',
    '/pci@i0cf8/sata@6/drive@3/disk@0',
  ]);
  assert.equal(text(bootOrderFile(e)!), e.map((x) => x.path).join('\n') + '\0');
  assert.equal(bootOrderFile([]), undefined);
  assert.equal(pciDevicePath('uart', 10, 0), '/pci@i0cf8/pci@a');
});

test('boot order: shared or malformed boot indexes and other buses are start-up errors', () => {
  assert.throws(() => bootOrderEntries(tree({ 'pci.0.4.0.device': 'virtio-blk', 'pci.0.4.0.bootindex': '1', 'pci.0.5.0.device': 'ahci-hd', 'pci.0.5.0.bootindex': '1' })), /boot index 1 is already used/);
  assert.throws(() => bootOrderEntries(tree({ 'pci.0.4.0.device': 'virtio-blk', 'pci.0.4.0.bootindex': '-1' })), /not a boot index/);
  assert.throws(() => bootOrderEntries(tree({ 'pci.1.4.0.device': 'virtio-blk', 'pci.1.4.0.bootindex': '0' })), /bus 0/);
});

test('-f: string and file items, in command-line order', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fwcfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'blob');
  writeFileSync(file, Uint8Array.of(1, 2, 3));
  const c = new ConfigTree();
  parseFwCfgArg(c, 'opt/example/a,string=hello, world');
  parseFwCfgArg(c, `name=opt/example/b,file=${file}`);
  assert.equal(c.get('fwcfg.0.name'), 'opt/example/a');
  assert.equal(c.get('fwcfg.0.string'), 'hello, world');
  assert.equal(c.get('fwcfg.1.file'), file);
  const files = loadUserFiles(c);
  assert.deepEqual(files.map((f) => f.name), ['opt/example/a', 'opt/example/b']);
  assert.equal(text(files[0].data), 'hello, world\0', 'strings keep their NUL');
  assert.deepEqual([...files[1].data], [1, 2, 3]);
  assert.throws(() => parseFwCfgArg(c, 'noval'), /expected \[name=\]NAME/);
  assert.throws(() => parseFwCfgArg(c, 'x,blob=1'), /string=TEXT or file=PATH/);
  assert.throws(() => parseFwCfgArg(c, `${'n'.repeat(56)},string=1`), /1-55 printable/);
  parseFwCfgArg(c, `opt/missing,file=${join(dir, 'nope')}`);
  assert.throws(() => loadUserFiles(c), /cannot read .*nope \(ENOENT\)/);
  assert.throws(() => loadUserFiles(tree({ 'fwcfg.0.name': 'd', 'fwcfg.0.file': dir })), /not a regular file/);
});

test('-f on the command line: keys the schema accepts', () => {
  const r = parseArgs(['-l', 'fwcfg=qemu', '-f', 'opt/a,string=x', '-f', 'name=opt/b,file=/dev/null', '-o', 'fwcfg.nographic=false', 'vm']);
  assert.equal(r.kind, 'run');
  if (r.kind !== 'run') return;
  validate(r.config);
  assert.deepEqual([r.config.get('fwcfg.0.name'), r.config.get('fwcfg.1.name'), r.config.get('fwcfg.1.file')], ['opt/a', 'opt/b', '/dev/null']);
  assert.throws(() => parseArgs(['-f', 'bad', 'vm']), /-f bad: expected/);
});

test('items: signature, DMA-capable ID, CPU counts, sorted directory and the files', () => {
  const p = defaultPlatform({ ncpus: 3, memSize: 4 * 2 ** 30, vmName: 'vm', uuid: '12345678-1234-1234-1234-123456789abc', lpcSlot: 31 });
  const t = buildFwCfgItems({ platform: p, bootorder: bootOrderFile([{ bootindex: 0, key: 'k', path: '/pci@i0cf8/scsi@4' }]), nographic: true, userFiles: [{ name: 'opt/z', data: Uint8Array.of(9) }] });
  const items = new Map(t.items);
  assert.equal(text(items.get(F.FW_CFG_SIGNATURE)!), 'QEMU');
  assert.deepEqual([...items.get(F.FW_CFG_ID)!], [3, 0, 0, 0]);
  assert.deepEqual([...items.get(F.FW_CFG_NB_CPUS)!], [3, 0]);
  assert.deepEqual([...items.get(F.FW_CFG_NOGRAPHIC)!], [1, 0]);
  assert.equal(items.get(F.FW_CFG_UUID)![0], 0x12, 'UUID in string order');
  const dir = items.get(F.FW_CFG_FILE_DIR)!;
  const dv = new DataView(dir.buffer, dir.byteOffset);
  const n = dv.getUint32(0, false);
  const files = Array.from({ length: n }, (_, i) => ({
    size: dv.getUint32(4 + 64 * i, false), key: dv.getUint16(8 + 64 * i, false),
    name: text(dir.subarray(12 + 64 * i, 12 + 64 * i + 56)).replace(/\0+$/, ''),
  }));
  const names = files.map((f) => f.name);
  assert.deepEqual(names, [...names].sort());
  assert.deepEqual(names, ['bootorder', 'etc/acpi/rsdp', 'etc/acpi/tables', 'etc/e820', 'etc/smbios/smbios-anchor', 'etc/smbios/smbios-tables', 'etc/table-loader', 'opt/z']);
  for (const f of files) assert.equal(items.get(f.key)!.length, f.size, f.name);
  const e820 = items.get(files[3].key)!;
  assert.equal(e820.length, 20 * fwcfgE820(p).length);
  assert.deepEqual(fwcfgE820(p).map((e) => [e.addr, e.type]), [[0, 1], [0xe0000000, 2], [2 ** 32, 1]]);
  const anchor = items.get(files[4].key)!;
  assert.equal(text(anchor.subarray(0, 4)), '_SM_');
  assert.equal(anchor.length, 31);
  assert.equal(new DataView(anchor.buffer, anchor.byteOffset).getUint16(0x16, true), items.get(files[5].key)!.length, 'anchor gives the table length');
  assert.throws(() => buildFwCfgItems({ platform: p, nographic: false, userFiles: [{ name: 'etc/e820', data: Uint8Array.of(0) }] }), /already exists/);
});

test('NOGRAPHIC: on with a COM1 back-end and no display, unless overridden', () => {
  assert.equal(nographic(tree({ 'lpc.com1.path': 'stdio' })), true);
  assert.equal(nographic(tree({})), false);
  assert.equal(nographic(tree({ 'lpc.com1.path': 'stdio', 'pci.0.3.0.device': 'fbuf' })), false);
  assert.equal(nographic(tree({ 'lpc.com1.path': 'stdio', 'fwcfg.nographic': 'false' })), false);
});
