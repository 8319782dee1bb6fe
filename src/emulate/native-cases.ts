/**
 * Test cases for native.test.ts: instruction encodings (operands in rax,
 * rbx, rcx, rdx and 64 bytes of memory at [rsi]) with inputs from a seeded
 * generator, and for each the flags the instruction defines.
 */
import { CF, OF, ZF, AF, ARITH_FLAGS } from './cpu.js';

export interface Case {
  name: string;
  bytes: string;
  /** rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8-r15 (encoding order). */
  regs: bigint[];
  flags: bigint;
  /** The register holding the memory block's address (offset added), or -1. */
  memreg: number;
  mem: Uint8Array;
  flagMask: (arith: bigint) => bigint;
  ignoreRegs?: number[];
}

let seed = 0x2545f491n;
function rnd64(): bigint {
  seed ^= (seed << 13n) & 0xffffffffffffffffn;
  seed ^= seed >> 7n;
  seed ^= (seed << 17n) & 0xffffffffffffffffn;
  return seed & 0xffffffffffffffffn;
}
const SPECIAL = [0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn,
  0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0x0fn, 0x10n];
function value(): bigint {
  const r = Number(rnd64() % 4n);
  return r === 0 ? SPECIAL[Number(rnd64() % BigInt(SPECIAL.length))] : r === 1 ? rnd64() & 0xffn : rnd64();
}

const all = (a: bigint) => a;
const only = (bits: bigint) => () => bits;
const SIZES: [string, number][] = [['', 4], ['48', 8], ['66', 2]];
const MEMREG = 6; // rsi

function make(name: string, bytes: string, n: number, flagMask: Case['flagMask'], tweak?: (c: Case) => void, ignoreRegs?: number[]): Case[] {
  const out: Case[] = [];
  for (let i = 0; i < n; i++) {
    const regs = [...Array(16)].map(() => value());
    regs[4] = 0n;
    regs[MEMREG] = 0n;
    const mem = new Uint8Array(64);
    for (let j = 0; j < 64; j += 8) mem.set(Buffer.from(value().toString(16).padStart(16, '0'), 'hex').reverse(), j);
    const c: Case = { name, bytes, regs, flags: 2n | (rnd64() & ARITH_FLAGS), memreg: MEMREG, mem, flagMask, ignoreRegs };
    tweak?.(c);
    out.push(c);
  }
  return out;
}

export const CASES: Case[] = [];
const add = (cs: Case[]) => CASES.push(...cs);
const N = 24;

// ALU: register and memory forms, each size, and LOCK.
['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'].forEach((mn, i) => {
  const op = (i * 8).toString(16).padStart(2, '0'), opv = (i * 8 + 1).toString(16).padStart(2, '0');
  const m = mn === 'and' || mn === 'or' || mn === 'xor' ? (a: bigint) => a & ~AF : all;
  add(make(`${mn} al,bl`, `${op}d8`, N, m));
  for (const [p, sz] of SIZES) {
    add(make(`${mn}${sz * 8} reg`, `${p}${opv}d8`, N, m));
    add(make(`${mn}${sz * 8} [rsi]`, `${p}${opv}1e`, N, m));
    if (mn !== 'cmp') add(make(`lock ${mn}${sz * 8}`, `f0${p}${opv}1e`, N / 2, m));
  }
  add(make(`${mn} imm8`, `4883${(0xc0 + i * 8).toString(16)}85`, N, m));
});
for (const [p, sz] of SIZES) {
  const w = sz * 8;
  add(make(`test${w}`, `${p}85d8`, N, (a) => a & ~AF));
  add(make(`inc${w}`, `${p}ffc0`, N, all));
  add(make(`dec${w}`, `${p}ffc8`, N, all));
  add(make(`lock inc${w}`, `f0${p}ff06`, N, all));
  add(make(`not${w}`, `${p}f7d0`, N, all));
  add(make(`neg${w}`, `${p}f7d8`, N, all));
  add(make(`lock neg${w}`, `f0${p}f71e`, N, all));
  add(make(`mul${w}`, `${p}f7e3`, N, only(CF | OF)));
  add(make(`imul1 ${w}`, `${p}f7eb`, N, only(CF | OF)));
  add(make(`imul2 ${w}`, `${p}0fafc3`, N, only(CF | OF)));
  add(make(`imul3 ${w}`, `${p}6bc3f9`, N, only(CF | OF)));
  add(make(`div${w}`, `${p}f7f3`, N, only(0n), (c) => { c.regs[2] = 0n; c.regs[3] |= 1n; }));
  add(make(`idiv${w}`, `${p}f7fb`, N, only(0n), (c) => { c.regs[2] = 0n; c.regs[0] &= 0x7fffn; c.regs[3] = (c.regs[3] & 0xffn) | 1n; }));
  // Shifts by CL: OF only for a count of 1, AF never; CF undefined past the width for 8/16 bits.
  ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sar'].forEach((mn, k) => {
    const modrm = (0xc0 + (k === 6 ? 7 : k) * 8).toString(16);
    for (let count = 0; count < 66; count += 1 + Number(rnd64() % 5n)) {
      const masked = count & (sz === 8 ? 63 : 31);
      const rot = mn.startsWith('r') && mn !== 'rcl' && mn !== 'rcr';
      add(make(`${mn}${w} ${count}`, `${p}d3${modrm}`, 2, (a) => {
        if (masked === 0) return a;
        let m = rot ? CF | OF : a & ~AF;
        if (masked !== 1) m &= ~OF;
        if (!rot && masked >= w && !mn.startsWith('rc')) m &= ~CF;
        return m;
      }, (c) => (c.regs[1] = BigInt(count))));
    }
  });
  add(make(`shld${w}`, `${p}0fa5d8`, N, (a) => a & ~AF & ~OF, (c) => (c.regs[1] = BigInt(Number(rnd64() % BigInt(sz === 2 ? 16 : w)) + 0))));
  add(make(`shrd${w}`, `${p}0fadd8`, N, (a) => a & ~AF & ~OF, (c) => (c.regs[1] = BigInt(Number(rnd64() % BigInt(sz === 2 ? 16 : w))))));
  add(make(`shld${w} 1`, `${p}0fa4d801`, N, (a) => a & ~AF));
  add(make(`bt${w}`, `${p}0fa3d8`, N, only(CF)));
  add(make(`bts${w}`, `${p}0fabd8`, N, only(CF)));
  add(make(`btr${w} imm`, `${p}0fbae805`, N, only(CF)));
  add(make(`btc${w} [rsi]`, `${p}0fbb1e`, N, only(CF), (c) => (c.regs[3] &= 0x1ffn)));
  add(make(`lock bts${w} [rsi]`, `f0${p}0fab1e`, N, only(CF), (c) => (c.regs[3] &= 0x1ffn)));
  add(make(`bsf${w}`, `${p}0fbcc3`, N, only(ZF), (c) => { if (rnd64() & 1n) c.regs[3] = 0n; }));
  add(make(`bsr${w}`, `${p}0fbdc3`, N, only(ZF), (c) => { if (rnd64() & 1n) c.regs[3] = 0n; }));
  add(make(`tzcnt${w}`, `f3${p}0fbcc3`, N, only(CF | ZF), (c) => { if (rnd64() & 1n) c.regs[3] = 0n; }));
  add(make(`lzcnt${w}`, `f3${p}0fbdc3`, N, only(CF | ZF), (c) => { if (rnd64() & 1n) c.regs[3] = 0n; }));
  add(make(`popcnt${w}`, `f3${p}0fb8c3`, N, all));
  add(make(`popcnt${w} [rsi]`, `f3${p}0fb806`, N, all));
  add(make(`movbe${w} load`, `${p}0f38f006`, N, all));
  add(make(`movbe${w} store`, `${p}0f38f11e`, N, all));
  add(make(`cmpxchg${w}`, `${p}0fb11e`, N, all, (c) => { if (rnd64() & 1n) c.regs[0] = BigInt(c.mem[0]) | (BigInt(c.mem[1]) << 8n) | (BigInt(c.mem[2]) << 16n) | (BigInt(c.mem[3]) << 24n); }));
  add(make(`lock cmpxchg${w}`, `f0${p}0fb11e`, N, all));
  add(make(`xadd${w}`, `${p}0fc11e`, N, all));
  add(make(`lock xadd${w}`, `f0${p}0fc11e`, N, all));
  add(make(`xadd${w} reg`, `${p}0fc1d8`, N, all));
  add(make(`xchg${w}`, `${p}871e`, N, all));
  add(make(`movzx${w}`, `${p}0fb6c3`, N, all));
  add(make(`movsx${w}`, `${p}0fbfc3`, N, all));
  add(make(`cmovne${w}`, `${p}0f45c3`, N, all));
  add(make(`cmovbe${w} [rsi]`, `${p}0f4606`, N, all));
  add(make(`adcx${w}`, `66${p === '66' ? '' : p}0f38f6c3`, sz === 2 ? 0 : N, all));
}
for (let cc = 0; cc < 16; cc++) add(make(`set${cc}`, `0f${(0x90 + cc).toString(16)}c0`, 6, all));
const widePrep = (c: Case) => {
  if (rnd64() & 1n) {
    const dv = new DataView(c.mem.buffer);
    c.regs[0] = dv.getBigUint64(0, true);
    c.regs[2] = dv.getBigUint64(8, true);
  }
};
const narrowPrep = (c: Case) => {
  if (rnd64() & 1n) {
    const dv = new DataView(c.mem.buffer);
    c.regs[0] = BigInt(dv.getUint32(0, true));
    c.regs[2] = BigInt(dv.getUint32(4, true));
  }
};
add(make('cmpxchg16b', '480fc70e', N, only(ZF), widePrep));
add(make('lock cmpxchg16b', 'f0480fc70e', N, only(ZF), widePrep));
add(make('cmpxchg8b', '0fc70e', N, only(ZF), narrowPrep));
add(make('lock cmpxchg8b', 'f00fc70e', N, only(ZF), narrowPrep));
add(make('bswap32', '0fc8', N, all));
add(make('bswap64', '480fc8', N, all));
add(make('movsxd', '4863c3', N, all));
add(make('lea', '488d449e08', N, all, (c) => (c.memreg = -1)));
add(make('cbw', '6698', N, all));
add(make('cwde', '98', N, all));
add(make('cdqe', '4898', N, all));
add(make('cdq', '99', N, all));
add(make('cqo', '4899', N, all));
add(make('crc32 r32', 'f20f38f1c3', N, all));
add(make('crc32 r64', 'f2480f38f1c3', N, all));
add(make('crc32 r8', 'f20f38f0c3', N, all));
add(make('sahf', '9e', N, all));
add(make('lahf', '9f', N, all));
add(make('cmc', 'f5', N, all));
add(make('xchg r64', '4887d8', N, all));
add(make('xchg eax,ecx', '91', N, all));
add(make('mov [rsi+8],ebx', '895e08', N, all));
