/**
 * A MachineContext for unit tests of the platform devices: real arena, buses
 * and config tree; interrupts, exits and timers are recorded, and a fake clock
 * lets a test move time.
 */
import { ConfigTree } from '../config/tree.js';
import type { GuestMemory } from '../kvm/memory.js';
import { IoBus, MmioBus } from '../vmm/bus.js';
import type { ExitStatus, HostTimer, MachineContext } from '../vmm/context.js';
import { Arena } from '../vmm/shared.js';
import type { Clock } from './clock.js';

export interface IrqEvent { kind: 'line' | 'pulse' | 'msi'; gsi?: number; level?: boolean; address?: bigint; data?: number }

export interface FakeTimer { name: string; fire: () => void; deadline: number | undefined }

export class FakeClock implements Clock {
  mono = 1_000_000_000;
  wall = Date.UTC(2024, 1, 29, 13, 45, 30);
  tzOffsetMs = 0;
  monoNs(): number { return this.mono; }
  wallMs(): number { return this.wall; }
  localOffsetMs(): number { return this.tzOffsetMs; }
  advance(ns: number): void { this.mono += ns; this.wall += ns / 1e6; }
}

export class TestMachine {
  readonly arena = new Arena(undefined, 1 << 16);
  readonly config = new ConfigTree();
  readonly io = new IoBus();
  readonly mmio = new MmioBus();
  readonly clock = new FakeClock();
  readonly irqs: IrqEvent[] = [];
  readonly exits: { status: ExitStatus; why?: string }[] = [];
  readonly timers = new Map<string, FakeTimer>();
  readonly host = new Map<string, (() => void)[]>();
  /** Current level of each GSI driven through line(). */
  readonly levels = new Map<number, boolean>();
  readonly ctx: MachineContext;

  constructor(config: Record<string, string> = {}) {
    for (const [k, v] of Object.entries(config)) this.config.set(k, v);
    const self = this;
    this.ctx = {
      role: 'main', arena: this.arena, config: this.config, io: this.io, mmio: this.mmio,
      mem: {} as GuestMemory, ncpus: 1, resources: new Map(),
      irq: {
        line(gsi, level) { self.irqs.push({ kind: 'line', gsi, level }); self.levels.set(gsi, level); },
        pulse(gsi) { self.irqs.push({ kind: 'pulse', gsi }); },
        msi(address, data) { self.irqs.push({ kind: 'msi', address, data }); },
      },
      timer(name: string, fire: () => void): HostTimer {
        if (self.timers.has(name)) throw new Error(`timer ${name} created twice`);
        const t: FakeTimer = { name, fire, deadline: undefined };
        self.timers.set(name, t);
        return {
          arm(ns) { t.deadline = self.clock.mono + Math.max(0, ns); },
          cancel() { t.deadline = undefined; },
        };
      },
      exit(status, why) { self.exits.push({ status, why }); },
      onHost(event, fn) {
        const l = self.host.get(event) ?? [];
        l.push(fn);
        self.host.set(event, l);
      },
    };
  }

  pulses(gsi: number): number { return this.irqs.filter((e) => e.kind === 'pulse' && e.gsi === gsi).length; }

  /** Advance the fake clock to `ns` later, firing due timers in deadline order. */
  run(ns: number): void {
    const end = this.clock.mono + ns;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.timers.values()) {
        if (t.deadline !== undefined && t.deadline <= end && (!next || t.deadline < next.deadline!)) next = t;
      }
      if (!next) break;
      this.clock.advance(Math.max(0, next.deadline! - this.clock.mono));
      next.deadline = undefined;
      next.fire();
    }
    this.clock.advance(Math.max(0, end - this.clock.mono));
  }

  hostEvent(event: string): void { this.host.get(event)?.forEach((fn) => fn()); }
}
