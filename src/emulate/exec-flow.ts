/** Control flow, the stack and RFLAGS: jumps, calls, returns, push/pop, pushf/popf, setcc, cmovcc. */
import { AC, CF, DF, ID, IF, IOPL, NT, OF, RBP, RCX, RSP, SF, TF, ZF, AF, PF, VIF, VIP, mask } from './cpu.js';
import { condition } from './alu.js';
import { gp } from './fault.js';
import type { Emu, Handler } from './emu.js';

const rel = (x: Emu): bigint => x.next + (x.op(0).t === 'imm' ? (x.op(0) as { value: bigint }).value : 0n);

/** Near targets: 64-bit mode checks canonical form (#GP), other modes wrap to the operand size. */
function branch(x: Emu, target: bigint): void {
  const size = x.cpu.code64 ? 8 : x.insn.opSize;
  const t = target & mask(size);
  if (x.cpu.code64 && !x.mmu.canonical(t)) throw gp(0);
  x.jump(t, size);
}

function popf(x: Emu): void {
  const n = x.insn.opSize;
  const v = x.pop(n);
  const cpu = x.cpu;
  const cpl = cpu.cpl, iopl = Number((cpu.rflags & IOPL) >> 12n);
  if (cpu.mode === 'v86' && iopl < 3) throw gp(0);
  let bits = CF | PF | AF | ZF | SF | TF | DF | OF | NT;
  if (n >= 4) bits |= AC | ID;
  if (cpl === 0) bits |= IOPL | IF;
  else if (cpl <= iopl) bits |= IF;
  if (n === 2) bits &= 0xffffn;
  // VIF and VIP are kept; RF and VM are cleared (setFlags keeps VM only if it was set).
  cpu.setFlags((((cpu.rflags & ~bits) | (v & bits)) & ~(VIF | VIP | 0x10000n)) | (cpu.rflags & (VIF | VIP)));
}

export const FLOW_HANDLERS: Record<string, Handler> = {
  jcc: (x) => { if (condition(x.insn.opcode & 15, x.cpu.rflags)) branch(x, rel(x)); },
  jrcxz: (x) => { if (x.cpu.reg(RCX, x.insn.addrSize) === 0n) branch(x, rel(x)); },
  jmp: (x) => branch(x, x.op(0).t === 'imm' ? rel(x) : x.read(x.op(0))),
  call: (x) => {
    const target = x.op(0).t === 'imm' ? rel(x) : x.read(x.op(0));
    x.push(x.next);
    branch(x, target);
  },
  ret: (x) => {
    const target = x.pop();
    if (x.insn.operands.length) x.cpu.setReg(RSP, x.cpu.stackSize, (x.sp + x.read(x.op(0))) & mask(x.cpu.stackSize));
    branch(x, target);
  },
  push: (x) => x.push(x.read(x.op(0))),
  pop: (x) => {
    const d = x.op(0);
    const v = x.peek(x.insn.opSize);
    // pop [rsp+...] addresses with the incremented RSP
    x.cpu.setReg(RSP, x.cpu.stackSize, (x.sp + BigInt(x.insn.opSize)) & mask(x.cpu.stackSize));
    x.write(d, v);
  },
  leave: (x) => {
    x.cpu.setReg(RSP, x.cpu.stackSize, x.cpu.reg(RBP, x.cpu.stackSize));
    x.cpu.setReg(RBP, x.insn.opSize, x.pop());
  },
  pushf: (x) => {
    if (x.cpu.mode === 'v86' && (x.cpu.rflags & IOPL) !== IOPL) throw gp(0);
    x.push(x.cpu.rflags & 0xfcffffn);
  },
  popf,
  setcc: (x) => x.write(x.op(0), condition(x.insn.opcode & 15, x.cpu.rflags) ? 1n : 0n),
  cmovcc: (x) => {
    const d = x.op(0);
    const v = x.read(x.op(1));
    if (condition(x.insn.opcode & 15, x.cpu.rflags)) x.write(d, v);
    else if (d.size === 4) x.write(d, x.read(d)); // a 32-bit cmov clears bits 63:32 either way
  },
};
