/**
 * Asynchronous I/O hooks of the machine context (every thread builds one, in
 * the same order as the devices that use it):
 *
 *  - doorbell(name, handler): an eventfd created once, on the main thread, and
 *    left in ctx.resources as `doorbell:NAME`; ring() writes 1 to it from any
 *    thread; bind() attaches it to a guest address with KVM_IOEVENTFD. The
 *    I/O thread waits on it and runs `handler` under the device lock.
 *  - watch(name, fd, handler): any readable fd, handled the same way.
 *  - irqfd(name): an eventfd bound with KVM_IRQFD to a GSI of its own whose
 *    MSI route lives in the arena (msi-routes.ts).
 *
 * Only the I/O thread keeps the handlers; the main thread counts them to decide
 * whether an I/O thread is needed at all.
 */
import { eventfd, write, errno, strerror, EFD_CLOEXEC, EFD_NONBLOCK } from '../kvm/libc.js';
import { ioeventfd, irqfd, type IoEventSpec } from '../kvm/vm.js';
import { DOORBELL_SLOTS, type Doorbell, type IrqFd, type Role } from './context.js';
import { MsiRoutes } from './msi-routes.js';
import type { Arena } from './shared.js';

export class AioError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AioError';
  }
}

/** Something the I/O thread waits on. `drain`: read the eventfd before calling the handler (doorbells). */
export interface IoSource { name: string; fd: number; handler: () => void; drain: boolean }

const ONE = new BigUint64Array([1n]);

/** Signal an eventfd (any thread). */
export function signalEventFd(fd: number): void {
  write(fd, ONE, 8);
}

/** A new non-blocking eventfd; throws AioError. */
export function newEventFd(what: string): number {
  const fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) as number;
  if (fd < 0) throw new AioError(`${what}: cannot create an eventfd (${strerror(errno())})`);
  return fd;
}

export class AsyncIo {
  readonly sources: IoSource[] = [];
  readonly routes: MsiRoutes;
  private readonly names = new Set<string>();

  constructor(
    private readonly arena: Arena,
    private readonly role: Role,
    private readonly resources: Map<string, unknown>,
    private readonly vmFd: number,
    /** Sends an MSI without an irqfd (KVM_SIGNAL_MSI), for messages KVM will not route. */
    private readonly signalMsi: (address: bigint, data: number) => void = () => {},
  ) {
    this.routes = MsiRoutes.forVm(arena, vmFd);
  }

  /** True when some device waits on an fd: the VM needs an I/O thread. */
  get needed(): boolean { return this.sources.length > 0; }

  doorbell(name: string, handler: () => void): Doorbell {
    const fd = this.sharedFd(`doorbell:${name}`, () => newEventFd(`doorbell ${name}`));
    this.add({ name, fd, handler, drain: true });
    const slots = Array.from({ length: DOORBELL_SLOTS }, () =>
      this.arena.struct({ bound: 'u8', pio: 'u8', len: 'u8', dm: 'u8', data: 'u32', addr: 'f64' }));
    const vmFd = this.vmFd;
    return {
      fd,
      ring: () => signalEventFd(fd),
      bind(spec: IoEventSpec | undefined, slot = 0): boolean {
        const st = slots[slot];
        if (!st) throw new AioError(`doorbell ${name}: no binding slot ${slot}`);
        const cur: IoEventSpec = { pio: st.pio === 1, addr: st.addr, len: st.len as IoEventSpec['len'], ...(st.dm ? { datamatch: st.data } : {}) };
        if (st.bound && spec && sameSpec(cur, spec)) return true;
        if (st.bound) ioeventfd(vmFd, fd, cur, true);
        st.bound = 0;
        if (!spec) return true;
        if (ioeventfd(vmFd, fd, spec) !== 0) return false;
        st.pio = spec.pio ? 1 : 0;
        st.addr = spec.addr;
        st.len = spec.len;
        st.dm = spec.datamatch === undefined ? 0 : 1;
        st.data = spec.datamatch ?? 0;
        st.bound = 1;
        return true;
      },
    };
  }

  watch(name: string, fd: number, handler: () => void): void {
    if (!Number.isInteger(fd) || fd < 0) throw new AioError(`watch ${name}: bad fd ${fd}`);
    this.add({ name, fd, handler, drain: false });
  }

  irqfd(name: string): IrqFd {
    const gsi = this.routes.alloc();
    const fd = this.sharedFd(`irqfd:${name}`, () => {
      const efd = newEventFd(`irqfd ${name}`);
      const err = irqfd(this.vmFd, efd, gsi);
      if (err !== 0) throw new AioError(`irqfd ${name}: KVM_IRQFD on GSI ${gsi} failed (${strerror(err)})`);
      return efd;
    });
    const routes = this.routes, fallback = this.signalMsi;
    return {
      gsi, fd,
      msi(address: bigint, data: number): void {
        if (routes.set(gsi, address, data)) signalEventFd(fd);
        else fallback(address, data);
      },
    };
  }

  private add(s: IoSource): void {
    if (this.names.has(s.name)) throw new AioError(`I/O source ${s.name} registered twice`);
    this.names.add(s.name);
    this.sources.push(s);
  }

  /** The main thread creates the fd and publishes it; other threads look it up. */
  private sharedFd(key: string, create: () => number): number {
    if (this.role === 'main') {
      if (this.resources.has(key)) throw new AioError(`${key} created twice`);
      const fd = create();
      this.resources.set(key, fd);
      return fd;
    }
    const fd = this.resources.get(key);
    if (typeof fd !== 'number') throw new AioError(`${key} is missing on this thread (not created in the same order?)`);
    return fd;
  }
}

function sameSpec(a: IoEventSpec, b: IoEventSpec): boolean {
  return a.pio === b.pio && a.addr === b.addr && a.len === b.len && a.datamatch === b.datamatch;
}
