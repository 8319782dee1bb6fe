/**
 * An MSI-X table and pending-bit array, living in one memory BAR of its
 * function (as bhyve lays it out: the table at offset 0, the PBA at the next
 * 4 KiB boundary). All state is in the shared arena.
 */
import type { BusDevice } from '../../vmm/bus.js';
import type { MachineContext } from '../../vmm/context.js';
import { MSIXCTRL_ENABLE, MSIXCTRL_FUNCTION_MASK, MSIX_ENTRY_SIZE, MSIX_VCTRL_MASK } from './regs.js';

export const MSIX_MAX_VECTORS = 2048;
const PAGE = 4096;
const ENTRY_ADDR_LO = 0;
const ENTRY_ADDR_HI = 4;
const ENTRY_DATA = 8;
const ENTRY_VCTRL = 12;
const ONES = 0xffffffff;

export class MsixTable implements BusDevice {
  /** Byte offset of the PBA inside the BAR. */
  readonly pbaOffset: number;
  readonly pbaSize: number;
  /** Bytes the BAR must cover (before power-of-two rounding). */
  readonly barSize: number;
  private readonly table: Uint8Array;
  private readonly tv: DataView;
  private readonly pba: Uint8Array;

  /**
   * `ctrl` returns the capability's current message-control register, so the
   * table sees the enable and function-mask bits the guest programmed.
   */
  constructor(
    private readonly ctx: MachineContext,
    readonly count: number,
    primary: boolean,
    private readonly ctrl: () => number,
    /** Sends a message; default ctx.irq.msi (a function may use an irqfd per vector instead). */
    private readonly deliver?: (vector: number, address: bigint, data: number) => void,
  ) {
    this.table = ctx.arena.bytes(count * MSIX_ENTRY_SIZE);
    this.tv = new DataView(this.table.buffer, this.table.byteOffset, this.table.byteLength);
    this.pbaSize = Math.ceil(count / 64) * 8;
    this.pba = ctx.arena.bytes(this.pbaSize);
    this.pbaOffset = Math.ceil((count * MSIX_ENTRY_SIZE) / PAGE) * PAGE;
    this.barSize = this.pbaOffset + this.pbaSize;
    if (primary) {
      for (let i = 0; i < count; i++) this.tv.setUint32(i * MSIX_ENTRY_SIZE + ENTRY_VCTRL, MSIX_VCTRL_MASK, true);
    }
  }

  get enabled(): boolean { return (this.ctrl() & MSIXCTRL_ENABLE) !== 0; }

  read(offset: number, size: number): number {
    if (offset % size !== 0) return ONES >>> (32 - 8 * size);
    if (offset + size <= this.table.length) return readLE(this.table, offset, size);
    const p = offset - this.pbaOffset;
    if (p >= 0 && p + size <= this.pbaSize) return readLE(this.pba, p, size);
    return ONES >>> (32 - 8 * size);
  }

  write(offset: number, size: number, value: number): void {
    if (offset % size !== 0 || offset + size > this.table.length) return;
    for (let i = 0; i < size; i++) this.table[offset + i] = (value >>> (8 * i)) & 0xff;
    const entry = Math.floor(offset / MSIX_ENTRY_SIZE);
    if ((offset % MSIX_ENTRY_SIZE) + size > ENTRY_VCTRL) this.deliverPending(entry);
  }

  /**
   * Signal `vector`. Returns false when MSI-X is off or the vector does not
   * exist; a masked vector is remembered in the PBA and sent when unmasked.
   */
  fire(vector: number): boolean {
    if (!this.enabled || !Number.isInteger(vector) || vector < 0 || vector >= this.count) return false;
    if (this.masked(vector)) this.pba[vector >> 3] |= 1 << (vector & 7);
    else this.send(vector);
    return true;
  }

  /** Deliver every pending vector that is no longer masked (after a control change). */
  flush(): void {
    for (let v = 0; v < this.count; v++) this.deliverPending(v);
  }

  private masked(v: number): boolean {
    if (this.ctrl() & MSIXCTRL_FUNCTION_MASK) return true;
    return (this.tv.getUint32(v * MSIX_ENTRY_SIZE + ENTRY_VCTRL, true) & MSIX_VCTRL_MASK) !== 0;
  }

  private deliverPending(v: number): void {
    const bit = 1 << (v & 7);
    if ((this.pba[v >> 3] & bit) === 0 || !this.enabled || this.masked(v)) return;
    this.pba[v >> 3] &= ~bit;
    this.send(v);
  }

  private send(v: number): void {
    const base = v * MSIX_ENTRY_SIZE;
    const lo = this.tv.getUint32(base + ENTRY_ADDR_LO, true);
    const hi = this.tv.getUint32(base + ENTRY_ADDR_HI, true);
    const address = (BigInt(hi) << 32n) | BigInt(lo), data = this.tv.getUint32(base + ENTRY_DATA, true);
    if (this.deliver) this.deliver(v, address, data);
    else this.ctx.irq.msi(address, data);
  }
}

function readLE(b: Uint8Array, off: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + b[off + i];
  return v;
}
