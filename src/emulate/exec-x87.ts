/**
 * x87 arithmetic instructions (D8-DF beyond the control ones of
 * exec-fpu.ts): loads and stores of floats and integers, the four
 * operations with their reversed and popping forms, fxch, constants,
 * fchs/fabs/fsqrt/frndint, comparisons (fcom*, fucom*, fcomi*, ftst),
 * fnsave/frstor. See x87.ts for the precision this gives.
 */
import { CF, PF, ZF } from './cpu.js';
import { EmulationError } from './fault.js';
import { fromBytes, toBytes } from './mmu.js';
import { X87, arith, fromExtended, toExtended, toInt, type ArithOp } from './x87.js';
import type { Emu } from './emu.js';
import type { MemOperand } from './decoder.js';

const OPS = ['add', 'mul', 'com', 'comp', 'sub', 'subr', 'div', 'divr'];
const CONSTS: Record<number, number> = { 0xe8: 1, 0xe9: Math.log2(10), 0xea: Math.LOG2E, 0xeb: Math.PI, 0xec: Math.LOG10E * Math.LN2, 0xed: Math.LN2, 0xee: 0 };
/** DC and DE register forms: the destination is ST(i), sub/subr and div/divr trade places. */
const SWAP: Record<string, ArithOp> = { add: 'add', mul: 'mul', sub: 'subr', subr: 'sub', div: 'divr', divr: 'div' };

type Kind = 'f32' | 'f64' | 'f80' | 'i16' | 'i32' | 'i64';
const SIZE: Record<Kind, number> = { f32: 4, f64: 8, f80: 10, i16: 2, i32: 4, i64: 8 };

function decodeValue(b: Uint8Array, k: Kind): number {
  const dv = new DataView(b.buffer, b.byteOffset);
  switch (k) {
    case 'f32': return dv.getFloat32(0, true);
    case 'f64': return dv.getFloat64(0, true);
    case 'f80': return fromExtended(b);
    default: return Number(BigInt.asIntN(SIZE[k] * 8, fromBytes(b)));
  }
}

function encodeValue(v: number, k: Kind, f: X87, truncate = false): Uint8Array {
  const out = new Uint8Array(SIZE[k]);
  const dv = new DataView(out.buffer);
  switch (k) {
    case 'f32': dv.setFloat32(0, v, true); return out;
    case 'f64': dv.setFloat64(0, v, true); return out;
    case 'f80': return toExtended(v);
    default: return toBytes(toInt(truncate ? Math.trunc(v) : f.round(v), SIZE[k]), SIZE[k]);
  }
}

/** Returns false when the instruction is not one of these. */
export function x87Arith(x: Emu, buf: Uint8Array): boolean {
  const { opcode, mod, reg, modrm } = x.insn;
  const f = new X87(buf);
  const m = () => x.op(0) as MemOperand;
  const load = (k: Kind) => decodeValue(x.mmu.readLinear(x.linear(m(), SIZE[k]), SIZE[k]), k);
  const store = (v: number, k: Kind, truncate = false) => x.mmu.writeLinear(x.linear(m(), SIZE[k], true), encodeValue(v, k, f, truncate));
  const op = OPS[reg];
  const i = modrm & 7;
  const doArith = (a: number, b: number, o: string) => arith(o as ArithOp, a, b);

  if (mod !== 3) {
    const memKind: Record<number, Kind> = { 0xd8: 'f32', 0xdc: 'f64', 0xda: 'i32', 0xde: 'i16' };
    if (memKind[opcode]) {
      const v = load(memKind[opcode]);
      if (op === 'com' || op === 'comp') { f.compare(f.st(0), v); if (op === 'comp') f.pop(); }
      else f.setSt(0, doArith(f.st(0), v, op));
      return true;
    }
    const loads: Record<string, Kind> = { 'd9:0': 'f32', 'dd:0': 'f64', 'db:5': 'f80', 'db:0': 'i32', 'df:0': 'i16', 'df:5': 'i64' };
    const stores: Record<string, [Kind, boolean, boolean]> = { // kind, pop, truncate (fisttp)
      'd9:2': ['f32', false, false], 'd9:3': ['f32', true, false], 'dd:2': ['f64', false, false], 'dd:3': ['f64', true, false],
      'db:7': ['f80', true, false], 'db:2': ['i32', false, false], 'db:3': ['i32', true, false], 'db:1': ['i32', true, true],
      'df:2': ['i16', false, false], 'df:3': ['i16', true, false], 'df:1': ['i16', true, true], 'df:7': ['i64', true, false],
      'dd:1': ['i64', true, true],
    };
    const key = `${opcode.toString(16)}:${reg}`;
    if (loads[key]) { f.push(load(loads[key])); return true; }
    if (stores[key]) {
      const [k, pop, trunc] = stores[key];
      store(f.st(0), k, trunc);
      if (pop) f.pop();
      return true;
    }
    if (key === 'dd:6') { fnsave(x, f, m()); return true; }
    if (key === 'dd:4') { frstor(x, f, m()); return true; }
    return false;
  }

  switch (opcode) {
    case 0xd8: // ST(0) op= ST(i)
      if (op === 'com' || op === 'comp') { f.compare(f.st(0), f.st(i)); if (op === 'comp') f.pop(); }
      else f.setSt(0, doArith(f.st(0), f.st(i), op));
      return true;
    case 0xdc: case 0xde: // ST(i) op= ST(0), popping for DE
      if (op === 'com' || op === 'comp') {
        if (opcode === 0xde && modrm === 0xd9) { f.compare(f.st(0), f.st(1)); f.pop(); f.pop(); return true; } // fcompp
        return false;
      }
      f.setSt(i, doArith(f.st(i), f.st(0), SWAP[op]));
      if (opcode === 0xde) f.pop();
      return true;
    case 0xd9:
      if (reg === 0) { f.push(f.st(i)); return true; } // fld st(i)
      if (reg === 1) { const a = f.st(0), b = f.st(i); f.setSt(0, b); f.setSt(i, a); return true; } // fxch
      if (modrm in CONSTS) { f.push(CONSTS[modrm]); return true; }
      if (modrm === 0xe0) { f.setSt(0, -f.st(0)); return true; }
      if (modrm === 0xe1) { f.setSt(0, Math.abs(f.st(0))); return true; }
      if (modrm === 0xe4) { f.compare(f.st(0), 0); return true; }
      if (modrm === 0xfa) { f.setSt(0, Math.sqrt(f.st(0))); return true; }
      if (modrm === 0xfc) { f.setSt(0, f.round(f.st(0))); return true; }
      return false;
    case 0xdd:
      if (reg === 0) { f.buf[4] &= ~(1 << ((f.top + i) & 7)); return true; } // ffree
      if (reg === 2 || reg === 3) { f.setSt(i, f.st(0)); if (reg === 3) f.pop(); return true; } // fst/fstp st(i)
      if (reg === 4 || reg === 5) { f.compare(f.st(0), f.st(i)); if (reg === 5) f.pop(); return true; } // fucom(p)
      return false;
    case 0xda:
      if (modrm === 0xe9) { f.compare(f.st(0), f.st(1)); f.pop(); f.pop(); return true; } // fucompp
      return false;
    case 0xdb: case 0xdf:
      if (reg === 5 || reg === 6) { // fucomi(p) / fcomi(p)
        const a = f.st(0), b = f.st(i);
        const fl = Number.isNaN(a) || Number.isNaN(b) ? ZF | PF | CF : a < b ? CF : a === b ? ZF : 0n;
        x.setFlags(ZF | PF | CF | 0x800n | 0x80n | 0x10n, fl);
        if (opcode === 0xdf) f.pop();
        return true;
      }
      return false;
  }
  return false;
}

/** fnsave: the 108-byte protected-mode image with the full tag word, then fninit. */
function fnsave(x: Emu, f: X87, m: MemOperand): void {
  const img = new Uint8Array(108);
  const dv = new DataView(img.buffer);
  dv.setUint16(0, f.fcw, true);
  dv.setUint16(4, f.fsw, true);
  let tags = 0;
  for (let r = 0; r < 8; r++) {
    let t = 3;
    if (f.buf[4] & (1 << r)) {
      const v = f.st((r - f.top) & 7);
      t = v === 0 ? 1 : Number.isFinite(v) ? 0 : 2;
    }
    tags |= t << (2 * r);
  }
  dv.setUint16(8, tags, true);
  for (let i = 0; i < 8; i++) img.set(f.buf.subarray(32 + 16 * i, 42 + 16 * i), 28 + 10 * i);
  x.mmu.writeLinear(x.linear(m, 108, true), img);
  new DataView(f.buf.buffer, f.buf.byteOffset).setUint16(0, 0x37f, true);
  f.buf.fill(0, 2, 24);
}

function frstor(x: Emu, f: X87, m: MemOperand): void {
  const img = x.mmu.readLinear(x.linear(m, 108), 108);
  const dv = new DataView(img.buffer);
  const b = new DataView(f.buf.buffer, f.buf.byteOffset);
  b.setUint16(0, dv.getUint16(0, true), true);
  b.setUint16(2, dv.getUint16(4, true), true);
  const tags = dv.getUint16(8, true);
  let abridged = 0;
  for (let r = 0; r < 8; r++) if (((tags >> (2 * r)) & 3) !== 3) abridged |= 1 << r;
  f.buf[4] = abridged;
  for (let i = 0; i < 8; i++) { f.buf.fill(0, 32 + 16 * i, 48 + 16 * i); f.buf.set(img.subarray(28 + 10 * i, 38 + 10 * i), 32 + 16 * i); }
  if (x.insn.opSize === 2) throw new EmulationError('16-bit fnsave/frstor image');
}
