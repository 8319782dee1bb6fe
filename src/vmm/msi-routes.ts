/**
 * The VM's MSI routes (GSI -> MSI address/data) for irqfd.
 *
 * KVM_SET_GSI_ROUTING replaces the VM's whole table, and a route can change
 * on any thread (a vCPU reprogramming an MSI-X entry, the I/O thread raising
 * an interrupt). So the table lives in the shared arena, and whichever thread
 * changes an entry submits the full table, under the device lock: the PC
 * routes rebuilt deterministically by setGsiRouting, then every valid entry
 * here. GSIs are handed out in construction order, so every thread agrees.
 */
import { FIRST_MSI_GSI, MAX_GSI, setGsiRouting, type MsiRoute } from '../kvm/vm.js';
import type { Arena } from './shared.js';

export class MsiRoutesError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MsiRoutesError';
  }
}

/** Words per entry: valid, address low, address high, data. */
const ENTRY_WORDS = 4;
const VALID = 0, ADDR_LO = 1, ADDR_HI = 2, DATA = 3;
export const MSI_ROUTES_MAX = 512;

export class MsiRoutes {
  private readonly table: Int32Array;
  /** Per thread, but the same on every thread: construction order. */
  private next = 0;

  constructor(arena: Arena, private readonly submit: (routes: MsiRoute[]) => void, readonly capacity = MSI_ROUTES_MAX) {
    if (FIRST_MSI_GSI + capacity > MAX_GSI) throw new MsiRoutesError(`too many MSI routes (${capacity})`);
    this.table = arena.int32(capacity * ENTRY_WORDS);
  }

  /** A table for VM `vmFd` (submits with KVM_SET_GSI_ROUTING). */
  static forVm(arena: Arena, vmFd: number): MsiRoutes {
    return new MsiRoutes(arena, (routes) => setGsiRouting(vmFd, routes));
  }

  /** Reserve the next GSI (construction time, every thread in the same order). */
  alloc(): number {
    if (this.next >= this.capacity) throw new MsiRoutesError(`out of MSI routes (${this.capacity})`);
    return FIRST_MSI_GSI + this.next++;
  }

  /**
   * Route `gsi` to (address, data); submits the whole table only when the
   * entry changed. Returns false when KVM refused the message (a guest can
   * program any address): the entry is dropped and the caller sends the
   * message another way.
   */
  set(gsi: number, address: bigint, data: number): boolean {
    const o = (gsi - FIRST_MSI_GSI) * ENTRY_WORDS;
    if (o < 0 || o >= this.table.length) throw new MsiRoutesError(`GSI ${gsi} is not an MSI route`);
    const lo = Number(address & 0xffffffffn) | 0, hi = Number((address >> 32n) & 0xffffffffn) | 0, d = data | 0;
    const t = this.table;
    if (t[o + VALID] === 1 && t[o + ADDR_LO] === lo && t[o + ADDR_HI] === hi && t[o + DATA] === d) return true;
    t[o + VALID] = 1;
    t[o + ADDR_LO] = lo;
    t[o + ADDR_HI] = hi;
    t[o + DATA] = d;
    try {
      this.submit(this.routes());
      return true;
    } catch {
      t[o + VALID] = 0;
      try { this.submit(this.routes()); } catch { /* the table without it was accepted before */ }
      return false;
    }
  }

  /** Every valid route, in GSI order. */
  routes(): MsiRoute[] {
    const out: MsiRoute[] = [];
    const t = this.table;
    for (let i = 0; i < this.capacity; i++) {
      const o = i * ENTRY_WORDS;
      if (t[o + VALID] !== 1) continue;
      const address = (BigInt(t[o + ADDR_HI] >>> 0) << 32n) | BigInt(t[o + ADDR_LO] >>> 0);
      out.push({ gsi: FIRST_MSI_GSI + i, address, data: t[o + DATA] >>> 0 });
    }
    return out;
  }
}
