/**
 * One issued command slot, as the engine sees it: copies of the command
 * FIS, the ATAPI packet and the PRDT taken when the command starts (so a
 * guest rewriting its command table cannot change a command in flight),
 * and helpers to move data and complete the slot.
 */
import type { BlockBackend } from '../../backends/block.js';
import type { MachineContext } from '../../vmm/context.js';
import type { AhciPort } from './port.js';
import * as A from './regs.js';
import { copyFromSg, copyToSg, mapSg, type Prd, type SgList } from './sg.js';

/** What the engine needs from its HBA on the thread that runs it. */
export interface EngineHost {
  readonly ctx: MachineContext;
  /** The port's back-end on this thread (undefined without one). */
  backend(port: AhciPort): BlockBackend | undefined;
  /** Run blocking host I/O; the device lock may be released meanwhile. */
  io(fn: () => void): void;
  /** IDENTIFY (PACKET) DEVICE data of a port. */
  identify(port: AhciPort): Uint8Array;
}

export const ABORT_TFD = (A.ATA_E_ABORT << 8) | A.ATA_S_READY | A.ATA_S_ERROR;

export class Command {
  readonly epoch: number;

  constructor(
    readonly host: EngineHost,
    readonly p: AhciPort,
    readonly slot: number,
    /** The command FIS (64 bytes, copied). */
    readonly cfis: Uint8Array,
    /** The ATAPI command packet (16 bytes, copied). */
    readonly acmd: Uint8Array,
    readonly prds: Prd[],
    /** Guest address of this slot's command header (for PRDBC). */
    private readonly hdrAddr: number,
  ) {
    this.epoch = p.s.epoch;
  }

  get code(): number { return this.cfis[2]; }
  get ncq(): boolean {
    const c = this.code;
    return c === A.ATA_READ_FPDMA_QUEUED || c === A.ATA_WRITE_FPDMA_QUEUED || c === A.ATA_SEND_FPDMA_QUEUED;
  }

  /** A reset of the port or the HBA since the command started: its completion is dropped. */
  get stale(): boolean { return this.p.s.epoch !== this.epoch; }

  /** Map up to `limit` bytes of the PRDT (undefined when an entry is outside guest memory). */
  sg(limit: number, toGuest: boolean): SgList | undefined {
    return mapSg(this.host.ctx.mem, this.prds, limit, toGuest);
  }

  /** Record the bytes transferred in the command header's PRDBC. */
  setPrdbc(n: number): void {
    this.host.ctx.mem.dataView(this.hdrAddr + A.HDR_PRDBC, 4)?.setUint32(0, n >>> 0, true);
  }

  /** PIO/DMA-in of a small buffer; false (nothing written) when the PRDT is bad. */
  dataIn(data: Uint8Array): boolean {
    const sg = this.sg(data.length, true);
    if (!sg) return false;
    this.setPrdbc(copyToSg(sg, data));
    return true;
  }

  /** DMA-out of up to `max` bytes; undefined when the PRDT is bad. */
  dataOut(max: number): Uint8Array | undefined {
    const sg = this.sg(max, false);
    return sg && copyFromSg(sg);
  }

  /** Complete with a Register D2H FIS (status/error in `tfd`); `count` overrides the count field. */
  done(tfd: number, count?: number): void {
    this.p.d2h(this.slot, this.cfis, tfd, count);
  }

  ok(): void { this.done(A.OK_STATUS); }
  abort(): void { this.done(ABORT_TFD); }

  /** Complete an NCQ command with a Set Device Bits FIS. */
  doneNcq(tfd: number): void {
    this.p.sdb(this.slot, this.cfis, tfd);
  }

  /**
   * Run `fn` (host I/O) with this slot marked in flight; returns false when
   * it threw. The caller must check `stale` afterwards.
   */
  runIo(fn: () => void): boolean {
    const s = this.p.s;
    const bit = (1 << this.slot) >>> 0;
    s.pending = (s.pending | bit) >>> 0;
    let ok = true;
    try {
      this.host.io(fn);
    } catch {
      ok = false;
    }
    s.pending = (s.pending & ~bit) >>> 0;
    return ok;
  }
}
