/**
 * The AHCI host bus adapter, after bhyve's pci_ahci.c: Intel 8086:2821
 * (ICH8), class 01/06/01 (SATA, AHCI 1.0 interface), AHCI 1.3 registers in
 * BAR 5 (ABAR), MSI (bhyve's message count) with INTx as the fallback.
 *
 * Threads: register reads and writes run on vCPU threads under the device
 * lock. A write that issues commands (PxCI, PxCMD.ST) only records them
 * and rings the controller's doorbell; the I/O thread runs the command
 * engine, which moves data between guest memory and the back-end (with the
 * device lock released around host I/O), posts FISes and raises interrupts.
 * Without an I/O thread (ctx.doorbell undefined) commands run in place.
 */
import { blockBackend, blockResource, type BlockBackend } from '../../backends/block.js';
import type { BusDevice } from '../../vmm/bus.js';
import type { Doorbell, MachineContext } from '../../vmm/context.js';
import { PciFunction } from '../pci/function.js';
import * as R from '../pci/regs.js';
import type { PciBdf } from '../registry.js';
import type { EngineHost } from './command.js';
import { runPort } from './engine.js';
import { buildIdentify } from './identify.js';
import { AhciPort, type PortHost, type PortKind } from './port.js';
import * as A from './regs.js';

export const AHCI_VENDOR = 0x8086;
export const AHCI_DEVICE = 0x2821;
export const CLASS_STORAGE = 0x01;
export const SUBCLASS_SATA = 0x06;
export const PROGIF_AHCI = 0x01;
export const ABAR_INDEX = 5;

/** Per-port identity strings and options from the config (bhyve's ser/rev/model/nmrr). */
export interface PortConfig { kind: PortKind; serial?: string; revision?: string; model?: string; rotationRate?: number }

/** The ctx.resources key of a port's block back-end. */
export const portKey = (prefix: string, port: number): string => `${prefix}.port.${port}`;

export class AhciHba extends PciFunction implements PortHost, EngineHost {
  readonly ports: AhciPort[] = [];
  readonly nports: number;
  readonly cap: number;
  readonly pi: number;
  private readonly hs: { ghc: number; is: number };
  private readonly bell: Doorbell | undefined;
  /** Per thread: back-ends rebuilt around the main thread's fds (null: none). */
  private readonly backends: (BlockBackend | null | undefined)[] = [];

  constructor(ctx: MachineContext, readonly prefix: string, bdf: PciBdf, private readonly cfgs: (PortConfig | undefined)[]) {
    super(ctx, bdf, `ahci@${prefix}`);
    // bhyve: 32 ports once any port is configured, else the ICH8's 6.
    this.nports = cfgs.some((c) => c) ? A.MAX_PORTS : A.DEF_PORTS;
    this.hs = ctx.arena.struct({ ghc: 'u32', is: 'u32' }) as { ghc: number; is: number };
    let pi = 0;
    for (let i = 0; i < this.nports; i++) {
      const kind = cfgs[i]?.kind;
      this.ports.push(new AhciPort(this, i, kind));
      if (kind) pi |= 1 << i;
    }
    this.pi = pi >>> 0;
    this.cap = (A.CAP_S64A | A.CAP_SNCQ | A.CAP_SSNTF | A.CAP_SMPS | A.CAP_SSS | A.CAP_SALP | A.CAP_SAL | A.CAP_SCLO |
      (3 << A.CAP_ISS_SHIFT) | A.CAP_PMD | A.CAP_SSC | A.CAP_PSC | ((A.CMD_SLOTS - 1) << A.CAP_NCS_SHIFT) | A.CAP_SXS |
      (this.nports - 1)) >>> 0;
    this.setIds({ vendor: AHCI_VENDOR, device: AHCI_DEVICE, classCode: CLASS_STORAGE, subclass: SUBCLASS_SATA, progIf: PROGIF_AHCI });
    const p = Math.min(this.nports, 16);
    this.addMsiCap(2 ** (Math.floor(Math.log2(p)) + ((p & (p - 1)) ? 1 : 0)));
    const abar: BusDevice = { read: (o, s) => this.abarRead(o, s), write: (o, s, v) => this.abarWrite(o, s, v) };
    this.addBar(ABAR_INDEX, { kind: 'mem32', size: A.PORT_BASE + this.nports * A.PORT_STEP, device: abar });
    this.requestIntx();
    this.bell = ctx.doorbell?.(`ahci@${prefix}`, () => this.process());
    if (this.primary) this.reset();
  }

  // ---- PortHost / EngineHost ------------------------------------------------------
  kick(): void {
    if (this.bell) this.bell.ring();
    else this.process();
  }

  io(fn: () => void): void {
    if (!this.bell) return fn();
    this.ctx.arena.unlock();
    try {
      fn();
    } finally {
      this.ctx.arena.lock();
    }
  }

  backend(port: AhciPort): BlockBackend | undefined {
    let b = this.backends[port.index];
    if (b === undefined) {
      b = blockBackend(this.ctx, portKey(this.prefix, port.index)) ?? null;
      this.backends[port.index] = b;
    }
    return b ?? undefined;
  }

  identify(port: AhciPort): Uint8Array {
    const r = blockResource(this.ctx, portKey(this.prefix, port.index));
    const c = this.cfgs[port.index];
    return buildIdentify({
      atapi: port.atapi, size: r?.size ?? 0, logical: r?.logicalSectorSize ?? 512, physical: r?.physicalSectorSize ?? 512,
      readonly: r?.readonly ?? true, canDiscard: r?.canDiscard ?? false, serial: c?.serial ?? r?.serial ?? '',
      revision: c?.revision ?? '001', model: c?.model ?? (port.atapi ? 'BHYVE SATA DVD ROM' : 'BHYVE SATA DISK'),
      rotationRate: c?.rotationRate ?? 0, xfermode: port.s.xfermode, multSectors: port.s.multSectors, ssts: port.s.ssts,
    });
  }

  /** The command engine: run every started port's issued commands. */
  process(): void {
    for (const p of this.ports) if (p.present) runPort(this, p);
  }

  // ---- interrupts (bhyve's ahci_port_intr / ahci_generate_intr) -------------------
  portIntr(p: AhciPort): void {
    const s = p.s, hs = this.hs;
    if ((s.is & s.ie) === 0) return;
    const nmsg = this.msiMessages();
    const bit = (1 << p.index) >>> 0;
    if (this.nports <= nmsg || p.index < nmsg - 1) { // a message of its own
      hs.is = (hs.is | bit) >>> 0;
      if (hs.ghc & A.GHC_IE) this.msi(p.index);
      return;
    }
    if (hs.is & bit) return;
    hs.is = (hs.is | bit) >>> 0;
    if (!(hs.ghc & A.GHC_IE)) return;
    if (nmsg > 0) this.msi(nmsg - 1);
    else this.intx(true);
  }

  private generateIntr(mask: number): void {
    const hs = this.hs;
    for (const p of this.ports) if (p.s.is & p.s.ie) hs.is = (hs.is | (1 << p.index)) >>> 0;
    if (hs.is === 0 || !(hs.ghc & A.GHC_IE)) return this.intx(false);
    const nmsg = this.msiMessages();
    if (nmsg === 0) return this.intx(true);
    for (let i = 0; i < nmsg; i++) {
      const mmask = this.nports <= nmsg || i < nmsg - 1 ? 1 << i : 0xffffffff << i;
      if (hs.is & mask & mmask) this.msi(i);
    }
  }

  /** Messages the guest enabled (0 when MSI is off). */
  private msiMessages(): number {
    for (let off = this.get8(R.PCIR_CAP_PTR), n = 0; off !== 0 && n < 48; off = this.get8(off + 1), n++) {
      if (this.get8(off) !== R.CAPID_MSI) continue;
      const ctrl = this.get16(off + 2);
      if (!(ctrl & R.MSICTRL_ENABLE)) return 0;
      const mmc = (ctrl >> R.MSICTRL_MMC_SHIFT) & 7, mme = (ctrl & R.MSICTRL_MME_MASK) >> R.MSICTRL_MME_SHIFT;
      return 1 << Math.min(mmc, mme);
    }
    return 0;
  }

  // ---- registers -------------------------------------------------------------------
  reset(): void {
    this.hs.ghc = A.GHC_AE >>> 0;
    this.hs.is = 0;
    this.intx(false);
    for (const p of this.ports) p.hbaReset();
  }

  private hostRead(off: number): number {
    switch (off) {
      case A.HBA_CAP: return this.cap;
      case A.HBA_GHC: return this.hs.ghc;
      case A.HBA_IS: return this.hs.is;
      case A.HBA_PI: return this.pi;
      case A.HBA_VS: return A.AHCI_VERSION_1_3;
      case A.HBA_CAP2: return A.CAP2_APST;
      default: return 0; // CCC, enclosure management, BOHC: not implemented
    }
  }

  /** A read of the ABAR at `offset` (the BAR 5 bus device). */
  abarRead(offset: number, size: number): number {
    const off = offset & ~3;
    let v = 0;
    if (off < A.PORT_BASE) v = this.hostRead(off);
    else if (off < A.PORT_BASE + this.nports * A.PORT_STEP) {
      const rel = off - A.PORT_BASE;
      v = this.ports[Math.floor(rel / A.PORT_STEP)].read(rel % A.PORT_STEP);
    }
    v = v >>> (8 * (offset & 3));
    return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
  }

  /** A write of the ABAR at `offset`. */
  abarWrite(offset: number, size: number, value: number): void {
    if (size !== 4 || offset & 3) return; // AHCI registers are written as dwords
    const v = value >>> 0;
    if (offset < A.PORT_BASE) {
      if (offset === A.HBA_GHC) {
        if (v & A.GHC_HR) return this.reset();
        this.hs.ghc = (A.GHC_AE | (v & A.GHC_IE)) >>> 0;
        this.generateIntr(0xffffffff);
      } else if (offset === A.HBA_IS) {
        this.hs.is = (this.hs.is & ~v) >>> 0;
        this.generateIntr(v);
      }
      return;
    }
    if (offset < A.PORT_BASE + this.nports * A.PORT_STEP) {
      const rel = offset - A.PORT_BASE;
      this.ports[Math.floor(rel / A.PORT_STEP)].write(rel % A.PORT_STEP, v);
    }
  }
}
