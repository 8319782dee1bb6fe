import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareBlock, type BlockOptions } from '../../backends/block.js';
import { findPci } from '../registry.js';
import { PciRoot } from '../pci/root.js';
import { VirtioBlk, S_IOERR, S_OK, S_UNSUPP, T_FLUSH, T_GET_ID, T_IN, T_OUT, T_DISCARD, T_WRITE_ZEROES } from './blk.js';
import * as V from './constants.js';
import { placeBars, TestDriver, virtioTestCtx } from './virtio-test-ctx.js';

const PREFIX = 'pci.0.5.0';
const HDR = 0x300000, STATUS = 0x300100, DATA = 0x310000, SEG = 0x300200;
const SIZE = 1 << 20;

function disk(opts: BlockOptions = {}, content?: Uint8Array) {
  const dir = mkdtempSync(join(tmpdir(), 'vblk-'));
  const path = join(dir, 'disk.img');
  writeFileSync(path, content ?? new Uint8Array(SIZE));
  const t = virtioTestCtx();
  const r = prepareBlock(t.ctx, PREFIX, path, opts);
  const dev = new VirtioBlk(t.ctx, PREFIX, { bus: 0, slot: 5, func: 0 });
  new PciRoot(t.ctx).add(dev);
  placeBars(dev);
  const drv = new TestDriver(t);
  drv.negotiate(drv.deviceFeatures());
  drv.setupQueue(0, 0x100000);
  drv.driverOk();
  /** Send one request; returns [status byte, used length]. */
  const req = (type: number, sector: number, data: [number, number, boolean][] = [], header: [number, number][] = [[HDR, 16]]): [number, number] => {
    t.dv.setUint32(HDR, type, true);
    t.dv.setUint32(HDR + 4, 0, true);
    t.dv.setBigUint64(HDR + 8, BigInt(sector), true);
    t.ram[STATUS] = 0xee;
    drv.submit(0, [...header.map(([a, l]) => [a, l, false] as [number, number, boolean]), ...data, [STATUS, 1, true]]);
    t.runDoorbells();
    const u = drv.used(0);
    assert.equal(u.length, 1);
    return [t.ram[STATUS], u[0][1]];
  };
  const file = () => new Uint8Array(readFileSync(path));
  const done = () => { closeSync(r.fd); rmSync(dir, { recursive: true, force: true }); };
  return { t, dev, drv, req, file, done, path };
}

test('configuration: capacity, block size, features from the back-end', () => {
  const d = disk({ sectorsize: '4096' });
  assert.equal(d.drv.device(0, 4), SIZE / 512);
  assert.equal(d.drv.device(20, 4), 4096);
  assert.equal(d.drv.device(12, 4), 254, 'seg_max');
  const f = d.dev.deviceFeatures;
  for (const b of [2n, 6n, 9n, 10n, 14n]) assert.ok(f & V.bit(b), `feature ${b}`);
  assert.equal(f & V.bit(5n), 0n, 'not read-only');
  d.done();
});

test('write, read back, flush, serial; the data reaches the file', () => {
  const d = disk({ serial: 'SER123' });
  d.t.ram.fill(0x5a, DATA, DATA + 1024);
  assert.deepEqual(d.req(T_OUT, 4, [[DATA, 1024, false]]), [S_OK, 1]);
  assert.ok(d.file().subarray(2048, 3072).every((b) => b === 0x5a));
  d.t.ram.fill(0, DATA, DATA + 1024);
  assert.deepEqual(d.req(T_IN, 4, [[DATA, 512, true], [DATA + 512, 512, true]]), [S_OK, 1025]);
  assert.ok(d.t.ram.subarray(DATA, DATA + 1024).every((b) => b === 0x5a));
  assert.deepEqual(d.req(T_FLUSH, 0), [S_OK, 1]);
  assert.deepEqual(d.req(T_GET_ID, 0, [[DATA, 20, true]]), [S_OK, 21]);
  assert.equal(Buffer.from(d.t.ram.subarray(DATA, DATA + 6)).toString(), 'SER123');
  assert.equal(d.t.ram[DATA + 6], 0);
  d.done();
});

test('any layout: a header split over two descriptors', () => {
  const d = disk();
  d.t.ram.fill(0x33, DATA, DATA + 512);
  assert.deepEqual(d.req(T_OUT, 1, [[DATA, 512, false]], [[HDR, 8], [HDR + 8, 8]]), [S_OK, 1]);
  assert.equal(d.file()[512], 0x33);
  d.done();
});

test('ro: writes, discards and write-zeroes fail and the file is untouched', () => {
  const content = new Uint8Array(SIZE).fill(0x77);
  const d = disk({ ro: true }, content);
  assert.ok(d.dev.deviceFeatures & V.bit(5n));
  d.t.ram.fill(0, DATA, DATA + 512);
  assert.deepEqual(d.req(T_OUT, 0, [[DATA, 512, false]]), [S_IOERR, 1]);
  assert.equal(d.req(T_WRITE_ZEROES, 0, [[SEG, 16, false]])[0], S_UNSUPP);
  assert.deepEqual(d.req(T_IN, 0, [[DATA, 512, true]]), [S_OK, 513]);
  assert.deepEqual(d.req(T_FLUSH, 0), [S_OK, 1]);
  assert.ok(d.file().every((b) => b === 0x77));
  d.done();
});

test('bad requests: out of range, partial sectors, unknown types, hostile buffers', () => {
  const d = disk();
  assert.deepEqual(d.req(T_IN, SIZE / 512, [[DATA, 512, true]]), [S_IOERR, 1]);
  assert.deepEqual(d.req(T_IN, SIZE / 512 - 1, [[DATA, 1024, true]]), [S_IOERR, 1]);
  assert.deepEqual(d.req(T_OUT, 0, [[DATA, 100, false]]), [S_IOERR, 1]);
  assert.deepEqual(d.req(T_IN, 2 ** 60, [[DATA, 512, true]]), [S_IOERR, 1]);
  assert.deepEqual(d.req(77, 0), [S_UNSUPP, 1]);
  assert.deepEqual(d.req(T_IN, 0, [[2 ** 40, 512, true]]), [S_IOERR, 1], 'buffer outside memory');
  assert.deepEqual(d.req(T_OUT, 0, [[DATA, 0xfffff000, false]]), [S_IOERR, 1], 'length past memory');
  assert.deepEqual(d.req(T_IN, 0, [], [[HDR, 8]]), [S_IOERR, 1], 'short header');
  // no status byte at all: returned with nothing written
  d.drv.submit(0, [[HDR, 16, false]]);
  d.t.runDoorbells();
  assert.deepEqual(d.drv.used(0), [[0, 0]]);
  assert.ok(d.file().every((b) => b === 0));
  d.done();
});

test('discard and write-zeroes', () => {
  const d = disk({}, new Uint8Array(SIZE).fill(0xff));
  const seg = (sector: number, n: number, flags: number) => {
    d.t.dv.setBigUint64(SEG, BigInt(sector), true);
    d.t.dv.setUint32(SEG + 8, n, true);
    d.t.dv.setUint32(SEG + 12, flags, true);
  };
  seg(8, 8, 0);
  assert.deepEqual(d.req(T_WRITE_ZEROES, 0, [[SEG, 16, false]]), [S_OK, 1]);
  assert.ok(d.file().subarray(4096, 8192).every((b) => b === 0));
  assert.equal(d.file()[8192], 0xff);
  seg(SIZE / 512 - 1, 2, 0);
  assert.equal(d.req(T_WRITE_ZEROES, 0, [[SEG, 16, false]])[0], S_IOERR, 'past the end');
  if (d.dev.deviceFeatures & V.bit(13n)) {
    seg(16, 8, 0);
    assert.deepEqual(d.req(T_DISCARD, 0, [[SEG, 16, false]]), [S_OK, 1]);
    assert.ok(d.file().subarray(8192, 12288).every((b) => b === 0), 'a punched hole reads as zeros');
  }
  d.done();
});

test('start-up errors are one line naming the device', () => {
  const emu = findPci('virtio-blk')!;
  const t = virtioTestCtx();
  assert.throws(() => emu.prepare!(t.ctx, PREFIX, { bus: 0, slot: 5, func: 0 }), /virtio-blk at pci\.0\.5\.0: a disk image is required/);
  t.ctx.config.set(`${PREFIX}.path`, '/nonexistent/disk.img');
  assert.throws(() => emu.prepare!(t.ctx, PREFIX, { bus: 0, slot: 5, func: 0 }), /virtio-blk at pci\.0\.5\.0: disk image \/nonexistent\/disk\.img does not exist/);
});
