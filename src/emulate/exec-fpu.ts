/**
 * FPU, SSE and XSAVE state instructions, done on KVM's copy of the guest's
 * extended state (KVM_GET_XSAVE/KVM_SET_XSAVE, the standard XSAVE layout)
 * and the guest's save areas in memory: the x87 control instructions
 * (fldcw, fnstcw, fnstsw, fninit, fnclex, fwait), fxsave/fxrstor,
 * ldmxcsr/stmxcsr, xsave/xsaveopt/xsavec/xsaves, xrstor/xrstors, xgetbv.
 * Component offsets and sizes come from the vCPU's CPUID leaf 0xD.
 */
import { CR0_EM, CR0_MP, CR0_NE, CR0_TS, CR4_OSFXSR, CR4_OSXSAVE, RAX, RCX, RDX, mask } from './cpu.js';
import { EmulationError, GuestFault, MF, gp, nm, ud } from './fault.js';
import { fromBytes } from './mmu.js';
import type { Emu, Handler } from './emu.js';
import type { MemOperand } from './decoder.js';
import type { VcpuPort } from './cpu.js';
import { xsaveArea, xrstorArea } from './xsave.js';
import { x87Arith } from './exec-x87.js';
import { x87Cmov } from './exec-x87-cmov.js';

const FCW = 0, FSW = 2, MXCSR = 24, MXCSR_MASK = 28;
const XSTATE_BV = 512;
const MSR_XSS = 0xda0;

function fpuCheck(x: Emu): void {
  const cr0 = x.cpu.sregs.cr0;
  if (cr0 & (CR0_EM | CR0_TS)) throw nm();
}

function sseCheck(x: Emu): void {
  const s = x.cpu.sregs;
  if (!(s.cr4 & CR4_OSFXSR) || s.cr0 & CR0_EM) throw ud();
  if (s.cr0 & CR0_TS) throw nm();
}

/** KVM's buffer with the header bits for `bits` set (so that KVM_SET_XSAVE takes those components). */
function commitState(x: Emu, buf: Buffer, bits: bigint): void {
  buf.writeBigUInt64LE(buf.readBigUInt64LE(XSTATE_BV) | bits, XSTATE_BV);
  x.vcpu.setXsave(buf);
}

function mxcsrMask(buf: Buffer): number {
  return buf.readUInt32LE(MXCSR_MASK) || 0xffbf;
}

export function xcr0(vcpu: VcpuPort): bigint {
  return vcpu.getXcrs().get(0) ?? 1n;
}

function memOp(x: Emu, size: number, align: number, write: boolean): bigint {
  const lin = x.linear(x.op(0) as MemOperand, size, write);
  if (lin % BigInt(align) !== 0n) throw gp(0);
  return lin;
}

/** D8-DF: the x87 control instructions only. */
function x87(x: Emu): void {
  const { opcode, mod, reg, modrm } = x.insn;
  fpuCheck(x);
  const buf = x.vcpu.getXsave();
  if (mod !== 3 && opcode === 0xd9 && reg === 5) {
    x.name = 'fldcw';
    buf.writeUInt16LE(Number(x.read({ ...(x.op(0) as MemOperand), size: 2 })), FCW);
    return commitState(x, buf, 1n);
  }
  if (mod !== 3 && opcode === 0xd9 && reg === 7) { x.name = 'fnstcw'; x.write({ ...(x.op(0) as MemOperand), size: 2 }, BigInt(buf.readUInt16LE(FCW))); return; }
  if (mod !== 3 && opcode === 0xdd && reg === 7) { x.name = 'fnstsw'; x.write({ ...(x.op(0) as MemOperand), size: 2 }, BigInt(buf.readUInt16LE(FSW))); return; }
  if (opcode === 0xdf && modrm === 0xe0) { x.name = 'fnstsw'; x.cpu.setReg(RAX, 2, BigInt(buf.readUInt16LE(FSW))); return; }
  if (opcode === 0xd9 && modrm === 0xd0) { x.name = 'fnop'; return; }
  if (opcode === 0xdb && modrm === 0xe3) {
    x.name = 'fninit';
    buf.writeUInt16LE(0x37f, FCW);
    buf.fill(0, FSW, MXCSR); // FSW, FTW (all empty), FOP, FIP, FDP
    return commitState(x, buf, 1n);
  }
  if (opcode === 0xdb && modrm === 0xe2) {
    x.name = 'fnclex';
    buf.writeUInt16LE(buf.readUInt16LE(FSW) & 0x7f00, FSW);
    return commitState(x, buf, 1n);
  }
  x.name = `x87 ${opcode.toString(16)} ${mod === 3 ? modrm.toString(16) : `/${reg}`}`;
  if (x87Arith(x, buf) || x87Cmov(x, buf)) return commitState(x, buf, 1n);
  throw new EmulationError(`x87 instruction ${x.name} not emulated`);
}

function fwait(x: Emu): void {
  const cr0 = x.cpu.sregs.cr0;
  if ((cr0 & (CR0_TS | CR0_MP)) === (CR0_TS | CR0_MP)) throw nm();
  const fsw = x.vcpu.getXsave().readUInt16LE(FSW);
  if (fsw & 0x80) {
    if (!(cr0 & CR0_NE)) throw new EmulationError('fwait with a pending x87 exception and CR0.NE clear (FERR#)');
    throw new GuestFault(MF);
  }
}

function fxsave(x: Emu): void {
  fpuCheck(x);
  const lin = memOp(x, 512, 16, true);
  const buf = x.vcpu.getXsave();
  x.mmu.writeLinear(lin, buf.subarray(0, 416));
}

function fxrstor(x: Emu): void {
  fpuCheck(x);
  const lin = memOp(x, 512, 16, false);
  const area = x.mmu.readLinear(lin, 416);
  const buf = x.vcpu.getXsave();
  if (new DataView(area.buffer).getUint32(MXCSR, true) & ~mxcsrMask(buf)) throw gp(0);
  buf.set(area.subarray(0, MXCSR_MASK), 0);
  buf.set(area.subarray(32, 416), 32);
  commitState(x, buf, 3n);
}

function ldmxcsr(x: Emu): void {
  sseCheck(x);
  const v = Number(x.read(x.op(0)));
  const buf = x.vcpu.getXsave();
  if (v & ~mxcsrMask(buf)) throw gp(0);
  buf.writeUInt32LE(v >>> 0, MXCSR);
  commitState(x, buf, 2n);
}

function stmxcsr(x: Emu): void {
  sseCheck(x);
  x.write(x.op(0), BigInt(x.vcpu.getXsave().readUInt32LE(MXCSR)));
}

function xsaveCheck(x: Emu, supervisor: boolean): bigint {
  const s = x.cpu.sregs;
  if (!(s.cr4 & CR4_OSXSAVE)) throw ud();
  if (s.cr0 & CR0_TS) throw nm();
  if (supervisor && x.cpu.cpl !== 0) throw gp(0);
  const req = (x.cpu.reg(RDX, 4) << 32n) | x.cpu.reg(RAX, 4);
  let allowed = xcr0(x.vcpu);
  if (supervisor) allowed |= x.vcpu.getMsrs([MSR_XSS]).get(MSR_XSS) ?? 0n;
  return req & allowed;
}

function xsave(x: Emu): void {
  const mn = x.insn.mn;
  const rfbm = xsaveCheck(x, mn === 'xsaves');
  const lin = memOp(x, 576, 64, true);
  xsaveArea(x, lin, rfbm, mn === 'xsavec' || mn === 'xsaves');
}

function xrstor(x: Emu): void {
  const mn = x.insn.mn;
  const rfbm = xsaveCheck(x, mn === 'xrstors');
  const lin = memOp(x, 576, 64, false);
  xrstorArea(x, lin, rfbm, mn === 'xrstors', mxcsrMask);
}

function xgetbv(x: Emu): void {
  if (!(x.cpu.sregs.cr4 & CR4_OSXSAVE)) throw ud();
  const which = x.cpu.reg(RCX, 4);
  let v: bigint;
  if (which === 0n) v = xcr0(x.vcpu);
  else if (which === 1n) v = xcr0(x.vcpu) & (fromBytes(x.vcpu.getXsave().subarray(XSTATE_BV, XSTATE_BV + 8)) | 3n);
  else throw gp(0);
  x.cpu.setReg(RAX, 4, v & mask(4));
  x.cpu.setReg(RDX, 4, v >> 32n);
}

export const FPU_HANDLERS: Record<string, Handler> = {
  x87, fwait, fxsave, fxrstor, ldmxcsr, stmxcsr,
  xsave, xsaveopt: xsave, xsavec: xsave, xsaves: xsave, xrstor, xrstors: xrstor, xgetbv,
};

