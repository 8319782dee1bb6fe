/**
 * The instruction decoder: legacy prefixes, REX, opcode maps 1-3 through
 * the tables of opcodes.ts, ModRM/SIB/displacement and immediates, with the
 * operand and address sizes of the CPU mode. Produces operands the emulator
 * resolves against the register file (memory operands keep base, index,
 * scale and displacement until then).
 */
import { MAP1, MAP2, MAP3, MAP4, D64, F64, NO64, simdEntry, type OpEntry } from './opcodes.js';
import { DS, SS } from './cpu.js';

export class DecodeError extends Error {
  /** 'ud': the CPU would raise #UD; 'unknown': not in our tables; 'short': ran out of bytes. */
  constructor(message: string, readonly kind: 'ud' | 'unknown' | 'short') {
    super(message);
    this.name = 'DecodeError';
  }
}

export interface MemOperand {
  t: 'mem';
  size: number;
  seg: number;
  base: number; // register, -1 none, -2 RIP
  index: number; // register, -1 none
  scale: number;
  disp: bigint;
}
export interface RegOperand { t: 'reg'; size: number; reg: number; high8: boolean }
export interface ImmOperand { t: 'imm'; size: number; value: bigint }
export type Operand = MemOperand | RegOperand | ImmOperand;

/** VEX/EVEX fields (register numbers already extended). */
export interface Vex {
  evex: boolean;
  /** Vector length: 0 128-bit, 1 256-bit, 2 512-bit. */
  L: number;
  W: boolean;
  /** The extra source register (vvvv, with V' for EVEX). */
  vvvv: number;
  /** EVEX opmask register, zeroing, broadcast/rounding. */
  aaa: number;
  z: boolean;
  b: boolean;
}

export interface Insn {
  bytes: Uint8Array;
  len: number;
  /** 1: one-byte opcodes, 2: 0F, 3: 0F 38, 4: 0F 3A. */
  map: 1 | 2 | 3 | 4;
  /** Mandatory (or VEX-implied) prefix: 0 none, 1 66, 2 F3, 3 F2. */
  pp: number;
  vex?: Vex;
  /** EVEX: the memory operand's disp8 still needs scaling by the operand's N. */
  disp8?: boolean;
  opcode: number;
  entry: OpEntry;
  mn: string;
  operands: Operand[];
  opSize: 2 | 4 | 8;
  addrSize: 2 | 4 | 8;
  lock: boolean;
  rep: 0 | 0xf2 | 0xf3;
  segOverride: number; // -1 none
  rex: number; // 0 none
  modrm: number; // -1 none
  /** ModRM fields, when there is one. */
  mod: number; reg: number; rm: number;
}

const SEG_PREFIX: Record<number, number> = { 0x26: 0, 0x2e: 1, 0x36: 2, 0x3e: 3, 0x64: 4, 0x65: 5 };

/**
 * Decode one instruction. `codeSize` is the default operand/address size of
 * the code segment (2, 4, or 8 for 64-bit mode).
 */
export function decode(bytes: Uint8Array, codeSize: 2 | 4 | 8): Insn {
  const code64 = codeSize === 8;
  let p = 0;
  const byte = (): number => {
    if (p >= bytes.length || p >= 15) throw new DecodeError(p >= 15 ? 'instruction longer than 15 bytes' : 'instruction bytes cut short', p >= 15 ? 'ud' : 'short');
    return bytes[p++];
  };
  let lock = false, rep: 0 | 0xf2 | 0xf3 = 0, seg = -1, opsz66 = false, adsz67 = false, rex = 0;
  let b: number;
  for (;;) {
    b = byte();
    if (b === 0xf0) lock = true;
    else if (b === 0xf2 || b === 0xf3) rep = b;
    else if (b === 0x66) opsz66 = true;
    else if (b === 0x67) adsz67 = true;
    else if (b in SEG_PREFIX) seg = SEG_PREFIX[b];
    else if (code64 && (b & 0xf0) === 0x40) {
      rex = b; // must come last: a legacy prefix after it cancels it
      b = byte();
      if ((b & 0xf0) === 0x40 || b === 0xf0 || b === 0xf2 || b === 0xf3 || b === 0x66 || b === 0x67 || b in SEG_PREFIX) {
        p--;
        rex = 0;
        continue;
      }
      break;
    } else break;
  }
  let rexW = (rex & 8) !== 0, rexR = (rex & 4) << 1, rexX = (rex & 2) << 2, rexB = (rex & 1) << 3;
  let map: 1 | 2 | 3 | 4 = 1;
  let table = MAP1;
  let vex: Vex | undefined;
  let pp = 0, evexR = 0, evexX = 0;
  let entry: OpEntry | undefined;
  let opcode: number;
  let use66 = opsz66;
  let useRep = rep;
  if ((b === 0xc4 || b === 0xc5 || b === 0x62) && (code64 || ((bytes[p] ?? 0) & 0xc0) === 0xc0)) {
    if (rex || opsz66 || rep || lock) throw new DecodeError('VEX/EVEX after a REX, 66, F2, F3 or LOCK prefix', 'ud');
    const b1 = byte();
    let mm: number, b2: number;
    if (b === 0xc5) { mm = 1; b2 = b1; rexR = b1 & 0x80 ? 0 : 8; }
    else {
      b2 = byte();
      rexR = b1 & 0x80 ? 0 : 8; rexX = b1 & 0x40 ? 0 : 8; rexB = b1 & 0x20 ? 0 : 8;
      mm = b1 & (b === 0x62 ? 7 : 0x1f);
      rexW = (b2 & 0x80) !== 0;
    }
    pp = b2 & 3;
    vex = { evex: b === 0x62, L: (b2 >> 2) & 1, W: rexW, vvvv: (~b2 >> 3) & 15, aaa: 0, z: false, b: false };
    if (b === 0x62) {
      const b3 = byte();
      evexR = b1 & 0x10 ? 0 : 16;
      evexX = rexX << 1;
      vex.L = (b3 >> 5) & 3; vex.z = (b3 & 0x80) !== 0; vex.b = (b3 & 0x10) !== 0; vex.aaa = b3 & 7;
      vex.vvvv |= b3 & 8 ? 0 : 16;
    }
    if (mm < 1 || mm > 3) throw new DecodeError(`VEX map ${mm}`, 'ud');
    map = (mm + 1) as 2 | 3 | 4;
    opcode = byte();
    entry = simdEntry(map, opcode);
  } else {
    if (b === 0x0f) {
      b = byte();
      map = 2;
      table = MAP2;
      if (b === 0x38) { b = byte(); map = 3; table = MAP3; }
      else if (b === 0x3a) { b = byte(); map = 4; table = MAP4; }
    }
    opcode = b;
    entry = table[opcode];
    if (entry?.pfx) {
      const pf = entry.pfx;
      let chosen: OpEntry | undefined;
      if (rep === 0xf3 && pf.pF3) { chosen = pf.pF3; useRep = 0; pp = 2; }
      else if (rep === 0xf2 && pf.pF2) { chosen = pf.pF2; useRep = 0; pp = 3; }
      else if (opsz66 && pf.p66) { chosen = pf.p66; use66 = false; pp = 1; }
      else chosen = pf.none;
      entry = chosen;
    }
  }
  if (!entry) throw new DecodeError(`opcode ${mapName(map)}${hex(opcode)}`, 'unknown');

  // ModRM
  let modrm = -1, mod = 0, reg = 0, rm = 0;
  const needsModrm = !!entry.grp || !!entry.grp3 || !!entry.mod3 || entry.ops.some((o) => /^[EGMR]/.test(o));
  if (needsModrm) {
    modrm = byte();
    mod = modrm >> 6;
    reg = (modrm >> 3) & 7;
    rm = modrm & 7;
    if (mod === 3 && (entry.mod3 || entry.grp3)) entry = entry.mod3?.[modrm] ?? entry.grp3?.[reg];
    else if (entry.grp) entry = entry.grp[reg];
    if (!entry) throw new DecodeError(`opcode ${mapName(map)}${hex(opcode)} /${reg}${mod === 3 ? ' (register form)' : ''}`, 'unknown');
  }
  if (entry.f & NO64 && code64) throw new DecodeError(`${entry.mn} is invalid in 64-bit mode`, 'ud');

  // Sizes
  let opSize: 2 | 4 | 8;
  if (code64) {
    if (rexW) opSize = 8;
    else if (entry.f & F64) opSize = 8;
    else if (use66) opSize = 2;
    else opSize = entry.f & D64 ? 8 : 4;
  } else {
    opSize = (codeSize === 4) !== use66 ? 4 : 2;
  }
  const addrSize: 2 | 4 | 8 = code64 ? (adsz67 ? 4 : 8) : (codeSize === 4) !== adsz67 ? 4 : 2;

  // Memory operand (ModRM r/m, SIB, displacement)
  let memOp: MemOperand | undefined;
  if (needsModrm && mod !== 3) memOp = decodeMem();

  function decodeMem(): MemOperand {
    let base = -1, index = -1, scale = 1, disp = 0n, defSeg = DS;
    if (addrSize === 2) {
      const bases = [[3, 6], [3, 7], [5, 6], [5, 7], [6, -1], [7, -1], [5, -1], [3, -1]][rm];
      if (mod === 0 && rm === 6) { disp = imm(2, false); }
      else {
        base = bases[0]; index = bases[1];
        if (base === 5) defSeg = SS;
        if (mod === 1) disp = imm(1, true);
        else if (mod === 2) disp = imm(2, true);
      }
      return { t: 'mem', size: 0, seg: seg >= 0 ? seg : defSeg, base, index, scale, disp };
    }
    if (rm === 4) {
      const sib = byte();
      scale = 1 << (sib >> 6);
      const idx = ((sib >> 3) & 7) | rexX;
      if (idx !== 4) index = idx;
      const sb = sib & 7;
      if (sb === 5 && mod === 0) disp = imm(4, true);
      else base = sb | rexB;
    } else if (rm === 5 && mod === 0) {
      base = code64 ? -2 : -1;
      disp = imm(4, true);
    } else {
      base = rm | rexB;
    }
    if (mod === 1) disp = imm(1, true);
    else if (mod === 2) disp = imm(4, true);
    if ((base & 7) === 4 || (base & 7) === 5) defSeg = base >= 0 ? SS : defSeg;
    return { t: 'mem', size: 0, seg: seg >= 0 ? seg : defSeg, base, index, scale, disp };
  }

  function imm(n: number, signed: boolean): bigint {
    let v = 0n;
    for (let i = 0; i < n; i++) v |= BigInt(byte()) << BigInt(8 * i);
    return signed ? BigInt.asIntN(n * 8, v) : v;
  }

  const sizeOf = (code: string): number => {
    switch (code) {
      case 'b': return 1;
      case 'w': return 2;
      case 'd': return 4;
      case 'q': return 8;
      case 'dq': return 16;
      case 'v': return opSize;
      case 'z': return opSize === 8 ? 4 : opSize;
      case 'y': return code64 && rexW ? 8 : 4;
      case 'p': return 0;
      default: throw new Error(`bad operand size '${code}'`);
    }
  };
  const gpr = (n: number, size: number): RegOperand =>
    size === 1 && !rex && n >= 4 && n < 8 ? { t: 'reg', size, reg: n, high8: true } : { t: 'reg', size, reg: n, high8: false };

  const operands: Operand[] = [];
  for (const spec of entry.ops) {
    const kind = spec[0];
    const sz = spec.slice(1);
    switch (kind) {
      case 'E': case 'M': case 'R': {
        if (mod === 3) {
          if (kind === 'M') throw new DecodeError(`${entry.mn} needs a memory operand`, 'ud');
          operands.push(gpr(rm | rexB | evexX, sizeOf(sz)));
        } else {
          if (kind === 'R') throw new DecodeError(`${entry.mn} needs a register operand`, 'ud');
          operands.push({ ...memOp!, size: sizeOf(sz) });
        }
        break;
      }
      case 'G': operands.push(gpr(reg | rexR | evexR, sizeOf(sz))); break;
      case 'Z': operands.push(gpr((opcode & 7) | rexB, sizeOf(sz))); break;
      case 'I': {
        if (spec === 'Ibs') { operands.push({ t: 'imm', size: opSize, value: imm(1, true) }); break; }
        const n = sz === 'v' && opSize === 8 ? 8 : Math.min(sizeOf(sz), 4);
        operands.push({ t: 'imm', size: sz === 'z' ? opSize : sizeOf(sz), value: imm(n, true) });
        break;
      }
      case 'J': {
        const n = sz === 'b' ? 1 : opSize === 2 && !code64 ? 2 : 4;
        operands.push({ t: 'imm', size: n, value: imm(n, true) });
        break;
      }
      case 'O': {
        const off = imm(addrSize, false);
        operands.push({ t: 'mem', size: sizeOf(sz), seg: seg >= 0 ? seg : DS, base: -1, index: -1, scale: 1, disp: off });
        break;
      }
      default:
        if (spec === 'AL') operands.push(gpr(0, 1));
        else if (spec === 'CL') operands.push(gpr(1, 1));
        else if (spec === 'rAX') operands.push(gpr(0, opSize));
        else if (spec === '1') operands.push({ t: 'imm', size: 1, value: 1n });
        else throw new Error(`bad operand spec '${spec}'`);
    }
  }
  if (lock && (!(entry.f & 4) || !operands.some((o) => o.t === 'mem'))) {
    throw new DecodeError(`lock prefix on ${entry.mn}`, 'ud');
  }
  return {
    bytes: bytes.subarray(0, p), len: p, map, pp, vex, disp8: !!vex?.evex && mod === 1, opcode, entry, mn: entry.mn, operands, opSize, addrSize,
    lock, rep: useRep, segOverride: seg, rex, modrm, mod, reg: reg | rexR, rm: rm | rexB,
  };
}

function mapName(map: number): string {
  return ['', '', '0F ', '0F 38 ', '0F 3A '][map];
}

export function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

export function hexBytes(b: Uint8Array): string {
  return [...b].map(hex).join(' ');
}
