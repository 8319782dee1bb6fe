/**
 * Opcode tables: one entry per opcode of map 1 (one byte), map 2 (0F xx),
 * map 3 (0F 38 xx); groups by ModRM.reg, whole-ModRM entries for register
 * forms (0F 01 CA is clac), and variants by mandatory prefix (none, 66, F3,
 * F2). An entry names its handler (the mnemonic) and its operands in the
 * notation of the Intel SDM's opcode map:
 *   E/G/M/R  ModRM r/m, reg, memory-only r/m, register-only r/m
 *   I, Ibs   immediate (Ibs: byte sign-extended to the operand size), J relative
 *   Z        register in the opcode's low 3 bits, O moffs
 *   AL, CL, rAX, DX, 1  fixed operands
 * with sizes b (1), w (2), d (4), q (8), v (operand size), z (v, at most 4),
 * y (4 or 8), dq (16), p (none: an address only).
 */

export const D64 = 1; // 64-bit operand size by default in 64-bit mode
export const F64 = 2; // always 64-bit in 64-bit mode
export const LOCK = 4; // LOCK prefix allowed (with a memory destination)
export const NO64 = 8; // invalid in 64-bit mode

export interface OpEntry {
  mn: string;
  ops: string[];
  f: number;
  /** By ModRM.reg. */
  grp?: (OpEntry | undefined)[];
  /** Register forms (mod == 3) by the whole ModRM byte; take precedence over grp. */
  mod3?: Record<number, OpEntry>;
  /** Register forms (mod == 3) by ModRM.reg. */
  grp3?: (OpEntry | undefined)[];
  /** Variants by mandatory prefix. */
  pfx?: { none?: OpEntry; p66?: OpEntry; pF3?: OpEntry; pF2?: OpEntry };
}

export function e(mn: string, ops = '', f = 0): OpEntry {
  return { mn, ops: ops ? ops.split(',') : [], f };
}
const grp = (g: (OpEntry | undefined)[], extra: Partial<OpEntry> = {}): OpEntry => ({ mn: 'grp', ops: [], f: 0, grp: g, ...extra });
const pfx = (p: OpEntry['pfx']): OpEntry => ({ mn: 'pfx', ops: [], f: 0, pfx: p });

export const MAP1: (OpEntry | undefined)[] = new Array(256);
export const MAP2: (OpEntry | undefined)[] = new Array(256);
export const MAP3: (OpEntry | undefined)[] = new Array(256);
export const MAP4: (OpEntry | undefined)[] = new Array(256);

export const ALU_OPS = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
export const SHIFT_OPS = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sal', 'sar'];
export const CC_NAMES = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

// ---- map 1
ALU_OPS.forEach((mn, i) => {
  const lk = mn === 'cmp' ? 0 : LOCK;
  MAP1[i * 8] = e(mn, 'Eb,Gb', lk);
  MAP1[i * 8 + 1] = e(mn, 'Ev,Gv', lk);
  MAP1[i * 8 + 2] = e(mn, 'Gb,Eb');
  MAP1[i * 8 + 3] = e(mn, 'Gv,Ev');
  MAP1[i * 8 + 4] = e(mn, 'AL,Ib');
  MAP1[i * 8 + 5] = e(mn, 'rAX,Iz');
});
for (let i = 0; i < 8; i++) {
  MAP1[0x40 + i] = e('inc', 'Zv', NO64);
  MAP1[0x48 + i] = e('dec', 'Zv', NO64);
  MAP1[0x50 + i] = e('push', 'Zv', D64);
  MAP1[0x58 + i] = e('pop', 'Zv', D64);
  MAP1[0x90 + i] = e('xchg', 'Zv,rAX');
  MAP1[0xb0 + i] = e('mov', 'Zb,Ib');
  MAP1[0xb8 + i] = e('mov', 'Zv,Iv');
}
for (let i = 0; i < 16; i++) MAP1[0x70 + i] = e('jcc', 'Jb', F64);
Object.assign(MAP1, {
  0x63: e('movsxd', 'Gv,Ed'),
  0x68: e('push', 'Iz', D64), 0x69: e('imul', 'Gv,Ev,Iz'), 0x6a: e('push', 'Ibs', D64), 0x6b: e('imul', 'Gv,Ev,Ibs'),
  0x80: grp(ALU_OPS.map((mn) => e(mn, 'Eb,Ib', mn === 'cmp' ? 0 : LOCK))),
  0x81: grp(ALU_OPS.map((mn) => e(mn, 'Ev,Iz', mn === 'cmp' ? 0 : LOCK))),
  0x83: grp(ALU_OPS.map((mn) => e(mn, 'Ev,Ibs', mn === 'cmp' ? 0 : LOCK))),
  0x84: e('test', 'Eb,Gb'), 0x85: e('test', 'Ev,Gv'), 0x86: e('xchg', 'Eb,Gb', LOCK), 0x87: e('xchg', 'Ev,Gv', LOCK),
  0x88: e('mov', 'Eb,Gb'), 0x89: e('mov', 'Ev,Gv'), 0x8a: e('mov', 'Gb,Eb'), 0x8b: e('mov', 'Gv,Ev'),
  0x8d: e('lea', 'Gv,Mp'), 0x8f: grp([e('pop', 'Ev', D64)]),
  0x98: e('cbw'), 0x99: e('cwd'), 0x9b: e('fwait'), 0x9c: e('pushf', '', D64), 0x9d: e('popf', '', D64),
  0x9e: e('sahf'), 0x9f: e('lahf'),
  0xa0: e('mov', 'AL,Ob'), 0xa1: e('mov', 'rAX,Ov'), 0xa2: e('mov', 'Ob,AL'), 0xa3: e('mov', 'Ov,rAX'),
  0xa8: e('test', 'AL,Ib'), 0xa9: e('test', 'rAX,Iz'),
  0xc0: grp(SHIFT_OPS.map((mn) => e(mn, 'Eb,Ib'))), 0xc1: grp(SHIFT_OPS.map((mn) => e(mn, 'Ev,Ib'))),
  0xc2: e('ret', 'Iw', F64), 0xc3: e('ret', '', F64),
  0xc6: grp([e('mov', 'Eb,Ib')]), 0xc7: grp([e('mov', 'Ev,Iz')]),
  0xc9: e('leave', '', D64),
  0xcc: e('int3'), 0xcd: e('int', 'Ib'), 0xce: e('into', '', NO64), 0xcf: e('iret'),
  0xd0: grp(SHIFT_OPS.map((mn) => e(mn, 'Eb,1'))), 0xd1: grp(SHIFT_OPS.map((mn) => e(mn, 'Ev,1'))),
  0xd2: grp(SHIFT_OPS.map((mn) => e(mn, 'Eb,CL'))), 0xd3: grp(SHIFT_OPS.map((mn) => e(mn, 'Ev,CL'))),
  0xe3: e('jrcxz', 'Jb', F64),
  0xe8: e('call', 'Jz', F64), 0xe9: e('jmp', 'Jz', F64), 0xeb: e('jmp', 'Jb', F64),
  0xf1: e('int1'), 0xf5: e('cmc'),
  0xf6: grp([e('test', 'Eb,Ib'), e('test', 'Eb,Ib'), e('not', 'Eb', LOCK), e('neg', 'Eb', LOCK), e('mul', 'Eb'), e('imul1', 'Eb'), e('div', 'Eb'), e('idiv', 'Eb')]),
  0xf7: grp([e('test', 'Ev,Iz'), e('test', 'Ev,Iz'), e('not', 'Ev', LOCK), e('neg', 'Ev', LOCK), e('mul', 'Ev'), e('imul1', 'Ev'), e('div', 'Ev'), e('idiv', 'Ev')]),
  0xf8: e('clc'), 0xf9: e('stc'), 0xfa: e('cli'), 0xfb: e('sti'), 0xfc: e('cld'), 0xfd: e('std'),
  0xfe: grp([e('inc', 'Eb', LOCK), e('dec', 'Eb', LOCK)]),
  0xff: grp([e('inc', 'Ev', LOCK), e('dec', 'Ev', LOCK), e('call', 'Ev', F64), undefined, e('jmp', 'Ev', F64), undefined, e('push', 'Ev', D64)]),
});
// x87 escapes: only the control instructions are emulated (see exec-fpu.ts).
for (let i = 0xd8; i <= 0xdf; i++) MAP1[i] = e('x87', 'Ep');

// ---- map 2 (0F xx)
const nopM = e('nop', 'Ev');
Object.assign(MAP2, {
  0x01: grp(
    [e('sgdt', 'Mp'), e('sidt', 'Mp'), e('lgdt', 'Mp'), e('lidt', 'Mp'), e('smsw', 'Ew'), undefined, e('lmsw', 'Ew'), e('invlpg', 'Mp')],
    {
      mod3: {
        0xc1: e('vmcall'), 0xc8: e('monitor'), 0xc9: e('mwait'), 0xca: e('clac'), 0xcb: e('stac'),
        0xd0: e('xgetbv'), 0xd1: e('xsetbv'), 0xd9: e('vmmcall'), 0xe8: e('serialize'), 0xee: e('rdpkru'), 0xef: e('wrpkru'),
        0xf8: e('swapgs'), 0xf9: e('rdtscp'), 0xfa: e('monitorx'), 0xfb: e('mwaitx'), 0xfc: e('clzero'), 0xfd: e('rdpru'),
      },
    },
  ),
  0x0b: e('ud2'), 0x0d: grp([e('nop', 'Mp'), e('nop', 'Mp'), e('nop', 'Mp'), e('nop', 'Mp'), e('nop', 'Mp'), e('nop', 'Mp'), e('nop', 'Mp'), e('nop', 'Mp')]),
  0x18: nopM, 0x19: nopM, 0x1a: nopM, 0x1b: nopM, 0x1c: nopM, 0x1d: nopM, 0x1e: nopM, 0x1f: nopM,
  0x05: e('syscall'), 0x07: e('sysret'), 0x31: e('rdtsc'), 0xa2: e('cpuid'),
  0xa3: e('bt', 'Ev,Gv'), 0xa4: e('shld', 'Ev,Gv,Ib'), 0xa5: e('shld', 'Ev,Gv,CL'),
  0xab: e('bts', 'Ev,Gv', LOCK), 0xac: e('shrd', 'Ev,Gv,Ib'), 0xad: e('shrd', 'Ev,Gv,CL'),
  0xae: pfx({
    none: grp([e('fxsave', 'Mp'), e('fxrstor', 'Mp'), e('ldmxcsr', 'Md'), e('stmxcsr', 'Md'), e('xsave', 'Mp'), e('xrstor', 'Mp'), e('xsaveopt', 'Mp'), e('clflush', 'Mp')],
      { grp3: [undefined, undefined, undefined, undefined, undefined, e('lfence'), e('mfence'), e('sfence')] }),
    p66: grp([undefined, undefined, undefined, undefined, undefined, undefined, e('clwb', 'Mp'), e('clflushopt', 'Mp')]),
    pF3: grp([], { grp3: [e('rdfsbase', 'Ry'), e('rdgsbase', 'Ry'), e('wrfsbase', 'Ry'), e('wrgsbase', 'Ry')] }),
  }),
  0xaf: e('imul', 'Gv,Ev'),
  0xb0: e('cmpxchg', 'Eb,Gb', LOCK), 0xb1: e('cmpxchg', 'Ev,Gv', LOCK), 0xb3: e('btr', 'Ev,Gv', LOCK),
  0xb6: e('movzx', 'Gv,Eb'), 0xb7: e('movzx', 'Gv,Ew'),
  0xb8: pfx({ pF3: e('popcnt', 'Gv,Ev') }), 0xb9: e('ud1', 'Gv,Ev'),
  0xba: grp([undefined, undefined, undefined, undefined, e('bt', 'Ev,Ib'), e('bts', 'Ev,Ib', LOCK), e('btr', 'Ev,Ib', LOCK), e('btc', 'Ev,Ib', LOCK)]),
  0xbb: e('btc', 'Ev,Gv', LOCK),
  0xbc: pfx({ none: e('bsf', 'Gv,Ev'), pF3: e('tzcnt', 'Gv,Ev') }),
  0xbd: pfx({ none: e('bsr', 'Gv,Ev'), pF3: e('lzcnt', 'Gv,Ev') }),
  0xbe: e('movsx', 'Gv,Eb'), 0xbf: e('movsx', 'Gv,Ew'),
  0xc0: e('xadd', 'Eb,Gb', LOCK), 0xc1: e('xadd', 'Ev,Gv', LOCK),
  0xc7: pfx({
    none: grp([undefined, e('cmpxchg8b', 'Mp', LOCK), undefined, e('xrstors', 'Mp'), e('xsavec', 'Mp'), e('xsaves', 'Mp')],
      { grp3: [undefined, undefined, undefined, undefined, undefined, undefined, e('rdrand', 'Rv'), e('rdseed', 'Rv')] }),
    pF3: grp([undefined, e('cmpxchg8b', 'Mp', LOCK)], { grp3: [undefined, undefined, undefined, undefined, undefined, undefined, undefined, e('rdpid', 'Rq')] }),
  }),
  0xff: e('ud0', 'Gv,Ev'),
});
for (let i = 0; i < 16; i++) {
  MAP2[0x40 + i] = e('cmovcc', 'Gv,Ev');
  MAP2[0x80 + i] = e('jcc', 'Jz', F64);
  MAP2[0x90 + i] = e('setcc', 'Eb');
}
for (let i = 0; i < 8; i++) MAP2[0xc8 + i] = e('bswap', 'Zv');

// ---- map 3 (0F 38 xx)
Object.assign(MAP3, {
  0x82: pfx({ p66: e('invpcid', 'Gy,Mdq') }),
  0xf0: pfx({ none: e('movbe', 'Gv,Mv'), pF2: e('crc32', 'Gy,Eb') }),
  0xf1: pfx({ none: e('movbe', 'Mv,Gv'), pF2: e('crc32', 'Gy,Ev') }),
  0xf6: pfx({ p66: e('adcx', 'Gy,Ey'), pF3: e('adox', 'Gy,Ey') }),
});

// ---- SSE/AVX (exec-simd.ts): operands are vector registers (G, E), the handler reads the mandatory prefix.
const SIMD = e('simd', 'Gdq,Edq');
const SIMD_IB = e('simd', 'Gdq,Edq,Ib');
const SIMD_NONE = e('simd');
/** Opcodes with an 8-bit immediate: map 2 (0F) 70-73, C2, C4-C6; all of map 4 (0F 3A). */
function takesImm8(map: number, opcode: number): boolean {
  return map === 4 || (map === 2 && ((opcode >= 0x70 && opcode <= 0x73) || opcode === 0xc2 || (opcode >= 0xc4 && opcode <= 0xc6)));
}
export function simdEntry(map: number, opcode: number): OpEntry {
  if (map === 2 && opcode === 0x77) return SIMD_NONE; // vzeroupper / vzeroall
  return takesImm8(map, opcode) ? SIMD_IB : SIMD;
}
const anyPrefix = (x: OpEntry): OpEntry => pfx({ none: x, p66: x, pF3: x, pF2: x });
for (const op of [0x10, 0x11, 0x28, 0x29, 0x2b, 0x54, 0x55, 0x56, 0x57, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x7e, 0x7f,
  0xd4, 0xd6, 0xdb, 0xdf, 0xe7, 0xeb, 0xef, 0xfa, 0xfb, 0xfe,
  // SSE2 packed integers (simd-int.ts)
  0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x74, 0x75, 0x76,
  0xd1, 0xd2, 0xd3, 0xd5, 0xd8, 0xd9, 0xda, 0xdc, 0xdd, 0xde, 0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe8, 0xe9, 0xea,
  0xec, 0xed, 0xee, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf8, 0xf9, 0xfc, 0xfd]) MAP2[op] = anyPrefix(simdEntry(2, op));
MAP3[0x00] = anyPrefix(SIMD);
MAP4[0x0f] = anyPrefix(SIMD_IB);
