import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { CTBA, DATA, Driver, h2d, makeAhci, RAM_SIZE, ROM_GPA, tmpFile } from './ahci-test-ctx.js';
import * as A from './regs.js';

const SECTORS = 2048;
const OK = A.ATA_S_READY | A.ATA_S_DSC;
const imageWithPattern = (): string => tmpFile('disk.img', SECTORS * 512, (b) => { for (let i = 0; i < b.length; i++) b[i] = (i >> 9) & 0xff; });

function readyDisk(opts = '', async = false) {
  const path = imageWithPattern();
  const t = makeAhci('ahci-hd', `${path}${opts}`, { async });
  const d = new Driver(t);
  d.start(0);
  return { t, d, path };
}

test('IDENTIFY DEVICE: strings, capacity, checksum; D2H FIS and PxCI', () => {
  const { t, d } = readyDisk(',ser=SER123');
  d.setPreg(0, A.P_IE, A.PIS_DHRS);
  d.issue(0, 3, { cfis: h2d(A.ATA_IDENTIFY), prdt: [[DATA, 512]] });
  assert.equal(d.preg(0, A.P_CI), 0);
  assert.equal(d.d2h(0).status, OK);
  assert.ok(d.preg(0, A.P_IS) & A.PIS_DHRS);
  assert.equal(d.prdbc(0, 3), 512);
  const id = d.ram(DATA, 512);
  const w = (i: number): number => id[2 * i] | (id[2 * i + 1] << 8);
  const str = (from: number, words: number): string => {
    let s = '';
    for (let i = from; i < from + words; i++) s += String.fromCharCode(w(i) >> 8, w(i) & 0xff);
    return s.trim();
  };
  assert.equal(str(10, 10), 'SER123');
  assert.equal(str(27, 20), 'BHYVE SATA DISK');
  assert.equal(w(100) + w(101) * 65536, SECTORS);
  assert.ok(w(83) & 0x0400, '48-bit LBA');
  assert.equal(w(75), 31, 'NCQ depth 32');
  assert.equal(id.reduce((a, b) => a + b, 0) & 0xff, 0, 'checksum');
  assert.equal(w(255) & 0xff, 0xa5);
  void t;
});

test('WRITE DMA EXT then READ DMA EXT through a scattered PRDT reach the file', () => {
  const { d, path } = readyDisk();
  const src = d.ram(DATA, 4096);
  for (let i = 0; i < 4096; i++) src[i] = (i * 7) & 0xff;
  // three entries: 1000 + 2072 + 1024 bytes = 8 sectors
  d.issue(0, 0, { cfis: h2d(A.ATA_WRITE_DMA48, { lba: 100, count: 8 }), prdt: [[DATA, 1000], [DATA + 1000, 2072], [DATA + 3072, 1024]], write: true });
  assert.equal(d.d2h(0).status, OK);
  assert.equal(d.prdbc(0, 0), 4096);
  const file = fs.readFileSync(path);
  assert.deepEqual(file.subarray(100 * 512, 108 * 512), Buffer.from(src));
  assert.equal(file[99 * 512], 99);
  d.issue(0, 1, { cfis: h2d(A.ATA_READ_DMA48, { lba: 99, count: 2 }), prdt: [[DATA + 0x10000, 1024]] });
  assert.equal(d.d2h(0).status, OK);
  const back = d.ram(DATA + 0x10000, 1024);
  assert.equal(back[0], 99);
  assert.equal(back[512], src[0]);
});

test('28-bit READ DMA and NCQ READ/WRITE FPDMA QUEUED (SDB completion)', () => {
  const { d } = readyDisk();
  d.issue(0, 0, { cfis: h2d(A.ATA_READ_DMA, { lba: 5, count: 1 }), prdt: [[DATA, 512]] });
  assert.equal(d.ram(DATA, 1)[0], 5);
  d.ram(DATA, 512).fill(0xee);
  const w = h2d(A.ATA_WRITE_FPDMA_QUEUED, { lba: 7, features: 1 });
  w[12] = 4 << 3; // tag
  d.issue(0, 4, { cfis: w, prdt: [[DATA, 512]], write: true }, true);
  assert.equal(d.preg(0, A.P_SACT), 0);
  assert.equal(d.preg(0, A.P_CI), 0);
  const sdb = d.ram(0x10000 + 0x400 + A.RFIS_SDBFIS, 8);
  assert.equal(sdb[0], A.FIS_SET_DEV_BITS);
  assert.equal(new DataView(sdb.buffer, sdb.byteOffset).getUint32(4, true), 1 << 4);
  assert.ok(d.preg(0, A.P_IS) & A.PIS_SDBS);
  d.issue(0, 5, { cfis: h2d(A.ATA_READ_FPDMA_QUEUED, { lba: 7, features: 1 }), prdt: [[DATA + 512, 512]] }, true);
  assert.equal(d.ram(DATA + 512, 1)[0], 0xee);
});

test('a read-only disk refuses writes with ABORT and the file is untouched', () => {
  const { d, path } = readyDisk(',ro');
  const before = fs.readFileSync(path);
  d.ram(DATA, 512).fill(0x55);
  d.issue(0, 0, { cfis: h2d(A.ATA_WRITE_DMA48, { lba: 0, count: 1 }), prdt: [[DATA, 512]], write: true });
  const r = d.d2h(0);
  assert.equal(r.status & A.ATA_S_ERROR, A.ATA_S_ERROR);
  assert.equal(r.error & A.ATA_E_ABORT, A.ATA_E_ABORT);
  assert.ok(d.preg(0, A.P_IS) & A.PIS_TFES);
  assert.equal(d.preg(0, A.P_CI), 1, 'CI stays set until the port is stopped');
  assert.deepEqual(fs.readFileSync(path), before);
  d.restart(0);
  assert.equal(d.preg(0, A.P_CI), 0);
  d.issue(0, 0, { cfis: h2d(A.ATA_READ_DMA48, { lba: 3, count: 1 }), prdt: [[DATA, 512]] });
  assert.equal(d.d2h(0).status, OK, 'the port works again after the error recovery');
});

test('hostile PRDT, command table and command list: task-file errors, no host access', () => {
  const { t, d, path } = readyDisk();
  const before = fs.readFileSync(path);
  const cases: [string, () => void][] = [
    ['PRD beyond RAM', () => d.issue(0, 0, { cfis: h2d(A.ATA_READ_DMA48, { lba: 0, count: 1 }), prdt: [[RAM_SIZE - 256, 512]] })],
    ['PRD at 2^52', () => d.issue(0, 0, { cfis: h2d(A.ATA_READ_DMA48, { lba: 0, count: 1 }), prdt: [[2 ** 52, 512]] })],
    ['DMA into the boot ROM', () => d.issue(0, 0, { cfis: h2d(A.ATA_READ_DMA48, { lba: 0, count: 1 }), prdt: [[ROM_GPA, 512]] })],
    ['write from a hole', () => d.issue(0, 0, { cfis: h2d(A.ATA_WRITE_DMA48, { lba: 0, count: 1 }), prdt: [[0x80000000, 512]], write: true })],
    ['IDENTIFY to nowhere', () => d.issue(0, 0, { cfis: h2d(A.ATA_IDENTIFY), prdt: [[0xfffffff000, 512]] })],
    ['command table outside RAM', () => d.issue(0, 0, { cfis: h2d(A.ATA_READ_DMA48, { count: 1 }), ctba: 0x7fff0000 })],
    ['PRDT longer than RAM', () => d.issue(0, 0, { cfis: h2d(A.ATA_READ_DMA48, { count: 1 }), ctba: RAM_SIZE - 0x100, prdtl: 65535 })],
    ['LBA past the end', () => d.issue(0, 0, { cfis: h2d(A.ATA_READ_DMA48, { lba: SECTORS - 1, count: 2 }), prdt: [[DATA, 1024]] })],
    ['LBA 2^47', () => d.issue(0, 0, { cfis: h2d(A.ATA_WRITE_DMA48, { lba: 2 ** 47, count: 1 }), prdt: [[DATA, 512]], write: true })],
    ['not a register FIS', () => { const f = h2d(A.ATA_READ_DMA48); f[0] = 0x46; d.issue(0, 0, { cfis: f, prdt: [[DATA, 512]] }); }],
    ['unknown command', () => d.issue(0, 0, { cfis: h2d(0xfe) })],
  ];
  for (const [why, run] of cases) {
    assert.doesNotThrow(run, why);
    assert.equal(d.d2h(0).status & A.ATA_S_ERROR, A.ATA_S_ERROR, why);
    assert.ok(d.preg(0, A.P_IS) & A.PIS_TFES, why);
    d.restart(0);
  }
  // a command list outside guest memory
  d.setPreg(0, A.P_CMD, A.PCMD_FRE);
  d.setPreg(0, A.P_CLBU, 0x10);
  d.setPreg(0, A.P_CMD, A.PCMD_FRE | A.PCMD_ST);
  assert.doesNotThrow(() => d.setPreg(0, A.P_CI, 1));
  assert.ok(d.preg(0, A.P_TFD) & A.ATA_S_ERROR);
  assert.deepEqual(fs.readFileSync(path), before);
  assert.equal(t.irqs.length >= 0, true);
});

test('an error holds later slots until the port is restarted', () => {
  const { d } = readyDisk();
  d.issue(0, 0, { cfis: h2d(0xfe) });
  d.issue(0, 1, { cfis: h2d(A.ATA_READ_DMA48, { lba: 1, count: 1 }), prdt: [[DATA, 512]] });
  assert.equal(d.preg(0, A.P_CI), 0b11);
  d.restart(0);
  assert.equal(d.preg(0, A.P_CI), 0);
});

test('FLUSH CACHE EXT, SET FEATURES, CHECK POWER MODE, READ LOG EXT, SRST', () => {
  const { d } = readyDisk();
  d.issue(0, 0, { cfis: h2d(A.ATA_FLUSHCACHE48) });
  assert.equal(d.d2h(0).status, OK);
  d.issue(0, 0, { cfis: h2d(A.ATA_SETFEATURES, { features: A.SF_SETXFER, count: 0x45 }) });
  assert.equal(d.d2h(0).status, OK);
  d.issue(0, 0, { cfis: h2d(A.ATA_IDENTIFY), prdt: [[DATA, 512]] });
  const w88 = d.ram(DATA + 176, 2);
  assert.equal(w88[1], 1 << 5, 'UDMA5 selected');
  d.issue(0, 0, { cfis: h2d(A.ATA_CHECK_POWER_MODE) });
  assert.equal(d.d2h(0).count, 0xff);
  d.issue(0, 0, { cfis: h2d(A.ATA_READ_LOG_EXT, { lba: 0, count: 1 }), prdt: [[DATA, 512]] });
  assert.equal(d.d2h(0).status, OK);
  assert.equal(d.ram(DATA + 0x20, 1)[0], 1, 'log directory lists page 10h');
  // software reset: SRST set then cleared (control FISes)
  const ctl = (srst: boolean): Uint8Array => { const f = new Uint8Array(20); f[0] = A.FIS_REG_H2D; f[15] = srst ? A.FIS_CTL_SRST : 0; return f; };
  d.issue(0, 0, { cfis: ctl(true) });
  d.issue(0, 1, { cfis: ctl(false) });
  assert.equal(d.preg(0, A.P_CI), 0);
  assert.equal(d.preg(0, A.P_SIG), A.SIG_ATA);
});

test('DATA SET MANAGEMENT TRIM punches holes when the file system allows it', (t) => {
  const { d, path } = readyDisk();
  d.issue(0, 0, { cfis: h2d(A.ATA_IDENTIFY), prdt: [[DATA, 512]] });
  const trimOk = (d.ram(DATA + 169 * 2, 1)[0] & 1) === 1;
  if (!trimOk) { t.skip('no discard on this file system'); return; }
  const ranges = new DataView(d.ram(DATA, 512).buffer, d.ram(DATA, 512).byteOffset, 512);
  new Uint8Array(ranges.buffer, ranges.byteOffset, 512).fill(0);
  ranges.setUint32(0, 256, true); // LBA 256
  ranges.setUint16(6, 512, true); // 512 sectors = 256 KiB
  d.issue(0, 0, { cfis: h2d(A.ATA_DATA_SET_MANAGEMENT, { features: A.DSM_TRIM, count: 1 }), prdt: [[DATA, 512]], write: true });
  assert.equal(d.d2h(0).status, OK);
  const file = fs.readFileSync(path);
  assert.equal(file[256 * 512], 0);
  assert.equal(file[255 * 512], 255 & 0xff);
  assert.equal(file.length, SECTORS * 512);
});

test('with a doorbell, PxCI only records the command; the I/O thread runs it', () => {
  const { t, d, path } = readyDisk('', true);
  d.ram(DATA, 512).fill(0x77);
  d.issue(0, 0, { cfis: h2d(A.ATA_WRITE_DMA48, { lba: 9, count: 1 }), prdt: [[DATA, 512]], write: true });
  assert.equal(d.preg(0, A.P_CI), 1, 'nothing ran on the vCPU');
  assert.ok(t.rings > 0);
  assert.equal(fs.readFileSync(path)[9 * 512], 9);
  t.runIo();
  assert.equal(d.preg(0, A.P_CI), 0);
  assert.equal(fs.readFileSync(path)[9 * 512], 0x77);
  // the device lock is held again after the handler (it was released around the write)
  assert.equal(t.ctx.arena.words[0], 0);
  void CTBA;
});

test('without FIS receive, an error still holds the port (no endless retries)', () => {
  const { d } = readyDisk();
  d.setPreg(0, A.P_CMD, A.PCMD_SUD | A.PCMD_POD);
  d.setPreg(0, A.P_CMD, A.PCMD_SUD | A.PCMD_POD | A.PCMD_ST);
  d.issue(0, 0, { cfis: h2d(0xfe) });
  assert.ok(d.preg(0, A.P_IS) & A.PIS_TFES);
  assert.ok(d.preg(0, A.P_TFD) & A.ATA_S_ERROR);
  assert.equal(d.preg(0, A.P_CI), 1);
});
