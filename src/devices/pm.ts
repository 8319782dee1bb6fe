/**
 * The ACPI fixed-hardware power-management block, as bhyve's pm.c and vmm's
 * vpmtmr: the PM1a event block (status/enable), the PM1a control block
 * (SCI_EN, sleep: SLP_EN with SLP_TYP 5 powers the VM off), the 3.579545 MHz
 * PM timer, and the SMI command port that switches ACPI mode on and off.
 * The SCI is ISA IRQ 9, level-triggered, high while an enabled status bit is set.
 */
import { ExitStatus, type MachineContext } from '../vmm/context.js';
import { hostClock, initOnce, type Clock } from './clock.js';

export const PM1A_EVT_BLK = 0x400;
export const PM1A_EVT_LEN = 4;
export const PM1A_CNT_BLK = 0x404;
export const PM1A_CNT_LEN = 2;
export const PM_TMR_BLK = 0x408;
export const PM_TMR_LEN = 4;
export const PM_TMR_FREQ = 3_579_545;
/** The PM timer counts 32 bits: the FADT should set TMR_VAL_EXT. */
export const PM_TMR_32BIT = true;
export const SMI_CMD = 0xb2;
export const ACPI_ENABLE = 0xa0;
export const ACPI_DISABLE = 0xa1;
export const SCI_IRQ = 9;
/** SLP_TYP of \_S5 in bhyve's DSDT. */
export const SLP_TYP_S5 = 5;

// PM1 status and enable bits (same positions).
export const PM1_TMR_STS = 0x0001;
export const PM1_BM_STS = 0x0010;
export const PM1_GBL_STS = 0x0020;
export const PM1_PWRBTN_STS = 0x0100;
export const PM1_SLPBTN_STS = 0x0200;
export const PM1_RTC_STS = 0x0400;
export const PM1_WAK_STS = 0x8000;
/** Status bits the guest may clear by writing 1 (as bhyve). */
const PM1_STS_W1C = PM1_WAK_STS | PM1_RTC_STS | PM1_SLPBTN_STS | PM1_PWRBTN_STS | PM1_BM_STS;
/** Events that raise the SCI when both status and enable are set. */
const PM1_EVENTS = PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | PM1_SLPBTN_STS | PM1_RTC_STS;
/** Enable bits the guest may set: the power button, and GBL_EN, which ACPICA insists on. */
const PM1_EN_WRITABLE = PM1_PWRBTN_STS | PM1_GBL_STS;

// PM1 control bits.
export const PM1_SCI_EN = 0x0001;
const PM1_SLP_TYP_SHIFT = 10;
const PM1_SLP_TYP_MASK = 0x7;
export const PM1_SLP_EN = 0x2000;
/** Reserved and write-only control bits that always read 0. */
const PM1_CNT_ALWAYS_ZERO = 0xc003;

const MASK = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

export class PowerManagement {
  private readonly st: { status: number; enable: number; control: number; sciActive: number; tmrBaseNs: number };
  private readonly clock: Clock;

  constructor(private readonly ctx: MachineContext, opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? hostClock;
    const once = ctx.arena.int32(1);
    this.st = ctx.arena.struct({ status: 'u16', enable: 'u16', control: 'u16', sciActive: 'u8', tmrBaseNs: 'f64' });
    initOnce(once, () => { this.st.tmrBaseNs = this.clock.monoNs(); });
    ctx.io.register(PM1A_EVT_BLK, PM1A_EVT_LEN, {
      read: (off, size) => (((this.st.status | (this.st.enable << 16)) >>> (8 * off)) & MASK[size]) >>> 0,
      write: (off, size, v) => this.writeEvent(off, size, v),
    }, 'pm1a_evt');
    ctx.io.register(PM1A_CNT_BLK, PM1A_CNT_LEN, {
      read: (off, size) => (this.st.control >>> (8 * off)) & MASK[size],
      write: (off, size, v) => this.writeControl(off, size, v),
    }, 'pm1a_cnt');
    ctx.io.register(PM_TMR_BLK, PM_TMR_LEN, {
      read: (off, size) => Math.floor(this.timer() / 2 ** (8 * off)) % 2 ** (8 * size),
    }, 'pm_tmr');
    ctx.io.register(SMI_CMD, 1, {
      read: () => 0,
      write: (_off, _size, v) => this.smiCommand(v & 0xff),
    }, 'smi_cmd');
    ctx.onHost('powerbutton', () => {
      // As bhyve: SIGTERM only becomes a power-button press once the guest
      // has switched ACPI on; before that it ends the VM.
      if (!this.powerButton()) ctx.exit(ExitStatus.PowerOff, 'SIGTERM before the guest enabled ACPI');
    });
  }

  /** Whether the guest switched to ACPI mode (SCI_EN). */
  get acpiEnabled(): boolean { return (this.st.control & PM1_SCI_EN) !== 0; }

  /**
   * Press the power button: set PWRBTN_STS and raise the SCI if the guest
   * enabled it. Returns whether ACPI is on (someone is listening).
   */
  powerButton(): boolean {
    if (!(this.st.status & PM1_PWRBTN_STS)) {
      this.st.status |= PM1_PWRBTN_STS;
      this.updateSci();
    }
    return this.acpiEnabled;
  }

  /** PM timer value: ticks of 3.579545 MHz since the VM was built, 32 bits. */
  timer(): number {
    const ticks = Math.floor(((this.clock.monoNs() - this.st.tmrBaseNs) / 1e9) * PM_TMR_FREQ);
    return PM_TMR_32BIT ? ticks % 2 ** 32 : ticks % 2 ** 24;
  }

  private writeEvent(off: number, size: number, v: number): void {
    for (let i = 0; i < size && off + i < PM1A_EVT_LEN; i++) {
      const lane = off + i, b = (v >>> (8 * i)) & 0xff;
      if (lane < 2) this.st.status &= ~((b << (8 * lane)) & PM1_STS_W1C);
      else {
        const shift = 8 * (lane - 2);
        this.st.enable = (this.st.enable & ~(0xff << shift)) | ((b << shift) & PM1_EN_WRITABLE);
      }
    }
    this.updateSci();
  }

  private writeControl(off: number, size: number, v: number): void {
    let val = this.st.control;
    for (let i = 0; i < size && off + i < PM1A_CNT_LEN; i++) {
      const shift = 8 * (off + i);
      val = (val & ~(0xff << shift)) | (((v >>> (8 * i)) & 0xff) << shift);
    }
    // SCI_EN only changes through SMI_CMD; SLP_EN is write-only.
    this.st.control = (this.st.control & PM1_SCI_EN) | (val & ~(PM1_SLP_EN | PM1_CNT_ALWAYS_ZERO));
    if (val & PM1_SLP_EN) {
      const typ = (val >> PM1_SLP_TYP_SHIFT) & PM1_SLP_TYP_MASK;
      if (typ === SLP_TYP_S5) this.ctx.exit(ExitStatus.PowerOff, 'guest entered ACPI S5');
    }
  }

  private smiCommand(cmd: number): void {
    if (cmd === ACPI_ENABLE) this.st.control |= PM1_SCI_EN;
    else if (cmd === ACPI_DISABLE) this.st.control &= ~PM1_SCI_EN;
  }

  private updateSci(): void {
    const need = (this.st.status & this.st.enable & PM1_EVENTS) !== 0 ? 1 : 0;
    if (need === this.st.sciActive) return;
    this.st.sciActive = need;
    this.ctx.irq.line(SCI_IRQ, need === 1);
  }
}
