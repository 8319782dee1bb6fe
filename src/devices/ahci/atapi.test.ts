import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DATA, Driver, h2d, makeAhci, tmpFile } from './ahci-test-ctx.js';
import * as A from './regs.js';

const BLOCKS = 64;
const OK = A.ATA_S_READY | A.ATA_S_DSC;

function readyCd() {
  const iso = tmpFile('cd.iso', BLOCKS * 2048, (b) => { for (let i = 0; i < b.length; i++) b[i] = (i >> 11) & 0xff; });
  const t = makeAhci('ahci-cd', iso);
  const d = new Driver(t);
  d.start(0);
  const packet = (acmd: number[], len = 512): { status: number; error: number; count: number; data: Uint8Array } => {
    const cdb = [...acmd, ...new Array(16 - acmd.length).fill(0)];
    d.issue(0, 0, { cfis: h2d(A.ATA_PACKET_CMD, { features: 1 }), acmd: cdb, prdt: [[DATA, len]] });
    const r = d.d2h(0);
    if (r.status & A.ATA_S_ERROR) d.restart(0);
    return { ...r, data: d.ram(DATA, len) };
  };
  return { t, d, packet };
}

const be32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

test('IDENTIFY PACKET DEVICE answers; IDENTIFY DEVICE aborts (as SeaBIOS probes)', () => {
  const { d } = readyCd();
  d.issue(0, 0, { cfis: h2d(A.ATA_IDENTIFY), prdt: [[DATA, 512]] });
  assert.ok(d.d2h(0).status & A.ATA_S_ERROR);
  d.restart(0);
  d.issue(0, 0, { cfis: h2d(A.ATA_ATAPI_IDENTIFY), prdt: [[DATA, 512]] });
  assert.equal(d.d2h(0).status, OK);
  const id = d.ram(DATA, 2);
  assert.equal(id[1] & 0xc0, 0x80, 'ATAPI device');
  assert.equal(id[1] & 0x1f, 0x05, 'CD-ROM');
});

test('TEST UNIT READY, INQUIRY, READ CAPACITY', () => {
  const { packet } = readyCd();
  assert.equal(packet([A.SCSI_TEST_UNIT_READY]).status, OK);
  const inq = packet([A.SCSI_INQUIRY, 0, 0, 0, 36]);
  assert.equal(inq.status, OK);
  assert.equal(inq.data[0], 0x05);
  assert.equal(Buffer.from(inq.data.subarray(16, 29)).toString(), 'BHYVE DVD-ROM');
  const cap = packet([A.SCSI_READ_CAPACITY]);
  assert.equal(be32(cap.data, 0), BLOCKS - 1);
  assert.equal(be32(cap.data, 4), 2048);
});

test('READ(10) and READ(12) move 2048-byte blocks; PRDBC counts them', () => {
  const { d, packet } = readyCd();
  const r = packet([A.SCSI_READ_10, 0, 0, 0, 0, 5, 0, 0, 2], 4096);
  assert.equal(r.status, OK);
  assert.equal(r.count, A.ATA_I_CMD | A.ATA_I_IN, "interrupt reason: command done, to host");
  assert.equal(r.data[0], 5);
  assert.equal(r.data[2048], 6);
  assert.equal(d.prdbc(0, 0), 4096);
  const r12 = packet([A.SCSI_READ_12, 0, 0, 0, 0, BLOCKS - 1, 0, 0, 0, 1], 2048);
  assert.equal(r12.data[0], BLOCKS - 1);
});

test('errors carry sense data: out of range, unknown opcode; REQUEST SENSE reports then clears', () => {
  const { packet } = readyCd();
  const bad = packet([A.SCSI_READ_10, 0, 0, 0, 0, BLOCKS - 1, 0, 0, 2], 4096);
  assert.ok(bad.status & A.ATA_S_ERROR);
  assert.equal(bad.error >> 4, A.SENSE_ILLEGAL_REQUEST);
  let s = packet([A.SCSI_REQUEST_SENSE, 0, 0, 0, 18]);
  assert.equal(s.data[2], A.SENSE_ILLEGAL_REQUEST);
  assert.equal(s.data[12], A.ASC_LBA_OUT_OF_RANGE);
  s = packet([A.SCSI_REQUEST_SENSE, 0, 0, 0, 18]);
  assert.equal(s.data[2], 0);
  const unk = packet([0xff]);
  assert.equal(unk.error >> 4, A.SENSE_ILLEGAL_REQUEST);
  assert.equal(packet([A.SCSI_REQUEST_SENSE, 0, 0, 0, 18]).data[12], A.ASC_INVALID_OPCODE);
  // packets on a disk port abort
  const hd = makeAhci('ahci-hd', tmpFile('d.img', 4096));
  const dd = new Driver(hd);
  dd.start(0);
  dd.issue(0, 0, { cfis: h2d(A.ATA_PACKET_CMD), acmd: new Array(16).fill(0), prdt: [[DATA, 512]] });
  assert.ok(dd.d2h(0).status & A.ATA_S_ERROR);
});

test('READ TOC (LBA and MSF), MODE SENSE, GET CONFIGURATION, GET EVENT STATUS, START STOP', () => {
  const { packet } = readyCd();
  const toc = packet([A.SCSI_READ_TOC, 0, 0, 0, 0, 0, 0, 0x03, 0x24]);
  assert.equal(toc.status, OK);
  assert.equal((toc.data[0] << 8) | toc.data[1], 18);
  assert.equal(toc.data[6], 1, 'track 1');
  assert.equal(toc.data[14], 0xaa, 'lead-out');
  assert.equal(be32(toc.data, 16), BLOCKS);
  const msf = packet([A.SCSI_READ_TOC, 2, 0, 0, 0, 0, 0, 0x03, 0x24]);
  assert.deepEqual([...msf.data.subarray(9, 12)], [0, 2, 0], 'track 1 at 00:02:00');
  const ms = packet([A.SCSI_MODE_SENSE_10, 0, 0x2a, 0, 0, 0, 0, 0, 30]);
  assert.equal(ms.data[8], 0x2a);
  assert.ok(packet([A.SCSI_MODE_SENSE_10, 0, 0x3f]).status & A.ATA_S_ERROR);
  const gc = packet([A.SCSI_GET_CONFIGURATION, 0, 0, 0, 0, 0, 0, 0x02, 0]);
  assert.equal(gc.status, OK);
  assert.equal((gc.data[6] << 8) | gc.data[7], 0x0008, 'current profile: CD-ROM');
  assert.equal(be32(gc.data, 0) + 4 <= 512, true);
  const one = packet([A.SCSI_GET_CONFIGURATION, 2, 0, 1, 0, 0, 0, 0x02, 0]);
  assert.equal((one.data[8] << 8) | one.data[9], 0x0001, 'RT=2 returns the core feature only');
  const ev = packet([A.SCSI_GET_EVENT_STATUS, 1, 0, 0, 0x10, 0, 0, 0, 8]);
  assert.equal(ev.data[5], 0x02, 'media present');
  assert.equal(packet([A.SCSI_START_STOP_UNIT, 0, 0, 0, 1]).status, OK);
  assert.ok(packet([A.SCSI_START_STOP_UNIT, 0, 0, 0, 2]).status & A.ATA_S_ERROR, 'eject refused');
  assert.equal(packet([A.SCSI_PREVENT_ALLOW, 0, 0, 0, 1]).status, OK);
});

test('a CD image is opened read-only and shared', () => {
  const iso = tmpFile('shared.iso', 2048 * 4);
  makeAhci('ahci-cd', iso);
  assert.doesNotThrow(() => makeAhci('ahci-cd', iso));
});
