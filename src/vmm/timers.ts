/**
 * Host timers shared by every thread. The deadline lives in the arena, so
 * any thread may arm or cancel; the main thread owns the real setTimeout and
 * runs the callback under the device lock. Workers post a nudge after
 * changing a deadline.
 */
import type { Arena } from './shared.js';
import type { HostTimer } from './context.js';

export const nowNs = (): number => Number(process.hrtime.bigint());

interface Entry { name: string; deadline: Float64Array; fire: () => void; handle?: NodeJS.Timeout }

export class TimerTable {
  private readonly entries: Entry[] = [];
  constructor(
    private readonly arena: Arena,
    private readonly isMain: boolean,
    private readonly nudge: (index: number) => void,
  ) {}

  create(name: string, fire: () => void): HostTimer {
    const off = this.arena.alloc(8, 8);
    const e: Entry = { name, deadline: new Float64Array(this.arena.sab, off, 1), fire };
    const index = this.entries.push(e) - 1;
    const changed = () => (this.isMain ? this.reschedule(index) : this.nudge(index));
    return {
      arm: (ns: number) => { e.deadline[0] = nowNs() + Math.max(0, ns); changed(); },
      cancel: () => { e.deadline[0] = 0; changed(); },
    };
  }

  /** Main thread: bring the host timer in line with the shared deadline. */
  reschedule(index: number): void {
    const e = this.entries[index];
    if (!e) return;
    if (e.handle) { clearTimeout(e.handle); e.handle = undefined; }
    const d = e.deadline[0];
    if (d === 0) return;
    const ms = Math.max(0, (d - nowNs()) / 1e6);
    e.handle = setTimeout(() => this.expire(index), ms);
  }

  private expire(index: number): void {
    const e = this.entries[index];
    e.handle = undefined;
    this.arena.lock();
    try {
      const d = e.deadline[0];
      if (d === 0) return;
      if (d > nowNs() + 50_000) { this.reschedule(index); return; }
      e.deadline[0] = 0;
      e.fire();
    } finally {
      this.arena.unlock();
    }
  }

  cancelAll(): void {
    for (const e of this.entries) if (e.handle) clearTimeout(e.handle);
  }
}
