/**
 * A MachineContext for unit tests of the PCI layer and the UART: a real
 * arena, buses and config tree; interrupts and timers are recorded.
 */
import { ConfigTree } from '../../config/tree.js';
import type { GuestMemory } from '../../kvm/memory.js';
import { IoBus, MmioBus } from '../../vmm/bus.js';
import type { MachineContext, Role } from '../../vmm/context.js';
import { Arena } from '../../vmm/shared.js';

export interface IrqRecord { kind: 'line' | 'pulse' | 'msi'; gsi?: number; level?: boolean; address?: bigint; data?: number }

export interface TestCtx {
  ctx: MachineContext;
  irqs: IrqRecord[];
  /** Timers by name; `armed` is set by arm() and cleared by fire(). */
  timers: Map<string, { fire: () => void; armed: boolean }>;
  host: Map<string, (() => void)[]>;
  /** Fire every armed timer once. */
  runTimers(): void;
}

export function testCtx(config: Record<string, string> = {}, opts: { role?: Role; arena?: Arena; resources?: Map<string, unknown> } = {}): TestCtx {
  const tree = new ConfigTree();
  for (const [k, v] of Object.entries(config)) tree.set(k, v);
  const irqs: IrqRecord[] = [];
  const timers = new Map<string, { fire: () => void; armed: boolean }>();
  const host = new Map<string, (() => void)[]>();
  const ctx: MachineContext = {
    role: opts.role ?? 'main',
    arena: opts.arena ?? new Arena(undefined, 1 << 20),
    config: tree,
    io: new IoBus(),
    mmio: new MmioBus(),
    mem: { segments: [] } as unknown as GuestMemory,
    ncpus: 1,
    resources: opts.resources ?? new Map(),
    irq: {
      line: (gsi, level) => { irqs.push({ kind: 'line', gsi, level }); },
      pulse: (gsi) => { irqs.push({ kind: 'pulse', gsi }); },
      msi: (address, data) => { irqs.push({ kind: 'msi', address, data }); },
    },
    timer(name, fire) {
      if (timers.has(name)) throw new Error(`timer ${name} created twice`);
      const t = { fire, armed: false };
      timers.set(name, t);
      return { arm: () => { t.armed = true; }, cancel: () => { t.armed = false; } };
    },
    exit() {},
    onHost(event, fn) {
      const l = host.get(event) ?? [];
      l.push(fn);
      host.set(event, l);
    },
  };
  const runTimers = (): void => {
    for (const t of timers.values()) {
      if (!t.armed) continue;
      t.armed = false;
      t.fire();
    }
  };
  return { ctx, irqs, timers, host, runTimers };
}
