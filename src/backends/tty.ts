/**
 * The tty back-end of the serial ports: `stdio` (the terminal in raw mode,
 * restored on exit; pipes and files work too) or a host path (a tty, pty or
 * plain file) opened O_RDWR|O_NOCTTY|O_NONBLOCK, as bhyve's uart back-end.
 *
 * prepareTty() opens it once on the main thread and leaves a plain record in
 * ctx.resources; any thread builds a writer from that record and writes
 * with fs.writeSync. Input is read on the main thread only and offered byte
 * by byte to a sink under the device lock; bytes the sink refuses (a full
 * FIFO) are held, the stream paused, and offered again on retry().
 */
import * as fs from 'node:fs';
import * as tty from 'node:tty';
import type { Readable } from 'node:stream';
import type { MachineContext } from '../vmm/context.js';

export class TtyError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TtyError';
  }
}

/** What the main thread leaves in ctx.resources (structured-cloneable). */
export interface TtyResource {
  kind: 'tty';
  path: string;
  outFd: number;
  /** The fd input is read from, when there is input (stdio, or a terminal path). */
  inFd: number | undefined;
  isTty: boolean;
}

export interface TtyWriter { write(bytes: Uint8Array | number): void; readonly fd: number; dropped: number }
export interface RxSink { receive(byte: number): boolean; onRxSpace?: (() => void) | undefined }

const STDIN = 0, STDOUT = 1;
/** How long a writer waits for a full non-blocking fd, in 1 ms steps, before dropping output. */
const WRITE_RETRIES = 20;
const resourceKey = (key: string): string => `tty:${key}`;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Main thread: open the back-end `path` ("stdio" or a host path) for the port `key`. */
export function prepareTty(ctx: MachineContext, key: string, path: string): void {
  if (path === 'stdio') {
    for (const [k, v] of ctx.resources) {
      if (isTtyResource(v) && v.path === 'stdio') throw new TtyError(`stdio is already the back-end of ${k.slice(4)}`);
    }
    ctx.resources.set(resourceKey(key), { kind: 'tty', path, outFd: STDOUT, inFd: STDIN, isTty: tty.isatty(STDIN) });
    return;
  }
  const { O_RDWR, O_RDONLY, O_NOCTTY, O_NONBLOCK } = fs.constants;
  let outFd: number;
  try {
    outFd = fs.openSync(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TtyError(`cannot open serial back-end ${path}: ${err.code ?? err.message}`, { cause: e });
  }
  const isTty = tty.isatty(outFd);
  // A terminal also gets its own input fd; Node's tty stream reopens it non-blocking.
  const inFd = isTty ? fs.openSync(path, O_RDONLY | O_NOCTTY) : undefined;
  ctx.resources.set(resourceKey(key), { kind: 'tty', path, outFd, inFd, isTty });
}

/** Any thread: the output side of port `key`, or undefined when it has no back-end. */
export function ttyWriter(ctx: MachineContext, key: string): TtyWriter | undefined {
  const r = ctx.resources.get(resourceKey(key));
  return isTtyResource(r) ? new FdWriter(r.outFd) : undefined;
}

/**
 * Wire `sink` (a UART) to the input of port `key` once the VM starts
 * (the callback runs on the main thread only).
 */
export function connectTtyInput(ctx: MachineContext, key: string, sink: RxSink): void {
  ctx.onHost('start', () => {
    const r = ctx.resources.get(resourceKey(key));
    if (!isTtyResource(r) || r.inFd === undefined) return;
    const input = new TtyInput(ctx, r, (b) => sink.receive(b));
    sink.onRxSpace = () => input.retry();
    input.start();
  });
}

class FdWriter implements TtyWriter {
  private readonly one = new Uint8Array(1);
  dropped = 0;
  constructor(readonly fd: number) {}

  write(bytes: Uint8Array | number): void {
    let buf = bytes as Uint8Array;
    if (typeof bytes === 'number') {
      this.one[0] = bytes;
      buf = this.one;
    }
    let off = 0;
    let tries = 0;
    while (off < buf.length) {
      try {
        off += fs.writeSync(this.fd, buf, off, buf.length - off);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EINTR') continue;
        if (code === 'EAGAIN' && tries++ < WRITE_RETRIES) {
          Atomics.wait(sleeper, 0, 0, 1);
          continue;
        }
        this.dropped += buf.length - off; // a stalled or closed peer: drop, never stall the VM
        return;
      }
    }
  }
}

const started: TtyInput[] = [];
let exitHook = false;

/** Reads one back-end's input on the main thread. */
export class TtyInput {
  private readonly queue: Uint8Array[] = [];
  private head = 0;
  private stream: Readable | undefined;
  private paused = false;
  private raw = false;

  constructor(private readonly ctx: MachineContext, private readonly res: TtyResource, private readonly sink: (b: number) => boolean) {}

  /** Start reading (main thread); `source` replaces the back-end's own stream (tests). */
  start(source?: Readable): void {
    if (this.stream || this.res.inFd === undefined) return;
    let s: Readable;
    try {
      s = source ?? (this.res.path === 'stdio' ? process.stdin : new tty.ReadStream(this.res.inFd));
    } catch {
      return; // no usable input (stdin closed): the port is output-only
    }
    if (this.res.isTty && s instanceof tty.ReadStream) {
      s.setRawMode(true);
      this.raw = true;
    }
    s.on('data', (chunk: Buffer | string) => {
      this.queue.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      this.ctx.arena.locked(() => this.pump());
    });
    s.on('error', () => {}); // EIO when a pty peer goes away: input just ends
    s.on('end', () => {}); // EOF on a pipe or file: keep running without input
    this.stream = s;
    started.push(this);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', restoreTerminals);
    }
  }

  /** Offer held bytes again; call under the device lock (the UART's onRxSpace runs there). */
  retry(): void { this.pump(); }

  /** Stop reading and give the terminal back its mode. */
  stop(): void {
    this.restore();
    const s = this.stream;
    this.stream = undefined;
    if (!s) return;
    s.removeAllListeners('data');
    if (s === process.stdin) s.pause();
    else s.destroy();
  }

  restore(): void {
    if (this.raw && this.stream instanceof tty.ReadStream) {
      try { this.stream.setRawMode(false); } catch { /* terminal gone */ }
    }
    this.raw = false;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const chunk = this.queue[0];
      while (this.head < chunk.length) {
        if (!this.sink(chunk[this.head])) {
          if (!this.paused) {
            this.paused = true;
            this.stream?.pause();
          }
          return;
        }
        this.head++;
      }
      this.queue.shift();
      this.head = 0;
    }
    if (this.paused) {
      this.paused = false;
      this.stream?.resume();
    }
  }
}

/** Put every terminal a back-end made raw back in its original mode (also run at process exit). */
export function restoreTerminals(): void {
  for (const t of started) t.restore();
}

/** Stop all input readers (so the event loop can drain) and restore terminals. */
export function stopTtyInputs(): void {
  for (const t of started.splice(0)) t.stop();
}

function isTtyResource(v: unknown): v is TtyResource {
  return typeof v === 'object' && v !== null && (v as TtyResource).kind === 'tty';
}
