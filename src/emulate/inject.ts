/**
 * Delivering what an emulated instruction raised, through
 * KVM_GET/SET_VCPU_EVENTS: exceptions (with error code; #PF sets CR2 first
 * through KVM_SET_SREGS), software interrupts (int n), and clearing NMI
 * blocking after iret. The rest of the events struct is written back as
 * KVM_GET_VCPU_EVENTS gave it.
 */
import * as C from '../kvm/constants.js';
import type { VcpuPort } from './cpu.js';
import { EmulationError } from './fault.js';

export function injectException(vcpu: VcpuPort, vector: number, errorCode?: number, cr2?: bigint): void {
  if (cr2 !== undefined) {
    const s = vcpu.getSregs();
    vcpu.setSregs({ ...s, cr2 });
  }
  const ev = vcpu.getEvents();
  if (ev[C.EV_EXC_INJECTED] || ev[C.EV_EXC_PENDING]) {
    throw new EmulationError(`exception ${vector} raised while exception ${ev[C.EV_EXC_NR]} is being delivered`);
  }
  ev[C.EV_EXC_INJECTED] = 1;
  ev[C.EV_EXC_NR] = vector;
  ev[C.EV_EXC_HAS_ERROR] = errorCode === undefined ? 0 : 1;
  ev.writeUInt32LE((errorCode ?? 0) >>> 0, C.EV_EXC_ERROR);
  vcpu.setEvents(ev);
}

export function injectSoftInterrupt(vcpu: VcpuPort, vector: number): void {
  const ev = vcpu.getEvents();
  if (ev[C.EV_INT_INJECTED]) throw new EmulationError(`int 0x${vector.toString(16)} while interrupt ${ev[C.EV_INT_NR]} is being delivered`);
  ev[C.EV_INT_INJECTED] = 1;
  ev[C.EV_INT_NR] = vector;
  ev[C.EV_INT_SOFT] = 1;
  vcpu.setEvents(ev);
}

/** iret ends NMI blocking. */
export function unblockNmi(vcpu: VcpuPort): void {
  const ev = vcpu.getEvents();
  if (!ev[C.EV_NMI_MASKED]) return;
  ev[C.EV_NMI_MASKED] = 0;
  vcpu.setEvents(ev);
}
