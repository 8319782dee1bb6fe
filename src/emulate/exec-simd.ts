/**
 * The SSE/AVX/AVX-512 instructions kernel code runs between
 * kernel_fpu_begin/end (Linux's blake2s, for one), legacy, VEX and EVEX
 * forms: moves (aligned, unaligned, movd/movq), bitwise and/or/xor/andn,
 * the SSE2 packed-integer set of simd-int.ts, pshufd, pshufb, palignr, shifts and rotates by
 * immediate, vpermi2d/q, vextracti128/vinserti128 (and the 32x4 forms),
 * vzeroupper/vzeroall. EVEX opmasks and broadcast are not emulated.
 */
import { CR0_EM, CR0_TS, CR4_OSFXSR, CR4_OSXSAVE } from './cpu.js';
import { EmulationError, gp, nm, ud } from './fault.js';
import { fromBytes, toBytes } from './mmu.js';
import type { VecRegs } from './vec.js';
import { xcr0 } from './exec-fpu.js';
import type { Emu } from './emu.js';
import type { MemOperand, Operand } from './decoder.js';
import { PACKED_BINARY } from './simd-int.js';


export function simd(x: Emu): void {
  const { insn } = x;
  const v = insn.vex;
  const s = x.cpu.sregs;
  if (v) {
    if (!(s.cr4 & CR4_OSXSAVE) || (xcr0(x.vcpu) & 6n) !== 6n) throw ud();
    if (v.evex && (v.aaa || v.b)) throw new EmulationError('EVEX opmask or broadcast not emulated');
  } else if (s.cr0 & CR0_EM || !(s.cr4 & CR4_OSFXSR)) throw ud();
  if (s.cr0 & CR0_TS) throw nm();
  const regs = x.vec();
  const vl = v ? 16 << v.L : 16; // bytes
  const key = `${insn.map}:${insn.opcode.toString(16).padStart(2, '0')}`;
  const dst = insn.operands[0]?.t === 'reg' ? (insn.operands[0] as { reg: number }).reg : -1;
  const rmOp = insn.operands[1];
  /** Source 1: vvvv for VEX/EVEX, the destination itself for legacy SSE. */
  const src1 = () => (v ? regs.get(v.vvvv) : regs.get(dst)).subarray(0, vl);
  /** The r/m operand as `n` bytes (memory of that size, or the register's low bytes). */
  const rm = (n = vl, align = false): Uint8Array => {
    if (rmOp.t === 'reg') return regs.get(rmOp.reg).subarray(0, n);
    const m = memOperand(x, rmOp, n);
    const lin = x.linear(m, n);
    if (align && lin % BigInt(n) !== 0n) throw gp(0);
    return x.mmu.readLinear(lin, n);
  };
  const storeRm = (data: Uint8Array, align = false): void => {
    if (rmOp.t === 'reg') { regs.set(rmOp.reg, data, !!v); return; }
    const m = memOperand(x, rmOp, data.length);
    const lin = x.linear(m, data.length, true);
    if (align && lin % BigInt(data.length) !== 0n) throw gp(0);
    x.mmu.writeLinear(lin, data);
  };
  const put = (data: Uint8Array) => regs.set(dst, data, !!v);
  const imm = () => Number(insn.operands[2]?.t === 'imm' ? insn.operands[2].value & 0xffn : 0n);
  const legacyAligned = !v; // legacy SSE memory sources must be 16-byte aligned
  x.name = `${v ? (v.evex ? 'evex ' : 'vex ') : 'sse '}${insn.map === 2 ? '0f' : insn.map === 3 ? '0f38' : '0f3a'} ${insn.opcode.toString(16)}`;

  if (!v && insn.pp !== 1 && (key === '3:00' || key === '4:0f')) throw new EmulationError('MMX instruction');
  const bin = PACKED_BINARY[key];
  if (bin) {
    if (!v && insn.pp !== 1 && !['2:54', '2:55', '2:56', '2:57'].includes(key)) throw new EmulationError('MMX instruction');
    put(bin(src1(), rm(vl, legacyAligned), vl));
    return;
  }
  switch (key) {
    case '2:10': case '2:11': case '2:28': case '2:29': case '2:2b': case '2:6f': case '2:7f': case '2:e7': {
      if (insn.pp >= 2 && (key === '2:10' || key === '2:11')) return scalarMove(x, regs, insn.pp === 2 ? 4 : 8, key === '2:11', rm, storeRm, put, dst);
      if (!v && insn.pp === 0 && (key === '2:6f' || key === '2:7f' || key === '2:e7')) throw new EmulationError('MMX move');
      const aligned = key === '2:28' || key === '2:29' || key === '2:2b' || key === '2:e7' || ((key === '2:6f' || key === '2:7f') && insn.pp === 1);
      const store = key === '2:11' || key === '2:29' || key === '2:2b' || key === '2:7f' || key === '2:e7';
      if (store) storeRm(regs.get(dst).subarray(0, vl), aligned);
      else put(rm(vl, aligned));
      return;
    }
    case '2:6e': { // movd/movq xmm, r/m32/64
      const n = insn.vex?.W || (!v && insn.rex & 8) ? 8 : 4;
      const val = rmOp.t === 'reg' ? x.cpu.reg(rmOp.reg, n) : fromBytes(rm(n));
      put(pad(toBytes(val, n), 16));
      return;
    }
    case '2:7e': {
      if (insn.pp === 2) { put(pad(rm(8), 16)); return; } // movq xmm, xmm/m64
      const n = insn.vex?.W || (!v && insn.rex & 8) ? 8 : 4;
      const val = regs.get(dst).subarray(0, n);
      if (rmOp.t === 'reg') x.cpu.setReg(rmOp.reg, n, fromBytes(val));
      else storeRm(Uint8Array.from(val));
      return;
    }
    case '2:d6': storeRm(rmOp.t === 'reg' ? pad(regs.get(dst).subarray(0, 8), 16) : regs.get(dst).subarray(0, 8)); return;
    case '2:70': { // pshufd
      if (insn.pp !== 1) throw new EmulationError('pshufhw/pshuflw/pshufw');
      const a = rm(vl, legacyAligned), out = new Uint8Array(vl), sel = imm();
      for (let lane = 0; lane < vl; lane += 16) for (let i = 0; i < 4; i++) out.set(a.subarray(lane + 4 * ((sel >> (2 * i)) & 3), lane + 4 * ((sel >> (2 * i)) & 3) + 4), lane + 4 * i);
      put(out);
      return;
    }
    case '2:71': case '2:72': case '2:73': return shiftImm(x, regs, vl, key);
    case '2:77': regs.zero(v?.L === 1); return;
    case '3:00': { // pshufb
      const a = src1(), b = rm(vl, legacyAligned), out = new Uint8Array(vl);
      for (let i = 0; i < vl; i++) out[i] = b[i] & 0x80 ? 0 : a[(i & ~15) + (b[i] & 15)];
      put(out);
      return;
    }
    case '3:76': { // vpermi2d/q: indices in the destination, tables in vvvv and r/m
      if (!v?.evex) throw ud();
      const size = v.W ? 8 : 4, n = vl / size, idx = regs.get(dst), t1 = src1(), t2 = rm(), out = new Uint8Array(vl);
      for (let i = 0; i < n; i++) {
        const j = Number(fromBytes(idx.subarray(i * size, i * size + size)) % BigInt(2 * n));
        const t = j < n ? t1 : t2;
        out.set(t.subarray((j % n) * size, (j % n) * size + size), i * size);
      }
      put(out);
      return;
    }
    case '4:0f': { // palignr
      const a = src1(), b = rm(vl, legacyAligned), out = new Uint8Array(vl), sh = imm();
      for (let lane = 0; lane < vl; lane += 16) {
        const cat = new Uint8Array(32);
        cat.set(b.subarray(lane, lane + 16), 0); cat.set(a.subarray(lane, lane + 16), 16);
        for (let i = 0; i < 16; i++) out[lane + i] = i + sh < 32 ? cat[i + sh] : 0;
      }
      put(out);
      return;
    }
    case '4:38': case '4:39': { // vinserti128 / vextracti128 (and the EVEX 32x4 forms)
      if (!v || v.L === 0) throw ud();
      const sel = imm() & (v.L === 2 ? 3 : 1);
      if (key === '4:39') { storeRm(regs.get(dst).subarray(16 * sel, 16 * sel + 16)); return; }
      const out = Uint8Array.from(src1());
      out.set(rm(16), 16 * sel);
      put(out);
      return;
    }
  }
  throw new EmulationError(`SSE/AVX instruction ${x.name} not emulated`);
}

function pad(b: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  out.set(b);
  return out;
}

/** EVEX compresses disp8 by the operand's size (N); other forms use it as is. */
function memOperand(x: Emu, o: Operand, n: number): MemOperand {
  const m = o as MemOperand;
  return x.insn.disp8 ? { ...m, disp: m.disp * BigInt(n) } : m;
}

/** movss/movsd: loads from memory clear the rest of the register, register moves merge. */
function scalarMove(x: Emu, regs: VecRegs, n: number, store: boolean, rm: (n: number) => Uint8Array,
  storeRm: (d: Uint8Array) => void, put: (d: Uint8Array) => void, dst: number): void {
  const v = x.insn.vex;
  const rmOp = x.insn.operands[1];
  if (rmOp.t === 'imm') throw ud();
  if (store) {
    if (rmOp.t === 'mem') storeRm(regs.get(dst).subarray(0, n));
    else { const out = Uint8Array.from((v ? regs.get(v.vvvv) : regs.get(rmOp.reg)).subarray(0, 16)); out.set(regs.get(dst).subarray(0, n)); regs.set(rmOp.reg, out, !!v); }
  } else if (rmOp.t === 'mem') {
    put(pad(rm(n), 16));
  } else {
    const out = Uint8Array.from((v ? regs.get(v.vvvv) : regs.get(dst)).subarray(0, 16));
    out.set(regs.get(rmOp.reg).subarray(0, n));
    put(out);
  }
}

/** Groups 0F 71-73: shifts (and EVEX rotates) by an immediate; VEX/EVEX write vvvv. */
function shiftImm(x: Emu, regs: VecRegs, vl: number, key: string): void {
  const { insn } = x;
  const v = insn.vex;
  if (!v && insn.pp !== 1) throw new EmulationError('MMX shift');
  const src = insn.operands[1];
  const a = src.t === 'reg' ? regs.get(src.reg).subarray(0, vl) : x.mmu.readLinear(x.linear(memOperand(x, src, vl), vl), vl);
  const count = Number(insn.operands[2].t === 'imm' ? insn.operands[2].value & 0xffn : 0n);
  const dst = v ? v.vvvv : (src as { reg: number }).reg;
  const op = insn.reg & 7;
  const out = new Uint8Array(vl), d = new DataView(out.buffer), s = new DataView(a.buffer, a.byteOffset);
  const size = key === '2:71' ? 2 : key === '2:72' ? (v?.evex && v.W ? 8 : 4) : 8;
  if (key === '2:73' && (op === 3 || op === 7)) { // psrldq / pslldq: bytes within each 128-bit lane
    for (let lane = 0; lane < vl; lane += 16) for (let i = 0; i < 16; i++) {
      const j = op === 3 ? i + count : i - count;
      out[lane + i] = j >= 0 && j < 16 ? a[lane + j] : 0;
    }
  } else {
    const bits = BigInt(size * 8), m = (1n << bits) - 1n, c = BigInt(count);
    for (let i = 0; i < vl; i += size) {
      const e = size === 8 ? s.getBigUint64(i, true) : BigInt(size === 4 ? s.getUint32(i, true) : s.getUint16(i, true));
      let r: bigint;
      switch (op) {
        case 0: if (!v?.evex) throw ud(); r = (e >> (c % bits)) | (e << ((bits - (c % bits)) % bits)); break; // vpror
        case 1: if (!v?.evex) throw ud(); r = (e << (c % bits)) | (e >> ((bits - (c % bits)) % bits)); break; // vprol
        case 2: r = c >= bits ? 0n : e >> c; break;
        case 4: r = BigInt.asUintN(size * 8, BigInt.asIntN(size * 8, e) >> (c >= bits ? bits - 1n : c)); break;
        case 6: r = c >= bits ? 0n : e << c; break;
        default: throw new EmulationError(`shift group /${op}`);
      }
      r &= m;
      if (size === 8) d.setBigUint64(i, r, true); else if (size === 4) d.setUint32(i, Number(r), true); else d.setUint16(i, Number(r), true);
    }
  }
  regs.set(dst, out, !!v);
}
