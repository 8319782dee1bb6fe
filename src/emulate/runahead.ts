/**
 * Run-ahead: after an SSE/AVX instruction, the next ones are usually more
 * of the same (a whole blake2s round), and each would cost a KVM exit.
 * So the emulator goes on in user space through vector instructions and
 * the plain integer ones between them, on the register file and vector
 * registers it already holds, and writes back once. It stops at anything
 * else, at a fault (that instruction is left for KVM to run again), after a
 * few integer instructions in a row (KVM's emulator runs those faster), and
 * after a bounded number of instructions (interrupts wait meanwhile).
 */
import { CS, TF, type CpuState, type VcpuPort } from './cpu.js';
import { decode } from './decoder.js';
import { Emu, type Handler } from './emu.js';
import { Mmu, type MemPort } from './mmu.js';
import type { VecRegs } from './vec.js';

const PLAIN = new Set(['mov', 'movzx', 'movsx', 'movsxd', 'lea', 'add', 'sub', 'and', 'or', 'xor', 'cmp', 'test',
  'inc', 'dec', 'jcc', 'jmp', 'shl', 'shr', 'sar', 'rol', 'ror', 'nop', 'adc', 'sbb', 'neg', 'not', 'cmovcc', 'setcc']);
const MAX_INSNS = 256;
const MAX_PLAIN_RUN = 6;

/** Emulate on from cpu.rip; returns the names of the instructions done. */
export function runAhead(cpu: CpuState, mem: MemPort, vcpu: VcpuPort, shared: { vec?: VecRegs }, handlers: Record<string, Handler>): string[] {
  const done: string[] = [];
  if (cpu.flag(TF)) return done;
  const mmu = new Mmu(cpu, mem); // no MMIO: device accesses go back to KVM
  let plain = 0;
  while (done.length < MAX_INSNS) {
    let x: Emu;
    try {
      const insn = decode(mmu.readLinear(mmu.linear(CS, cpu.rip, 1), 15, { fetch: true }), cpu.codeSize);
      if (insn.lock || (insn.mn !== 'simd' && !PLAIN.has(insn.mn))) break;
      plain = insn.mn === 'simd' ? 0 : plain + 1;
      if (plain > MAX_PLAIN_RUN) break;
      x = new Emu(cpu, mmu, insn, vcpu, shared);
    } catch {
      break;
    }
    const saved = { gpr: [...cpu.gpr], rip: cpu.rip, rflags: cpu.rflags };
    try {
      handlers[x.insn.mn](x);
      if (!x.ripSet) cpu.setRip(x.next);
    } catch {
      saved.gpr.forEach((v, i) => (cpu.gpr[i] = v));
      cpu.rip = saved.rip;
      cpu.rflags = saved.rflags;
      break;
    }
    done.push(x.name);
  }
  return done;
}
