/**
 * The debug console port, as QEMU's isa-debugcon (`-o lpc.debugcon=stdio`
 * or `=PATH`, a file created or truncated): bytes written to port 0x402 go
 * to the sink, and byte reads return 0xE9, by which firmware such as SeaBIOS
 * knows its debug log is wanted (without the device SeaBIOS stays quiet).
 *
 * bhyve's ACPI PM1a event block (0x400-0x403) covers 0x402, where PM1_EN
 * starts, and ACPI accesses it 16 bits wide (the FADT says word access); so
 * this debugging aid takes only the byte-wide accesses of 0x402 and hands
 * every other access to the block as before.
 */
import fs from 'node:fs';
import { ConfigError } from '../config/tree.js';
import type { BusDevice } from '../vmm/bus.js';
import type { MachineContext } from '../vmm/context.js';

export const DEBUGCON_PORT = 0x402;
export const DEBUGCON_READBACK = 0xe9;
export const DEBUGCON_KEY = 'lpc.debugcon';
const RESOURCE = 'debugcon';
const STDOUT = 1;

/** Main thread: open the sink once. */
export function prepareDebugCon(ctx: MachineContext): void {
  const path = ctx.config.get(DEBUGCON_KEY);
  if (path === undefined) return;
  if (path === 'stdio') {
    ctx.resources.set(RESOURCE, STDOUT);
    return;
  }
  try {
    ctx.resources.set(RESOURCE, fs.openSync(path, 'w'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(`${DEBUGCON_KEY}: cannot open ${path} (${err.code ?? err.message})`, { cause: e });
  }
}

export class DebugCon {
  private readonly one = new Uint8Array(1);
  private readonly fd: number | undefined;

  constructor(ctx: MachineContext) {
    const fd = ctx.resources.get(RESOURCE);
    this.fd = typeof fd === 'number' ? fd : undefined;
    const under = ctx.io.owner(DEBUGCON_PORT);
    if (!under) {
      ctx.io.register(DEBUGCON_PORT, 1, { read: () => DEBUGCON_READBACK, write: (_o, _s, v) => this.put(v) }, 'debugcon');
      return;
    }
    const at = DEBUGCON_PORT - under.base;
    const inner: BusDevice = under.dev;
    ctx.io.unregister(under.base, under.len);
    ctx.io.register(under.base, under.len, {
      read: (off, size) => (off === at && size === 1 ? DEBUGCON_READBACK : inner.read ? inner.read(off, size) : 0xffffffff >>> (32 - 8 * size)),
      write: (off, size, v) => {
        if (off === at && size === 1) this.put(v);
        else inner.write?.(off, size, v);
      },
    }, `${under.name}+debugcon`);
  }

  private put(v: number): void {
    if (this.fd === undefined) return;
    this.one[0] = v & 0xff;
    try {
      fs.writeSync(this.fd, this.one);
    } catch {
      /* a closed or full sink drops the byte; the guest never waits for it */
    }
  }
}
