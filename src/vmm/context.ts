/**
 * What a device model is given when it is built. The same build runs on the
 * main thread and on every vCPU thread, in the same order, so arena offsets,
 * bus registrations and timer ids agree everywhere (see shared.ts).
 */
import type { Arena } from './shared.js';
import type { IoBus, MmioBus } from './bus.js';
import type { ConfigTree } from '../config/tree.js';
import type { GuestMemory } from '../kvm/memory.js';
import type { IoEventSpec } from '../kvm/vm.js';

/** Which thread built this copy of the machine: the main thread, a vCPU thread, or the I/O thread. */
export type Role = 'main' | 'vcpu' | 'io';

/** Interrupt lines and messages into the guest; callable from any thread. */
export interface Interrupts {
  /** Drive a GSI (ISA IRQ 0-15 or IOAPIC pin) high or low. */
  line(gsi: number, level: boolean): void;
  /** Raise then lower a GSI (an edge). */
  pulse(gsi: number): void;
  /** Deliver an MSI. */
  msi(address: bigint, data: number): void;
}

/** A one-shot host timer whose callback runs on the main thread under the device lock. */
export interface HostTimer {
  /** Fire after `ns` nanoseconds (replaces any pending deadline). */
  arm(ns: number): void;
  cancel(): void;
}

/** Why the VM stops; values are bhyve(8)'s exit statuses. */
export enum ExitStatus {
  Reset = 0,
  PowerOff = 1,
  Halt = 2,
  TripleFault = 3,
  Error = 4,
}

/** KVM_IOEVENTFD bindings per doorbell. */
export const DOORBELL_SLOTS = 2;

/** An eventfd doorbell: ring() from any thread; its handler runs on the I/O thread under the device lock. */
export interface Doorbell {
  readonly fd: number;
  ring(): void;
  /**
   * Let KVM ring it (KVM_IOEVENTFD): guest writes matching `spec` signal the
   * doorbell inside the kernel, with no exit to user space. A doorbell has
   * DOORBELL_SLOTS bindings (e.g. a legacy port and a modern MMIO address);
   * binding a slot replaces what it held, undefined clears it. Any thread,
   * under the device lock (bindings live in the arena). Returns false when KVM
   * refused (another eventfd has the same match): the device then still sees
   * the write on its bus and should ring() itself.
   */
  bind(spec: IoEventSpec | undefined, slot?: number): boolean;
}

/**
 * An MSI raised through KVM_IRQFD: an eventfd bound to a GSI of its own whose
 * route (address/data) is kept in the arena. Any thread, under the device lock.
 */
export interface IrqFd {
  readonly gsi: number;
  readonly fd: number;
  /** Send the message: re-routes the GSI only when (address, data) changed, then signals the eventfd. */
  msi(address: bigint, data: number): void;
}

export interface MachineContext {
  readonly role: Role;
  readonly arena: Arena;
  readonly config: ConfigTree;
  readonly io: IoBus;
  readonly mmio: MmioBus;
  readonly irq: Interrupts;
  readonly mem: GuestMemory;
  readonly ncpus: number;
  /** Host resources opened once by the main thread (fds, paths), by key. */
  readonly resources: Map<string, unknown>;
  /** A timer, identified by name so every thread refers to the same one. */
  timer(name: string, fire: () => void): HostTimer;
  /** Stop the VM with a bhyve exit status. */
  exit(status: ExitStatus, why?: string): void;
  /**
   * Asynchronous I/O (see src/vmm/aio.ts and iothread.ts): a doorbell
   * whose handler runs on the I/O thread, never on a vCPU or the main event
   * loop. Create it in the constructor, on every thread, in the same order.
   */
  doorbell?(name: string, handler: () => void): Doorbell;
  /**
   * On the I/O thread, run `handler` under the device lock whenever `fd` is
   * readable (level-triggered: the handler must drain it). Call on every
   * thread in the same order; `fd` is usually opened in prepare() and found in
   * ctx.resources.
   */
  watch?(name: string, fd: number, handler: () => void): void;
  /** An MSI sender through irqfd (see IrqFd); create it in the constructor, on every thread, in the same order. */
  irqfd?(name: string): IrqFd;
  /** Called on the main thread for host events; registered by name on every thread. */
  onHost(event: 'powerbutton' | 'start', fn: () => void): void;
}
