/**
 * ATAPI (PACKET) commands of a CD/DVD port, reading an ISO image in
 * 2048-byte blocks: TEST UNIT READY, INQUIRY, READ CAPACITY, READ(10/12),
 * READ TOC (formats 0-2), MODE SENSE(10), REQUEST SENSE, GET CONFIGURATION,
 * GET EVENT STATUS NOTIFICATION, START STOP UNIT, PREVENT ALLOW MEDIUM
 * REMOVAL, REPORT LUNS (bhyve's set, plus GET CONFIGURATION).
 */
import type { Command } from './command.js';
import * as A from './regs.js';
import { getConfiguration, modeSense, readToc } from './mmc.js';

/** The interrupt reason of a completed packet command: command, to host. */
const PACKET_DONE = A.ATA_I_CMD | A.ATA_I_IN;
const ASC_MEDIUM_ERROR = 0x11;
const SENSE_MEDIUM_ERROR = 0x3;

const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
const be32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

export function packetOk(c: Command): void {
  c.done(A.OK_STATUS, PACKET_DONE);
}

/** Fail with sense data (the error register carries the sense key). */
export function packetError(c: Command, key: number, asc: number): void {
  c.p.s.senseKey = key;
  c.p.s.asc = asc;
  c.done((key << 12) | A.ATA_S_READY | A.ATA_S_ERROR, PACKET_DONE);
}

/** Send up to `alloc` bytes of `data` to the host and complete. */
export function packetData(c: Command, data: Uint8Array, alloc: number): void {
  if (!c.dataIn(data.subarray(0, Math.min(alloc, data.length)))) {
    return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD);
  }
  packetOk(c);
}

export function handlePacket(c: Command): void {
  const a = c.acmd;
  switch (a[0]) {
    case A.SCSI_TEST_UNIT_READY:
    case A.SCSI_PREVENT_ALLOW:
      return packetOk(c);
    case A.SCSI_INQUIRY: return inquiry(c);
    case A.SCSI_READ_CAPACITY: {
      const buf = new Uint8Array(8);
      const dv = new DataView(buf.buffer);
      dv.setUint32(0, Math.max(blocks(c) - 1, 0));
      dv.setUint32(4, A.CD_SECTOR);
      return packetData(c, buf, buf.length);
    }
    case A.SCSI_READ_10:
    case A.SCSI_READ_12: return read(c);
    case A.SCSI_READ_TOC: return readToc(c, blocks(c));
    case A.SCSI_REPORT_LUNS: {
      const buf = new Uint8Array(16);
      buf[3] = 8; // one LUN (0)
      return packetData(c, buf, be32(a, 6));
    }
    case A.SCSI_REQUEST_SENSE: {
      const buf = new Uint8Array(18);
      buf[0] = 0x70 | 0x80; // current error, valid
      buf[2] = c.p.s.senseKey;
      buf[7] = 10;
      buf[12] = c.p.s.asc;
      c.p.s.senseKey = A.SENSE_NONE;
      c.p.s.asc = 0;
      return packetData(c, buf, a[4]);
    }
    case A.SCSI_START_STOP_UNIT:
      if ((a[4] & 3) === 2) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_MEDIUM_REMOVAL_PREVENTED);
      return packetOk(c);
    case A.SCSI_MODE_SENSE_10: return modeSense(c);
    case A.SCSI_GET_CONFIGURATION: return getConfiguration(c, blocks(c));
    case A.SCSI_GET_EVENT_STATUS: {
      if (!(a[1] & 1)) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD); // polled only
      const buf = new Uint8Array(8);
      buf[1] = 6; // event data length
      buf[2] = 0x04; // media class
      buf[3] = 0x10; // supported: media
      buf[5] = 0x02; // media present, tray closed
      return packetData(c, buf, be16(a, 7));
    }
    default:
      return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_OPCODE);
  }
}

function blocks(c: Command): number {
  const b = c.host.backend(c.p);
  return b ? Math.floor(b.size / A.CD_SECTOR) : 0;
}

function inquiry(c: Command): void {
  const a = c.acmd;
  if (a[1] & 1) { // vital product data: only the list of supported pages
    if (a[2] !== 0) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD);
    return packetData(c, Uint8Array.of(0x05, 0, 0, 1, 0), a[4]);
  }
  const buf = new Uint8Array(36);
  buf[0] = 0x05; // CD/DVD device
  buf[1] = 0x80; // removable
  buf[3] = 0x21; // response format 2
  buf[4] = 31; // additional length
  atapiString(buf, 8, 'BHYVE', 8);
  atapiString(buf, 16, 'BHYVE DVD-ROM', 16);
  atapiString(buf, 32, '001', 4);
  packetData(c, buf, a[4]);
}

/** SCSI strings: space-padded, not byte-swapped. */
function atapiString(out: Uint8Array, off: number, s: string, len: number): void {
  for (let i = 0; i < len; i++) out[off + i] = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
}

function read(c: Command): void {
  const a = c.acmd;
  const lba = be32(a, 2);
  const count = a[0] === A.SCSI_READ_10 ? be16(a, 7) : be32(a, 6);
  if (count === 0) return packetOk(c);
  const b = c.host.backend(c.p);
  if (!b) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_LBA_OUT_OF_RANGE);
  if (lba + count > blocks(c)) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_LBA_OUT_OF_RANGE);
  const sg = c.sg(count * A.CD_SECTOR, true);
  if (!sg) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD);
  const ok = c.runIo(() => b.readv(lba * A.CD_SECTOR, sg.views));
  if (!c.stale) {
    if (ok) {
      c.setPrdbc(sg.bytes);
      packetOk(c);
    } else {
      packetError(c, SENSE_MEDIUM_ERROR, ASC_MEDIUM_ERROR);
    }
  }
  c.p.checkStopped();
}
