/**
 * The 512-byte IDENTIFY (PACKET) DEVICE data of a port, with the fields
 * bhyve's ata_identify_init fills: a SATA disk with 48-bit LBA, NCQ (32
 * tags), FLUSH CACHE (EXT), TRIM when the back-end can discard, the
 * logical/physical sector sizes of `sectorsize=`; or an ATAPI CD/DVD drive.
 */
import { XFER_UDMA0, XFER_WDMA0 } from './regs.js';

export interface IdentifyParams {
  atapi: boolean;
  /** Image size in bytes and logical/physical sector sizes (disks). */
  size: number;
  logical: number;
  physical: number;
  readonly: boolean;
  canDiscard: boolean;
  serial: string;
  revision: string;
  model: string;
  /** Nominal media rotation rate (bhyve's nmrr), 0 when unset. */
  rotationRate: number;
  /** The current transfer mode (SET FEATURES / SETXFER value). */
  xfermode: number;
  /** READ/WRITE MULTIPLE sectors per block (0 = off). */
  multSectors: number;
  /** PxSSTS, for the current interface speed. */
  ssts: number;
}

// Word indices and bits (ATA8-ACS, as FreeBSD's struct ata_params names them).
const W_CONFIG = 0, W_CYLS = 1, W_HEADS = 3, W_SECTORS = 6, W_SERIAL = 10, W_REVISION = 23, W_MODEL = 27;
const W_SECTORS_INTR = 47, W_CAP1 = 49, W_CAP2 = 50, W_ATAVALID = 53, W_MULTI = 59, W_LBA28 = 60;
const W_OBSOLETE62 = 62, W_MWDMA = 63, W_APIO = 64, W_MWDMAMIN = 65, W_MWDMAREC = 66, W_PIOBLIND = 67, W_PIOIORDY = 68;
const W_SUPPORT3 = 69, W_QUEUE = 75, W_SATACAP = 76, W_SATACAP2 = 77, W_SATASUPPORT = 78;
const W_VER_MAJOR = 80, W_VER_MINOR = 81, W_CMD1 = 82, W_CMD2 = 83, W_EXT = 84, W_EN_CMD1 = 85, W_EN_CMD2 = 86, W_EN_EXT = 87;
const W_UDMA = 88, W_LBA48 = 100, W_DSM_BLOCKS = 105, W_PSS = 106, W_LSS = 117, W_SUPPORT2 = 119, W_ENABLED2 = 120;
const W_SUPPORT_DSM = 169, W_LSALIGN = 209, W_ROTATION = 217, W_TRANSPORT = 222, W_INTEGRITY = 255;

const CFG_DRQ_FAST = 0x0040, CFG_ATAPI = 0x8000, CFG_CDROM = 0x0500, CFG_REMOVABLE = 0x0080;
const CAP1_DMA = 0x0100, CAP1_LBA = 0x0200, CAP1_IORDY = 0x0800;
const VALID_64_70 = 0x0002, VALID_88 = 0x0004, MULTI_VALID = 0x0100;
const SATA_GEN123 = 0x000e, SATA_NCQ = 0x0100, SATA_RCVSND_FPDMA = 0x0040, SATA_NCQ_STREAM = 0x0010;
const CMD1_POWERMGT = 0x0008, CMD1_PACKET = 0x0010, CMD1_WRITECACHE = 0x0020, CMD1_LOOKAHEAD = 0x0040;
const CMD1_RESET = 0x0200, CMD1_NOP = 0x4000;
const CMD2_ADDRESS48 = 0x0400, CMD2_FLUSHCACHE = 0x1000, CMD2_FLUSHCACHE48 = 0x2000, BIT14 = 0x4000, BIT15 = 0x8000;
const SUP3_RZAT = 0x0020, SUP3_DRAT = 0x4000, DSM_TRIM_SUPPORTED = 0x0001;
const PSS_VALID = 0x4000, PSS_MULTLS = 0x2000, PSS_LSS_ABOVE_512 = 0x1000, SUP2_RWLOGDMAEXT = 0x0008;
const INTEGRITY_SIG = 0xa5;
const TIMING_120NS = 0x0078;

/** ATA strings: space-padded, bytes swapped within each word. */
export function ataString(out: Uint8Array, byteOff: number, s: string, len: number): void {
  for (let i = 0; i < len; i++) out[byteOff + (i ^ 1)] = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
}

/** bhyve's blockif_chs: the VHD specification's virtual geometry. */
export function chs(sectorCount: number): { cyls: number; heads: number; secs: number } {
  const total = Math.min(sectorCount, 65535 * 16 * 255);
  let secs: number, heads: number, hcyl: number;
  if (total >= 65536 * 16 * 63) {
    secs = 255; heads = 16; hcyl = Math.floor(total / secs);
  } else {
    secs = 17; hcyl = Math.floor(total / secs);
    heads = Math.max(4, Math.floor((hcyl + 1023) / 1024));
    if (hcyl >= heads * 1024 || heads > 16) { secs = 31; heads = 16; hcyl = Math.floor(total / secs); }
    if (hcyl >= heads * 1024) { secs = 63; heads = 16; hcyl = Math.floor(total / secs); }
  }
  return { cyls: Math.floor(hcyl / heads), heads, secs };
}

export function buildIdentify(p: IdentifyParams): Uint8Array {
  const buf = new Uint8Array(512);
  const dv = new DataView(buf.buffer);
  const w = (i: number, v: number): void => dv.setUint16(i * 2, v & 0xffff, true);
  ataString(buf, W_SERIAL * 2, p.serial, 20);
  ataString(buf, W_REVISION * 2, p.revision, 8);
  ataString(buf, W_MODEL * 2, p.model, 40);
  if (p.rotationRate) w(W_ROTATION, p.rotationRate);
  const mwdma = 0x7 | ((p.xfermode & 0xf8) === XFER_WDMA0 ? 1 << ((p.xfermode & 7) + 8) : 0);
  const udma = 0x7f | ((p.xfermode & 0xf8) === XFER_UDMA0 ? 1 << ((p.xfermode & 7) + 8) : 0);
  w(W_CAP2, BIT14);
  w(W_ATAVALID, VALID_64_70 | VALID_88);
  w(W_MWDMA, mwdma);
  w(W_APIO, 0x3);
  for (const i of [W_MWDMAMIN, W_MWDMAREC, W_PIOBLIND, W_PIOIORDY]) w(i, TIMING_120NS);
  w(W_VER_MAJOR, 0x3f0);
  w(W_EXT, BIT14);
  w(W_EN_EXT, BIT14);
  w(W_UDMA, udma);
  w(W_TRANSPORT, 0x1020);
  const speed = (p.ssts & 0xf0) >> 3;
  if (p.atapi) {
    w(W_CONFIG, CFG_ATAPI | CFG_CDROM | CFG_REMOVABLE | CFG_DRQ_FAST);
    w(W_CAP1, CAP1_LBA | CAP1_DMA);
    w(W_CAP2, BIT14 | 1);
    w(W_OBSOLETE62, 0x3f);
    w(W_SATACAP, SATA_GEN123);
    w(W_SATACAP2, speed);
    w(W_SATASUPPORT, SATA_NCQ_STREAM);
    const cmd1 = CMD1_POWERMGT | CMD1_PACKET | CMD1_RESET | CMD1_NOP;
    w(W_CMD1, cmd1);
    w(W_CMD2, BIT14);
    w(W_EN_CMD1, cmd1);
  } else {
    const sectors = Math.floor(p.size / p.logical);
    const g = chs(sectors);
    w(W_CONFIG, CFG_DRQ_FAST);
    w(W_CYLS, g.cyls);
    w(W_HEADS, g.heads);
    w(W_SECTORS, g.secs);
    w(W_SECTORS_INTR, 0x8000 | 128);
    w(W_CAP1, CAP1_DMA | CAP1_LBA | CAP1_IORDY);
    if (p.multSectors) w(W_MULTI, MULTI_VALID | p.multSectors);
    const lba28 = sectors <= 0x0fffffff ? sectors : 0x0fffffff;
    w(W_LBA28, lba28);
    w(W_LBA28 + 1, lba28 >>> 16);
    w(W_QUEUE, 31);
    w(W_SATACAP, SATA_GEN123 | SATA_NCQ);
    w(W_SATACAP2, SATA_RCVSND_FPDMA | speed);
    w(W_VER_MINOR, 0x28);
    const cmd1 = CMD1_POWERMGT | CMD1_WRITECACHE | CMD1_LOOKAHEAD | CMD1_NOP;
    const cmd2 = CMD2_ADDRESS48 | CMD2_FLUSHCACHE | CMD2_FLUSHCACHE48;
    w(W_CMD1, cmd1);
    w(W_CMD2, cmd2 | BIT14);
    w(W_EN_CMD1, cmd1);
    w(W_EN_CMD2, cmd2 | BIT15);
    for (let i = 0; i < 4; i++) w(W_LBA48 + i, Math.floor(sectors / 2 ** (16 * i)));
    if (p.canDiscard && !p.readonly) {
      w(W_SUPPORT3, SUP3_RZAT | SUP3_DRAT);
      w(W_DSM_BLOCKS, 1);
      w(W_SUPPORT_DSM, DSM_TRIM_SUPPORTED);
    }
    let pss = PSS_VALID;
    if (p.physical > p.logical) pss |= PSS_MULTLS | Math.log2(p.physical / p.logical);
    if (p.logical > 512) {
      pss |= PSS_LSS_ABOVE_512;
      w(W_LSS, p.logical / 2);
      w(W_LSS + 1, (p.logical / 2) >>> 16);
    }
    w(W_PSS, pss);
    w(W_LSALIGN, 0x4000);
    w(W_SUPPORT2, SUP2_RWLOGDMAEXT | BIT14);
    w(W_ENABLED2, SUP2_RWLOGDMAEXT | BIT14);
  }
  w(W_INTEGRITY, INTEGRITY_SIG);
  checksum(buf);
  return buf;
}

/** The last byte makes the 512-byte sum zero. */
export function checksum(buf: Uint8Array): void {
  let sum = 0;
  for (let i = 0; i < buf.length - 1; i++) sum += buf[i];
  buf[buf.length - 1] = (0x100 - (sum & 0xff)) & 0xff;
}
