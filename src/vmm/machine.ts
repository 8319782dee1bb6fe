/**
 * One thread's view of the machine: its buses, its copy of the device
 * models (state in the shared arena), its timers and interrupt injector.
 * The main thread, every vCPU thread and the I/O thread each build one, the same way.
 */
import { ConfigTree } from '../config/tree.js';
import { GuestMemory, type Segment } from '../kvm/memory.js';
import { IrqInjector } from '../kvm/vm.js';
import { IoBus, MmioBus } from './bus.js';
import type { ExitStatus, HostTimer, MachineContext, Role } from './context.js';
import { Arena } from './shared.js';
import { TimerTable } from './timers.js';
import { buildDevices, type DeviceSet } from './devices.js';
import { AsyncIo } from './aio.js';

/** Everything a thread needs to rebuild the machine (structured-cloneable). */
export interface MachineInit {
  config: [string, string][];
  arena: SharedArrayBuffer;
  vmFd: number;
  segments: Segment[];
  ncpus: number;
  lowmem: number;
  highmem: number;
  resources: [string, unknown][];
}

export interface ThreadHooks {
  exit(status: ExitStatus, why?: string): void;
  nudgeTimer(index: number): void;
}

export class Machine {
  readonly ctx: MachineContext;
  readonly io = new IoBus();
  readonly mmio = new MmioBus();
  readonly arena: Arena;
  readonly timers: TimerTable;
  readonly devices: DeviceSet;
  /** Doorbells, watched fds and irqfds; the I/O thread waits on `aio.sources`. */
  readonly aio: AsyncIo;
  private readonly hostHandlers = new Map<string, (() => void)[]>();

  constructor(readonly init: MachineInit, readonly role: Role, hooks: ThreadHooks) {
    this.arena = new Arena(init.arena);
    const config = new ConfigTree();
    for (const [k, v] of init.config) config.set(k, v);
    const mem = new GuestMemory(init.segments);
    const irq = new IrqInjector(init.vmFd);
    this.timers = new TimerTable(this.arena, role === 'main', hooks.nudgeTimer);
    const resources = new Map(init.resources);
    const aio = new AsyncIo(this.arena, role, resources, init.vmFd, (address, data) => irq.msi(address, data));
    this.aio = aio;
    const self = this;
    this.ctx = {
      role, arena: this.arena, config, io: this.io, mmio: this.mmio, mem, ncpus: init.ncpus, resources,
      irq: {
        line: (gsi, level) => irq.line(gsi, level),
        pulse: (gsi) => irq.pulse(gsi),
        msi: (addr, data) => irq.msi(addr, data),
      },
      timer(name: string, fire: () => void): HostTimer { return self.timers.create(name, fire); },
      exit: (status, why) => hooks.exit(status, why),
      doorbell: (name, handler) => aio.doorbell(name, handler),
      watch: (name, fd, handler) => aio.watch(name, fd, handler),
      irqfd: (name) => aio.irqfd(name),
      onHost(event, fn) {
        if (role !== 'main') return;
        const l = self.hostHandlers.get(event) ?? [];
        l.push(fn);
        self.hostHandlers.set(event, l);
      },
    };
    this.devices = buildDevices(this.ctx, { lowmem: init.lowmem, highmem: init.highmem });
  }

  /** Main thread: run host-event handlers under the device lock. */
  host(event: 'powerbutton' | 'start'): void {
    const l = this.hostHandlers.get(event);
    if (!l) return;
    this.arena.locked(() => l.forEach((fn) => fn()));
  }

  resync(): void {
    this.devices.resync();
  }
}
