import test from 'node:test';
import assert from 'node:assert/strict';
import { decode, DecodeError, type MemOperand } from './decoder.js';

const d = (hex: string, size: 2 | 4 | 8 = 8) => decode(Buffer.from(hex.replace(/ /g, ''), 'hex'), size);

test('lengths, mnemonics and sizes in 64-bit mode', () => {
  const cases: [string, string, number, number][] = [
    ['f0 48 0f c7 4d 20', 'cmpxchg8b', 6, 8],
    ['f3 0f b8 c3', 'popcnt', 4, 4],
    ['66 f3 0f b8 c3', 'popcnt', 5, 2],
    ['f3 48 0f b8 44 24 08', 'popcnt', 7, 8],
    ['0f 38 f0 06', 'movbe', 4, 4],
    ['66 0f 38 f1 1e', 'movbe', 5, 2],
    ['f2 48 0f 38 f1 c3', 'crc32', 6, 8],
    ['0f 01 ca', 'clac', 3, 4],
    ['0f 01 cb', 'stac', 3, 4],
    ['0f 01 d0', 'xgetbv', 3, 4],
    ['0f 01 fd', 'rdpru', 3, 4],
    ['48 0f ae 2f', 'xrstor', 4, 8],
    ['48 0f c7 1f', 'xrstors', 4, 8],
    ['66 0f ae 37', 'clwb', 4, 4],
    ['66 0f ae 3f', 'clflushopt', 4, 4],
    ['66 0f 38 82 07', 'invpcid', 5, 4],
    ['48 0f c7 f0', 'rdrand', 4, 8],
    ['cc', 'int3', 1, 4],
    ['cd 80', 'int', 2, 4],
    ['48 cf', 'iret', 2, 8],
    ['cf', 'iret', 1, 4],
    ['0f 0b', 'ud2', 2, 4],
    ['9b', 'fwait', 1, 4],
    ['d9 6c 24 fc', 'x87', 4, 4],
    ['48 81 84 24 00 01 00 00 78 56 34 12', 'add', 12, 8],
    ['48 b8 88 77 66 55 44 33 22 11', 'mov', 10, 8],
    ['e8 00 00 00 00', 'call', 5, 8],
    ['66 e9 00 00 00 00', 'jmp', 6, 8],
    ['41 ff d3', 'call', 3, 8],
    ['2e 0f 1f 84 00 00 00 00 00', 'nop', 9, 4],
    ['f3 0f 1e fa', 'nop', 4, 4],
    ['c5 f8 77', 'simd', 3, 4],
    ['c5 fa 6f 07', 'simd', 4, 4],
    ['62 f1 65 08 72 c3 10', 'simd', 7, 4],
    ['62 72 4d 28 76 c7', 'simd', 6, 4],
    ['c4 43 7d 39 c0 01', 'simd', 6, 4],
    ['66 0f 38 00 c1', 'simd', 5, 4],
  ];
  for (const [hex, mn, len, op] of cases) {
    const i = d(hex);
    assert.deepEqual([i.mn, i.len, i.opSize], [mn, len, op], hex);
  }
});

test('ModRM, SIB, RIP-relative and REX-extended operands', () => {
  const i = d('4c 8b 84 c7 10 00 00 00'); // mov r8, [rdi+rax*8+0x10]
  assert.deepEqual(i.operands[0], { t: 'reg', size: 8, reg: 8, high8: false });
  const m = i.operands[1] as MemOperand;
  assert.deepEqual([m.base, m.index, m.scale, m.disp, m.seg], [7, 0, 8, 0x10n, 3]);
  const r = d('8b 05 f0 ff ff ff').operands[1] as MemOperand; // mov eax, [rip-16]
  assert.deepEqual([r.base, r.disp], [-2, -16n]);
  const s = d('8b 45 08').operands[1] as MemOperand; // [rbp+8]: SS
  assert.equal(s.seg, 2);
  const g = d('65 48 8b 04 25 28 00 00 00').operands[1] as MemOperand; // mov rax, gs:[0x28]
  assert.deepEqual([g.base, g.index, g.disp, g.seg], [-1, -1, 0x28n, 5]);
  // Without REX, byte registers 4-7 are AH..BH; with REX, SPL..DIL.
  assert.deepEqual(d('88 e0').operands[1], { t: 'reg', size: 1, reg: 4, high8: true }); // mov al, ah
  assert.deepEqual(d('40 88 e0').operands[1], { t: 'reg', size: 1, reg: 4, high8: false });
});

test('16- and 32-bit modes: default sizes, prefixes and 16-bit addressing', () => {
  const a = d('8b 42 04', 2); // mov ax, [bp+si+4]
  const m = a.operands[1] as MemOperand;
  assert.deepEqual([a.opSize, a.addrSize, m.base, m.index, m.disp, m.seg], [2, 2, 5, 6, 4n, 2]);
  const b = d('66 67 8b 04 24', 2); // mov eax, [esp]
  assert.deepEqual([b.opSize, b.addrSize, b.len], [4, 4, 5]);
  assert.equal(d('40', 4).mn, 'inc'); // REX is inc eax outside 64-bit mode
  const c = d('cf', 4);
  assert.deepEqual([c.mn, c.opSize], ['iret', 4]);
});

test('what the CPU rejects is #UD; what we do not know says so', () => {
  const ud = (hex: string) => assert.throws(() => d(hex), (e: unknown) => e instanceof DecodeError && e.kind === 'ud', hex);
  ud('f0 01 d8'); // lock on a register destination
  ud('f0 90'); // lock nop
  ud('66 0f 38 82 c0'); // invpcid with a register operand
  ud('ce'); // into is invalid in 64-bit mode
  assert.throws(() => d('0f 3a 63 c1 08'), (e: unknown) => e instanceof DecodeError && e.kind === 'unknown');
  assert.throws(() => d('0f 38'), (e: unknown) => e instanceof DecodeError && e.kind === 'short');
  assert.throws(() => d('66'.repeat(15) + '90'), (e: unknown) => e instanceof DecodeError && e.kind === 'ud');
});
