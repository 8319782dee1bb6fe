/**
 * The host clocks the platform devices (RTC, PM timer, HPET) derive guest time
 * from. CLOCK_MONOTONIC is process-wide, so every thread computes the same
 * counter values from the same arena state. Tests substitute a fake clock.
 */

export interface Clock {
  /** Host monotonic time in nanoseconds (any epoch, never goes back). */
  monoNs(): number;
  /** Host wall-clock time in milliseconds since the Unix epoch. */
  wallMs(): number;
  /** Offset of local time from UTC at `wallMs`, in milliseconds (east positive). */
  localOffsetMs(wallMs: number): number;
}

export const hostClock: Clock = {
  monoNs: () => Number(process.hrtime.bigint()),
  wallMs: () => Date.now(),
  localOffsetMs: (ms) => -new Date(ms).getTimezoneOffset() * 60_000,
};

/**
 * Run `init` once per arena, whichever thread builds first: the flag is an
 * arena word, so later builds (other threads) leave the shared state alone.
 */
export function initOnce(flag: Int32Array, init: () => void): void {
  if (Atomics.compareExchange(flag, 0, 0, 1) === 0) init();
}
