import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  arg, buffer, decodePkgLength, device, eisaId, eisaIdValue, integer, method, name, nameSeg, nameString,
  pkg, pkgLength, ret, scope, store, string,
} from './aml.js';
import { dwordMemory, interrupt, io, irqNoFlags, memory32Fixed, qwordMemory, resourceTemplate, wordBusNumber, wordIO } from './resources.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('PkgLength picks the 1, 2, 3 and 4 byte forms at their edges', () => {
  // The encoded value counts the PkgLength bytes themselves.
  assert.equal(hex(pkgLength(0)), '01');
  assert.equal(hex(pkgLength(62)), '3f'); // 63: largest 1-byte value
  assert.equal(hex(pkgLength(63)), '4104'); // 65 = 0x041 -> lead 0x41, then 0x04
  assert.equal(pkgLength(0xfff - 2).length, 2); // total 0xfff
  assert.equal(pkgLength(0xfff - 1).length, 3); // total would be 0x1000 with 2 bytes
  assert.equal(pkgLength(0xfffff - 3).length, 3);
  assert.equal(pkgLength(0xfffff - 2).length, 4);
  assert.equal(pkgLength(0xfffffff - 4).length, 4);
  assert.throws(() => pkgLength(0xfffffff - 3), /too long/);
  for (const payload of [0, 1, 62, 63, 64, 300, 4093, 4094, 70000, 0xfffff - 3, 0xfffff - 2, 5_000_000, 0xfffffff - 4]) {
    const enc = pkgLength(payload);
    const { value, size } = decodePkgLength(enc, 0);
    assert.equal(size, enc.length);
    assert.equal(value, payload + enc.length, `payload ${payload}`);
  }
});

test('name segments are padded with underscores and validated', () => {
  assert.equal(Buffer.from(nameSeg('PC')).toString(), 'PC__');
  assert.equal(Buffer.from(nameSeg('_S5')).toString(), '_S5_');
  assert.equal(Buffer.from(nameSeg('COM1')).toString(), 'COM1');
  assert.throws(() => nameSeg('1ABC'), /name segment/);
  assert.throws(() => nameSeg('TOOLONG'), /name segment/);
  assert.throws(() => nameSeg('pc00'), /name segment/);
});

test('name strings: root, parent, dual and multi-segment prefixes', () => {
  assert.equal(hex(nameString('_HID')), Buffer.from('_HID').toString('hex'));
  assert.equal(hex(nameString('\\')), '5c00');
  assert.equal(hex(nameString('\\_SB')), '5c' + Buffer.from('_SB_').toString('hex'));
  assert.equal(hex(nameString('\\_SB.PC00')), '5c2e' + Buffer.from('_SB_PC00').toString('hex'));
  assert.equal(hex(nameString('^^A.B.C')), '5e5e2f03' + Buffer.from('A___B___C___').toString('hex'));
});

test('integers use the shortest encoding', () => {
  assert.equal(hex(integer(0)), '00');
  assert.equal(hex(integer(1)), '01');
  assert.equal(hex(integer(2)), '0a02');
  assert.equal(hex(integer(0x100)), '0b0001');
  assert.equal(hex(integer(0x10000)), '0c00000100');
  assert.equal(hex(integer(0x100000000)), '0e0000000001000000');
  assert.throws(() => integer(-1), /out of range/);
});

test('EisaId compresses like iasl', () => {
  assert.equal(eisaIdValue('PNP0A03'), 0x030ad041);
  assert.equal(eisaIdValue('PNP0501'), 0x0105d041);
  assert.equal(hex(eisaId('PNP0A08')), '0c41d00a08');
  assert.throws(() => eisaIdValue('pnp0a03'), /EISA id/);
});

test('named objects, packages, methods', () => {
  const seg = (t: string) => Buffer.from(t).toString('hex');
  assert.equal(hex(string('AB')), '0d414200');
  assert.equal(hex(name('_UID', integer(1))), '08' + seg('_UID') + '01');
  assert.equal(hex(pkg([integer(5), integer(0)])), '1205020a0500');
  assert.equal(hex(buffer(Uint8Array.of(0xaa))), '110301aa');
  // Method (_BBN, 0) { Return (Zero) }: opcode, PkgLength 7, name, flags, ReturnOp ZeroOp.
  assert.equal(hex(method('_BBN', 0, [ret(integer(0))])), '1408' + seg('_BBN') + '00a400');
  assert.equal(hex(method('_PIC', 1, [store(arg(0), nameString('PICM'))], { serialized: true })),
    '140c' + seg('_PIC') + '09' + '7068' + seg('PICM'));
  assert.equal(hex(device('ISA', [])), '5b8205' + seg('ISA_'));
  assert.equal(hex(scope('\\_SB', [])), '1006' + '5c' + seg('_SB_'));
  assert.throws(() => method('X', 8, []), /argument count/);
});

test('a large device body switches to a multi-byte PkgLength', () => {
  const big = name('BIG_', buffer(new Uint8Array(100)));
  const d = device('DEV0', [big]);
  assert.equal(d[0], 0x5b);
  assert.equal(d[1], 0x82);
  const { value, size } = decodePkgLength(d, 2);
  assert.equal(size, 2);
  assert.equal(value, d.length - 2);
});

test('resource descriptors encode like iasl', () => {
  assert.equal(hex(io(0x3f8, 0x3f8, 1, 8)), '4701f803f8030108');
  assert.equal(hex(irqNoFlags([4])), '221000');
  assert.equal(hex(irqNoFlags([0, 8])), '220101');
  assert.throws(() => irqNoFlags([16]), /ISA IRQ/);
  assert.equal(hex(memory32Fixed(0xfed00000, 0x400)), '8609000100' + '00d0fe' + '00040000');
  assert.equal(hex(wordBusNumber(0, 255)), '880d00020c00' + '0000' + '0000' + 'ff00' + '0000' + '0001');
  assert.equal(hex(wordIO(0xd00, 0xffff)), '880d00010c03' + '0000' + '000d' + 'ffff' + '0000' + '00f3');
  const dw = dwordMemory(0xc0000000, 0xdfffffff);
  assert.equal(dw.length, 26);
  assert.equal(hex(dw.subarray(0, 6)), '871700000c01');
  const qw = qwordMemory(0x800000000, 0xfffffffff, 'prefetchable');
  assert.equal(qw.length, 46);
  assert.equal(hex(qw.subarray(0, 6)), '8a2b00000c07');
  assert.equal(Buffer.from(qw).readBigUInt64LE(6 + 32), 0x800000000n); // length field
  assert.equal(hex(interrupt([20], { activeLow: true, shared: true })), '8906000d0114000000');
  assert.throws(() => wordIO(5, 4), /address range/);
});

test('a resource template is a buffer ending with an end tag', () => {
  const rt = resourceTemplate([irqNoFlags([4])]);
  assert.equal(hex(rt), '1108' + '0a05' + '221000' + '7900');
});
