/**
 * ATA commands of a SATA disk port (bhyve's ahci_handle_cmd): IDENTIFY,
 * READ/WRITE DMA (EXT), READ/WRITE FPDMA QUEUED (NCQ), the PIO and
 * MULTIPLE forms (moved through the PRDT like DMA), FLUSH CACHE (EXT),
 * DATA SET MANAGEMENT / SEND FPDMA QUEUED TRIM, READ LOG (DMA) EXT, SET
 * FEATURES, SET MULTIPLE MODE and the power-management no-ops.
 */
import { handlePacket } from './atapi.js';
import { ABORT_TFD, type Command } from './command.js';
import { checksum } from './identify.js';
import * as A from './regs.js';

const IDNF_TFD = ((A.ATA_E_ABORT | A.ATA_E_IDNF) << 8) | A.ATA_S_READY | A.ATA_S_ERROR;
const LOG_PAGE = 512;
const DSM_ENTRY = 8;

const WRITES = new Set([A.ATA_WRITE, A.ATA_WRITE48, A.ATA_WRITE_MUL, A.ATA_WRITE_MUL48, A.ATA_WRITE_DMA,
  A.ATA_WRITE_DMA48, A.ATA_WRITE_FPDMA_QUEUED]);
const LBA48 = new Set([A.ATA_READ48, A.ATA_WRITE48, A.ATA_READ_MUL48, A.ATA_WRITE_MUL48, A.ATA_READ_DMA48, A.ATA_WRITE_DMA48]);
const RW = new Set([...WRITES, ...LBA48, A.ATA_READ, A.ATA_READ_MUL, A.ATA_READ_DMA, A.ATA_READ_FPDMA_QUEUED]);
const NOOPS = new Set([A.ATA_STANDBY_CMD, A.ATA_STANDBY_IMMEDIATE, A.ATA_IDLE_CMD, A.ATA_IDLE_IMMEDIATE, A.ATA_SLEEP,
  A.ATA_READ_VERIFY, A.ATA_READ_VERIFY48]);

const lba48 = (f: Uint8Array): number => f[10] * 2 ** 40 + f[9] * 2 ** 32 + f[8] * 2 ** 24 + (f[6] << 16) + (f[5] << 8) + f[4];

export function handleAta(c: Command): void {
  const f = c.cfis, s = c.p.s;
  s.tfd = (s.tfd | A.ATA_S_BUSY) >>> 0;
  const code = f[2];
  if (RW.has(code)) return readWrite(c);
  switch (code) {
    case A.ATA_IDENTIFY:
      if (c.p.atapi || c.prds.length === 0) return c.abort();
      return identify(c);
    case A.ATA_ATAPI_IDENTIFY:
      if (!c.p.atapi || c.prds.length === 0) return c.abort();
      return identify(c);
    case A.ATA_PACKET_CMD:
      return c.p.atapi ? handlePacket(c) : c.abort();
    case A.ATA_SETFEATURES: return setFeatures(c);
    case A.ATA_SET_MULTI: {
      const n = f[12];
      if (n !== 0 && (n > 128 || (n & (n - 1)) !== 0)) return c.abort();
      s.multSectors = n;
      return c.ok();
    }
    case A.ATA_FLUSHCACHE:
    case A.ATA_FLUSHCACHE48: return flush(c);
    case A.ATA_DATA_SET_MANAGEMENT:
      if (f[11] === 0 && f[3] === A.DSM_TRIM && f[13] === 0 && f[12] === 1) return trim(c);
      return c.abort();
    case A.ATA_SEND_FPDMA_QUEUED:
      if ((f[13] & 0x1f) === A.SFPDMA_DSM && f[17] === 0 && f[16] === A.DSM_TRIM && f[11] === 0 && f[3] === 1) return trim(c);
      return c.abort();
    case A.ATA_READ_LOG_EXT:
    case A.ATA_READ_LOG_DMA_EXT: return readLog(c);
    case A.ATA_CHECK_POWER_MODE: return c.done(A.OK_STATUS, 0xff);
    default:
      if (NOOPS.has(code) && !c.p.atapi) return c.ok();
      return c.abort(); // NOP, SMART, SECURITY FREEZE LOCK and everything unknown
  }
}

function identify(c: Command): void {
  c.p.pioSetup();
  if (!c.dataIn(c.host.identify(c.p))) return c.abort();
  c.ok();
}

function setFeatures(c: Command): void {
  const f = c.cfis;
  switch (f[3]) {
    case A.SF_ENAB_SATA_SF:
    case A.SF_DIS_SATA_SF:
      return f[12] === A.SATA_SF_AN ? c.ok() : c.abort();
    case A.SF_ENAB_WCACHE:
    case A.SF_DIS_WCACHE:
    case A.SF_ENAB_RCACHE:
    case A.SF_DIS_RCACHE:
      return c.ok();
    case A.SF_SETXFER: {
      const cls = f[12] & 0xf8;
      if (cls === A.XFER_WDMA0 || cls === A.XFER_UDMA0) c.p.s.xfermode = f[12];
      else if (cls !== A.XFER_PIO && cls !== A.XFER_PIO0) return c.abort();
      return c.ok();
    }
    default:
      return c.abort();
  }
}

function readWrite(c: Command): void {
  const f = c.cfis, code = f[2];
  const b = c.host.backend(c.p);
  if (!b || c.p.atapi) return c.abort();
  let lba: number, count: number;
  if (code === A.ATA_READ_FPDMA_QUEUED || code === A.ATA_WRITE_FPDMA_QUEUED) {
    lba = lba48(f);
    count = (f[11] << 8) | f[3] || 65536;
  } else if (LBA48.has(code)) {
    lba = lba48(f);
    count = (f[13] << 8) | f[12] || 65536;
  } else {
    lba = ((f[7] & 0xf) << 24) | (f[6] << 16) | (f[5] << 8) | f[4];
    count = f[12] || 256;
  }
  const write = WRITES.has(code);
  const ss = b.logicalSectorSize;
  const offset = lba * ss, bytes = count * ss;
  const fail = (tfd: number): void => (c.ncq ? failNcq(c, tfd) : c.done(tfd));
  if (offset + bytes > b.size) return fail(IDNF_TFD);
  if (write && b.readonly) return fail(ABORT_TFD);
  const sg = c.sg(bytes, !write);
  if (!sg) return fail(ABORT_TFD);
  if (c.ncq) c.p.d2hNcq(c.slot);
  const ok = c.runIo(() => (write ? b.writev(offset, sg.views) : b.readv(offset, sg.views)));
  finish(c, ok, sg.bytes);
}

/** An NCQ command refused before it was queued: release the bus, then report the error by SDB. */
function failNcq(c: Command, tfd: number): void {
  c.p.d2hNcq(c.slot);
  c.doneNcq(tfd);
}

/** Complete after host I/O (bhyve's ata_ioreq_cb), unless a reset made the command stale. */
function finish(c: Command, ok: boolean, bytes: number): void {
  if (!c.stale) {
    if (ok) c.setPrdbc(bytes);
    const tfd = ok ? A.OK_STATUS : ABORT_TFD;
    if (c.ncq) c.doneNcq(tfd); else c.done(tfd);
  }
  c.p.checkStopped();
}

function flush(c: Command): void {
  const b = c.host.backend(c.p);
  if (!b) return c.abort();
  const ok = c.runIo(() => b.flush());
  finish(c, ok, 0);
}

function trim(c: Command): void {
  const f = c.cfis;
  const b = c.host.backend(c.p);
  const blocks = c.ncq ? (f[11] << 8) | f[3] : (f[13] << 8) | f[12];
  const fail = (tfd: number): void => (c.ncq ? failNcq(c, tfd) : c.done(tfd));
  if (!b || b.readonly || !b.canDiscard) return fail(ABORT_TFD);
  const ranges = c.dataOut(Math.min(blocks * 512, LOG_PAGE));
  if (!ranges) return fail(ABORT_TFD);
  const dv = new DataView(ranges.buffer);
  const ss = b.logicalSectorSize;
  const work: [number, number][] = [];
  for (let o = 0; o + DSM_ENTRY <= ranges.length; o += DSM_ENTRY) {
    const lba = dv.getUint16(o + 4, true) * 2 ** 32 + dv.getUint32(o, true);
    const len = dv.getUint16(o + 6, true);
    if (len === 0) continue;
    if ((lba + len) * ss > b.size) return fail(IDNF_TFD);
    work.push([lba * ss, len * ss]);
  }
  if (c.ncq) c.p.d2hNcq(c.slot);
  const ok = c.runIo(() => { for (const [off, len] of work) b.discard(off, len); });
  finish(c, ok, 0);
}

function readLog(c: Command): void {
  const f = c.cfis;
  if (c.p.atapi || c.prds.length === 0 || f[5] !== 0 || f[9] !== 0 || f[12] !== 1 || f[13] !== 0) return c.abort();
  const buf = new Uint8Array(LOG_PAGE);
  const dv = new DataView(buf.buffer);
  const b = c.host.backend(c.p);
  switch (f[4]) {
    case 0x00: // log directory: version 1; one page each of logs 10h and 13h
      dv.setUint16(0x00, 1, true);
      dv.setUint16(0x10 * 2, 1, true);
      dv.setUint16(0x13 * 2, 1, true);
      break;
    case 0x10: // NCQ command error log
      buf.set(c.p.errCfis);
      checksum(buf);
      break;
    case 0x13: // SATA NCQ send and receive log: DSM TRIM through SEND FPDMA QUEUED
      if (b && b.canDiscard && !b.readonly) {
        dv.setUint32(0, 1, true);
        dv.setUint32(4, 1, true);
      }
      break;
    default:
      return c.abort();
  }
  if (f[2] === A.ATA_READ_LOG_EXT) c.p.pioSetup();
  if (!c.dataIn(buf)) return c.abort();
  c.ok();
}
