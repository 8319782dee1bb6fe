/**
 * A 16550A UART, after bhyve's uart_emul.c: transmit is instant (THR always
 * empty), receive goes through a 16-byte FIFO, loopback reflects the modem
 * control lines as Linux's 8250 probe expects. All state is in the arena.
 *
 * Output is written straight to the back-end by the thread handling the exit;
 * input arrives through receive() on the main thread, under the device lock.
 */
import type { BusDevice } from '../vmm/bus.js';
import type { HostTimer, MachineContext } from '../vmm/context.js';
import { SharedFifo } from '../vmm/shared.js';

export interface UartBackend { write(bytes: Uint8Array | number): void }
/** The UART's interrupt output: called after every access with the current level. */
export type UartIrq = (level: boolean) => void;

export const UART_IO_SIZE = 8;
export const FIFO_SIZE = 16;

// Register offsets.
const REG_DATA = 0; // RBR / THR; DLL when DLAB
const REG_IER = 1; // DLM when DLAB
const REG_IIR = 2; // FCR on write
const REG_LCR = 3;
const REG_MCR = 4;
const REG_LSR = 5;
const REG_MSR = 6;
const REG_SCR = 7;

const IER_ERDA = 0x01, IER_ETHRE = 0x02, IER_ELSI = 0x04, IER_EMSI = 0x08, IER_MASK = 0x0f;
const IIR_NOPEND = 0x01, IIR_MLSC = 0x00, IIR_TXRDY = 0x02, IIR_RXRDY = 0x04, IIR_RLS = 0x06, IIR_RXTOUT = 0x0c;
const IIR_FIFO_ON = 0xc0;
const FCR_ENABLE = 0x01, FCR_RCV_RST = 0x02, FCR_DMA = 0x08, FCR_RX_MASK = 0xc0;
const LCR_DLAB = 0x80;
const MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT1 = 0x04, MCR_OUT2 = 0x08, MCR_LOOPBACK = 0x10, MCR_MASK = 0x1f;
const LSR_DR = 0x01, LSR_OE = 0x02, LSR_THRE = 0x20, LSR_TEMT = 0x40;
const MSR_DCTS = 0x01, MSR_DDSR = 0x02, MSR_TERI = 0x04, MSR_DDCD = 0x08, MSR_DELTA = 0x0f;
const MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80;
/** RX trigger levels selected by FCR bits 6-7. */
const TRIGGER = [1, 4, 8, 14];
/** Divisor for 9600 baud from the 1.8432 MHz clock (bhyve's reset value). */
const DEFAULT_DIVISOR = 1843200 / 9600 / 16;

type RegName = 'ier' | 'lcr' | 'mcr' | 'lsr' | 'msr' | 'fcr' | 'scr' | 'dll' | 'dlh' | 'thre' | 'rxsize' | 'wantRx';

export class Uart16550 implements BusDevice {
  private readonly r: Record<RegName, number>;
  private readonly rx: SharedFifo;
  private readonly rxTimer: HostTimer;
  /** Main thread: called (under the lock) when the RX FIFO has room again after a refused byte. */
  onRxSpace: (() => void) | undefined;

  constructor(ctx: MachineContext, readonly name: string, private readonly irq: UartIrq, private readonly backend?: UartBackend) {
    this.r = ctx.arena.struct({
      ier: 'u8', lcr: 'u8', mcr: 'u8', lsr: 'u8', msr: 'u8', fcr: 'u8', scr: 'u8',
      dll: 'u8', dlh: 'u8', thre: 'u8', rxsize: 'u8', wantRx: 'u8',
    });
    this.rx = new SharedFifo(ctx.arena, FIFO_SIZE);
    this.rxTimer = ctx.timer(`uart.${name}.rx`, () => this.onRxSpace?.());
    if (ctx.role === 'main') this.reset();
  }

  reset(): void {
    const r = this.r;
    r.ier = 0; r.lcr = 0; r.mcr = 0; r.lsr = 0; r.fcr = 0; r.scr = 0; r.thre = 0;
    r.dll = DEFAULT_DIVISOR & 0xff;
    r.dlh = DEFAULT_DIVISOR >> 8;
    r.msr = modemStatus(0);
    this.rxReset(1);
  }

  read(offset: number, size: number): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.readReg(offset + i);
    this.toggleIntr();
    return v >>> 0;
  }

  write(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.writeReg(offset + i, (value >>> (8 * i)) & 0xff);
    this.toggleIntr();
  }

  /**
   * A byte from the host (main thread, under the lock). Returns false when
   * the FIFO is full: keep the byte and offer it again after onRxSpace.
   * In loopback mode host input is dropped, as the line is disconnected.
   */
  receive(byte: number): boolean {
    if (this.r.mcr & MCR_LOOPBACK) return true;
    if (this.rx.length >= this.r.rxsize) {
      this.r.wantRx = 1;
      return false;
    }
    this.rx.push(byte & 0xff);
    this.toggleIntr();
    return true;
  }

  private readReg(off: number): number {
    const r = this.r;
    if (r.lcr & LCR_DLAB) {
      if (off === REG_DATA) return r.dll;
      if (off === REG_IER) return r.dlh;
    }
    switch (off) {
      case REG_DATA: {
        const b = this.rx.shift();
        this.rxSpace();
        return b < 0 ? 0 : b;
      }
      case REG_IER: return r.ier;
      case REG_IIR: {
        const reason = this.intrReason();
        if (reason === IIR_TXRDY) r.thre = 0;
        return reason | (r.fcr & FCR_ENABLE ? IIR_FIFO_ON : 0);
      }
      case REG_LCR: return r.lcr;
      case REG_MCR: return r.mcr;
      case REG_LSR: {
        const v = LSR_THRE | LSR_TEMT | (r.lsr & LSR_OE) | (this.rx.length > 0 ? LSR_DR : 0);
        r.lsr = r.lsr & ~LSR_OE;
        return v;
      }
      case REG_MSR: {
        const v = r.msr;
        r.msr = v & ~MSR_DELTA;
        return v;
      }
      case REG_SCR: return r.scr;
      default: return 0xff;
    }
  }

  private writeReg(off: number, v: number): void {
    const r = this.r;
    if (r.lcr & LCR_DLAB) {
      if (off === REG_DATA) { r.dll = v; return; }
      if (off === REG_IER) { r.dlh = v; return; }
    }
    switch (off) {
      case REG_DATA:
        if (r.mcr & MCR_LOOPBACK) {
          if (this.rx.length >= r.rxsize || !this.rx.push(v)) r.lsr = r.lsr | LSR_OE;
        } else {
          this.backend?.write(v);
        }
        r.thre = 1;
        break;
      case REG_IER:
        // THR is always empty, so enabling its interrupt raises it at once.
        if (!(r.ier & IER_ETHRE) && v & IER_ETHRE) r.thre = 1;
        r.ier = v & IER_MASK;
        break;
      case REG_IIR: // FCR
        if ((r.fcr ^ v) & FCR_ENABLE) this.rxReset(v & FCR_ENABLE ? FIFO_SIZE : 1);
        if (!(v & FCR_ENABLE)) r.fcr = 0;
        else {
          if (v & FCR_RCV_RST) this.rxReset(FIFO_SIZE);
          r.fcr = v & (FCR_ENABLE | FCR_DMA | FCR_RX_MASK);
        }
        break;
      case REG_LCR: r.lcr = v; break;
      case REG_MCR: {
        r.mcr = v & MCR_MASK;
        const now = modemStatus(r.mcr);
        const old = r.msr;
        let delta = old & MSR_DELTA;
        if ((now ^ old) & MSR_CTS) delta |= MSR_DCTS;
        if ((now ^ old) & MSR_DSR) delta |= MSR_DDSR;
        if ((now ^ old) & MSR_DCD) delta |= MSR_DDCD;
        if (old & MSR_RI && !(now & MSR_RI)) delta |= MSR_TERI;
        r.msr = now | delta;
        this.rxSpace();
        break;
      }
      case REG_SCR: r.scr = v; break;
      default: break; // LSR and MSR are read-only
    }
  }

  /** The highest-priority pending interrupt, as IIR reports it. */
  private intrReason(): number {
    const r = this.r;
    if (r.lsr & LSR_OE && r.ier & IER_ELSI) return IIR_RLS;
    const n = this.rx.length;
    if (n > 0 && r.ier & IER_ERDA) {
      const fifo = (r.fcr & FCR_ENABLE) !== 0;
      return fifo && n < TRIGGER[r.fcr >> 6] ? IIR_RXTOUT : IIR_RXRDY;
    }
    if (r.thre && r.ier & IER_ETHRE) return IIR_TXRDY;
    if (r.msr & MSR_DELTA && r.ier & IER_EMSI) return IIR_MLSC;
    return IIR_NOPEND;
  }

  private toggleIntr(): void { this.irq(this.intrReason() !== IIR_NOPEND); }

  private rxReset(size: number): void {
    this.rx.clear();
    this.r.rxsize = size;
    this.rxSpace();
  }

  /** Ask the main thread to offer held input again once there is room. */
  private rxSpace(): void {
    if (this.r.wantRx && this.rx.length < this.r.rxsize && !(this.r.mcr & MCR_LOOPBACK)) {
      this.r.wantRx = 0;
      this.rxTimer.arm(0);
    }
  }
}

/** MSR as the modem lines give it: loopback reflects MCR; otherwise DCD, DSR and CTS are up. */
function modemStatus(mcr: number): number {
  if (!(mcr & MCR_LOOPBACK)) return MSR_DCD | MSR_DSR | MSR_CTS;
  return (mcr & MCR_RTS ? MSR_CTS : 0) | (mcr & MCR_DTR ? MSR_DSR : 0)
    | (mcr & MCR_OUT1 ? MSR_RI : 0) | (mcr & MCR_OUT2 ? MSR_DCD : 0);
}
