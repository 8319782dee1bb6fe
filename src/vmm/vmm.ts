/**
 * A virtual machine, driven from the main thread: creates the KVM VM, lays
 * out memory, builds the devices, loads firmware or a kernel, starts one
 * worker thread per vCPU, and turns the first stop request into bhyve's exit
 * status. Also the library entry point (`VirtualMachine.create(config)`).
 */
import { Worker } from 'node:worker_threads';
import { takeVcpuThread, releaseVcpuThreads } from './vcpu-pool.js';
import { cpus as hostCpus, hostname } from 'node:os';
import { ConfigError, ConfigTree, parseSize } from '../config/tree.js';
import { validate } from '../config/schema.js';
import * as C from '../kvm/constants.js';
import { supportedCpuid, vcpuCpuid, encodeCpuid, type Topology } from '../kvm/cpuid.js';
import { getpid, gettid, tgkill, SIGUSR2 } from '../kvm/libc.js';
import { Kvm, Vm } from '../kvm/vm.js';
import { Vcpu } from '../kvm/vcpu.js';
import { buildLayout, loadBootrom, type Layout } from './layout.js';
import { MEM64_SIZE, configuredFunctions } from '../devices/pci/root.js';
import { findPci } from '../devices/registry.js';
import { Machine, type MachineInit } from './machine.js';
import { Arena } from './shared.js';
import { ExitStatus } from './context.js';
import {
  CTL_BASE, CTL_EXITS, CTL_GO, CTL_IDLE, CTL_MAX_VCPUS, CTL_PVM, CTL_STOP, CTL_STRIDE, CTL_TID, type LoopEnd,
} from './vcpu-loop.js';
import { PVM_SYSCALL_WORDS } from '../emulate/pvm-syscall.js';
import { runHeadStart } from './head-start.js';
import type { VcpuThreadData, WorkerMessage } from './vcpu-worker.js';
import { setupGuest } from './boot.js';
import type { IoThreadData } from './iothread.js';
import { newEventFd, signalEventFd } from './aio.js';

export interface StopInfo { status: ExitStatus; why?: string }

/** How a head start went (see head-start.ts). */
export interface HeadStartInfo {
  /** vCPU 0's exits handled on the main thread. */
  exits: number;
  ms: number;
  /** Why it ended; 'failed' when vCPU 0's own thread failed before taking over. */
  end: LoopEnd | 'failed';
}

const KVM_CAP_X86_USER_SPACE_MSR = 188;
const KVM_MSR_EXIT_REASON_UNKNOWN = 1n << 1n;
const IDLE_CHECK_MS = 200;
/** How long `stopped` waits for the threads to leave their loops (ms). */
const THREADS_SETTLE_MS = 2000;
const IOTHREAD_URL = new URL('./iothread.js', import.meta.url);
/** For BHYVE_HEAD_START=trace. */
const HEAD_START_ENDS: Record<HeadStartInfo['end'], string> = {
  stopped: 'the VM stopped', asked: 'its own thread took it over', failed: 'its own thread failed',
  'time-up': 'the head start ran out of time', emulation: 'an instruction needed the emulator (on its own thread)',
};

export class VirtualMachine {
  readonly workers: Worker[] = [];
  /** One per vCPU thread and the I/O thread: resolves when its loop has returned or the thread is gone. */
  private readonly loopsDone: Promise<void>[] = [];
  private readonly ctlSab = new SharedArrayBuffer(4 * (CTL_PVM + PVM_SYSCALL_WORDS));
  private readonly ctl = new Int32Array(this.ctlSab);
  private stopInfo?: StopInfo;
  private resolveStop!: (s: StopInfo) => void;
  /**
   * Resolves once the VM has stopped and every thread has left its loop (at
   * most THREADS_SETTLE_MS after the stop), so the process may then exit:
   * see settle().
   */
  readonly stopped: Promise<StopInfo> = new Promise((r) => (this.resolveStop = r));
  private idleTimer?: NodeJS.Timeout;
  private lastExits: number[] = [];
  /** The I/O thread's stop eventfd, when it runs. */
  private ioStopFd = -1;
  /** Set when start() gave vCPU 0 a head start on the main thread. */
  headStart?: HeadStartInfo;

  private constructor(
    readonly config: ConfigTree,
    readonly topology: Topology,
    readonly vm: Vm,
    readonly layout: Layout,
    readonly machine: Machine,
    readonly vcpus: Vcpu[],
  ) {}

  static create(config: ConfigTree): VirtualMachine {
    validate(config);
    const topology = resolveTopology(config);
    const memSize = parseSize('memory.size', config.str('memory.size', '256M'), 2 ** 20);
    const bootrom = config.get('lpc.bootrom');
    const kernel = config.get('boot.kernel');
    if (!bootrom && !kernel) throw new ConfigError('nothing to boot: give -l bootrom,FILE or -o boot.kernel=PATH');
    if (bootrom && kernel) throw new ConfigError('give either -l bootrom or -o boot.kernel, not both');
    if (!config.get('uuid') && !config.get('name')) throw new ConfigError('a VM name is required');

    for (const key of config.node('vcpu')?.keys() ?? []) {
      if (Number(key) >= topology.cpus) throw new ConfigError(`vcpu.${key}: the VM has only ${topology.cpus} vCPU(s)`);
      cpuset(config, Number(key));
    }
    const kvm = new Kvm();
    const maxVcpus = kvm.extension(C.KVM_CAP_MAX_VCPUS) || kvm.extension(C.KVM_CAP_NR_VCPUS);
    if (topology.cpus > maxVcpus) throw new ConfigError(`cpus: ${topology.cpus} exceeds KVM's limit of ${maxVcpus}`);
    const vm = Vm.create(kvm);
    vm.createIrqchip();
    vm.setPcRouting();
    vm.enableCap(KVM_CAP_X86_USER_SPACE_MSR, [KVM_MSR_EXIT_REASON_UNKNOWN]);
    vm.enableCap(C.KVM_CAP_EXIT_ON_EMULATION_FAILURE, [1n]);

    // A balloon gives back 4 KiB pages: RAM on transparent huge pages would undo that (see buildLayout).
    const returnsPages = configuredFunctions(config).some((c) => findPci(c.device)?.returnsPages);
    const layout = buildLayout(memSize, config.bool('memory.wired', false), bootrom, config.get('lpc.bootvars'), !returnsPages);
    for (const s of layout.segments) vm.mapSegment(s);

    const init: MachineInit = {
      config: config.entries(), arena: new Arena().sab, vmFd: vm.fd, segments: layout.segments,
      ncpus: topology.cpus, lowmem: layout.lowmem, highmem: layout.highmem, resources: [],
    };
    let self: VirtualMachine | undefined;
    const machine = new Machine(init, 'main', {
      exit: (status, why) => self?.stop(status, why),
      nudgeTimer: (i) => machine.timers.reschedule(i),
    });
    init.resources = [...machine.ctx.resources];
    if (bootrom) loadBootrom(layout, bootrom, (gpa, d) => machine.ctx.mem.write(gpa, d));

    const base = supportedCpuid(kvm.fd);
    const physBits = guestPhysBits(config, layout);
    const runSize = kvm.runSize;
    const vcpus: Vcpu[] = [];
    for (let id = 0; id < topology.cpus; id++) {
      const v = Vcpu.create(vm.fd, id, runSize);
      const entries = vcpuCpuid(base, id, topology, physBits);
      v.setCpuid(encodeCpuid(entries), entries.length);
      vcpus.push(v);
    }
    setupGuest({ config, machine, layout, vcpus, topology, vmName: config.str('name', ''), host: hostname() });
    self = new VirtualMachine(config, topology, vm, layout, machine, vcpus);
    return self;
  }

  /**
   * Start every vCPU thread; resolves `stopped` with the exit status. With
   * `headStart`, vCPU 0 first runs on this thread, blocking its event loop,
   * until its own thread has loaded (see head-start.ts): the guest starts
   * tens of milliseconds sooner. The bhyve command does so.
   */
  async start(opts: { headStart?: boolean } = {}): Promise<void> {
    process.on('SIGUSR2', () => {}); // kicks vCPU threads out of KVM_RUN; must not kill us
    const headStart = opts.headStart === true && cpuset(this.config, 0).length === 0;
    if (headStart) Atomics.store(this.ctl, CTL_BASE + CTL_TID, gettid()); // whom vCPU 0's thread kicks
    const init: MachineInit = {
      config: this.config.entries(), arena: this.machine.arena.sab, vmFd: this.vm.fd,
      segments: this.layout.segments, ncpus: this.topology.cpus, lowmem: this.layout.lowmem,
      highmem: this.layout.highmem, resources: [...this.machine.ctx.resources],
    };
    const ready: Promise<void>[] = [];
    for (const v of this.vcpus) {
      const data: VcpuThreadData = {
        init, id: v.id, fd: v.fd, runSize: v.runBytes.length, ctl: this.ctlSab,
        cpuset: cpuset(this.config, v.id),
        strictIo: this.config.bool('x86.strictio', false),
        strictMsr: this.config.bool('x86.strictmsr', true),
        headStart: headStart && v.id === 0,
      };
      const w = takeVcpuThread();
      w.postMessage(data);
      const loopDone = this.track(w);
      ready.push(new Promise((resolve) => {
        w.on('message', (m: WorkerMessage) => {
          if (m.t === 'ready') resolve();
          else if (m.t === 'done') loopDone();
          else if (m.t === 'exit') this.stop(m.status, m.why);
          else if (m.t === 'timer') this.machine.timers.reschedule(m.index);
          else if (m.t === 'error') this.stop(ExitStatus.Error, m.message);
        });
        w.on('error', (e) => this.stop(ExitStatus.Error, `vCPU ${v.id} thread: ${e.message}`));
      }));
    }
    releaseVcpuThreads();
    if (this.machine.aio.needed) this.startIoThread(init);
    if (headStart) {
      this.go();
      this.runHeadStart();
    }
    await Promise.race([Promise.all(ready), this.stopped]);
    if (this.stopInfo) return;
    if (!headStart) this.go();
    this.idleTimer = setInterval(() => this.checkIdle(), IDLE_CHECK_MS);
  }

  /** Let the vCPUs run. */
  private go(): void {
    this.machine.host('start');
    Atomics.store(this.ctl, CTL_GO, 1);
    Atomics.notify(this.ctl, CTL_GO);
  }

  /**
   * vCPU 0 on this thread until its own thread takes it over, the VM stops,
   * or an exit needs the instruction emulator (only vCPU threads load it).
   */
  private runHeadStart(): void {
    const { machine, config } = this;
    const t0 = performance.now();
    const { end, exits } = runHeadStart({
      vcpu: this.vcpus[0], arena: machine.arena, io: machine.io, mmio: machine.mmio, ctl: this.ctl,
      strictIo: config.bool('x86.strictio', false), strictMsr: config.bool('x86.strictmsr', true),
      resync: () => machine.resync(),
      exit: (status, why) => this.stop(status, why),
    });
    const info: HeadStartInfo = { exits, ms: performance.now() - t0, end };
    this.headStart = info;
    if (process.env.BHYVE_HEAD_START === 'trace') {
      process.stderr.write(`bhyve: head start: vCPU 0 made ${info.exits} exits on the main thread in ${info.ms.toFixed(1)} ms, then ${HEAD_START_ENDS[info.end]}\n`);
    }
  }

  /**
   * The I/O thread, only when some device waits on an fd (tiny guests stay
   * fast). Not waited for: doorbells rung before it listens stay signalled.
   */
  private startIoThread(init: MachineInit): void {
    this.ioStopFd = newEventFd('I/O thread stop');
    const data: IoThreadData = { init, stopFd: this.ioStopFd };
    const w = new Worker(IOTHREAD_URL, { workerData: data });
    w.unref();
    const loopDone = this.track(w);
    w.on('message', (m: WorkerMessage) => {
      if (m.t === 'done') loopDone();
      else if (m.t === 'exit') this.stop(m.status, m.why);
      else if (m.t === 'timer') this.machine.timers.reschedule(m.index);
      else if (m.t === 'error') this.stop(ExitStatus.Error, m.message);
    });
    w.on('error', (e) => this.stop(ExitStatus.Error, `I/O thread: ${e.message}`));
  }

  /**
   * A thread of this VM: returns what to call when it says its loop is done
   * ('done'); leaving the thread ends it as well.
   */
  private track(w: Worker): () => void {
    this.workers.push(w);
    let done!: () => void;
    this.loopsDone.push(new Promise((resolve) => { done = resolve; w.once('exit', () => resolve()); }));
    return done;
  }

  /**
   * Wait (at most THREADS_SETTLE_MS) until every thread's loop has returned.
   * The process must not exit before: a thread that the exit terminates
   * inside a native call (koffi) can abort the whole process, and what
   * threads write on their way out (BHYVE_EMUL_STATS) would be cut off.
   */
  private async settle(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => { timer = setTimeout(r, THREADS_SETTLE_MS); });
    await Promise.race([Promise.all(this.loopsDone), late]);
    clearTimeout(timer);
  }

  /** Press the ACPI power button (what SIGTERM does). */
  powerButton(): void {
    this.machine.host('powerbutton');
  }

  /** Stop every vCPU; the first status wins. */
  stop(status: ExitStatus, why?: string): void {
    if (this.stopInfo) return;
    this.stopInfo = { status, why };
    Atomics.store(this.ctl, CTL_STOP, 1);
    Atomics.notify(this.ctl, CTL_GO);
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.machine.timers.cancelAll();
    this.kickAll();
    if (this.ioStopFd >= 0) signalEventFd(this.ioStopFd);
    const info = this.stopInfo;
    void this.settle().then(() => this.resolveStop(info));
  }

  /** Make every vCPU leave KVM_RUN now and on its next entry. */
  private kickAll(): void {
    for (const v of this.vcpus) {
      v.runBytes[C.RUN_IMMEDIATE_EXIT] = 1;
      this.kick(v.id);
    }
  }

  private kick(id: number): void {
    const tid = Atomics.load(this.ctl, CTL_BASE + id * CTL_STRIDE + CTL_TID);
    if (tid > 0) tgkill(getpid(), tid, SIGUSR2);
  }

  /** Status 2 (halt): every vCPU idle with interrupts off, or never started. */
  private checkIdle(): void {
    let allIdle = true;
    let anyHalted = false;
    for (const v of this.vcpus) {
      const base = CTL_BASE + v.id * CTL_STRIDE;
      const exits = Atomics.load(this.ctl, base + CTL_EXITS);
      const quiet = exits === this.lastExits[v.id];
      this.lastExits[v.id] = exits;
      const idle = Atomics.load(this.ctl, base + CTL_IDLE);
      if (!quiet) { Atomics.store(this.ctl, base + CTL_IDLE, 0); allIdle = false; continue; }
      if (idle === 1) anyHalted = true;
      else if (idle !== 2) allIdle = false;
      this.kick(v.id);
    }
    if (allIdle && anyHalted) this.stop(ExitStatus.Halt, 'all vCPUs halted with interrupts disabled');
  }
}

/** x86.physbits, checked against the top of the guest's address space (RAM and the 64-bit BAR window). */
function guestPhysBits(config: ConfigTree, layout: Layout): number | undefined {
  if (config.get('x86.physbits') === undefined) return undefined;
  const bits = config.int('x86.physbits', 0, 32, 52);
  const top = Math.ceil((4 * 2 ** 30 + layout.highmem) / MEM64_SIZE) * MEM64_SIZE + MEM64_SIZE;
  const need = Math.ceil(Math.log2(top));
  if (bits < need) throw new ConfigError(`x86.physbits: ${bits} bits cannot reach this VM's memory and 64-bit PCI window (need ${need})`);
  return bits;
}

function resolveTopology(config: ConfigTree): Topology {
  const given = (k: string) => config.get(k) !== undefined;
  const sockets = config.int('sockets', 1, 1);
  const cores = config.int('cores', 1, 1);
  const threads = config.int('threads', 1, 1);
  let cpus: number;
  if (given('cpus')) {
    cpus = config.int('cpus', 1, 1);
    if (!given('sockets') && !given('cores') && !given('threads')) {
      return check({ cpus, sockets: cpus, cores: 1, threads: 1 });
    }
    if (sockets * cores * threads !== cpus) {
      throw new ConfigError(`cpus: ${cpus} does not match the topology ${sockets} sockets x ${cores} cores x ${threads} threads`);
    }
  } else {
    cpus = sockets * cores * threads;
  }
  return check({ cpus, sockets, cores, threads });

  function check(t: Topology): Topology {
    const max = config.int('vmm.maxcpu', hostCpus().length, 1);
    if (t.cpus > max) throw new ConfigError(`cpus: ${t.cpus} exceeds the limit of ${max} (the host's CPU count; raise with -o vmm.maxcpu=N)`);
    if (t.cpus > CTL_MAX_VCPUS) throw new ConfigError(`cpus: ${t.cpus} exceeds ${CTL_MAX_VCPUS}`);
    return t;
  }
}

function cpuset(config: ConfigTree, id: number): number[] {
  const v = config.get(`vcpu.${id}.cpuset`);
  if (!v) return [];
  const n = hostCpus().length;
  const out: number[] = [];
  for (const part of v.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new ConfigError(`vcpu.${id}.cpuset: bad CPU list '${v}'`);
    const lo = Number(m[1]), hi = m[2] === undefined ? lo : Number(m[2]);
    for (let c = lo; c <= hi; c++) {
      if (c >= n) throw new ConfigError(`vcpu.${id}.cpuset: host CPU ${c} does not exist (host has ${n})`);
      out.push(c);
    }
  }
  return out;
}
