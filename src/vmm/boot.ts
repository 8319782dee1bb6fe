/** Firmware tables and the boot path (boot ROM or Linux). */
import type { ConfigTree } from '../config/tree.js';
import type { Topology } from '../kvm/cpuid.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { Layout } from './layout.js';
import type { Machine } from './machine.js';

export interface GuestSetup {
  config: ConfigTree; machine: Machine; layout: Layout; vcpus: Vcpu[]; topology: Topology; vmName: string; host: string;
}

export function setupGuest(s: GuestSetup): void {
  void s;
}
