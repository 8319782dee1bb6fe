/** Integer instructions: arithmetic, moves, bit operations, compare-exchange. */
import { CF, DF, OF, ZF, SF, AF, PF, ARITH_FLAGS, RAX, RDX, RCX, RBX, mask, sext } from './cpu.js';
import { add, alu, bswap, highBit, incdec, lowBit, neg, popcount, shift, shiftDouble, szp, type Flagged } from './alu.js';
import { DE, GuestFault, gp } from './fault.js';
import { fromBytes, toBytes } from './mmu.js';
import { cas } from './atomic.js';
import type { Emu, Handler } from './emu.js';
import type { MemOperand } from './decoder.js';

const cf = (x: Emu): boolean => x.cpu.flag(CF);
const flags = (x: Emu, r: Flagged): void => x.setFlags(r.set, r.f);

/** dst op= src for the two-operand ALU instructions; cmp and test only set flags. */
function aluOp(x: Emu): void {
  const [d, s] = [x.op(0), x.op(1)];
  const mn = x.insn.mn;
  const b = x.read(s);
  if (mn === 'cmp' || mn === 'test') { flags(x, alu(mn, x.read(d), b, cf(x), d.size)); return; }
  let res!: Flagged;
  x.update(d, (a) => (res = alu(mn, a, b, cf(x), d.size)).r);
  flags(x, res);
}

function shiftOp(x: Emu): void {
  const d = x.op(0);
  const count = Number(x.read(x.op(1)) & 0xffn);
  let res: Flagged | undefined;
  x.update(d, (a) => (res = shift(x.insn.mn, a, count, cf(x), d.size))?.r);
  if (res) flags(x, res);
}

function shiftDoubleOp(x: Emu): void {
  const d = x.op(0);
  const b = x.read(x.op(1));
  const count = Number(x.read(x.op(2)) & 0xffn);
  let res: Flagged | undefined;
  x.update(d, (a) => (res = shiftDouble(x.insn.mn === 'shld', a, b, count, d.size))?.r);
  if (res) flags(x, res);
}

/** mul/imul1/div/idiv: the accumulator forms of group 3. */
function mulDiv(x: Emu): void {
  const o = x.op(0);
  const n = o.size, bits = BigInt(n * 8), m = mask(n);
  const src = x.read(o);
  const signed = x.insn.mn === 'imul1' || x.insn.mn === 'idiv';
  const acc = x.cpu.reg(RAX, n);
  const writePair = (lo: bigint, hi: bigint) => {
    if (n === 1) x.cpu.setReg(RAX, 2, (lo & 0xffn) | ((hi & 0xffn) << 8n));
    else { x.cpu.setReg(RAX, n, lo); x.cpu.setReg(RDX, n, hi); }
  };
  if (x.insn.mn === 'mul' || x.insn.mn === 'imul1') {
    const p = signed ? sext(acc, n) * sext(src, n) : acc * src;
    const lo = p & m, hi = (p >> bits) & m;
    const over = signed ? sext(lo, n) !== p : hi !== 0n;
    writePair(lo, hi);
    x.setFlags(ARITH_FLAGS, (over ? CF | OF : 0n) | (szp(lo, n) & (SF | ZF | PF)));
    return;
  }
  const hiIn = n === 1 ? x.cpu.reg(RAX, 2) >> 8n : x.cpu.reg(RDX, n);
  const dividend = (hiIn << bits) | acc;
  if (src === 0n) throw new GuestFault(DE);
  let q: bigint, r: bigint;
  if (signed) {
    const a = BigInt.asIntN(n * 16, dividend), b = sext(src, n);
    q = a / b; r = a % b;
    if (q > (m >> 1n) || q < -(m >> 1n) - 1n) throw new GuestFault(DE);
  } else {
    q = dividend / src; r = dividend % src;
    if (q > m) throw new GuestFault(DE);
  }
  writePair(q & m, r & m);
}

function imul(x: Emu): void {
  const d = x.op(0), n = d.size;
  const a = x.read(x.op(x.insn.operands.length === 3 ? 1 : 0));
  const b = x.read(x.op(x.insn.operands.length === 3 ? 2 : 1));
  const p = sext(a, n) * sext(b, n);
  const lo = p & mask(n);
  x.write(d, lo);
  x.setFlags(ARITH_FLAGS, (sext(lo, n) !== p ? CF | OF : 0n) | (szp(lo, n) & (SF | ZF | PF)));
}

/** bt/bts/btr/btc: a register offset reaches beyond the operand in memory. */
function bitTest(x: Emu): void {
  const d = x.op(0), s = x.op(1), n = d.size, bits = BigInt(n * 8);
  let off = x.read(s);
  let target = d;
  if (d.t === 'mem' && s.t === 'reg') {
    const so = sext(off, s.size);
    const delta = (so >= 0n ? so / bits : -((-so + bits - 1n) / bits)) * BigInt(n);
    target = { ...d, disp: d.disp + delta };
    off = so - (delta * 8n);
  }
  const bit = 1n << (off & (bits - 1n));
  let old = 0n;
  const mn = x.insn.mn;
  if (mn === 'bt') old = x.read(target);
  else x.update(target, (v) => { old = v; return mn === 'bts' ? v | bit : mn === 'btr' ? v & ~bit : v ^ bit; });
  x.setFlags(CF, old & bit ? CF : 0n);
}

function bitScan(x: Emu): void {
  const d = x.op(0), n = d.size;
  const v = x.read(x.op(1));
  const mn = x.insn.mn;
  if (mn === 'popcnt') {
    x.write(d, BigInt(popcount(v)));
    x.setFlags(ARITH_FLAGS, v === 0n ? ZF : 0n);
  } else if (mn === 'tzcnt' || mn === 'lzcnt') {
    const r = v === 0n ? n * 8 : mn === 'tzcnt' ? lowBit(v) : n * 8 - 1 - highBit(v);
    x.write(d, BigInt(r));
    x.setFlags(CF | ZF, (v === 0n ? CF : 0n) | (r === 0 ? ZF : 0n));
  } else {
    if (v === 0n) { x.setFlags(ZF, ZF); return; } // destination unchanged
    x.write(d, BigInt(mn === 'bsf' ? lowBit(v) : highBit(v)));
    x.setFlags(ZF, 0n);
  }
}

function cmpxchg(x: Emu): void {
  const d = x.op(0), n = d.size;
  const src = x.read(x.op(1));
  const acc = x.cpu.reg(RAX, n);
  let old = 0n;
  x.update(d, (v) => { old = v; return v === acc ? src : d.t === 'mem' ? v : undefined; });
  flags(x, alu('cmp', acc, old, false, n));
  if (old !== acc) x.cpu.setReg(RAX, n, old);
}

/** cmpxchg8b / cmpxchg16b (REX.W). */
function cmpxchgWide(x: Emu): void {
  const wide = x.insn.opSize === 8;
  const half = wide ? 8 : 4, n = half * 2;
  x.name = wide ? 'cmpxchg16b' : 'cmpxchg8b';
  const m = x.op(0) as MemOperand;
  const lin = x.linear(m, n, true);
  if (wide && (lin & 15n) !== 0n) throw gp(0);
  const hb = BigInt(half * 8);
  const expect = (x.cpu.reg(RDX, half) << hb) | x.cpu.reg(RAX, half);
  const repl = (x.cpu.reg(RCX, half) << hb) | x.cpu.reg(RBX, half);
  let old: bigint;
  const view = x.mmu.ramView(lin, n, true);
  if (view) {
    for (;;) {
      old = fromBytes(view);
      if (old !== expect) break;
      if (cas(view, old, repl)) break;
    }
  } else {
    x.mmu.probeWrite(lin, n);
    old = fromBytes(x.mmu.readLinear(lin, n));
    x.mmu.writeLinear(lin, toBytes(old === expect ? repl : old, n));
  }
  if (old === expect) { x.setFlags(ZF, ZF); return; }
  x.setFlags(ZF, 0n);
  x.cpu.setReg(RAX, half, old & mask(half));
  x.cpu.setReg(RDX, half, old >> hb);
}

function xadd(x: Emu): void {
  const d = x.op(0), s = x.op(1);
  const b = x.read(s);
  let res!: Flagged, old = 0n;
  x.update(d, (a) => { old = a; return (res = add(a, b, 0n, d.size)).r; });
  x.write(s, old);
  if (d.t === 'reg') x.write(d, res.r);
  flags(x, res);
}

function xchg(x: Emu): void {
  const d = x.op(0), s = x.op(1);
  if (x.insn.map === 1 && x.insn.opcode === 0x90 && !(x.insn.rex & 1)) { x.name = x.insn.rep === 0xf3 ? 'pause' : 'nop'; return; }
  const b = x.read(s);
  let old = 0n;
  if (d.t === 'mem') {
    // xchg with memory is always locked
    const view = x.mmu.ramView(x.linear(d, d.size, true), d.size, true);
    if (view) { for (;;) { old = fromBytes(view); if (cas(view, old, b)) break; } x.write(s, old); return; }
  }
  old = x.read(d);
  x.write(d, b);
  x.write(s, old);
}

function movbe(x: Emu): void {
  const d = x.op(0), s = x.op(1);
  x.write(d, bswap(x.read(s), s.size));
}

/** CRC-32C (Castagnoli), bit-reflected, as the crc32 instruction computes it. */
function crc32(x: Emu): void {
  const d = x.op(0), s = x.op(1);
  let crc = Number(x.read(d) & 0xffffffffn);
  const data = toBytes(x.read(s), s.size);
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  x.write(d, BigInt(crc >>> 0));
}

function adcxAdox(x: Emu): void {
  const d = x.op(0), bit = x.insn.mn === 'adcx' ? CF : OF;
  const r = add(x.read(d), x.read(x.op(1)), x.cpu.flag(bit) ? 1n : 0n, d.size);
  x.write(d, r.r);
  x.setFlags(bit, r.f & CF ? bit : 0n);
}

export const INT_HANDLERS: Record<string, Handler> = {
  add: aluOp, or: aluOp, adc: aluOp, sbb: aluOp, and: aluOp, sub: aluOp, xor: aluOp, cmp: aluOp, test: aluOp,
  inc: (x) => { const d = x.op(0); let r!: Flagged; x.update(d, (a) => (r = incdec(a, false, d.size)).r); flags(x, r); },
  dec: (x) => { const d = x.op(0); let r!: Flagged; x.update(d, (a) => (r = incdec(a, true, d.size)).r); flags(x, r); },
  not: (x) => x.update(x.op(0), (a) => ~a),
  neg: (x) => { const d = x.op(0); let r!: Flagged; x.update(d, (a) => (r = neg(a, d.size)).r); flags(x, r); },
  mul: mulDiv, imul1: mulDiv, div: mulDiv, idiv: mulDiv, imul,
  rol: shiftOp, ror: shiftOp, rcl: shiftOp, rcr: shiftOp, shl: shiftOp, sal: shiftOp, shr: shiftOp, sar: shiftOp,
  shld: shiftDoubleOp, shrd: shiftDoubleOp,
  mov: (x) => x.write(x.op(0), x.read(x.op(1))),
  movzx: (x) => x.write(x.op(0), x.read(x.op(1))),
  movsx: (x) => x.write(x.op(0), sext(x.read(x.op(1)), x.op(1).size)),
  movsxd: (x) => x.write(x.op(0), sext(x.read(x.op(1)), 4)),
  lea: (x) => x.write(x.op(0), x.ea(x.op(1) as MemOperand)),
  xchg, movbe, crc32, adcx: adcxAdox, adox: adcxAdox,
  cbw: (x) => { const n = x.insn.opSize; x.cpu.setReg(RAX, n, sext(x.cpu.reg(RAX, n / 2), n / 2)); },
  cwd: (x) => { const n = x.insn.opSize; x.cpu.setReg(RDX, n, x.cpu.reg(RAX, n) & (1n << BigInt(n * 8 - 1)) ? -1n : 0n); },
  sahf: (x) => x.setFlags(SF | ZF | AF | PF | CF, x.cpu.reg(RAX, 2) >> 8n),
  lahf: (x) => x.cpu.setReg(RAX, 2, ((x.cpu.rflags & 0xd7n) | 2n) << 8n | x.cpu.reg(RAX, 1)),
  bt: bitTest, bts: bitTest, btr: bitTest, btc: bitTest,
  bsf: bitScan, bsr: bitScan, tzcnt: bitScan, lzcnt: bitScan, popcnt: bitScan,
  bswap: (x) => { const d = x.op(0); x.write(d, d.size === 2 ? 0n : bswap(x.read(d), d.size)); },
  cmpxchg, cmpxchg8b: cmpxchgWide, xadd,
  clc: (x) => x.setFlags(CF, 0n), stc: (x) => x.setFlags(CF, CF), cmc: (x) => x.setFlags(CF, x.cpu.rflags ^ CF),
  cld: (x) => x.setFlags(DF, 0n), std: (x) => x.setFlags(DF, DF),
  nop: () => {},
};
