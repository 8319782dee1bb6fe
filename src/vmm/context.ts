/**
 * What a device model is given when it is built. The same build runs on the
 * main thread and on every vCPU thread, in the same order, so arena offsets,
 * bus registrations and timer ids agree everywhere (see shared.ts).
 */
import type { Arena } from './shared.js';
import type { IoBus, MmioBus } from './bus.js';
import type { ConfigTree } from '../config/tree.js';
import type { GuestMemory } from '../kvm/memory.js';

export type Role = 'main' | 'vcpu';

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

/** An eventfd doorbell: ring() from any thread; its handler runs on the I/O thread under the device lock. */
export interface Doorbell {
  readonly fd: number;
  ring(): void;
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
   * Asynchronous I/O (see src/vmm/iothread.ts, to be written): a doorbell
   * whose handler runs on the I/O thread, never on a vCPU or the main event
   * loop. Create it in the constructor, on every thread, in the same order.
   */
  doorbell?(name: string, handler: () => void): Doorbell;
  /** On the I/O thread, run `handler` under the device lock whenever `fd` is readable. */
  watch?(name: string, fd: number, handler: () => void): void;
  /** Called on the main thread for host events; registered by name on every thread. */
  onHost(event: 'powerbutton' | 'start', fn: () => void): void;
}
