import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { GuestMemory, MiB } from '../kvm/memory.js';
import { allocHost } from '../kvm/vm.js';
import type { Sregs } from '../kvm/vcpu.js';
import { LoaderError, bootRegs, bootSregs, loadLinux, type E820Entry } from './linux.js';
import { CMDLINE_ADDR, GDT_ADDR, INFO_ADDR, PAGE_TABLE_ADDR } from './common.js';
import { HVM_START_MAGIC, MEMMAP_OFFSET, MODLIST_OFFSET } from './pvh.js';

const MEM = 64 * MiB;
const dir = mkdtempSync(join(tmpdir(), 'bhyve-ts-boot-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const E820: E820Entry[] = [
  { addr: 0, size: 0x9fc00, type: 1 },
  { addr: 0x9fc00, size: 0x400, type: 2 },
  { addr: 0xf0000, size: 0x10000, type: 2 },
  { addr: MiB, size: MEM - MiB, type: 1 },
];

function memory(): GuestMemory {
  return new GuestMemory([{ name: 'lowmem', gpa: 0, size: MEM, host: allocHost(MEM, false), readonly: false, devmem: false }]);
}

function file(name: string, data: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

function u32(m: GuestMemory, a: number): number { return m.dataView(a, 4)!.getUint32(0, true); }
function u64(m: GuestMemory, a: number): bigint { return m.dataView(a, 8)!.getBigUint64(0, true); }

interface BzOpts { version?: number; xload?: number; initrdMax?: number; initSize?: number; pmSize?: number }
function bzImage(o: BzOpts = {}): Buffer {
  const setupSects = 2;
  const pmSize = o.pmSize ?? 8192;
  const b = Buffer.alloc((setupSects + 1) * 512 + pmSize);
  b[0x1f1] = setupSects;
  b.writeUInt16LE(0xaa55, 0x1fe);
  b[0x200] = 0xeb; b[0x201] = 0x66; // header ends at 0x268
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(o.version ?? 0x20f, 0x206);
  b[0x211] = 0x01; // LOADED_HIGH
  b.writeUInt32LE(o.initrdMax ?? 0x7fffffff, 0x22c);
  b.writeUInt32LE(0x200000, 0x230);
  b[0x234] = 1;
  b.writeUInt16LE(o.xload ?? 0x1, 0x236);
  b.writeUInt32LE(2047, 0x238);
  b.writeBigUInt64LE(0x1000000n, 0x258);
  b.writeUInt32LE(o.initSize ?? 0x200000, 0x260);
  for (let i = 0; i < pmSize; i++) b[(setupSects + 1) * 512 + i] = (i * 7) & 0xff;
  return b;
}

test('bzImage: kernel, boot_params, e820, initrd, entry', () => {
  const m = memory();
  const initrd = Buffer.alloc(10000, 0x5a);
  const e = loadLinux(m, {
    kernel: file('bz', bzImage()), initrd: file('rd', initrd), cmdline: 'console=ttyS0 quiet', e820: E820, rsdp: 0xf2400, ncpus: 2,
  });
  assert.equal(e.mode, 'long64');
  assert.equal(e.rip, 0x100200n);
  assert.equal(e.rsi, BigInt(INFO_ADDR));
  assert.equal(e.pageTables, PAGE_TABLE_ADDR);
  assert.equal(m.read(MiB + 3, 1)[0], 21);
  const bp = INFO_ADDR;
  assert.equal(m.read(bp + 0x202, 4).toString(), [...Buffer.from('HdrS')].toString());
  assert.equal(m.dataView(bp + 0x206, 2)!.getUint16(0, true), 0x20f);
  assert.equal(m.read(bp + 0x210, 1)[0], 0xff);
  assert.equal(u32(m, bp + 0x228), CMDLINE_ADDR);
  assert.equal(Buffer.from(m.read(CMDLINE_ADDR, 20)).toString('latin1'), 'console=ttyS0 quiet\0');
  const rd = u32(m, bp + 0x218);
  assert.equal(u32(m, bp + 0x21c), initrd.length);
  assert.equal(rd % 4096, 0);
  assert.ok(rd + initrd.length <= MEM && rd + initrd.length > MEM - 8192, `initrd high: 0x${rd.toString(16)}`);
  assert.deepEqual(Buffer.from(m.read(rd, initrd.length)), initrd);
  assert.deepEqual(e.loaded.initrd, { addr: rd, size: initrd.length });
  assert.equal(m.read(bp + 0x1e8, 1)[0], 4);
  E820.forEach((x, i) => {
    const o = bp + 0x2d0 + 20 * i;
    assert.deepEqual([u64(m, o), u64(m, o + 8), u32(m, o + 16)], [BigInt(x.addr), BigInt(x.size), x.type]);
  });
  assert.equal(u64(m, bp + 0x070), 0xf2400n);
  // GDT: 64-bit code at 0x10, flat data at 0x18, busy TSS at 0x20.
  assert.equal(u64(m, GDT_ADDR + 0x10), 0x00af9b000000ffffn);
  assert.equal(u64(m, GDT_ADDR + 0x18), 0x00cf93000000ffffn);
  assert.equal(u64(m, GDT_ADDR + 0x20) >> 40n & 0xffn, 0x8bn);
  // Page tables: 4 GiB identity-mapped with 2 MiB pages.
  const pml4 = PAGE_TABLE_ADDR;
  assert.equal(u64(m, pml4), BigInt(pml4 + 0x1000) | 3n);
  assert.equal(u64(m, pml4 + 8), 0n);
  for (let g = 0; g < 4; g++) assert.equal(u64(m, pml4 + 0x1000 + 8 * g), BigInt(pml4 + 0x2000 + g * 0x1000) | 3n);
  assert.equal(u64(m, pml4 + 0x1000 + 8 * 4), 0n);
  assert.equal(u64(m, pml4 + 0x2000), 0x83n);
  assert.equal(u64(m, pml4 + 0x2000 + 8), 0x200083n);
  assert.equal(u64(m, pml4 + 0x5000 + 511 * 8), 0xffe00083n);
});

test('bzImage: initrd respects initrd_addr_max and avoids the kernel', () => {
  const m = memory();
  const e = loadLinux(m, {
    kernel: file('bz2', bzImage({ initrdMax: 0x11fffff, initSize: 0x300000 })), initrd: file('rd2', Buffer.alloc(0x100000, 1)),
    cmdline: '', e820: E820, ncpus: 1,
  });
  // Below 18 MiB, and clear of [16 MiB, 19 MiB) where the kernel decompresses.
  assert.equal(e.loaded.initrd!.addr, 0x1000000 - 0x100000);
});

test('bzImage: errors name the file', () => {
  const m = memory();
  const run = (kernel: string, extra: object = {}) => () => loadLinux(m, { kernel, cmdline: '', e820: E820, ncpus: 1, ...extra });
  const check = (fn: () => unknown, re: RegExp) => assert.throws(fn, (err: unknown) => err instanceof LoaderError && re.test(err.message));
  check(run(join(dir, 'missing')), /missing: no such file/);
  check(run(file('junk', Buffer.alloc(4096, 0x41))), /junk: not a bzImage or an ELF/);
  check(run(file('old', bzImage({ version: 0x204 }))), /old: boot protocol 2\.04 is too old/);
  check(run(file('no64', bzImage({ xload: 0 }))), /no64: no 64-bit entry point/);
  check(run(file('big', bzImage({ initSize: 0x8000000 }))), /big: kernel needs RAM at 0x1000000-0x9000000/);
  check(run(file('ok', bzImage()), { initrd: file('hugerd', Buffer.alloc(MEM)) }), /hugerd: initrd of \d+ bytes does not fit/);
  check(run(file('ok', bzImage()), { initrd: join(dir, 'nord') }), /initrd .*nord: no such file/);
  check(run(file('ok', bzImage()), { cmdline: 'x'.repeat(3000) }), /command line is 3000 bytes/);
});

/** A minimal ELF64 vmlinux: two PT_LOADs and notes (in a PT_NOTE or only in a section). */
function elf(withNote: boolean, noteInSection = false): Buffer {
  const seg1 = Buffer.alloc(0x1000, 0x11);
  const seg2 = Buffer.alloc(0x800, 0x22);
  const note = (name: string, type: number, desc: Buffer) => {
    const n = Buffer.alloc(12 + ((name.length + 4) & ~3) + ((desc.length + 3) & ~3));
    n.writeUInt32LE(name.length + 1, 0); n.writeUInt32LE(desc.length, 4); n.writeUInt32LE(type, 8);
    n.write(name, 12, 'latin1'); desc.copy(n, 12 + ((name.length + 4) & ~3));
    return n;
  };
  const entry = Buffer.alloc(8); entry.writeBigUInt64LE(0x2000040n);
  const notes = Buffer.concat([note('GNU', 3, Buffer.alloc(20)), note('Xen', 6, Buffer.from('linux\0')), withNote ? note('Xen', 18, entry) : Buffer.alloc(0)]);
  const phnum = noteInSection ? 2 : 3;
  const phoff = 64, dataOff = 0x1000;
  const notesOff = dataOff + seg1.length + seg2.length;
  const shoff = notesOff + notes.length;
  const b = Buffer.alloc(shoff + 2 * 64);
  b.writeUInt32LE(0x464c457f, 0); b[4] = 2; b[5] = 1; b[6] = 1;
  b.writeUInt16LE(2, 0x10); b.writeUInt16LE(62, 0x12); b.writeUInt32LE(1, 0x14);
  b.writeBigUInt64LE(0xffffffff81000000n, 0x18);
  b.writeBigUInt64LE(BigInt(phoff), 0x20); b.writeBigUInt64LE(BigInt(shoff), 0x28);
  b.writeUInt16LE(64, 0x34); b.writeUInt16LE(56, 0x36); b.writeUInt16LE(phnum, 0x38);
  b.writeUInt16LE(64, 0x3a); b.writeUInt16LE(2, 0x3c);
  const ph = (i: number, type: number, off: number, paddr: number, filesz: number, memsz: number) => {
    const o = phoff + i * 56;
    b.writeUInt32LE(type, o); b.writeBigUInt64LE(BigInt(off), o + 8);
    b.writeBigUInt64LE(BigInt(paddr) + 0xffffffff80000000n, o + 16); b.writeBigUInt64LE(BigInt(paddr), o + 24);
    b.writeBigUInt64LE(BigInt(filesz), o + 32); b.writeBigUInt64LE(BigInt(memsz), o + 40);
  };
  ph(0, 1, dataOff, 0x2000000, seg1.length, seg1.length);
  ph(1, 1, dataOff + seg1.length, 0x2400000, seg2.length, 0x3000); // with bss
  if (!noteInSection) ph(2, 4, notesOff, 0, notes.length, notes.length);
  seg1.copy(b, dataOff); seg2.copy(b, dataOff + seg1.length); notes.copy(b, notesOff);
  // Section 1: SHT_NOTE over the notes.
  const sh = shoff + 64;
  b.writeUInt32LE(7, sh + 4); b.writeBigUInt64LE(BigInt(notesOff), sh + 24); b.writeBigUInt64LE(BigInt(notes.length), sh + 32);
  return b;
}

for (const where of ['PT_NOTE', 'SHT_NOTE']) {
  test(`ELF: PVH entry from ${where}, segments, hvm_start_info`, () => {
    const m = memory();
    m.write(0x2400000, Buffer.alloc(0x3000, 0xee)); // stale bytes where the bss goes
    const initrd = Buffer.alloc(5000, 0x77);
    const e = loadLinux(m, {
      kernel: file(`vmlinux-${where}`, elf(true, where === 'SHT_NOTE')), initrd: file('rd3', initrd),
      cmdline: 'console=ttyS0', e820: E820, rsdp: 0xf2400, ncpus: 1,
    });
    assert.equal(e.mode, 'pvh32');
    assert.equal(e.rip, 0x2000040n);
    assert.equal(e.rbx, BigInt(INFO_ADDR));
    assert.equal(e.pageTables, undefined);
    assert.equal(m.read(0x2000fff, 1)[0], 0x11);
    assert.equal(m.read(0x24007ff, 1)[0], 0x22);
    assert.equal(m.read(0x2400800, 1)[0], 0);
    assert.equal(m.read(0x2402fff, 1)[0], 0);
    const si = INFO_ADDR;
    assert.equal(u32(m, si), HVM_START_MAGIC);
    assert.equal(u32(m, si + 4), 1);
    assert.equal(u32(m, si + 12), 1);
    assert.equal(u64(m, si + 16), BigInt(si + MODLIST_OFFSET));
    assert.equal(u64(m, si + 24), BigInt(CMDLINE_ADDR));
    assert.equal(Buffer.from(m.read(CMDLINE_ADDR, 14)).toString('latin1'), 'console=ttyS0\0');
    assert.equal(u64(m, si + 32), 0xf2400n);
    assert.equal(u64(m, si + 40), BigInt(si + MEMMAP_OFFSET));
    assert.equal(u32(m, si + 48), E820.length);
    const rd = Number(u64(m, si + MODLIST_OFFSET));
    assert.equal(u64(m, si + MODLIST_OFFSET + 8), BigInt(initrd.length));
    assert.equal(rd % 4096, 0);
    assert.deepEqual(Buffer.from(m.read(rd, initrd.length)), initrd);
    E820.forEach((x, i) => {
      const o = si + MEMMAP_OFFSET + 24 * i;
      assert.deepEqual([u64(m, o), u64(m, o + 8), u32(m, o + 16)], [BigInt(x.addr), BigInt(x.size), x.type]);
    });
    assert.equal(u64(m, GDT_ADDR + 0x10), 0x00cf9b000000ffffn);
    assert.equal(u64(m, GDT_ADDR + 0x18), 0x00cf93000000ffffn);
  });
}

test('ELF: no PVH note, or not x86-64, is a clear error', () => {
  const m = memory();
  assert.throws(() => loadLinux(m, { kernel: file('nopvh', elf(false)), cmdline: '', e820: E820, ncpus: 1 }),
    (err: unknown) => err instanceof LoaderError && /nopvh: ELF has no PVH entry/.test(err.message));
  const arm = elf(true); arm.writeUInt16LE(183, 0x12);
  assert.throws(() => loadLinux(m, { kernel: file('arm', arm), cmdline: '', e820: E820, ncpus: 1 }), /arm: ELF is not for x86-64/);
  const small = [{ addr: 0, size: 0x1000000, type: 1 }];
  assert.throws(() => loadLinux(m, { kernel: file('v', elf(true)), cmdline: '', e820: small, ncpus: 1 }), /segment 0x2000000-0x2001000 is outside guest RAM/);
});

function blankSregs(): Sregs {
  const seg = { base: 0n, limit: 0xffff, selector: 0, type: 3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 };
  return {
    seg: { cs: seg, ds: seg, es: seg, fs: seg, gs: seg, ss: seg, tr: seg, ldt: seg },
    gdt: { base: 0n, limit: 0xffff }, idt: { base: 0n, limit: 0xffff },
    cr0: 0x60000010n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n, apicBase: 0xfee00900n, raw: Buffer.alloc(312),
  };
}

test('entry registers: long mode and PVH', () => {
  const m = memory();
  const long = loadLinux(m, { kernel: file('bz3', bzImage()), cmdline: '', e820: E820, ncpus: 1 });
  const s = bootSregs(long, blankSregs());
  assert.deepEqual([s.seg.cs.selector, s.seg.cs.l, s.seg.cs.db, s.seg.cs.type], [0x10, 1, 0, 0xb]);
  assert.deepEqual([s.seg.ss.selector, s.seg.ds.db, s.seg.ds.limit, s.seg.ds.g], [0x18, 1, 0xffffffff, 1]);
  assert.deepEqual([s.seg.tr.selector, s.seg.tr.type, s.seg.tr.s], [0x20, 0xb, 0]);
  assert.equal(s.cr0 & 0x80000001n, 0x80000001n);
  assert.equal(s.cr3, BigInt(PAGE_TABLE_ADDR));
  assert.equal(s.cr4, 0x20n);
  assert.equal(s.efer, 0x500n);
  assert.equal(s.gdt.base, BigInt(GDT_ADDR));
  assert.equal(s.apicBase, 0xfee00900n);
  const r = bootRegs(long);
  assert.deepEqual([r.rip, r.rsi, r.rflags], [0x100200n, BigInt(INFO_ADDR), 2n]);

  const pvh = loadLinux(m, { kernel: file('v2', elf(true)), cmdline: '', e820: E820, ncpus: 1 });
  const p = bootSregs(pvh, blankSregs());
  assert.deepEqual([p.seg.cs.l, p.seg.cs.db, p.seg.tr.base, p.seg.tr.limit], [0, 1, 0n, 0x67]);
  assert.deepEqual([p.cr0, p.cr4, p.efer], [0x11n, 0n, 0n]);
  assert.deepEqual([bootRegs(pvh).rbx, bootRegs(pvh).rip], [BigInt(INFO_ADDR), 0x2000040n]);
});

/** A bzImage whose payload is `elfImage` compressed by `compress`, with the kernel build's size trailer. */
function packedBzImage(compressed: Buffer, usize: number, o: { payloadOffset?: number } = {}): Buffer {
  const payload = Buffer.concat([compressed, Buffer.alloc(4)]);
  payload.writeUInt32LE(usize, payload.length - 4);
  const b = bzImage({ pmSize: 0x400 + payload.length });
  const pm = 3 * 512;
  b.writeUInt32LE(o.payloadOffset ?? 0x400, 0x248);
  b.writeUInt32LE(payload.length, 0x24c);
  payload.copy(b, pm + 0x400);
  return b;
}

test('bzImage with boot.unpack: gzip and xz payloads unpack to the ELF, entered through PVH', () => {
  const image = elf(true);
  const xz = execFileSync('xz', ['-c', '--check=crc32', '--x86', '--lzma2=preset=6'], { input: image });
  for (const [name, packed] of [['gzip', gzipSync(image)], ['xz', xz]] as const) {
    const m = memory();
    const path = file(`packed-${name}`, packedBzImage(packed, image.length));
    const e = loadLinux(m, { kernel: path, cmdline: 'console=ttyS0', e820: E820, rsdp: 0xf2400, ncpus: 1, unpack: true });
    assert.equal(e.mode, 'pvh32', name);
    assert.equal(e.rip, 0x2000040n, name);
    assert.equal(m.read(0x2000000, 1)[0], 0x11, `${name}: first PT_LOAD segment in place`);
    // Without unpack the same file goes the 64-bit boot protocol way.
    assert.equal(loadLinux(memory(), { kernel: path, cmdline: '', e820: E820, ncpus: 1 }).mode, 'long64');
  }
});

test("bzImage with unpack 'if-possible': no payload (memtest86+) or one it cannot unpack takes the 64-bit entry", () => {
  const load = (name: string, b: Buffer) =>
    loadLinux(memory(), { kernel: file(name, b), cmdline: '', e820: E820, ncpus: 1, unpack: 'if-possible' });
  assert.equal(load('no-payload', bzImage()).mode, 'long64');
  assert.equal(load('zstd-ok', packedBzImage(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4]), 100)).mode, 'long64');
  const image = elf(true);
  assert.equal(load('gzip-ok', packedBzImage(gzipSync(image), image.length)).mode, 'pvh32');
});

test('bzImage with boot.unpack: bad payloads are clear errors', () => {
  const image = elf(true);
  const gz = gzipSync(image);
  const load = (name: string, b: Buffer) =>
    loadLinux(memory(), { kernel: file(name, b), cmdline: '', e820: E820, ncpus: 1, unpack: true });
  assert.throws(() => load('bad-offset', packedBzImage(gz, image.length, { payloadOffset: 0x7fffffff })), /payload .* lies outside/);
  assert.throws(() => load('bad-size', packedBzImage(gz, image.length + 1)), /unpacked to \d+ bytes, the image says/);
  assert.throws(() => load('huge-size', packedBzImage(gz, 0xffffffff)), /claims \d+ bytes uncompressed/);
  assert.throws(() => load('zstd', packedBzImage(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4]), 100)), /cannot unpack a zstd payload here; set boot\.unpack=false/);
  const corrupt = Buffer.from(gz); corrupt[20] ^= 0xff;
  assert.throws(() => load('corrupt', packedBzImage(corrupt, image.length)), LoaderError);
});
