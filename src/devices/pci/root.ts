/**
 * The PCI root complex, after bhyve's pci_emul.c: buses 0-255 of 32 slots
 * of 8 functions, config mechanism #1 (0xCF8/0xCFC) and ECAM at 0xE0000000,
 * BAR allocation by size, and INTx routing to the IOAPIC and the PIRQ router.
 *
 * Address map (as bhyve on amd64):
 *   I/O BARs          0x2000 - 0xFFFF
 *   32-bit MMIO BARs  0xC0000000 - 0xDFFFFFFF (also 64-bit BARs of 128 MiB or less)
 *   ECAM              0xE0000000 - 0xEFFFFFFF (256 buses x 1 MiB)
 *   64-bit MMIO BARs  32 GiB window at roundup(4 GiB + highmem, 32 GiB)
 * Each BAR is naturally aligned; larger BARs are placed first.
 * A host bridge that models a chipset's ECAM base register (q35's PCIEXBAR)
 * may move or disable ECAM at run time (setEcamBase).
 *
 * INTx: a function's pin (INTA-D, the least used of its slot) is swizzled to
 * PIRQ (slot + pin - 1) mod 4, i.e. A-D, which drives IOAPIC pin 16-19 and,
 * when the PIRQ register routes it, an ISA IRQ (for PIC-mode guests).
 */
import { BusError, hex, type BusDevice } from '../../vmm/bus.js';
import type { MachineContext } from '../../vmm/context.js';
import type { ConfigTree } from '../../config/tree.js';
import { DeviceError, findPci, type PciBdf } from '../registry.js';
import type { BarInfo, BarKind, PciFunction } from './function.js';
import * as R from './regs.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
export const CONF1_ADDR_PORT = 0xcf8;
export const CONF1_DATA_PORT = 0xcfc;
const CONF1_ENABLE = 0x80000000;
const CONF1_MASK = 0x80fffffc;
export const ECAM_BASE = 0xe0000000;
export const ECAM_SIZE = 256 * MiB;
export const IO_BASE = 0x2000;
export const IO_LIMIT = 0x10000;
export const MEM32_BASE = 0xc0000000;
export const MEM32_LIMIT = ECAM_BASE;
export const MEM64_SIZE = 32 * GiB;
/** 64-bit BARs up to this size go below 4 GiB (bhyve: some drivers dislike high BARs). */
const MEM64_LOW_MAX = 128 * MiB;
const BUS_IO_SLOP = 32, BUS_MEM32_SLOP = MiB, BUS_MEM64_SLOP = 512 * MiB;
/** IOAPIC pin of PIRQ A; B-D follow. */
export const PCI_GSI_BASE = 16;
export const PIRQ_COUNT = 8;
export const PIRQ_DIS = 0x80;
const PIRQ_IRQ = 0x0f;
/** ISA IRQs a PIRQ may route to: 3-7, 9-12, 14-15 (bhyve's PERMITTED_IRQS). */
const PERMITTED_IRQS = 0xdef8;
const ONES = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

export interface IntxRoute { bus: number; slot: number; func: number; pin: number; pirq: number; gsi: number }
export interface PciFunctionInfo {
  bus: number; slot: number; func: number; name: string;
  vendor: number; device: number; classCode: number; subclass: number; progIf: number;
  bars: BarInfo[]; intx?: { pin: number; gsi: number };
}
/** Resource windows decoded by one bus (limits exclusive), for the DSDT's _CRS. */
export interface BusWindows { bus: number; ioBase: number; ioLimit: number; mem32Base: number; mem32Limit: number; mem64Base: number; mem64Limit: number }
export interface ConfiguredFunction { bdf: PciBdf; prefix: string; device: string }

const key = (b: number, s: number, f: number): number => (b << 8) | (s << 3) | f;

export class PciRoot {
  private readonly fns = new Map<number, PciFunction>();
  private readonly pinCounts = new Map<number, number[]>();
  private readonly reservedIsa = new Set<number>();
  private readonly addr: { cf8: number };
  private readonly pirqReg: Uint8Array;
  private readonly pirqActive: Int32Array;
  /** Where ECAM decodes (0: disabled), shared; `ecamMapped` is this thread's registration. */
  private readonly ecamState: { base: number };
  private ecamMapped = 0;
  private readonly ecamDev: BusDevice;
  private readonly mem64Base: number;
  private windowList: BusWindows[] = [];
  /**
   * Per thread on purpose: the arena generation this thread's buses match,
   * the only record of it (the loops call `resync` before every dispatch:
   * a thread's buses may have been built before a BAR moved).
   */
  private seenGeneration = -1;
  /** The LPC bridge, when one is configured (set by it). */
  lpc: PciFunction | undefined;

  constructor(readonly ctx: MachineContext, opts: { highmem?: number } = {}) {
    const highmem = opts.highmem ?? highmemOf(ctx);
    this.mem64Base = Math.ceil((4 * GiB + highmem) / MEM64_SIZE) * MEM64_SIZE;
    this.addr = ctx.arena.struct({ cf8: 'u32' });
    this.pirqReg = ctx.arena.bytes(PIRQ_COUNT);
    this.pirqActive = ctx.arena.int32(PIRQ_COUNT);
    this.ecamState = ctx.arena.struct({ base: 'f64' });
    if (ctx.role === 'main') {
      this.pirqReg.fill(PIRQ_DIS);
      this.ecamState.base = ECAM_BASE;
    }
    const cfgAddr: BusDevice = {
      read: (off, size) => (off === 0 && size === 4 ? this.addr.cf8 : ONES[size]),
      write: (off, size, v) => { if (off === 0 && size === 4) this.addr.cf8 = (v & CONF1_MASK) >>> 0; },
    };
    const cfgData: BusDevice = {
      read: (off, size) => this.conf1(off, size, false, 0),
      write: (off, size, v) => { this.conf1(off, size, true, v); },
    };
    this.ecamDev = {
      read: (off, size) => this.access(off >>> 20, (off >>> 15) & 31, (off >>> 12) & 7, off & 0xfff, size, false, 0),
      write: (off, size, v) => { this.access(off >>> 20, (off >>> 15) & 31, (off >>> 12) & 7, off & 0xfff, size, true, v); },
    };
    ctx.io.register(CONF1_ADDR_PORT, 1, cfgAddr, 'pci.cfgaddr');
    ctx.io.register(CONF1_DATA_PORT, 4, cfgData, 'pci.cfgdata');
    this.syncEcam();
  }

  /** Where ECAM decodes now (0 when disabled). */
  get ecamBase(): number { return this.ecamState.base; }

  /**
   * Move ECAM to `base` (256 MiB-aligned), or disable it with 0. A base whose
   * range collides with another MMIO device leaves ECAM disabled.
   */
  setEcamBase(base: number): void {
    if (base === this.ecamState.base) return;
    this.ecamState.base = base % ECAM_SIZE === 0 && base >= 0 && base + ECAM_SIZE <= 2 ** 52 ? base : 0;
    this.ctx.arena.bumpGeneration();
    this.syncEcam();
  }

  /** Register ECAM on this thread's MMIO bus where the shared state says. */
  private syncEcam(): void {
    const want = this.ecamState.base;
    if (want === this.ecamMapped) return;
    if (this.ecamMapped) this.ctx.mmio.unregister(this.ecamMapped);
    this.ecamMapped = 0;
    if (!want) return;
    try {
      this.ctx.mmio.register(want, ECAM_SIZE, this.ecamDev, 'pci.ecam');
      this.ecamMapped = want;
    } catch (e) {
      if (!(e instanceof BusError)) throw e;
      this.ecamState.base = 0; // overlaps a device: the guest asked for something unusable
    }
  }

  /** Main thread: open host resources of every configured function (emulation.prepare). */
  prepare(): void {
    for (const c of configuredFunctions(this.ctx.config)) findPci(c.device)?.prepare?.(this.ctx, c.prefix, c.bdf);
  }

  /** Build every function configured under pci.B.S.F (bhyve's init_pci), then finalize(). */
  populate(): void {
    for (const c of configuredFunctions(this.ctx.config)) {
      const emu = findPci(c.device);
      if (!emu) throw new DeviceError(`pci slot ${c.bdf.bus}:${c.bdf.slot}:${c.bdf.func}: unknown device "${c.device}"`);
      this.add(emu.create(this.ctx, c.prefix, c.bdf));
    }
    this.finalize();
  }

  /** Add a built function; assigns its INTx pin when it asked for one. */
  add(fn: PciFunction): void {
    const { bus, slot, func } = fn.bdf;
    const k = key(bus, slot, func);
    if (this.fns.has(k)) throw new DeviceError(`pci slot ${bus}:${slot}:${func} already occupied`);
    this.fns.set(k, fn);
    if (fn.wantsIntx) {
      const counts = this.pinCounts.get(k >> 3) ?? [0, 0, 0, 0];
      this.pinCounts.set(k >> 3, counts);
      const best = counts.indexOf(Math.min(...counts));
      counts[best]++;
      fn.intPin = best + 1;
      fn.pirq = (slot + best) & 3;
      fn.set8(R.PCIR_INTPIN, fn.intPin);
    }
    fn.attach(this);
  }

  /** Keep ISA `irq` out of PIRQ routing (call before finalize). */
  reserveIsaIrq(irq: number): void { this.reservedIsa.add(irq); }

  /** Assign BARs, route PIRQs to ISA IRQs, enable decoding (pci.enable_bars) and map the BARs. */
  finalize(): void {
    const main = this.ctx.role === 'main';
    const all = this.sorted();
    const buses = [...new Set(all.map((f) => f.bdf.bus))];
    let io = IO_BASE, m32 = MEM32_BASE, m64 = this.mem64Base;
    const m64Limit = this.mem64Base + MEM64_SIZE;
    this.windowList = [];
    for (const bus of buses) {
      const w: BusWindows = { bus, ioBase: io, ioLimit: 0, mem32Base: m32, mem32Limit: 0, mem64Base: m64, mem64Limit: 0 };
      const bars = all.filter((f) => f.bdf.bus === bus).flatMap((fn) => fn.barInfo().map((b) => ({ fn, b })));
      bars.sort((x, y) => y.b.size - x.b.size); // stable: equal sizes keep slot order
      for (const { fn, b } of bars) {
        const high = b.kind === 'mem64' && b.size > MEM64_LOW_MAX;
        const [base, limit] = b.kind === 'io' ? [io, IO_LIMIT] : high ? [m64, m64Limit] : [m32, MEM32_LIMIT];
        const at = Math.ceil(base / b.size) * b.size;
        if (at + b.size > limit) throw new DeviceError(`${fn.name}: no room for BAR ${b.index} (${kindName(b.kind)}, ${hex(b.size)} bytes)`);
        if (main) fn.assignBar(b.index, at);
        if (b.kind === 'io') io = at + b.size; else if (high) m64 = at + b.size; else m32 = at + b.size;
      }
      io = roundUp(io + BUS_IO_SLOP, BUS_IO_SLOP);
      m32 = roundUp(m32 + BUS_MEM32_SLOP, BUS_MEM32_SLOP);
      m64 = roundUp(m64 + BUS_MEM64_SLOP, BUS_MEM64_SLOP);
      Object.assign(w, { ioLimit: io, mem32Limit: m32, mem64Limit: m64 });
      this.windowList.push(w);
    }
    if (main) this.routePirqs(all);
    const enableBars = this.ctx.config.bool('pci.enable_bars', !this.ctx.config.has('lpc.bootrom'));
    if (enableBars) for (const fn of all) fn.enableDecode();
    this.seenGeneration = -1;
    this.resync();
  }

  /** Re-register BARs on this thread's buses when the arena generation moved. */
  resync(): void {
    const g = this.ctx.arena.generation;
    if (g === this.seenGeneration) return;
    this.seenGeneration = g;
    this.syncEcam();
    const all = [...this.fns.values()];
    for (const fn of all) fn.unmapStale();
    for (const fn of all) fn.mapWanted();
  }

  // ---- INTx and the PIRQ router ----------------------------------------------
  /** Wired-OR of the functions sharing a PIRQ: drives its IOAPIC pin and routed ISA IRQ. */
  intxLine(pirq: number, level: boolean): void {
    if (pirq < 0 || pirq >= PIRQ_COUNT) return;
    const n = this.pirqActive[pirq];
    if (!level && n === 0) return;
    this.pirqActive[pirq] = level ? n + 1 : n - 1;
    if (level ? n !== 0 : n !== 1) return;
    if (pirq < 4) this.ctx.irq.line(PCI_GSI_BASE + pirq, level);
    const isa = validIsa(this.pirqReg[pirq]);
    if (isa !== undefined) this.ctx.irq.line(isa, level);
  }

  /** PIRQ register `n` (0-7 = A-H): an ISA IRQ in bits 0-3, or 0x80 when disabled. */
  pirqRead(n: number): number { return n >= 0 && n < PIRQ_COUNT ? this.pirqReg[n] : 0xff; }

  pirqWrite(n: number, val: number): void {
    if (n < 0 || n >= PIRQ_COUNT) return;
    const v = val & (PIRQ_DIS | PIRQ_IRQ);
    const old = this.pirqReg[n];
    if (v === old) return;
    const active = this.pirqActive[n] !== 0;
    const was = validIsa(old);
    if (active && was !== undefined) this.ctx.irq.line(was, false);
    this.pirqReg[n] = v;
    const now = validIsa(v);
    if (active && now !== undefined) this.ctx.irq.line(now, true);
  }

  private routePirqs(all: PciFunction[]): void {
    const counts = new Map<number, number>();
    for (let irq = 0; irq < 16; irq++) if ((PERMITTED_IRQS >> irq) & 1 && !this.reservedIsa.has(irq)) counts.set(irq, 0);
    for (const fn of all) {
      if (fn.intPin === 0) continue;
      if (this.pirqReg[fn.pirq] === PIRQ_DIS && counts.size > 0) {
        let best = -1;
        for (const [irq, c] of counts) if (best < 0 || c < counts.get(best)!) best = irq;
        counts.set(best, counts.get(best)! + 1);
        this.pirqReg[fn.pirq] = best;
      }
      fn.set8(R.PCIR_INTLINE, validIsa(this.pirqReg[fn.pirq]) ?? 0xff);
    }
  }

  // ---- config access -----------------------------------------------------------
  private conf1(off: number, size: number, write: boolean, v: number): number {
    const a = this.addr.cf8;
    if (!(a & CONF1_ENABLE)) return ONES[size];
    return this.access((a >>> 16) & 0xff, (a >>> 11) & 31, (a >>> 8) & 7, (a & 0xfc) + off, size, write, v);
  }

  private access(bus: number, slot: number, func: number, off: number, size: number, write: boolean, v: number): number {
    const fn = this.fns.get(key(bus, slot, func));
    if (!fn || (size !== 1 && size !== 2 && size !== 4) || off & (size - 1) || off + size > R.CFG_SIZE) return ONES[size] ?? 0;
    if (write) {
      fn.cfgWrite(off, size, v >>> 0);
      this.resync();
      return 0;
    }
    let val = fn.cfgRead(off, size);
    if (off <= R.PCIR_HDRTYPE && off + size > R.PCIR_HDRTYPE) {
      const bit = R.HDRTYPE_MFDEV << (8 * (R.PCIR_HDRTYPE - off));
      val = (this.multiFunction(bus, slot) ? val | bit : val & ~bit) >>> 0;
    }
    return val;
  }

  private multiFunction(bus: number, slot: number): boolean {
    let n = 0;
    for (let f = 0; f < 8; f++) if (this.fns.has(key(bus, slot, f))) n++;
    return n > 1;
  }

  // ---- what firmware tables need --------------------------------------------
  functions(): PciFunctionInfo[] {
    return this.sorted().map((fn) => ({
      ...fn.bdf, name: fn.name,
      vendor: fn.get16(R.PCIR_VENDOR), device: fn.get16(R.PCIR_DEVICE),
      classCode: fn.get8(R.PCIR_CLASS), subclass: fn.get8(R.PCIR_SUBCLASS), progIf: fn.get8(R.PCIR_PROGIF),
      bars: fn.barInfo(),
      ...(fn.intPin ? { intx: { pin: fn.intPin, gsi: PCI_GSI_BASE + fn.pirq } } : {}),
    }));
  }

  /** One entry per function with an INTx pin (a _PRT or MP table wants one per bus/slot/pin: dedupe). */
  intxRoutes(): IntxRoute[] {
    return this.sorted().filter((fn) => fn.intPin).map((fn) => ({ ...fn.bdf, pin: fn.intPin, pirq: fn.pirq, gsi: PCI_GSI_BASE + fn.pirq }));
  }

  /** The ISA IRQ each PIRQ (A-H) routes to now, or undefined; those IRQs are level-triggered, active-low. */
  pirqRoutes(): (number | undefined)[] { return [...this.pirqReg].map(validIsa); }

  windows(): BusWindows[] { return this.windowList.map((w) => ({ ...w })); }

  private sorted(): PciFunction[] { return [...this.fns.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]); }
}

/** The functions configured under pci.B.S.F, in bus/slot/function order. */
export function configuredFunctions(config: ConfigTree): ConfiguredFunction[] {
  const out: ConfiguredFunction[] = [];
  const pci = config.node('pci');
  if (!pci) return out;
  const nums = (node: Map<string, unknown>, max: number, what: string): number[] =>
    [...node.entries()].filter(([k, v]) => v instanceof Map && /^\d+$/.test(k)).map(([k]) => {
      const n = Number(k);
      if (n > max) throw new DeviceError(`pci ${what} ${k} is out of range (0-${max})`);
      return n;
    }).sort((a, b) => a - b);
  for (const bus of nums(pci, 255, 'bus')) {
    for (const slot of nums(config.node(`pci.${bus}`)!, 31, 'slot')) {
      for (const func of nums(config.node(`pci.${bus}.${slot}`)!, 7, 'function')) {
        const prefix = `pci.${bus}.${slot}.${func}`;
        const device = config.get(`${prefix}.device`);
        if (device === undefined) throw new DeviceError(`pci slot ${bus}:${slot}:${func}: missing "device" value`);
        out.push({ bdf: { bus, slot, func }, prefix, device });
      }
    }
  }
  return out;
}

function validIsa(reg: number): number | undefined {
  if (reg & PIRQ_DIS) return undefined;
  const irq = reg & PIRQ_IRQ;
  return (PERMITTED_IRQS >> irq) & 1 ? irq : undefined;
}

function highmemOf(ctx: MachineContext): number {
  const segs = ctx.mem?.segments ?? [];
  return segs.filter((s) => !s.devmem && s.gpa >= 4 * GiB).reduce((n, s) => n + s.size, 0);
}

const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const kindName = (k: BarKind): string => (k === 'io' ? 'I/O' : k === 'mem32' ? '32-bit memory' : '64-bit memory');
