/**
 * The HPET, after FreeBSD's vhpet: 1 KiB of MMIO at 0xFED00000, a 64-bit main
 * counter at 2^24 Hz derived from the host monotonic clock, and 8 comparators
 * (one-shot or periodic, 32- or 64-bit) whose interrupts go to IOAPIC pins
 * 20-23 (edge, or level held until the guest clears the status bit) or as an
 * FSB message (MSI). Legacy replacement routing is not offered, as vhpet.
 * Registers are 64-bit; accesses are taken as dwords (a 64-bit access
 * arrives as two), smaller ones are merged into the dword.
 */
import type { HostTimer, MachineContext } from '../vmm/context.js';
import { hostClock, initOnce, type Clock } from './clock.js';

export const HPET_BASE = 0xfed00000;
export const HPET_SIZE = 0x400;
export const HPET_NUM_TIMERS = 8;
export const HPET_FREQ = 16_777_216;
/** Tick period in femtoseconds (GCAP_ID bits 63:32). */
export const HPET_PERIOD_FS = Math.floor(1e15 / HPET_FREQ);
export const HPET_VENDOR_ID = 0x8086;
export const HPET_REV_ID = 1;
/** IOAPIC pins a comparator may be routed to (Tn_INT_ROUTE_CAP): 20-23. */
export const HPET_ALLOWED_IRQS = 0x00f00000;

// Register offsets (dwords).
export const HPET_CAP = 0x000, HPET_CAP_HI = 0x004, HPET_CONFIG = 0x010, HPET_ISR = 0x020;
export const HPET_COUNTER = 0x0f0, HPET_COUNTER_HI = 0x0f4;
const TIMER_BASE = 0x100, TIMER_STRIDE = 0x20;
export const T_CONF = 0x00, T_CONF_HI = 0x04, T_CMP = 0x08, T_CMP_HI = 0x0c, T_FSB_DATA = 0x10, T_FSB_ADDR = 0x14;
export const timerReg = (n: number, reg: number): number => TIMER_BASE + n * TIMER_STRIDE + reg;
// GCAP_ID.
export const CAP_COUNT_SIZE = 1 << 13;
/** GCAP_ID bits 31:0 (the ACPI HPET table's event timer block id). */
export const HPET_CAP_LO = (HPET_REV_ID | ((HPET_NUM_TIMERS - 1) << 8) | CAP_COUNT_SIZE | (HPET_VENDOR_ID << 16)) >>> 0;
// GEN_CONF.
export const CNF_ENABLE = 1 << 0;
// Tn_CONF.
export const TN_INT_LEVEL = 1 << 1;
export const TN_INT_ENB = 1 << 2;
export const TN_PERIODIC = 1 << 3;
export const TN_PER_INT_CAP = 1 << 4;
export const TN_SIZE_CAP = 1 << 5;
export const TN_VAL_SET = 1 << 6;
export const TN_32MODE = 1 << 8;
export const TN_ROUTE_SHIFT = 9;
const TN_ROUTE = 0x1f << TN_ROUTE_SHIFT;
export const TN_FSB_EN = 1 << 14;
export const TN_FSB_CAP = 1 << 15;
const TN_RO = TN_PER_INT_CAP | TN_SIZE_CAP | TN_FSB_CAP;
const TN_RW = TN_INT_LEVEL | TN_INT_ENB | TN_PERIODIC | TN_VAL_SET | TN_32MODE | TN_ROUTE | TN_FSB_EN;

const MASK = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];
const M32 = 0xffffffffn, M64 = (1n << 64n) - 1n;
/** A timer callback this early still counts as the match (host timers may fire early). */
const EARLY_NS = 200_000;
/** Longest single host-timer arm; a later deadline is reached in steps. */
const MAX_ARM_NS = 3600e9;
/** Beyond this many ticks (~8.5 years) a match is taken as never. */
const NEVER_TICKS = 1n << 52n;

interface TimerState {
  conf: number; cmpLo: number; cmpHi: number; rateLo: number; rateHi: number;
  fsbData: number; fsbAddr: number; dueNs: number; valSetHi: number;
}

const join = (hi: number, lo: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);

export class Hpet {
  private readonly st: { config: number; isr: number; pins: number; cntLo: number; cntHi: number; baseNs: number };
  private readonly t: TimerState[] = [];
  private readonly hostTimers: HostTimer[] = [];
  private readonly clock: Clock;

  constructor(private readonly ctx: MachineContext, opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? hostClock;
    const once = ctx.arena.int32(1);
    this.st = ctx.arena.struct({ config: 'u32', isr: 'u32', pins: 'u32', cntLo: 'u32', cntHi: 'u32', baseNs: 'f64' });
    for (let n = 0; n < HPET_NUM_TIMERS; n++) {
      this.t.push(ctx.arena.struct({
        conf: 'u32', cmpLo: 'u32', cmpHi: 'u32', rateLo: 'u32', rateHi: 'u32',
        fsbData: 'u32', fsbAddr: 'u32', dueNs: 'f64', valSetHi: 'u8',
      }));
      this.hostTimers.push(ctx.timer(`hpet.t${n}`, () => this.expire(n)));
    }
    initOnce(once, () => { for (const t of this.t) { t.cmpLo = 0xffffffff; t.cmpHi = 0xffffffff; } });
    ctx.mmio.register(HPET_BASE, HPET_SIZE, this, 'hpet');
  }

  read(offset: number, size: number): number {
    const shift = 8 * (offset & 3);
    return ((this.readDword(offset & ~3) >>> shift) & MASK[size]) >>> 0;
  }

  write(offset: number, size: number, value: number): void {
    const shift = 8 * (offset & 3);
    const mask = (MASK[size] << shift) >>> 0;
    this.writeDword(offset & ~3, ((value << shift) & mask) >>> 0, mask);
  }

  private get enabled(): boolean { return (this.st.config & CNF_ENABLE) !== 0; }

  /** The main counter at host time `now`. */
  counter(now = this.clock.monoNs()): bigint {
    const base = join(this.st.cntHi, this.st.cntLo);
    if (!this.enabled) return base;
    return (base + BigInt(Math.floor(((now - this.st.baseNs) * HPET_FREQ) / 1e9))) & M64;
  }

  private setCounter(v: bigint, now: number): void {
    this.st.cntLo = Number(v & M32);
    this.st.cntHi = Number((v >> 32n) & M32);
    this.st.baseNs = now;
  }

  private readDword(off: number): number {
    switch (off) {
      case HPET_CAP: return HPET_CAP_LO;
      case HPET_CAP_HI: return HPET_PERIOD_FS;
      case HPET_CONFIG: return this.st.config;
      case HPET_ISR: return this.st.isr;
      case HPET_COUNTER: return Number(this.counter() & M32);
      case HPET_COUNTER_HI: return Number(this.counter() >> 32n);
    }
    const n = (off - TIMER_BASE) / TIMER_STRIDE | 0;
    if (off < TIMER_BASE || n >= HPET_NUM_TIMERS) return 0;
    const t = this.t[n];
    switch (off - timerReg(n, 0)) {
      case T_CONF: return (t.conf | TN_RO) >>> 0;
      case T_CONF_HI: return HPET_ALLOWED_IRQS;
      case T_CMP: return t.cmpLo;
      case T_CMP_HI: return t.conf & TN_32MODE ? 0 : t.cmpHi;
      case T_FSB_DATA: return t.fsbData;
      case T_FSB_ADDR: return t.fsbAddr;
    }
    return 0;
  }

  private writeDword(off: number, v: number, mask: number): void {
    const merge = (old: number) => ((old & ~mask) | (v & mask)) >>> 0;
    const now = this.clock.monoNs();
    switch (off) {
      case HPET_CONFIG: this.setConfig(merge(this.st.config) & CNF_ENABLE, now); return;
      case HPET_ISR: this.st.isr &= ~(v & mask); this.updatePins(); return;
      case HPET_COUNTER: case HPET_COUNTER_HI: {
        const c = this.counter(now);
        const lo = off === HPET_COUNTER ? merge(Number(c & M32)) : Number(c & M32);
        const hi = off === HPET_COUNTER_HI ? merge(Number(c >> 32n)) : Number(c >> 32n);
        this.setCounter(join(hi, lo), now);
        if (this.enabled) for (let n = 0; n < HPET_NUM_TIMERS; n++) this.start(n, now);
        return;
      }
    }
    const n = (off - TIMER_BASE) / TIMER_STRIDE | 0;
    if (off < TIMER_BASE || n >= HPET_NUM_TIMERS) return;
    const t = this.t[n];
    const hiPending = t.valSetHi;
    t.valSetHi = 0;
    switch (off - timerReg(n, 0)) {
      case T_CONF: this.setTimerConfig(n, merge(t.conf), now); break;
      case T_CMP: case T_CMP_HI: this.setComparator(n, off - timerReg(n, 0) === T_CMP_HI, merge, hiPending !== 0, now); break;
      case T_FSB_DATA: t.fsbData = merge(t.fsbData); break;
      case T_FSB_ADDR: t.fsbAddr = merge(t.fsbAddr); break;
    }
  }

  private setConfig(val: number, now: number): void {
    if (!((val ^ this.st.config) & CNF_ENABLE)) return;
    if (val & CNF_ENABLE) {
      this.st.config = val;
      this.st.baseNs = now;
      for (let n = 0; n < HPET_NUM_TIMERS; n++) this.start(n, now);
    } else {
      this.setCounter(this.counter(now), now);
      this.st.config = val;
      for (let n = 0; n < HPET_NUM_TIMERS; n++) {
        // A deadline already passed but not yet serviced still interrupts (as vhpet).
        const due = this.t[n].dueNs;
        this.stop(n);
        if (due !== 0 && due <= now) this.interrupt(n);
      }
    }
  }

  private setTimerConfig(n: number, val: number, now: number): void {
    const t = this.t[n], old = t.conf, oldPin = this.pin(n);
    let conf = val & TN_RW;
    const route = (conf & TN_ROUTE) >>> TN_ROUTE_SHIFT;
    if (route !== 0 && !(HPET_ALLOWED_IRQS & (1 << route))) conf &= ~TN_ROUTE; // as vhpet: back to 0
    if (conf === old) return;
    t.conf = conf;
    if (!(conf & TN_PERIODIC)) { t.rateLo = 0; t.rateHi = 0; }
    // A level interrupt stays asserted only while it can still be cleared the same way.
    if (this.st.isr & (1 << n)) {
      if (!(conf & TN_INT_ENB) || this.msi(n) || !(conf & TN_INT_LEVEL) || this.pin(n) !== oldPin) {
        this.st.isr &= ~(1 << n);
        this.updatePins();
      }
    }
    if (this.enabled) this.start(n, now);
  }

  private setComparator(n: number, high: boolean, merge: (old: number) => number, hiPending: boolean, now: number): void {
    const t = this.t[n];
    if (high && t.conf & TN_32MODE) return;
    const snapshot = () => `${t.cmpLo},${t.cmpHi},${t.rateLo},${t.rateHi}`;
    const before = snapshot();
    if (t.conf & TN_PERIODIC) {
      // Writes set the period; with VAL_SET they also set the comparator.
      // A 64-bit write arrives as low then high dword: VAL_SET covers both.
      if (high) t.rateHi = merge(t.rateHi); else t.rateLo = merge(t.rateLo);
      if (t.conf & TN_VAL_SET || (high && hiPending)) {
        t.cmpLo = t.rateLo; t.cmpHi = t.rateHi;
        if (!high && t.conf & TN_VAL_SET) t.valSetHi = 1;
      }
    } else if (high) t.cmpHi = merge(t.cmpHi);
    else t.cmpLo = merge(t.cmpLo);
    t.conf &= ~TN_VAL_SET;
    if (this.enabled && snapshot() !== before) this.start(n, now);
  }

  private width(n: number): bigint { return this.t[n].conf & TN_32MODE ? M32 : M64; }

  /**
   * (Re)compute timer n's next match from counter value `c` (default: now)
   * and arm the host timer. A periodic comparator that has been passed moves
   * on by whole periods, as vhpet's vhpet_adjust_compval.
   */
  private start(n: number, now: number, c = this.counter(now)): void {
    const t = this.t[n], m = this.width(n);
    if (!this.enabled || !(t.conf & TN_INT_ENB)) { this.stop(n); return; }
    c &= m;
    let cmp = join(t.cmpHi, t.cmpLo) & m;
    const rate = join(t.rateHi, t.rateLo) & m;
    const half = (m + 1n) >> 1n;
    if (t.conf & TN_PERIODIC && rate !== 0n) {
      const passed = (c - cmp) & m;
      if (passed < half) {
        cmp = (cmp + (passed / rate + 1n) * rate) & m;
        t.cmpLo = Number(cmp & M32);
        if (m === M64) t.cmpHi = Number(cmp >> 32n);
      }
    }
    const ticks = ((cmp - c - 1n) & m) + 1n; // a match now means a full wrap away
    if (ticks > NEVER_TICKS) { this.stop(n); return; } // a 64-bit comparator left behind
    const ns = Math.ceil((Number(ticks) * 1e9) / HPET_FREQ);
    t.dueNs = now + ns;
    this.hostTimers[n].arm(Math.min(ns, MAX_ARM_NS));
  }

  private stop(n: number): void {
    this.t[n].dueNs = 0;
    this.hostTimers[n].cancel();
  }

  /** Host timer callback: main thread, under the device lock. */
  private expire(n: number): void {
    const t = this.t[n];
    if (t.dueNs === 0 || !this.enabled) return;
    const now = this.clock.monoNs();
    if (now < t.dueNs - EARLY_NS) { this.hostTimers[n].arm(Math.min(t.dueNs - now, MAX_ARM_NS)); return; }
    // Count from the match itself, even if the host timer ran a little early or late.
    const m = this.width(n), cmp = join(t.cmpHi, t.cmpLo) & m;
    const c = this.counter(now) & m;
    this.start(n, now, ((cmp - c) & m) < ((m + 1n) >> 1n) ? cmp : c);
    this.interrupt(n);
  }

  private msi(n: number): boolean { return (this.t[n].conf & TN_FSB_EN) !== 0; }

  private pin(n: number): number { return this.msi(n) ? 0 : (this.t[n].conf & TN_ROUTE) >>> TN_ROUTE_SHIFT; }

  private interrupt(n: number): void {
    const t = this.t[n];
    if (!(t.conf & TN_INT_ENB) || this.st.isr & (1 << n)) return;
    if (this.msi(n)) { this.ctx.irq.msi(BigInt(t.fsbAddr), t.fsbData); return; }
    const pin = this.pin(n);
    if (pin === 0) return;
    if (t.conf & TN_INT_LEVEL) {
      this.st.isr |= 1 << n;
      this.updatePins();
    } else {
      this.ctx.irq.pulse(pin);
      if (this.st.pins & (1 << pin)) this.ctx.irq.line(pin, true); // still held by a level timer
    }
  }

  /** Drive each routed pin high while any level-triggered timer on it has its status bit set. */
  private updatePins(): void {
    let want = 0;
    for (let n = 0; n < HPET_NUM_TIMERS; n++) if (this.st.isr & (1 << n)) want |= 1 << this.pin(n);
    want &= HPET_ALLOWED_IRQS;
    const changed = (want ^ this.st.pins) >>> 0;
    this.st.pins = want;
    for (let p = 0; p < 32; p++) if (changed & (1 << p)) this.ctx.irq.line(p, (want & (1 << p)) !== 0);
  }
}
