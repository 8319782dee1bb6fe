/**
 * x87 conditional moves (P6+): FCMOVcc ST(0), ST(i) copies ST(i) into ST(0)
 * when the RFLAGS condition holds. DA C0-DF tests B, E, BE, U (CF, ZF,
 * CF|ZF, PF); DB C0-DF the negations. Compilers emit these for float
 * min/max and clamping, which firmware (OVMF's DXE drivers) runs.
 */
import { condition } from './alu.js';
import { X87 } from './x87.js';
import type { Emu } from './emu.js';

/** The jcc condition code of each FCMOV form by ModRM.reg: below, equal, below-or-equal, unordered (parity). */
const FCMOV_CC = [0x2, 0x4, 0x6, 0xa];

/** Returns false when the instruction is not an FCMOVcc. */
export function x87Cmov(x: Emu, buf: Uint8Array): boolean {
  const { opcode, mod, reg, modrm } = x.insn;
  if (mod !== 3 || (opcode !== 0xda && opcode !== 0xdb) || reg > 3) return false;
  const cc = FCMOV_CC[reg] | (opcode === 0xdb ? 1 : 0);
  x.name = `fcmov${opcode === 0xdb ? 'n' : ''}${['b', 'e', 'be', 'u'][reg]}`;
  const f = new X87(buf);
  if (condition(cc, x.cpu.rflags)) f.setSt(0, f.st(modrm & 7));
  return true;
}
