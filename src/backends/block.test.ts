import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigTree } from '../config/tree.js';
import {
  BlockError, blockLegacyConfig, closeBlock, defaultSerial, openBlock, openBlockResource, parseBlockOptions, parseSectorSize,
} from './block.js';

const dirs: string[] = [];
after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

function tmpImage(size: number, fill = 0): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blk-'));
  dirs.push(dir);
  const p = path.join(dir, 'disk.img');
  fs.writeFileSync(p, Buffer.alloc(size, fill));
  return p;
}

test('read, write, flush and size of a raw file', () => {
  const p = tmpImage(64 * 1024);
  const b = openBlock(p);
  try {
    assert.equal(b.size, 64 * 1024);
    assert.equal(b.logicalSectorSize, 512);
    assert.ok(b.physicalSectorSize >= 512);
    assert.equal(b.readonly, false);
    b.write(1024, new Uint8Array(512).fill(0xab));
    b.flush();
    const r = new Uint8Array(1024);
    b.read(512, r);
    assert.equal(r[0], 0);
    assert.equal(r[512], 0xab);
    assert.equal(fs.readFileSync(p)[1024], 0xab);
    assert.throws(() => b.write(64 * 1024 - 256, new Uint8Array(512)), BlockError);
    assert.throws(() => b.read(-1, new Uint8Array(1)), BlockError);
  } finally {
    closeBlock(b);
  }
});

test('a second writer gets "locked"; read-only users share', () => {
  const p = tmpImage(4096);
  const a = openBlock(p);
  assert.throws(() => openBlock(p), /disk image .* is locked/);
  assert.throws(() => openBlock(p, { ro: true }), /locked/);
  closeBlock(a);
  const r1 = openBlock(p, { ro: true });
  const r2 = openBlock(p, { ro: true });
  assert.throws(() => openBlock(p), /locked/);
  assert.equal(r1.readonly, true);
  assert.throws(() => r1.write(0, new Uint8Array(512)), /read-only/);
  closeBlock(r1);
  closeBlock(r2);
});

test('user errors are one line naming the path', () => {
  const missing = '/nonexistent/dir/disk.img';
  assert.throws(() => openBlock(missing), (e: Error) => e instanceof BlockError && e.message.includes(missing) && !e.message.includes('\n'));
  assert.throws(() => openBlock(os.tmpdir()), /is a directory/);
  const p = tmpImage(4096);
  assert.throws(() => openBlock(p, { sectorsize: '1000' }), new RegExp(`${p}: bad sectorsize`));
});

test('sectorsize=logical[/physical] as bhyve validates it', () => {
  assert.deepEqual(parseSectorSize('x', '512'), [512, 512]);
  assert.deepEqual(parseSectorSize('x', '512/4096'), [512, 4096]);
  assert.deepEqual(parseSectorSize('x', '4096'), [4096, 4096]);
  for (const bad of ['256', '4096/512', '513', 'abc', '512/', '/512', '512/4096/8192']) {
    assert.throws(() => parseSectorSize('x', bad), BlockError, bad);
  }
  const b = openBlock(tmpImage(8192), { sectorsize: '4096/8192' });
  assert.equal(b.logicalSectorSize, 4096);
  assert.equal(b.physicalSectorSize, 8192);
  closeBlock(b);
});

test('serial: ser= or bhyve-style default from the path', () => {
  assert.match(defaultSerial('/images/disk.1'), /^BHYVE-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$/);
  assert.notEqual(defaultSerial('/a'), defaultSerial('/b'));
  const p = tmpImage(4096);
  const r = openBlockResource(p, { serial: 'MYSERIAL' });
  assert.equal(r.serial, 'MYSERIAL');
  fs.closeSync(r.fd);
});

test('legacy config and option parsing', () => {
  const c = new ConfigTree();
  blockLegacyConfig(c, 'pci.0.3.0', '/img/a.raw,ro,nocache,sectorsize=512/4096,ser=ABC');
  assert.equal(c.get('pci.0.3.0.path'), '/img/a.raw');
  const { path: p, opts } = parseBlockOptions(c, 'pci.0.3.0');
  assert.equal(p, '/img/a.raw');
  assert.deepEqual(opts, { ro: true, nocache: true, direct: false, nodelete: false, sectorsize: '512/4096', serial: 'ABC' });
  const c2 = new ConfigTree();
  blockLegacyConfig(c2, 'x', '/img/b,direct');
  assert.equal(parseBlockOptions(c2, 'x').opts.direct, true);
});

test('discard punches a hole and keeps the size', () => {
  const p = tmpImage(1 << 20, 0x55);
  const b = openBlock(p);
  if (!b.canDiscard) { closeBlock(b); return; }
  b.discard(64 * 1024, 128 * 1024);
  const st = fs.statSync(p);
  assert.equal(st.size, 1 << 20);
  const data = fs.readFileSync(p);
  assert.equal(data[64 * 1024], 0);
  assert.equal(data[64 * 1024 - 1], 0x55);
  assert.equal(data[192 * 1024], 0x55);
  closeBlock(b);
  const ro = openBlock(p, { ro: true });
  assert.equal(ro.canDiscard, false);
  closeBlock(ro);
});

test('nocache (O_DIRECT) handles unaligned buffers and ranges', (t) => {
  const p = tmpImage(256 * 1024, 0x11);
  let b;
  try {
    b = openBlock(p, { nocache: true });
  } catch (e) {
    t.skip(`O_DIRECT unsupported here: ${(e as Error).message}`);
    return;
  }
  const src = new Uint8Array(4096 + 1).subarray(1); // a misaligned view
  src.fill(0x22);
  b.write(8192, src);
  const odd = new Uint8Array(100).fill(0x33);
  b.write(8192 + 10, odd);
  const out = new Uint8Array(8192 + 3).subarray(3);
  b.read(4096, out);
  assert.equal(out[4095], 0x11);
  assert.equal(out[4096], 0x22);
  assert.equal(out[4096 + 10], 0x33);
  assert.equal(out[4096 + 110], 0x22);
  const disk = fs.readFileSync(p);
  assert.equal(disk.length, 256 * 1024);
  assert.equal(disk[8192 + 109], 0x33);
  assert.equal(disk[8192 + 4096], 0x11);
  closeBlock(b);
});

test('readv/writev scatter and gather in order, also with O_DIRECT', () => {
  for (const nocache of [false, true]) {
    const p = tmpImage(64 * 1024, 0x01);
    let b;
    try { b = openBlock(p, { nocache }); } catch { continue; }
    const parts = [new Uint8Array(512).fill(0xa1), new Uint8Array(1536).fill(0xa2), new Uint8Array(2048).fill(0xa3)];
    b.writev(4096, parts);
    const disk = fs.readFileSync(p);
    assert.equal(disk[4096], 0xa1);
    assert.equal(disk[4096 + 512], 0xa2);
    assert.equal(disk[4096 + 2048], 0xa3);
    assert.equal(disk[8192], 0x01);
    const outs = [new Uint8Array(100), new Uint8Array(4000)];
    b.readv(4096 + 412, outs);
    assert.equal(outs[0][99], 0xa1);
    assert.equal(outs[1][0], 0xa2);
    assert.equal(outs[1][3999], 0x01, `nocache=${nocache}`);
    assert.throws(() => b.readv(60 * 1024, [new Uint8Array(8192)]), BlockError);
    closeBlock(b);
  }
});
