/**
 * One AHCI port: its registers (PxCLB ... PxFBS) and the device-side state
 * bhyve keeps per port, all in the shared arena; register reads and writes,
 * port reset, and the FISes the device posts to the received-FIS area.
 */
import type { MachineContext } from '../../vmm/context.js';
import * as A from './regs.js';

export type PortKind = 'hd' | 'cd';

/** What a port needs from its HBA. */
export interface PortHost {
  readonly ctx: MachineContext;
  /** PxIS & PxIE changed: raise the HBA interrupt as needed. */
  portIntr(port: AhciPort): void;
  /** Commands may be ready: wake the command engine. */
  kick(): void;
}

const REG_FIELDS = {
  clb: 'u32', clbu: 'u32', fb: 'u32', fbu: 'u32', is: 'u32', ie: 'u32', cmd: 'u32', tfd: 'u32', sig: 'u32',
  ssts: 'u32', sctl: 'u32', serr: 'u32', sact: 'u32', ci: 'u32', sntf: 'u32', fbs: 'u32',
  /** Slots being executed by the engine (their CI/SACT bits stay set until done). */
  pending: 'u32',
  /** The current command slot the engine scans from. */
  ccs: 'u32',
  /** A task-file error is waiting for the guest to stop the port. */
  waitforclear: 'u32',
  /** Software reset asserted (SRST seen in a control FIS). */
  reset: 'u32',
  xfermode: 'u32',
  multSectors: 'u32',
  senseKey: 'u32',
  asc: 'u32',
  /** Bumped on every port/HBA reset: completions of older commands are dropped. */
  epoch: 'u32',
} as const;

export type PortState = { -readonly [K in keyof typeof REG_FIELDS]: number };

/** Register offset -> field, for the registers the guest reads directly. */
const READABLE: Record<number, keyof PortState> = {
  [A.P_CLB]: 'clb', [A.P_CLBU]: 'clbu', [A.P_FB]: 'fb', [A.P_FBU]: 'fbu', [A.P_IS]: 'is', [A.P_IE]: 'ie',
  [A.P_CMD]: 'cmd', [A.P_TFD]: 'tfd', [A.P_SIG]: 'sig', [A.P_SSTS]: 'ssts', [A.P_SCTL]: 'sctl',
  [A.P_SERR]: 'serr', [A.P_SACT]: 'sact', [A.P_CI]: 'ci', [A.P_SNTF]: 'sntf', [A.P_FBS]: 'fbs',
};

export class AhciPort {
  readonly s: PortState;
  /** The NCQ command error log's first 20 bytes (READ LOG EXT page 10h). */
  readonly errCfis: Uint8Array;

  constructor(private readonly host: PortHost, readonly index: number, readonly kind: PortKind | undefined) {
    this.s = host.ctx.arena.struct(REG_FIELDS) as PortState;
    this.errCfis = host.ctx.arena.bytes(20);
  }

  get present(): boolean { return this.kind !== undefined; }
  get atapi(): boolean { return this.kind === 'cd'; }
  get clbAddr(): number { return this.s.clbu * 2 ** 32 + this.s.clb; }
  get fbAddr(): number { return this.s.fbu * 2 ** 32 + this.s.fb; }

  read(off: number): number {
    const f = READABLE[off];
    return f === undefined ? 0 : this.s[f];
  }

  write(off: number, v: number): void {
    const s = this.s;
    switch (off) {
      case A.P_CLB: s.clb = v & ~0x3ff; break;
      case A.P_CLBU: s.clbu = v; break;
      case A.P_FB: s.fb = v & ~0xff; break;
      case A.P_FBU: s.fbu = v; break;
      case A.P_IS: s.is = s.is & ~v; this.host.portIntr(this); break;
      case A.P_IE: s.ie = v & A.P_IE_MASK; this.host.portIntr(this); break;
      case A.P_CMD: this.writeCmd(v); break;
      case A.P_SCTL:
        s.sctl = v;
        if (!(s.cmd & A.PCMD_ST) && (v & A.SCTL_DET_MASK) === A.SCTL_DET_RESET) this.resetPort();
        break;
      case A.P_SERR: s.serr = s.serr & ~v; break;
      case A.P_SACT: s.sact = s.sact | v; break;
      case A.P_CI:
        s.ci = s.ci | v;
        if (s.cmd & A.PCMD_ST) this.host.kick();
        break;
      default: break; // read-only (TFD, SIG, SSTS) or unimplemented (SNTF, FBS)
    }
  }

  private writeCmd(v: number): void {
    const s = this.s;
    let cmd = (s.cmd & ~A.PCMD_WRITABLE) | (v & A.PCMD_WRITABLE);
    if (v & A.PCMD_ST) cmd |= A.PCMD_CR;
    cmd = v & A.PCMD_FRE ? cmd | A.PCMD_FR : cmd & ~A.PCMD_FR;
    if (v & A.PCMD_CLO) {
      s.tfd = s.tfd & ~(A.ATA_S_BUSY | A.ATA_S_DRQ);
      cmd &= ~A.PCMD_CLO;
    }
    cmd &= ~A.PCMD_ICC_MASK;
    s.cmd = cmd >>> 0;
    if (!(v & A.PCMD_ST)) this.checkStopped();
    else this.host.kick();
  }

  /** When stopped with nothing in flight: clear CR, CCS, CI, SACT (bhyve's ahci_check_stopped). */
  checkStopped(): void {
    const s = this.s;
    if (s.cmd & A.PCMD_ST || s.pending !== 0) return;
    s.ccs = 0;
    s.cmd = s.cmd & ~(A.PCMD_CR | A.PCMD_CCS_MASK);
    s.ci = 0;
    s.sact = 0;
    s.waitforclear = 0;
  }

  /** HBA reset (GHC.HR) of this port's registers. */
  hbaReset(): void {
    const s = this.s;
    s.ie = 0;
    s.is = 0;
    s.cmd = A.PCMD_SUD | A.PCMD_POD | (this.present ? A.PCMD_CPS : 0);
    s.sctl = 0;
    s.ci = 0;
    s.pending = 0;
    s.ccs = 0;
    s.waitforclear = 0;
    this.resetPort();
  }

  /** COMRESET / software reset: link up, signature, the reset D2H FIS. */
  resetPort(): void {
    const s = this.s;
    s.epoch = (s.epoch + 1) >>> 0;
    s.serr = 0;
    s.sact = 0;
    s.reset = 0;
    s.xfermode = A.XFER_UDMA6;
    s.multSectors = 128;
    s.senseKey = A.SENSE_NONE;
    s.asc = 0;
    if (!this.present) {
      s.ssts = A.SSTS_DET_NO_DEVICE;
      s.sig = 0xffffffff;
      s.tfd = 0x7f;
      return;
    }
    const spd = s.sctl & A.SCTL_SPD_MASK;
    s.ssts = A.SSTS_DET_PHY_ONLINE | A.SSTS_IPM_ACTIVE | (spd || A.SSTS_SPD_GEN3);
    s.tfd = (1 << 8) | A.ATA_S_DSC | A.ATA_S_DMA | (this.atapi ? 0 : A.ATA_S_READY);
    s.sig = this.atapi ? A.SIG_ATAPI : A.SIG_ATA;
    const fis = new Uint8Array(20);
    fis[0] = A.FIS_REG_D2H;
    fis[3] = 1; // error: diagnostics passed
    fis[4] = 1; // LBA low / sector number
    if (this.atapi) { fis[5] = 0x14; fis[6] = 0xeb; }
    fis[12] = 1; // sector count
    this.writeFis(A.FIS_REG_D2H, fis);
  }

  /** Copy a FIS into the received-FIS area (when FRE and the area is guest memory); raise its interrupt. */
  writeFis(type: number, fis: Uint8Array): void {
    let off: number, irq: number;
    const wantsIrq = (fis[1] & A.FIS_I) !== 0;
    switch (type) {
      case A.FIS_REG_D2H: off = A.RFIS_RFIS; irq = wantsIrq ? A.PIS_DHRS : 0; break;
      case A.FIS_SET_DEV_BITS: off = A.RFIS_SDBFIS; irq = wantsIrq ? A.PIS_SDBS : 0; break;
      case A.FIS_PIO_SETUP: off = A.RFIS_PSFIS; irq = wantsIrq ? A.PIS_PSS : 0; break;
      default: return;
    }
    // A task-file error holds the port (and raises TFES) even when FISes are not received.
    if (fis[2] & A.ATA_S_ERROR) {
      this.s.waitforclear = 1;
      irq |= A.PIS_TFES;
    }
    if (this.s.cmd & A.PCMD_FRE) this.host.ctx.mem.slice(this.fbAddr, A.RFIS_SIZE)?.set(fis, off);
    else irq &= A.PIS_TFES;
    if (irq && (~this.s.is & irq)) {
      this.s.is = this.s.is | irq;
      this.host.portIntr(this);
    }
  }

  /** A Register D2H FIS completing `slot`: the task file becomes `tfd` (error << 8 | status). */
  d2h(slot: number, cfis: Uint8Array, tfd: number, count?: number): void {
    const fis = new Uint8Array(20);
    fis[0] = A.FIS_REG_D2H;
    fis[1] = A.FIS_I;
    fis[2] = tfd & 0xff;
    fis[3] = (tfd >>> 8) & 0xff;
    fis.set(cfis.subarray(4, 14), 4);
    if (count !== undefined) fis[12] = count;
    if (fis[2] & A.ATA_S_ERROR) this.logError(0x80, cfis, tfd);
    else this.s.ci = this.s.ci & ~(1 << slot);
    this.s.tfd = tfd;
    this.writeFis(A.FIS_REG_D2H, fis);
  }

  /** The D2H FIS that releases the bus after an NCQ command is queued (no interrupt). */
  d2hNcq(slot: number): void {
    this.s.tfd = A.OK_STATUS;
    this.s.ci = this.s.ci & ~(1 << slot);
    const fis = new Uint8Array(20);
    fis[0] = A.FIS_REG_D2H;
    fis[2] = A.OK_STATUS;
    this.writeFis(A.FIS_REG_D2H, fis);
  }

  /** A Set Device Bits FIS completing NCQ `slot`. */
  sdb(slot: number, cfis: Uint8Array, tfd: number): void {
    const fis = new Uint8Array(8);
    const status = tfd & 0x77;
    fis[0] = A.FIS_SET_DEV_BITS;
    fis[1] = A.FIS_I;
    fis[2] = status;
    fis[3] = (tfd >>> 8) & 0xff;
    if (status & A.ATA_S_ERROR) {
      this.logError(slot, cfis, tfd);
    } else {
      new DataView(fis.buffer).setUint32(4, (1 << slot) >>> 0, true);
      this.s.sact = this.s.sact & ~(1 << slot);
    }
    this.s.tfd = (this.s.tfd & ~0x77) | status;
    this.writeFis(A.FIS_SET_DEV_BITS, fis);
  }

  /** A PIO Setup FIS without the interrupt bit (before PIO-in data, as bhyve). */
  pioSetup(): void {
    const fis = new Uint8Array(20);
    fis[0] = A.FIS_PIO_SETUP;
    this.writeFis(A.FIS_PIO_SETUP, fis);
  }

  private logError(tag: number, cfis: Uint8Array, tfd: number): void {
    const e = this.errCfis;
    e.fill(0);
    e[0] = tag;
    e[2] = tfd & 0xff;
    e[3] = (tfd >>> 8) & 0xff;
    e.set(cfis.subarray(4, 20), 4);
  }
}
