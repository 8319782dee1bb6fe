/**
 * The interrupt frame of a protected-mode guest on a PVM host.
 *
 * kvm_pvm delivers interrupts and exceptions to a guest in (non-long)
 * protected mode itself, and it writes the EIP/CS/EFLAGS frame at the
 * linear address ESP, leaving out the stack segment's base (ESP itself is
 * lowered as it should be). Guests whose SS has base 0 never notice. iPXE
 * runs its C code with CS, DS and SS based at its relocation offset, so the
 * iret of its interrupt handler finds stale stack words at SS:ESP (and
 * raises #GP over and over) while the frame sits at the flat address ESP.
 *
 * Before the iret is emulated, `pvmFrameFixup` looks for such a frame: SS
 * has a base, and the words at linear ESP (guest RAM, never MMIO) make a
 * frame the return could use (a code selector valid for the CPL, an EIP
 * within its limit, EFLAGS with its fixed bits right). It copies that frame
 * to SS:ESP, where a correct delivery would have put it, and clears the flat
 * copy so that it is never taken twice. Then the iret runs unchanged. A
 * plausible frame at flat ESP is therefore one PVM wrote and nobody has
 * returned through yet, and it wins over whatever SS:ESP holds (stale words
 * there can look like a frame too). tests/guests/pmirq.S shows the quirk:
 * without the fix-up its first iret raises #GP, and the #GP handler finds
 * zeros at SS:ESP where its own frame should be.
 */
import { SS, type CpuState } from './cpu.js';
import { readDescriptor } from './descriptor.js';
import type { Emu, Handler } from './emu.js';
import type { Mmu } from './mmu.js';
import { fromBytes } from './mmu.js';

const PAGE = 4096;
/** EFLAGS bit 1 reads as one; bits 3, 5 and 15 as zero; VM (17) cannot be set by an interrupt from protected mode. */
const FLAGS_ONE = 0x2n, FLAGS_ZERO = 0x8n | 0x20n | 0x8000n | 0x20000n;

/** Wrap the iret handler with the fix-up. */
export function withPvmFrame(iret: Handler): Handler {
  return (x: Emu) => {
    const moved = pvmFrameFixup(x.cpu, x.mmu, x.insn.opSize);
    iret(x);
    if (moved) x.name += ' (PVM frame)';
  };
}

/**
 * Move a frame PVM left at linear ESP to SS:ESP; true when it did. Only in
 * protected mode (not long, not virtual-8086) with an SS base other than 0.
 */
export function pvmFrameFixup(cpu: CpuState, mmu: Mmu, n: number): boolean {
  if (cpu.long || n === 8) return false;
  const mode = cpu.mode;
  if (mode !== 'prot32' && mode !== 'prot16') return false;
  const ss = cpu.seg(SS);
  if (ss.base === 0n || ss.unusable) return false;
  const esp = cpu.gpr[4] & (cpu.stackSize === 4 ? 0xffffffffn : 0xffffn);
  const flat = ramBytes(mmu, esp, 3 * n);
  if (!flat) return false;
  const word = (i: number) => fromBytes(flat.bytes.subarray(i * n, (i + 1) * n));
  if (!returnable(cpu, mmu, word(0), Number(word(1) & 0xffffn), word(2), n)) return false;
  try {
    mmu.write(SS, esp, 3 * n, fromBytes(flat.bytes), { implicit: true });
  } catch {
    return false; // SS:ESP cannot hold it: leave everything to the iret itself
  }
  flat.fill(0);
  return true;
}

/** The bytes at [lin, lin+len) as live views of guest RAM (paging off or on), or undefined when any part is not RAM. */
function ramBytes(mmu: Mmu, lin: bigint, len: number): RamBytes | undefined {
  const parts: Uint8Array[] = [];
  let done = 0;
  try {
    while (done < len) {
      const at = (lin + BigInt(done)) & 0xffffffffn;
      const k = Math.min(len - done, PAGE - Number(at & 0xfffn));
      const view = mmu.ramView(at, k, true, { implicit: true });
      if (!view) return undefined;
      parts.push(view);
      done += k;
    }
  } catch {
    return undefined;
  }
  return new RamBytes(parts);
}

/** A copy of bytes gathered from live RAM views (one per page), which `fill` writes through. */
class RamBytes {
  readonly bytes: Uint8Array;
  constructor(private readonly parts: Uint8Array[]) {
    this.bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) { this.bytes.set(p, o); o += p.length; }
  }
  fill(v: number): void { for (const p of this.parts) p.fill(v); }
}

/** Could an iret at the current CPL return through this frame without faulting? */
function returnable(cpu: CpuState, mmu: Mmu, eip: bigint, sel: number, flags: bigint, n: number): boolean {
  if ((flags & FLAGS_ONE) === 0n || (flags & FLAGS_ZERO) !== 0n) return false;
  if (n === 4 && flags >> 22n !== 0n) return false;
  if ((sel & 0xfffc) === 0) return false;
  const rpl = sel & 3;
  if (rpl !== cpu.cpl) return false; // PVM's own frames return to the same level
  try {
    const d = readDescriptor(cpu, mmu, sel);
    if (!d.s || !(d.type & 8) || !d.present) return false;
    if ((d.type & 4) !== 0 ? d.dpl > rpl : d.dpl !== rpl) return false;
    return eip <= BigInt(d.limit >>> 0);
  } catch {
    return false;
  }
}
