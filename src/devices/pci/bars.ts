/**
 * The six base address registers of a PCI function, after bhyve's
 * pci_emul.c: declaration and sizing, guest writes (all-ones reads back the
 * size mask), and registration on this thread's buses. The BAR registers in
 * config space are the only state, so every thread agrees on the layout;
 * which ranges this thread has registered is per thread on purpose.
 */
import { BusError, type BusDevice } from '../../vmm/bus.js';
import type { MachineContext } from '../../vmm/context.js';
import { DeviceError } from '../registry.js';
import * as R from './regs.js';

export type BarKind = 'io' | 'mem32' | 'mem64';
export interface BarSpec { kind: BarKind; size: number; device: BusDevice; prefetch?: boolean }
/** A BAR as firmware tables see it; `addr` is the current address (0 = unassigned). */
export interface BarInfo { index: number; kind: BarKind; size: number; addr: number }

interface Bar { index: number; kind: BarKind; size: number; device: BusDevice; lobits: number }

export const BAR_COUNT = 6;
const IO_LIMIT = 0x10000;
/** A high dword at or above this puts a 64-bit BAR beyond 2^53 (not mappable here). */
const MAX_SAFE_HI = 2 ** 21;
const MAX_SIZE: Record<BarKind, number> = { io: 256, mem32: 2 ** 31, mem64: 2 ** 40 };

export class BarSet {
  private readonly bars: (Bar | undefined)[] = new Array(BAR_COUNT).fill(undefined);
  /** Per thread: the address each BAR is registered at on this thread's buses. */
  private readonly mapped: (number | undefined)[] = new Array(BAR_COUNT).fill(undefined);

  constructor(private readonly ctx: MachineContext, private readonly name: string, private readonly dv: DataView) {}

  /** Declare BAR `index`; returns the type bits for its register. Sizes round up to a power of two. */
  declare(index: number, spec: BarSpec): number {
    const last = spec.kind === 'mem64' ? index + 1 : index;
    if (!Number.isInteger(index) || index < 0 || last >= BAR_COUNT) throw new DeviceError(`${this.name}: bad BAR index ${index}`);
    if (this.bars[index] || this.bars[last] || this.bars[index - 1]?.kind === 'mem64') throw new DeviceError(`${this.name}: BAR ${index} declared twice`);
    const size = Math.max(2 ** Math.ceil(Math.log2(Math.max(spec.size, 1))), spec.kind === 'io' ? 4 : 16);
    if (size > MAX_SIZE[spec.kind]) throw new DeviceError(`${this.name}: BAR ${index} size ${spec.size} too large`);
    const lobits = spec.kind === 'io' ? R.BAR_IO_SPACE
      : (spec.kind === 'mem64' ? R.BAR_MEM_64 : 0) | (spec.prefetch ? R.BAR_MEM_PREFETCH : 0);
    this.bars[index] = { index, kind: spec.kind, size, device: spec.device, lobits };
    return lobits;
  }

  /** A guest write of BAR register `idx` (dword); returns true when a decoded BAR moved. */
  write(idx: number, val: number): boolean {
    const off = R.PCIR_BAR0 + 4 * idx;
    let bar = this.bars[idx];
    const lower = this.bars[idx - 1];
    let reg = 0;
    // I/O BARs keep all 32 bits, as QEMU's (PCI also allows hardwiring the upper
    // 16 to zero, as bhyve does, but SeaBIOS sizes them with 32-bit arithmetic);
    // an address at or above 64 KiB does not decode.
    if (bar) reg = (bar.size >= 2 ** 32 ? 0 : val & ~(bar.size - 1)) | bar.lobits;
    else if (lower?.kind === 'mem64') {
      bar = lower; // the high dword of a 64-bit BAR
      reg = lower.size > 2 ** 32 ? val & ~(lower.size / 2 ** 32 - 1) : val;
    }
    reg >>>= 0;
    if (reg === this.dv.getUint32(off, true)) return false;
    this.dv.setUint32(off, reg, true);
    return bar !== undefined && this.decoding(bar);
  }

  /** The programmed address, or undefined (no such BAR, or beyond 2^53). */
  address(idx: number): number | undefined {
    const b = this.bars[idx];
    if (!b) return undefined;
    const reg = this.dv.getUint32(R.PCIR_BAR0 + 4 * idx, true);
    if (b.kind === 'io') return (reg & ~3) >>> 0;
    const lo = (reg & ~0xf) >>> 0;
    if (b.kind === 'mem32') return lo;
    const hi = this.dv.getUint32(R.PCIR_BAR0 + 4 * idx + 4, true);
    return hi >= MAX_SAFE_HI ? undefined : hi * 2 ** 32 + lo;
  }

  info(): BarInfo[] {
    return this.bars.filter((b): b is Bar => !!b).map((b) => ({ index: b.index, kind: b.kind, size: b.size, addr: this.address(b.index) ?? 0 }));
  }

  /** The register value(s) placing BAR `idx` at `addr`: [low dword, high dword or undefined]. */
  registers(idx: number, addr: number): [number, number | undefined] | undefined {
    const b = this.bars[idx];
    if (!b) return undefined;
    return [((addr % 2 ** 32) | b.lobits) >>> 0, b.kind === 'mem64' ? Math.floor(addr / 2 ** 32) : undefined];
  }

  /** Command-register bits that turn on decoding of every declared BAR. */
  decodeBits(): number {
    let cmd = 0;
    for (const b of this.bars) if (b) cmd |= b.kind === 'io' ? R.CMD_PORTEN : R.CMD_MEMEN;
    return cmd;
  }

  /** Remove this thread's registrations that no longer match config space. */
  unmapStale(): void {
    for (let i = 0; i < BAR_COUNT; i++) {
      const cur = this.mapped[i];
      const b = this.bars[i];
      if (cur === undefined || !b || cur === this.live(i)) continue;
      if (b.kind === 'io') this.ctx.io.unregister(cur, b.size);
      else this.ctx.mmio.unregister(cur);
      this.mapped[i] = undefined;
    }
  }

  /** Register live BARs not yet on this thread's buses; one overlapping another device stays off. */
  mapWanted(): void {
    for (let i = 0; i < BAR_COUNT; i++) {
      const want = this.live(i);
      const b = this.bars[i];
      if (!b || want === undefined || this.mapped[i] === want) continue;
      try {
        if (b.kind === 'io') this.ctx.io.register(want, b.size, b.device, `${this.name}.bar${i}`);
        else this.ctx.mmio.register(want, b.size, b.device, `${this.name}.bar${i}`);
        this.mapped[i] = want;
      } catch (e) {
        if (!(e instanceof BusError)) throw e;
      }
    }
  }

  private decoding(b: Bar): boolean {
    return (this.dv.getUint16(R.PCIR_COMMAND, true) & (b.kind === 'io' ? R.CMD_PORTEN : R.CMD_MEMEN)) !== 0;
  }

  /** Where BAR `idx` should be on the bus now, or undefined when it is not decoded. */
  private live(idx: number): number | undefined {
    const b = this.bars[idx];
    if (!b || !this.decoding(b)) return undefined;
    const a = this.address(idx);
    if (a === undefined || a === 0) return undefined;
    if (b.kind === 'io' && a + b.size > IO_LIMIT) return undefined;
    return a;
  }
}
