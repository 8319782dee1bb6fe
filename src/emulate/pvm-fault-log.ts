/**
 * A diagnostic for the TLS defect on PVM (README, "User mode on PVM"),
 * on with BHYVE_PVM_DEBUG=1: the last page faults on user addresses that
 * reached the VMM's #PF hook, from every vCPU, so that the report of a
 * process that read its TLS block as zero can say which of its accesses,
 * on which vCPU and in what order, brought the TLS page in (its memcpy of
 * the TLS image, or only the store of the TCB that follows it). The process
 * often faults on one vCPU and dies on the other, so the log lives in
 * shared words that every vCPU thread writes.
 */
import type { CpuState } from './cpu.js';
import { getU64, setU64 } from './shared-words.js';

const CR3_ADDR = 0x000ffffffffff000n;
const hex = (v: bigint | number) => '0x' + v.toString(16);

/** Ring entries, and the words of each: CR3 and page (2 words each), error code, RIP (2), vCPU, CPL, sequence. */
const ENTRIES = 1024;
const E_CR3 = 0, E_PAGE = 2, E_ERR = 4, E_RIP = 5, E_VCPU = 7, E_CPL = 8, E_SEQ = 9, ENTRY_WORDS = 10;
/** Word 0: the next sequence number (entry = sequence % ENTRIES); entries from word 1 on. */
const W_NEXT = 0, W_RING = 1;
export const FAULT_LOG_WORDS = W_RING + ENTRIES * ENTRY_WORDS;

export class FaultLog {
  constructor(private readonly words: Int32Array) {
    if (words.length < FAULT_LOG_WORDS) throw new RangeError('pvm-fault-log: shared block too small');
  }

  /** The sequence number the next fault gets: a report prints it to place itself among the faults. */
  get now(): number { return Atomics.load(this.words, W_NEXT); }

  /** A #PF on a user address (any CPL), on vCPU `vcpu`. */
  onFault(cpu: CpuState, vcpu: number, err: bigint, rip: bigint, cpl: number): void {
    const seq = Atomics.add(this.words, W_NEXT, 1);
    const o = W_RING + (seq % ENTRIES) * ENTRY_WORDS;
    setU64(this.words, o + E_CR3, cpu.sregs.cr3 & CR3_ADDR);
    setU64(this.words, o + E_PAGE, cpu.sregs.cr2 & ~0xfffn);
    this.words[o + E_ERR] = Number(err & 0xffffn);
    setU64(this.words, o + E_RIP, rip);
    this.words[o + E_VCPU] = vcpu;
    this.words[o + E_CPL] = cpl;
    Atomics.store(this.words, o + E_SEQ, seq + 1); // 0: never written
  }

  /** The faults any vCPU saw on `va`'s page in the current process (same CR3), oldest first. */
  faultsOn(cpu: CpuState, va: bigint): string {
    const cr3 = cpu.sregs.cr3 & CR3_ADDR;
    const page = va & ~0xfffn;
    let ofProcess = 0;
    const hits: [number, string][] = [];
    for (let i = 0; i < ENTRIES; i++) {
      const o = W_RING + i * ENTRY_WORDS;
      const seq = Atomics.load(this.words, o + E_SEQ);
      if (seq === 0 || getU64(this.words, o + E_CR3) !== cr3) continue;
      ofProcess++;
      if (getU64(this.words, o + E_PAGE) !== page) continue;
      hits.push([seq - 1, `#${seq - 1} vCPU ${this.words[o + E_VCPU]} err ${hex(this.words[o + E_ERR])} rip ${hex(getU64(this.words, o + E_RIP))} cpl ${this.words[o + E_CPL]}`]);
    }
    hits.sort((a, b) => a[0] - b[0]);
    return (hits.length ? hits.map(([, s]) => s).join('; ') : 'none seen') +
      ` (of ${ofProcess} faults of this process in the log; the next is #${this.now})`;
  }
}
