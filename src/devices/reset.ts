/**
 * The ways a PC guest resets itself: the reset control register at 0xCF9 (as
 * bhyve's pm.c: bit 2 resets, hard and soft alike), system control port A at
 * 0x92 (bit 0, the fast reset), and the keyboard controller's pulse-reset
 * command (0xFE at port 0x64). The i8042 here is minimal: it answers the
 * controller commands firmware and kernels use, and has no keyboard or mouse
 * behind it (it never raises IRQ 1 or 12).
 *
 * 0xCF9 lies inside 0xCF8-0xCFF, which the PCI root claims; the root forwards
 * byte accesses to RESET_PORT to a ResetControl (or to handleResetWrite).
 */
import { ExitStatus, type MachineContext } from '../vmm/context.js';
import { initOnce } from './clock.js';

export const RESET_PORT = 0xcf9;
/** Reset control register bits. */
export const RCR_SYS_RST = 0x02;
export const RCR_RST_CPU = 0x04;
export const RCR_FULL_RST = 0x08;

export const PORT_A = 0x92;
export const PORT_A_RESET = 0x01;
export const PORT_A_A20 = 0x02;

export const I8042_DATA = 0x60;
export const I8042_COMMAND = 0x64;
// Status register.
export const KBS_OBF = 0x01;
export const KBS_SYS = 0x04;
export const KBS_CMD = 0x08;
// Controller configuration byte ("command byte").
const CTR_SYS = 0x04, CTR_KBD_DISABLED = 0x10, CTR_AUX_DISABLED = 0x20;
// Commands.
export const KBC_READ_CTR = 0x20;
export const KBC_WRITE_CTR = 0x60;
export const KBC_AUX_DISABLE = 0xa7;
export const KBC_AUX_ENABLE = 0xa8;
export const KBC_AUX_TEST = 0xa9;
export const KBC_SELF_TEST = 0xaa;
export const KBC_KBD_TEST = 0xab;
export const KBC_KBD_DISABLE = 0xad;
export const KBC_KBD_ENABLE = 0xae;
export const KBC_READ_OUTPUT = 0xd0;
export const KBC_WRITE_OUTPUT = 0xd1;
export const KBC_WRITE_KBD_OUTBUF = 0xd2;
export const KBC_WRITE_AUX_OUTBUF = 0xd3;
export const KBC_WRITE_AUX = 0xd4;
/** 0xF0-0xFF pulse output-port lines low for a moment; bit 0 clear pulses the reset line. */
export const KBC_PULSE_FIRST = 0xf0;
export const KBC_PULSE_RESET = 0xfe;
const SELF_TEST_OK = 0x55, PORT_TEST_OK = 0x00;
/** Output port: bit 0 is the CPU reset line (low = reset), bit 1 the A20 gate. */
const OUT_RESET_LINE = 0x01, OUT_A20 = 0x02;

/** A write to the reset control register: bit 2 resets the VM (stateless form for the PCI root). */
export function handleResetWrite(ctx: MachineContext, value: number): void {
  if (value & RCR_RST_CPU) ctx.exit(ExitStatus.Reset, 'reset control register (0xcf9)');
}

/** The reset control register at 0xCF9; reads return the last value written. */
export class ResetControl {
  private readonly st: { value: number };
  constructor(private readonly ctx: MachineContext) {
    this.st = ctx.arena.struct({ value: 'u8' });
  }
  read(): number { return this.st.value; }
  write(value: number): void {
    this.st.value = value & 0xff;
    handleResetWrite(this.ctx, value);
  }
}

/** System control port A (0x92): fast A20 gate and fast reset. */
export class PortA {
  private readonly st: { value: number };
  constructor(private readonly ctx: MachineContext) {
    this.st = ctx.arena.struct({ value: 'u8' });
    ctx.io.register(PORT_A, 1, this, 'port92');
  }
  read(): number { return this.st.value | PORT_A_A20; } // A20 is always on under KVM
  write(_off: number, _size: number, v: number): void {
    const old = this.st.value;
    this.st.value = v & 0xff;
    if ((v & PORT_A_RESET) && !(old & PORT_A_RESET)) this.ctx.exit(ExitStatus.Reset, 'fast reset (port 0x92)');
  }
}

/** A keyboard controller with nothing attached. */
export class I8042 {
  private readonly st: { ctr: number; out: number; outFull: number; pending: number; lastCmd: number };
  constructor(private readonly ctx: MachineContext) {
    const once = ctx.arena.int32(1);
    this.st = ctx.arena.struct({ ctr: 'u8', out: 'u8', outFull: 'u8', pending: 'u8', lastCmd: 'u8' });
    // As firmware leaves it: self-test passed (SYS), both ports disabled since
    // nothing is behind them.
    initOnce(once, () => { this.st.ctr = CTR_SYS | CTR_KBD_DISABLED | CTR_AUX_DISABLED; });
    ctx.io.register(I8042_DATA, 1, { read: () => this.readData(), write: (_o, _s, v) => this.writeData(v & 0xff) }, 'i8042-data');
    ctx.io.register(I8042_COMMAND, 1, { read: () => this.status(), write: (_o, _s, v) => this.command(v & 0xff) }, 'i8042-cmd');
  }

  status(): number {
    const s = this.st;
    return (s.outFull ? KBS_OBF : 0) | (s.ctr & CTR_SYS ? KBS_SYS : 0) | (s.lastCmd ? KBS_CMD : 0);
  }

  private reply(b: number): void { this.st.out = b; this.st.outFull = 1; }

  private readData(): number {
    this.st.outFull = 0;
    return this.st.out;
  }

  private writeData(v: number): void {
    const s = this.st;
    s.lastCmd = 0;
    const cmd = s.pending;
    s.pending = 0;
    switch (cmd) {
      case KBC_WRITE_CTR: s.ctr = v; break;
      case KBC_WRITE_OUTPUT:
        if (!(v & OUT_RESET_LINE)) this.ctx.exit(ExitStatus.Reset, 'keyboard controller output port reset');
        break;
      case KBC_WRITE_KBD_OUTBUF: case KBC_WRITE_AUX_OUTBUF: this.reply(v); break;
      default: break; // to the keyboard or mouse: nobody there
    }
  }

  private command(c: number): void {
    const s = this.st;
    s.lastCmd = 1;
    s.pending = 0;
    switch (c) {
      case KBC_READ_CTR: this.reply(s.ctr); break;
      case KBC_WRITE_CTR: case KBC_WRITE_OUTPUT: case KBC_WRITE_KBD_OUTBUF: case KBC_WRITE_AUX_OUTBUF: case KBC_WRITE_AUX:
        s.pending = c; break;
      case KBC_AUX_DISABLE: s.ctr |= CTR_AUX_DISABLED; break;
      case KBC_AUX_ENABLE: s.ctr &= ~CTR_AUX_DISABLED; break;
      case KBC_KBD_DISABLE: s.ctr |= CTR_KBD_DISABLED; break;
      case KBC_KBD_ENABLE: s.ctr &= ~CTR_KBD_DISABLED; break;
      case KBC_SELF_TEST: s.ctr |= CTR_SYS; this.reply(SELF_TEST_OK); break;
      case KBC_KBD_TEST: case KBC_AUX_TEST: this.reply(PORT_TEST_OK); break;
      case KBC_READ_OUTPUT: this.reply(OUT_RESET_LINE | OUT_A20); break;
      default:
        if (c >= KBC_PULSE_FIRST && !(c & OUT_RESET_LINE)) this.ctx.exit(ExitStatus.Reset, 'keyboard controller reset (0xfe)');
        break;
    }
  }
}

/** The reset paths bhyve's platform has, built together (0xCF9 is handed to the PCI root). */
export class ResetDevices {
  readonly control: ResetControl;
  readonly portA: PortA;
  readonly i8042: I8042;
  constructor(ctx: MachineContext) {
    this.control = new ResetControl(ctx);
    this.portA = new PortA(ctx);
    this.i8042 = new I8042(ctx);
  }
}
