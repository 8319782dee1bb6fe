/**
 * The larger MMC replies of the CD/DVD port: READ TOC/PMA/ATIP (formatted
 * TOC, session info, raw TOC: one data track), MODE SENSE(10) pages 01h
 * and 2Ah, and GET CONFIGURATION (profile list, core, removable medium,
 * random readable, CD read, DVD read).
 */
import { packetData, packetError } from './atapi.js';
import type { Command } from './command.js';
import * as A from './regs.js';

/** A data track, digital copy permitted (ADR 1, control 4). */
const ADR_CONTROL = 0x14;
const LEAD_OUT = 0xaa;
const MODEPAGE_RW_ERROR_RECOVERY = 0x01;
const MODEPAGE_CD_CAPABILITIES = 0x2a;
/** Larger than a CD holds: call the medium a DVD. */
const CD_MAX_BLOCKS = 450_000;
const PROFILE_CDROM = 0x0008, PROFILE_DVDROM = 0x0010;
const FEATURE_PROFILES = 0x0000, FEATURE_CORE = 0x0001, FEATURE_REMOVABLE = 0x0003, FEATURE_RANDOM_READ = 0x0010;
const FEATURE_CD_READ = 0x001e, FEATURE_DVD_READ = 0x001f;

const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];

/** Logical block -> minute/second/frame (with the 2-second pre-gap). */
function msf(lba: number): number[] {
  const f = lba + 150;
  return [Math.floor(f / 75 / 60) & 0xff, Math.floor(f / 75) % 60, f % 75];
}

/** A 4-byte address field, as LBA or as 0/M/S/F. */
function addr(lba: number, useMsf: boolean): number[] {
  if (useMsf) return [0, ...msf(lba)];
  return [(lba >>> 24) & 0xff, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff];
}

function withLength(body: number[]): Uint8Array {
  return Uint8Array.from([(body.length >> 8) & 0xff, body.length & 0xff, ...body]);
}

export function readToc(c: Command, blocks: number): void {
  const a = c.acmd;
  const alloc = be16(a, 7);
  const useMsf = (a[1] & 2) !== 0;
  const format = (a[2] & 0xf) || (a[9] >> 6);
  switch (format) {
    case 0: { // formatted TOC: track 1 and the lead-out
      const start = a[6];
      if (start > 1 && start !== LEAD_OUT) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD);
      const body = [1, 1];
      if (start <= 1) body.push(0, ADR_CONTROL, 1, 0, ...addr(0, useMsf));
      body.push(0, ADR_CONTROL, LEAD_OUT, 0, ...addr(blocks, useMsf));
      return packetData(c, withLength(body), alloc);
    }
    case 1: // session information: one session, starting at track 1, LBA 0
      return packetData(c, withLength([1, 1, 0, ADR_CONTROL, 1, 0, 0, 0, 0, 0]), alloc);
    case 2: { // raw TOC: points A0 (first track), A1 (last track), A2 (lead-out), track 1
      const d = (point: number, pmin: number[]): number[] => [1, ADR_CONTROL, 0, point, 0, 0, 0, 0, ...pmin];
      const body = [1, 1, ...d(0xa0, [1, 0, 0]), ...d(0xa1, [1, 0, 0]), ...d(0xa2, useMsf ? msf(blocks) : addr(blocks, false).slice(1)),
        ...d(1, useMsf ? msf(0) : [0, 0, 0])];
      return packetData(c, withLength(body), alloc);
    }
    default:
      return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD);
  }
}

export function modeSense(c: Command): void {
  const a = c.acmd;
  const alloc = be16(a, 7);
  const pc = a[2] >> 6, code = a[2] & 0x3f;
  if (pc === 3) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_SAVING_NOT_SUPPORTED);
  if (pc !== 0) return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD);
  let buf: Uint8Array;
  if (code === MODEPAGE_RW_ERROR_RECOVERY) {
    buf = new Uint8Array(16);
    buf[8] = MODEPAGE_RW_ERROR_RECOVERY;
    buf[9] = 6;
    buf[11] = 0x05; // read retry count
  } else if (code === MODEPAGE_CD_CAPABILITIES) {
    buf = new Uint8Array(30);
    buf[8] = MODEPAGE_CD_CAPABILITIES;
    buf[9] = 20;
    buf[10] = 0x08; // reads DVD-ROM
    buf[12] = 0x71; // audio play, composite, digital ports, multi-session
    new DataView(buf.buffer).setUint16(18, 2); // volume levels
    new DataView(buf.buffer).setUint16(20, 512); // buffer size (KiB)
  } else {
    return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD);
  }
  new DataView(buf.buffer).setUint16(0, buf.length - 2);
  buf[2] = 0x70; // medium type: door closed, no disc... (as bhyve)
  packetData(c, buf, alloc);
}

export function getConfiguration(c: Command, blocks: number): void {
  const a = c.acmd;
  const rt = a[1] & 3, start = be16(a, 2), alloc = be16(a, 7);
  const dvd = blocks > CD_MAX_BLOCKS;
  const current = dvd ? PROFILE_DVDROM : PROFILE_CDROM;
  const feature = (code: number, data: number[], cur = true): number[] =>
    [code >> 8, code & 0xff, (cur ? 1 : 0) | 0x02 /* persistent */, data.length, ...data];
  const profile = (p: number): number[] => [p >> 8, p & 0xff, p === current ? 1 : 0, 0];
  const all: [number, number[]][] = [
    [FEATURE_PROFILES, feature(FEATURE_PROFILES, [...profile(PROFILE_DVDROM), ...profile(PROFILE_CDROM)])],
    [FEATURE_CORE, feature(FEATURE_CORE, [0, 0, 0, 2 /* ATAPI */, 0, 0, 0, 0])],
    [FEATURE_REMOVABLE, feature(FEATURE_REMOVABLE, [0x29 /* tray, eject, lock */, 0, 0, 0])],
    [FEATURE_RANDOM_READ, feature(FEATURE_RANDOM_READ, [0, 0, 0x08, 0, 0, 1, 0, 0])],
    [FEATURE_CD_READ, feature(FEATURE_CD_READ, [0, 0, 0, 0], !dvd)],
    [FEATURE_DVD_READ, feature(FEATURE_DVD_READ, [0, 0, 0, 0], dvd)],
  ];
  let chosen: number[][];
  if (rt === 2) chosen = all.filter(([code]) => code === start).map(([, d]) => d);
  else if (rt === 1) chosen = all.filter(([code, d]) => code >= start && (d[2] & 1) === 1).map(([, d]) => d);
  else if (rt === 0) chosen = all.filter(([code]) => code >= start).map(([, d]) => d);
  else return packetError(c, A.SENSE_ILLEGAL_REQUEST, A.ASC_INVALID_FIELD);
  const body = chosen.flat();
  const len = 4 + body.length; // data length counts from byte 4
  const buf = Uint8Array.from([(len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, 0, 0,
    current >> 8, current & 0xff, ...body]);
  packetData(c, buf, alloc);
}
