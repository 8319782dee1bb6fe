/**
 * The port-I/O and MMIO buses. A device is anything with optional `read` and
 * `write` at an offset inside the range it was mapped at; a missing method is
 * a no-op (reads return all ones).
 */

export interface BusDevice {
  /** Read `size` bytes (1, 2 or 4) at `offset`; returns the value zero-extended. */
  read?(offset: number, size: number): number;
  /** Write `size` bytes (1, 2 or 4) of `value` at `offset`. */
  write?(offset: number, size: number, value: number): void;
}

export class BusError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BusError';
  }
}

const ONES = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

interface PortSlot { dev: BusDevice; base: number; name: string }

/** 64 Ki ports, looked up by direct index: the cheapest dispatch on the exit path. */
export class IoBus {
  private readonly slots: (PortSlot | undefined)[] = new Array(0x10000).fill(undefined);

  register(base: number, len: number, dev: BusDevice, name: string): void {
    if (base < 0 || len <= 0 || base + len > 0x10000) throw new BusError(`${name}: port range ${hex(base)}+${len} out of bounds`);
    for (let p = base; p < base + len; p++) {
      const s = this.slots[p];
      if (s) throw new BusError(`${name}: port ${hex(p)} already used by ${s.name}`);
    }
    const slot = { dev, base, name };
    for (let p = base; p < base + len; p++) this.slots[p] = slot;
  }

  unregister(base: number, len: number): void {
    for (let p = base; p < base + len && p < 0x10000; p++) this.slots[p] = undefined;
  }

  claimed(port: number): boolean { return this.slots[port & 0xffff] !== undefined; }

  /** The registration covering `port`: its device, first port and length. */
  owner(port: number): { dev: BusDevice; base: number; len: number; name: string } | undefined {
    const s = this.slots[port & 0xffff];
    if (!s) return undefined;
    let len = 0;
    while (s.base + len < 0x10000 && this.slots[s.base + len] === s) len++;
    return { dev: s.dev, base: s.base, len, name: s.name };
  }

  /** Returns undefined when no device claims the port. */
  read(port: number, size: number): number | undefined {
    const s = this.slots[port];
    if (s === undefined) return undefined;
    return s.dev.read ? s.dev.read(port - s.base, size) : ONES[size];
  }

  /** Returns false when no device claims the port. */
  write(port: number, size: number, value: number): boolean {
    const s = this.slots[port];
    if (s === undefined) return false;
    s.dev.write?.(port - s.base, size, value);
    return true;
  }
}

interface MmioRange { base: number; end: number; dev: BusDevice; name: string }

/** Guest-physical ranges outside RAM; a sorted list searched by bisection. Addresses are numbers (< 2^53). */
export class MmioBus {
  private ranges: MmioRange[] = [];
  private last: MmioRange | undefined;

  register(base: number, len: number, dev: BusDevice, name: string): void {
    const end = base + len;
    for (const r of this.ranges) {
      if (base < r.end && r.base < end) throw new BusError(`${name}: MMIO ${hex(base)}+${hex(len)} overlaps ${r.name}`);
    }
    this.ranges.push({ base, end, dev, name });
    this.ranges.sort((a, b) => a.base - b.base);
    this.last = undefined;
  }

  unregister(base: number): void {
    this.ranges = this.ranges.filter((r) => r.base !== base);
    this.last = undefined;
  }

  private find(addr: number): MmioRange | undefined {
    const l = this.last;
    if (l && addr >= l.base && addr < l.end) return l;
    let lo = 0, hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid];
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else return (this.last = r);
    }
    return undefined;
  }

  read(addr: number, size: number): number | undefined {
    const r = this.find(addr);
    if (!r) return undefined;
    return r.dev.read ? r.dev.read(addr - r.base, size) : ONES[size];
  }

  write(addr: number, size: number, value: number): boolean {
    const r = this.find(addr);
    if (!r) return false;
    r.dev.write?.(addr - r.base, size, value);
    return true;
  }
}

export function hex(n: number | bigint): string {
  return '0x' + n.toString(16);
}
