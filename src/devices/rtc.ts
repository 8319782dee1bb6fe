/**
 * The MC146818 CMOS real-time clock at ports 0x70/0x71, after FreeBSD's vrtc
 * and bhyve's rtc_init: 128 bytes of CMOS, the time derived from the host
 * monotonic clock plus an offset the guest may change (SET in register B),
 * BCD or binary and 12/24-hour formats, update-ended, alarm and periodic
 * interrupts on IRQ 8, and the memory-size bytes firmware reads.
 */
import type { HostTimer, MachineContext } from '../vmm/context.js';
import { hostClock, initOnce, type Clock } from './clock.js';

export const RTC_PORT = 0x70;
export const RTC_IRQ = 8;
export const CMOS_SIZE = 128;

// Time and control registers.
const SEC = 0x00, SEC_ALARM = 0x01, MIN = 0x02, MIN_ALARM = 0x03, HOUR = 0x04, HOUR_ALARM = 0x05;
const DOW = 0x06, DOM = 0x07, MONTH = 0x08, YEAR = 0x09;
export const REG_A = 0x0a, REG_B = 0x0b, REG_C = 0x0c, REG_D = 0x0d;
// Register A.
export const A_UIP = 0x80;
const A_DIVIDER = 0x70, A_DIVIDER_32K = 0x20, A_RATE = 0x0f;
// Register B.
export const B_SET = 0x80, B_PIE = 0x40, B_AIE = 0x20, B_UIE = 0x10, B_DM_BINARY = 0x04, B_24H = 0x02;
const B_INTRS = B_PIE | B_AIE | B_UIE;
// Register C.
export const C_IRQF = 0x80, C_PF = 0x40, C_AF = 0x20, C_UF = 0x10;
// Register D.
const D_VRT = 0x80;
const INDEX_MASK = 0x7f, NMI_DISABLE = 0x80, HOUR_PM = 0x80, ALARM_DONT_CARE = 0xc0;
/** UIP reads 1 this long before each second boundary (MC146818 t_BUC). */
const UIP_WINDOW_MS = 0.244;

// Memory-size bytes (little-endian; the byte after each _LO is its high byte),
// as bhyve's rtc_init and PC firmware use them.
export const CMOS_BASEMEM_LO = 0x15, CMOS_EXTMEM_LO = 0x17, CMOS_EXTMEM2_LO = 0x30, CMOS_LOWMEM_LO = 0x34;
export const CMOS_CHECKSUM_HI = 0x2e, CMOS_CHECKSUM_LO = 0x2f;
export const CMOS_CENTURY = 0x32;
export const CMOS_HIGHMEM_LO = 0x5b, CMOS_HIGHMEM_MID = 0x5c, CMOS_HIGHMEM_HI = 0x5d;
/** The checksummed range of the AT CMOS layout. */
const CHECKSUM_FIRST = 0x10, CHECKSUM_LAST = 0x2d;

const KiB = 1024, MiB = 1024 * KiB, BLOCK_64K = 64 * KiB, MiB16 = 16 * MiB;
const BASEMEM_KIB = 640;

export interface RtcOptions {
  /** RAM below 4 GiB, bytes. */
  lowmem: number;
  /** RAM above 4 GiB, bytes. */
  highmem: number;
  clock?: Clock;
}

export class Rtc {
  private readonly cmos: Uint8Array;
  private readonly st: {
    index: number; nmiDisabled: number;
    /** Guest time (ms since epoch, as UTC fields) = host monotonic ms + offsetMs while running. */
    offsetMs: number;
    /** Guest time while the clock is stopped (SET or divider held). */
    frozenMs: number;
    /** The guest second last looked at for the update-ended flag. */
    lastSec: number;
    /** Host monotonic ns of the next periodic tick; 0 when none. */
    pfDue: number;
  };
  private readonly clock: Clock;
  private readonly updateTimer: HostTimer;
  private readonly periodicTimer: HostTimer;

  constructor(private readonly ctx: MachineContext, opts: RtcOptions) {
    this.clock = opts.clock ?? hostClock;
    const once = ctx.arena.int32(1);
    this.cmos = ctx.arena.bytes(CMOS_SIZE);
    this.st = ctx.arena.struct({ index: 'u8', nmiDisabled: 'u8', offsetMs: 'f64', frozenMs: 'f64', lastSec: 'f64', pfDue: 'f64' });
    this.updateTimer = ctx.timer('rtc.update', () => this.tick());
    this.periodicTimer = ctx.timer('rtc.periodic', () => this.tick());
    const localtime = ctx.config.bool('rtc.use_localtime', true);
    initOnce(once, () => this.init(opts, localtime));
    ctx.io.register(RTC_PORT, 2, this, 'rtc');
  }

  private init(opts: RtcOptions, localtime: boolean): void {
    const c = this.cmos;
    c[REG_A] = A_DIVIDER_32K;
    c[REG_B] = B_24H;
    c[REG_D] = D_VRT;
    this.st.index = REG_D; // a harmless register, as vrtc
    const put16 = (lo: number, v: number) => { c[lo] = v & 0xff; c[lo + 1] = (v >> 8) & 0xff; };
    put16(CMOS_BASEMEM_LO, BASEMEM_KIB);
    const extKiB = Math.min(0xffff, Math.max(0, Math.floor((opts.lowmem - MiB) / KiB)));
    put16(CMOS_EXTMEM_LO, extKiB);
    put16(CMOS_EXTMEM2_LO, extKiB);
    put16(CMOS_LOWMEM_LO, Math.min(0xffff, Math.max(0, Math.floor((opts.lowmem - MiB16) / BLOCK_64K))));
    const high = Math.min(0xffffff, Math.max(0, Math.floor(opts.highmem / BLOCK_64K)));
    c[CMOS_HIGHMEM_LO] = high & 0xff;
    c[CMOS_HIGHMEM_MID] = (high >> 8) & 0xff;
    c[CMOS_HIGHMEM_HI] = (high >> 16) & 0xff;
    let sum = 0;
    for (let i = CHECKSUM_FIRST; i <= CHECKSUM_LAST; i++) sum += c[i];
    c[CMOS_CHECKSUM_HI] = (sum >> 8) & 0xff;
    c[CMOS_CHECKSUM_LO] = sum & 0xff;
    // As bhyve's rtc_time: local time fields when use_localtime, else UTC.
    const wall = this.clock.wallMs();
    const guest = localtime ? wall + this.clock.localOffsetMs(wall) : wall;
    this.st.offsetMs = guest - this.monoMs();
    this.st.lastSec = Math.floor(guest / 1000);
    this.refresh();
  }

  read(offset: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= (offset + i === 1 ? this.readData() : 0xff) << (8 * i);
    return v >>> 0;
  }

  write(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) {
      const b = (value >>> (8 * i)) & 0xff;
      if (offset + i === 0) { this.st.index = b & INDEX_MASK; this.st.nmiDisabled = b & NMI_DISABLE ? 1 : 0; }
      else if (offset + i === 1) this.writeData(b);
    }
  }

  /** The NMI-disable bit of the last index write (kept, not acted on, as vrtc). */
  get nmiDisabled(): boolean { return this.st.nmiDisabled !== 0; }

  private readData(): number {
    const i = this.st.index, c = this.cmos;
    if (i <= YEAR || i === CMOS_CENTURY) { this.refresh(); return c[i]; }
    if (i === REG_A) return c[REG_A] | (this.uip() ? A_UIP : 0);
    if (i === REG_C) {
      this.poll();
      const v = c[REG_C];
      c[REG_C] = 0;
      this.armTimers();
      return v;
    }
    return c[i];
  }

  private writeData(b: number): void {
    const i = this.st.index, c = this.cmos;
    switch (i) {
      case REG_A: this.setRegA(b); return;
      case REG_B: this.setRegB(b); return;
      case REG_C: case REG_D: return; // read-only
      case SEC: c[SEC] = b & 0x7f; return;
    }
    c[i] = b;
    // As vrtc: guests that write the century outside SET still change the date.
    if (i === CMOS_CENTURY && this.running()) {
      const t = this.parseTime();
      if (t !== undefined) this.setTime(t);
    }
  }

  private setRegA(b: number): void {
    const was = this.running(), before = this.nowMs();
    const old = this.cmos[REG_A];
    this.cmos[REG_A] = b & ~A_UIP;
    this.transition(was, before);
    if ((old ^ b) & (A_DIVIDER | A_RATE)) this.restartPeriodic();
  }

  private setRegB(b: number): void {
    const c = this.cmos, old = c[REG_B];
    const was = this.running(), before = this.nowMs();
    if (b & B_SET) b &= ~B_UIE; // SET masks update interrupts (MC146818)
    if ((b & B_SET) && !(old & B_SET)) {
      c[REG_B] = b;            // latch the time as it was, in the new format
      this.st.frozenMs = before;
      this.fill(before);
    } else if (!(b & B_SET) && (old & B_SET)) {
      c[REG_B] = b;            // interpret the fields in the new format
      const t = this.parseTime();
      this.st.frozenMs = t ?? this.st.frozenMs;
      this.st.lastSec = Math.floor(this.st.frozenMs / 1000);
      if (this.running()) this.st.offsetMs = this.st.frozenMs - this.monoMs();
    } else {
      c[REG_B] = b;
      this.transition(was, before);
    }
    this.updateIrqf();
    this.armTimers();
  }

  /** Keep the guest time continuous across a divider start/stop. */
  private transition(was: boolean, before: number): void {
    const now = this.running();
    if (was && !now) this.st.frozenMs = before;
    else if (!was && now) this.st.offsetMs = this.st.frozenMs - this.monoMs();
  }

  private setTime(ms: number): void {
    if (this.running()) this.st.offsetMs = ms - this.monoMs();
    else this.st.frozenMs = ms;
    this.st.lastSec = Math.floor(ms / 1000);
    this.armTimers();
  }

  private monoMs(): number { return this.clock.monoNs() / 1e6; }

  private running(): boolean {
    const c = this.cmos;
    return (c[REG_A] & A_DIVIDER) === A_DIVIDER_32K && (c[REG_B] & B_SET) === 0;
  }

  private nowMs(): number { return this.running() ? this.monoMs() + this.st.offsetMs : this.st.frozenMs; }

  private uip(): boolean {
    if (!this.running()) return false;
    const frac = this.nowMs() - Math.floor(this.nowMs() / 1000) * 1000;
    return frac >= 1000 - UIP_WINDOW_MS;
  }

  private binary(): boolean { return (this.cmos[REG_B] & B_DM_BINARY) !== 0; }
  private enc(v: number): number { return this.binary() ? v : ((v / 10) | 0) * 16 + (v % 10); }
  private dec(b: number): number {
    if (this.binary()) return b;
    const hi = b >> 4, lo = b & 0xf;
    return hi > 9 || lo > 9 ? NaN : hi * 10 + lo;
  }

  /** Regenerate the time fields from the clock (not while SET: they are the guest's). */
  private refresh(): void {
    if (!(this.cmos[REG_B] & B_SET)) this.fill(this.nowMs());
  }

  private fill(ms: number): void {
    const c = this.cmos;
    const d = new Date(Math.floor(ms / 1000) * 1000);
    const h = d.getUTCHours(), year = d.getUTCFullYear();
    c[SEC] = this.enc(d.getUTCSeconds());
    c[MIN] = this.enc(d.getUTCMinutes());
    c[HOUR] = c[REG_B] & B_24H ? this.enc(h) : this.enc(h % 12 || 12) | (h >= 12 ? HOUR_PM : 0);
    c[DOW] = this.enc(d.getUTCDay() + 1);
    c[DOM] = this.enc(d.getUTCDate());
    c[MONTH] = this.enc(d.getUTCMonth() + 1);
    c[YEAR] = this.enc(year % 100);
    c[CMOS_CENTURY] = this.enc(Math.floor(year / 100) % 100);
  }

  /** The time in the fields, or undefined when a field is out of range. */
  private parseTime(): number | undefined {
    const c = this.cmos;
    const s = this.dec(c[SEC]), m = this.dec(c[MIN]), day = this.dec(c[DOM]), mon = this.dec(c[MONTH]);
    const y = this.dec(c[YEAR]), cent = this.dec(c[CMOS_CENTURY]);
    let h: number;
    if (c[REG_B] & B_24H) h = this.dec(c[HOUR]);
    else {
      const h12 = this.dec(c[HOUR] & ~HOUR_PM);
      h = h12 >= 1 && h12 <= 12 ? (h12 % 12) + (c[HOUR] & HOUR_PM ? 12 : 0) : NaN;
    }
    if (!(s <= 59 && m <= 59 && h <= 23 && day >= 1 && day <= 31 && mon >= 1 && mon <= 12 && y <= 99 && cent <= 99)) return undefined;
    const d = new Date(0);
    d.setUTCFullYear(cent * 100 + y, mon - 1, day);
    d.setUTCHours(h, m, s, 0);
    return d.getTime();
  }

  private alarmMatches(): boolean {
    const c = this.cmos;
    const eq = (alarm: number, cur: number) => (c[alarm] & ALARM_DONT_CARE) === ALARM_DONT_CARE || c[alarm] === c[cur];
    return eq(SEC_ALARM, SEC) && eq(MIN_ALARM, MIN) && eq(HOUR_ALARM, HOUR);
  }

  /** Periodic interrupt period in ns (0 = none): rate select over the 32.768 kHz time base. */
  private periodNs(): number {
    const a = this.cmos[REG_A], rate = a & A_RATE;
    if (rate === 0 || (a & A_DIVIDER) !== A_DIVIDER_32K) return 0;
    const shift = rate <= 2 ? rate + 6 : rate - 1;
    return ((1 << shift) / 32768) * 1e9;
  }

  /** Set the flags that came due since last looked at (update, alarm, periodic). */
  private poll(): void {
    let flags = 0;
    if (this.running()) {
      const sec = Math.floor(this.nowMs() / 1000);
      if (sec !== this.st.lastSec) {
        this.st.lastSec = sec;
        flags |= C_UF;
        this.refresh();
        if (this.alarmMatches()) flags |= C_AF;
      }
    }
    const due = this.st.pfDue, period = this.periodNs(), now = this.clock.monoNs();
    if (due > 0 && period > 0 && now >= due) {
      flags |= C_PF;
      this.st.pfDue = due + period * (Math.floor((now - due) / period) + 1);
    }
    this.cmos[REG_C] |= flags;
    this.updateIrqf();
  }

  /** IRQF follows the enabled flags; its rising edge is the interrupt (vrtc pulses IRQ 8). */
  private updateIrqf(): void {
    const c = this.cmos;
    const want = (c[REG_C] & c[REG_B] & B_INTRS) !== 0;
    if (want && !(c[REG_C] & C_IRQF)) {
      c[REG_C] |= C_IRQF;
      this.ctx.irq.pulse(RTC_IRQ);
    } else if (!want) c[REG_C] &= ~C_IRQF;
  }

  private restartPeriodic(): void {
    const p = this.periodNs();
    this.st.pfDue = p > 0 ? this.clock.monoNs() + p : 0;
    this.armTimers();
  }

  private armTimers(): void {
    const b = this.cmos[REG_B];
    if (this.running() && (b & (B_UIE | B_AIE))) {
      const ms = this.nowMs();
      this.updateTimer.arm(Math.max(0, (Math.floor(ms / 1000) + 1) * 1000 - ms) * 1e6);
    } else this.updateTimer.cancel();
    // While PF is pending nothing new can happen until the guest reads C.
    if ((b & B_PIE) && this.st.pfDue > 0 && !(this.cmos[REG_C] & C_PF)) this.periodicTimer.arm(Math.max(0, this.st.pfDue - this.clock.monoNs()));
    else this.periodicTimer.cancel();
  }

  /** Timer callback (main thread, under the device lock). */
  private tick(): void {
    this.poll();
    this.armTimers();
  }
}
