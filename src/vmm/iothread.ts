/**
 * Entry point of the I/O thread: builds the machine like a vCPU thread (same
 * deterministic order, role 'io'), then blocks in epoll_wait on every fd the
 * devices registered with ctx.doorbell / ctx.watch, and runs each ready
 * source's handler under the device lock. A write to the stop eventfd ends it.
 *
 * Started by VirtualMachine.start() only when some device registered a source.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  epoll_create1, epoll_ctl, epoll_wait, errno, read, strerror,
  EINTR, EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLLIN, EPOLL_EVENT_SIZE,
} from '../kvm/libc.js';
import { Machine, type MachineInit } from './machine.js';
import type { ExitStatus } from './context.js';
import type { WorkerMessage } from './vcpu-worker.js';

export interface IoThreadData {
  init: MachineInit;
  /** An eventfd the main thread signals to stop the thread. */
  stopFd: number;
}

const MAX_EVENTS = 64;
const STOP_TAG = 0xffffffff;

const post = (m: WorkerMessage) => parentPort!.postMessage(m);

function main(data: IoThreadData): void {
  let stopped = false;
  const exit = (status: ExitStatus, why?: string) => {
    if (stopped) return;
    stopped = true;
    post({ t: 'exit', status, why });
  };
  const machine = new Machine(data.init, 'io', { exit, nudgeTimer: (index) => post({ t: 'timer', index }) });
  const { arena } = machine;
  const sources = machine.aio.sources;

  const ep = epoll_create1(EPOLL_CLOEXEC) as number;
  if (ep < 0) throw new Error(`epoll_create1: ${strerror(errno())}`);
  const ev = Buffer.alloc(EPOLL_EVENT_SIZE);
  const add = (fd: number, tag: number, name: string): void => {
    ev.writeUInt32LE(EPOLLIN, 0);
    ev.writeBigUInt64LE(BigInt(tag), 4);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, ev) < 0) throw new Error(`cannot watch ${name} (fd ${fd}): ${strerror(errno())}`);
  };
  sources.forEach((s, i) => add(s.fd, i, s.name));
  add(data.stopFd, STOP_TAG, 'the stop eventfd');
  post({ t: 'ready', id: -1 });

  const events = Buffer.alloc(EPOLL_EVENT_SIZE * MAX_EVENTS);
  const counter = Buffer.alloc(8);
  const ready: number[] = [];
  for (;;) {
    const n = epoll_wait(ep, events, MAX_EVENTS, -1) as number;
    if (n < 0) {
      if (errno() === EINTR) continue;
      throw new Error(`epoll_wait: ${strerror(errno())}`);
    }
    ready.length = 0;
    for (let i = 0; i < n; i++) {
      const tag = events.readUInt32LE(i * EPOLL_EVENT_SIZE + 4);
      if (tag === STOP_TAG) return;
      const s = sources[tag];
      if (!s) continue;
      if (s.drain) read(s.fd, counter, 8); // reset the eventfd before the handler runs: later rings re-arm it
      ready.push(tag);
    }
    for (const tag of ready) {
      const s = sources[tag];
      arena.lock();
      try {
        machine.resync();
        s.handler();
      } catch (e) {
        throw new Error(`${s.name}: ${(e as Error).message}`, { cause: e });
      } finally {
        arena.unlock();
      }
    }
  }
}

try {
  main(workerData as IoThreadData);
} catch (e) {
  post({ t: 'error', message: `I/O thread: ${(e as Error).message}` });
}
post({ t: 'done', id: -1 });
