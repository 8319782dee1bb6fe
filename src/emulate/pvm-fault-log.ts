/**
 * A diagnostic for the open TLS defect on PVM (README, "User mode on PVM"),
 * on with BHYVE_PVM_DEBUG=1: the last page faults on user addresses that
 * reached the VMM's #PF hook, per process (CR3), so that the report of a
 * process that read its TLS block as zero can say which of its accesses
 * brought the TLS page in (its memcpy of the TLS image, or only the store
 * of the TCB that follows it).
 */
import type { CpuState } from './cpu.js';

const CR3_ADDR = 0x000ffffffffff000n;
const MAX_PROCESSES = 256, MAX_FAULTS = 64;
const hex = (v: bigint | number) => '0x' + v.toString(16);

export class FaultLog {
  /** CR3 → the last page faults on user addresses: [page, error code, RIP, CPL]. */
  private readonly faults = new Map<bigint, [bigint, bigint, bigint, number][]>();

  /** A #PF on a user address (any CPL). */
  onFault(cpu: CpuState, err: bigint, rip: bigint, cpl: number): void {
    const cr3 = cpu.sregs.cr3 & CR3_ADDR;
    let list = this.faults.get(cr3);
    if (!list) {
      if (this.faults.size >= MAX_PROCESSES) this.faults.clear();
      this.faults.set(cr3, (list = []));
    }
    if (list.length >= MAX_FAULTS) list.shift();
    list.push([cpu.sregs.cr2 & ~0xfffn, err, rip, cpl]);
  }

  /** The faults this vCPU saw on `va`'s page in the current process. */
  faultsOn(cpu: CpuState, va: bigint): string {
    const page = va & ~0xfffn;
    const all = this.faults.get(cpu.sregs.cr3 & CR3_ADDR) ?? [];
    const list = all.filter(([p]) => p === page);
    return (list.length ? list.map(([, e, r, c]) => `err ${hex(e)} rip ${hex(r)} cpl ${c}`).join('; ') : 'none seen on this vCPU') +
      ` (of ${all.length} faults of this process seen here)`;
  }
}
