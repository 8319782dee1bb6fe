import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XzError, crc32, isXz, xzDecompress } from './xz.js';

// The kernel fetched for the boot tests: .cache/kernel/{vmlinuz,vmlinux} at the repository root.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const KERNEL_DIR = resolve(ROOT, '.cache/kernel');

/** Compresses with the machine's xz CLI. */
function xz(input: Uint8Array, ...args: string[]): Buffer {
  return execFileSync('xz', ['-c', '-z', ...args], { input, maxBuffer: 1 << 30 });
}

/** Deterministic pseudo-random bytes (xorshift32). */
function randomBytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x;
  }
  return b;
}

/** Compressible but not trivially so: words picked pseudo-randomly. */
function wordSalad(n: number, seed = 7): Buffer {
  const words = ['kernel', 'virtio', 'queue', 'page', 'table', 'interrupt', 'the', 'a', 'of', 'bhyve', 'vcpu', 'memory',
    'device', 'register', 'mmio', 'port', 'boot', 'loader', 'e820', 'firmware', 'ACPI', 'lapic', 'ioapic', 'timer'];
  const r = randomBytes(n, seed);
  const parts: string[] = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const w = words[r[i % n] % words.length] + (r[(i + 1) % n] % 7 === 0 ? '.\n' : ' ');
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

const TEXT = Buffer.from('All work and no play makes Jack a dull boy. '.repeat(30000));
const RANDOM = randomBytes(200_000, 3);
const MIX = Buffer.concat([randomBytes(100_000, 5), wordSalad(600_000), randomBytes(80_000, 9), wordSalad(300_000, 11),
  Buffer.alloc(100_000), TEXT.subarray(0, 50_000)]);
// LZMA chunks, then uncompressed chunks without a dictionary reset, then an LZMA chunk again (with a state reset).
const CHUNKY = Buffer.concat([TEXT.subarray(0, 100_000), randomBytes(300_000, 13), wordSalad(200_000, 17)]);

function roundTrip(input: Uint8Array, ...args: string[]): void {
  const out = xzDecompress(xz(input, ...args));
  assert.equal(out.length, input.length);
  assert.ok(Buffer.from(out.buffer, out.byteOffset, out.length).equals(input), `xz ${args.join(' ')}: output differs`);
}

function readHead(path: string, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/** The LZMA2 control bytes of the first block (reset levels only for LZMA chunks). */
function chunkControls(file: Buffer): Set<number> {
  let pos = 12 + (file[12] + 1) * 4;
  const seen = new Set<number>();
  for (;;) {
    const c = file[pos++];
    if (c === 0) return seen;
    if (c < 0x80) {
      seen.add(c);
      pos += 2 + ((file[pos] << 8) | file[pos + 1]) + 1;
    } else {
      seen.add(c & 0xe0);
      pos += 4 + (c >= 0xc0 ? 1 : 0) + ((file[pos + 2] << 8) | file[pos + 3]) + 1;
    }
  }
}

/** Returns a copy of `file` with f applied, then the CRC32 at crcPos recomputed over [from, crcPos). */
function patch(file: Buffer, f: (b: Buffer) => void, from?: number, crcPos?: number): Buffer {
  const b = Buffer.from(file);
  f(b);
  if (from !== undefined && crcPos !== undefined) b.writeUInt32LE(crc32(b, from, crcPos), crcPos);
  return b;
}

function rejects(data: Uint8Array, message?: RegExp, opts?: { maxOutput?: number }): void {
  assert.throws(() => xzDecompress(data, opts), (e: unknown) => {
    assert.ok(e instanceof XzError, `expected XzError, got ${String(e)}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** Offset of the index: the footer's backward size counts it. */
function indexStart(file: Buffer): number {
  return file.length - 12 - (file.readUInt32LE(file.length - 8) + 1) * 4;
}

test('isXz recognises the magic', () => {
  assert.equal(isXz(xz(Buffer.from('x'))), true);
  assert.equal(isXz(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a])), false);
  assert.equal(isXz(Buffer.from('\x1f\x8b\x08\x00\x00\x00')), false);
});

test('decodes empty, tiny, random, repetitive and mixed input', () => {
  roundTrip(Buffer.alloc(0));
  roundTrip(Buffer.from([0x42]));
  roundTrip(RANDOM);
  roundTrip(TEXT);
  roundTrip(MIX);
  roundTrip(CHUNKY);
  roundTrip(wordSalad(3 << 20), '-1');
});

test('covers every LZMA2 chunk type', () => {
  const seen = new Set([MIX, TEXT, RANDOM, CHUNKY, wordSalad(1 << 20)].flatMap((d) => [...chunkControls(xz(d))]));
  for (const c of [0x01, 0x02, 0x80, 0xa0, 0xc0, 0xe0]) assert.ok(seen.has(c), `no chunk with control 0x${c.toString(16)}`);
});

test('decodes every check type', () => {
  for (const check of ['none', 'crc32', 'crc64', 'sha256']) {
    roundTrip(MIX, `--check=${check}`);
    roundTrip(Buffer.alloc(0), `--check=${check}`);
  }
});

test('decodes the x86 BCJ filter on an x86 binary', (t) => {
  const elf = readHead(process.execPath, 3 << 20);
  if (elf.readUInt32BE(0) !== 0x7f454c46) {
    t.skip(`${process.execPath} is not an ELF binary`);
    return;
  }
  roundTrip(elf, '--x86', '--lzma2=dict=8MiB');
  roundTrip(elf.subarray(0, 1 << 20), '--check=crc32', '--x86=start=1234567', '--lzma2=dict=1MiB');
  roundTrip(elf.subarray(0, 300_000), '--x86', '--lzma2', '--block-size=64KiB');
  roundTrip(Buffer.from([0xe8, 0, 0, 0]), '--x86', '--lzma2'); // shorter than one instruction
});

test('decodes the Delta filter', () => {
  const samples = Buffer.alloc(400_000);
  for (let i = 0; i < samples.length; i += 4) samples.writeInt32LE(Math.round(1e6 * Math.sin(i / 5000)), i);
  roundTrip(samples, '--delta=dist=4', '--lzma2');
  roundTrip(MIX, '--delta=dist=256', '--x86', '--lzma2=preset=1');
});

test('decodes other lc/lp/pb and dictionary settings', () => {
  roundTrip(MIX, '--lzma2=lc=4,lp=0,pb=0');
  roundTrip(MIX, '--lzma2=lc=0,lp=2,pb=2');
  roundTrip(MIX, '--lzma2=lc=1,lp=3,pb=4');
  roundTrip(MIX, '--lzma2=preset=6,dict=4KiB');
});

test('decodes multiple blocks, with and without sizes in the block headers', () => {
  roundTrip(MIX, '--block-size=64KiB');
  const threaded = xz(MIX, '-T2', '--block-size=64KiB');
  assert.equal(threaded[13] & 0xc0, 0xc0, 'expected compressed and uncompressed sizes in the block header');
  assert.ok(Buffer.from(xzDecompress(threaded)).equals(MIX));
});

test('decodes concatenated streams and stream padding', () => {
  const a = Buffer.from('first stream\n');
  const b = wordSalad(70_000);
  const both = Buffer.concat([a, b]);
  const same = (data: Uint8Array, want: Uint8Array) => assert.ok(Buffer.from(xzDecompress(data)).equals(want));
  same(Buffer.concat([xz(a), xz(b, '--check=sha256')]), both);
  same(Buffer.concat([xz(a), Buffer.alloc(4), xz(b)]), both);
  same(Buffer.concat([xz(a), Buffer.alloc(12), xz(b), Buffer.alloc(8)]), both);
  same(Buffer.concat([xz(Buffer.alloc(0)), xz(a)]), a);
  rejects(Buffer.concat([xz(a), Buffer.alloc(3), xz(b)]), /stream padding/);
  rejects(Buffer.concat([xz(a), Buffer.alloc(2)]), /stream padding/);
  rejects(Buffer.concat([xz(a), Buffer.from('junk after the stream')]), /magic/);
});

test('rejects truncated input', () => {
  const file = xz(MIX, '--block-size=256KiB');
  for (const cut of [0, 3, 6, 11, 12, 13, 20, 100, file.length >> 2, file.length >> 1, indexStart(file) - 1,
    indexStart(file), indexStart(file) + 2, file.length - 12, file.length - 5, file.length - 1]) {
    rejects(file.subarray(0, cut));
  }
  const small = xz(Buffer.from('hello, hello, hello'));
  for (let cut = 0; cut < small.length; cut++) rejects(small.subarray(0, cut));
});

test('rejects corruption in the header, block data, check and index', () => {
  const file = xz(RANDOM, '--check=crc32');
  rejects(patch(file, (b) => { b[0] ^= 1; }), /magic/);
  rejects(patch(file, (b) => { b[7] ^= 1; }), /stream header CRC32/);
  rejects(patch(file, (b) => { b[14] ^= 0x40; }), /block header CRC32/);
  rejects(patch(file, (b) => { b[5000] ^= 0x10; }), /CRC32 mismatch/); // inside an uncompressed chunk
  rejects(patch(file, (b) => { b[indexStart(file) - 2] ^= 1; }), /CRC32 mismatch/); // the check itself
  rejects(patch(file, (b) => { b[indexStart(file) + 2] ^= 1; }), /index CRC32/);
  rejects(patch(file, (b) => { b[file.length - 6] ^= 1; }), /footer CRC32/);
  for (const check of ['crc64', 'sha256']) {
    const other = xz(RANDOM, `--check=${check}`);
    rejects(patch(other, (b) => { b[5000] ^= 0x10; }), check === 'crc64' ? /CRC64 mismatch/ : /SHA-256 mismatch/);
  }
  const text = xz(TEXT);
  rejects(patch(text, (b) => { b[text.length >> 1] ^= 0x20; })); // inside LZMA data
});

test('rejects an index that does not match the blocks', () => {
  const file = xz(Buffer.from('x'));
  const idx = indexStart(file); // 00, count 01, unpadded size, uncompressed size 01, padding, CRC32
  assert.deepEqual([file[idx], file[idx + 1], file[idx + 3]], [0, 1, 1]);
  rejects(patch(file, (b) => { b[idx + 3] = 2; }, idx, idx + 4), /uncompressed size/);
  rejects(patch(file, (b) => { b[idx + 2] += 4; }, idx, idx + 4), /unpadded size/);
  rejects(patch(file, (b) => { b[idx + 1] = 0; b[idx + 2] = 0; b[idx + 3] = 0; }, idx, idx + 4), /count/);
});

test('rejects output beyond maxOutput', () => {
  const file = xz(TEXT);
  assert.equal(xzDecompress(file, { maxOutput: TEXT.length }).length, TEXT.length);
  rejects(file, /maxOutput/, { maxOutput: TEXT.length - 1 });
  rejects(file, /maxOutput/, { maxOutput: 0 });
  // Without a readable index (broken footer magic) the limit is enforced while decoding.
  rejects(patch(file, (b) => { b[b.length - 1] = 0; }), /maxOutput/, { maxOutput: 100_000 });
  const threaded = xz(MIX, '-T2', '--block-size=64KiB');
  rejects(patch(threaded, (b) => { b[b.length - 1] = 0; }), /maxOutput/, { maxOutput: 100_000 });
});

test('rejects unsupported filters and bad filter properties', () => {
  rejects(xz(Buffer.from('thumb code'), '--armthumb', '--lzma2'), /unsupported filter 0x8 \(ARM-Thumb\)/);
  const file = xz(Buffer.from('some data, some data'), '--x86', '--lzma2');
  const headerEnd = 12 + (file[12] + 1) * 4 - 4;
  assert.equal(file[14], 0x04); // block header: size, flags, then the x86 filter id
  rejects(patch(file, (b) => { b[14] = 0x7f; }, 12, headerEnd), /unsupported filter 0x7f/);
  rejects(patch(file, (b) => { b[14] = 0x21; }, 12, headerEnd), /LZMA2 must be the last filter/);
  const plain = xz(Buffer.from('some data, some data'));
  const dictProp = 12 + 4; // size, flags, filter id 0x21, props size 1, dictionary size
  assert.equal(plain[dictProp - 2], 0x21);
  rejects(patch(plain, (b) => { b[dictProp] = 41; }, 12, 12 + (plain[12] + 1) * 4 - 4), /dictionary size/);
  const propsByte = 12 + (plain[12] + 1) * 4 + 5; // chunk control, 4 size bytes, then lc/lp/pb
  assert.equal(plain[propsByte - 5], 0xe0);
  rejects(patch(plain, (b) => { b[propsByte] = (2 * 5 + 1) * 9 + 4; }), /lc \+ lp/);
  rejects(patch(plain, (b) => { b[propsByte] = 225; }), /properties byte/);
});

test('survives byte flips without crashing', () => {
  const file = xz(wordSalad(20_000), '--check=crc32');
  const want = xzDecompress(file);
  const r = randomBytes(600, 21);
  for (let i = 0; i < 300; i++) {
    const pos = ((r[2 * i] << 8) | r[2 * i + 1]) % file.length;
    const bad = patch(file, (b) => { b[pos] ^= 1 << (r[i] & 7); });
    try {
      assert.deepEqual(xzDecompress(bad), want);
    } catch (e) {
      assert.ok(e instanceof XzError, `flip at ${pos}: ${String(e)}`);
    }
  }
});

test('decompresses the kernel bzImage payload', (t) => {
  const vmlinuz = `${KERNEL_DIR}/vmlinuz`;
  const vmlinux = `${KERNEL_DIR}/vmlinux`;
  if (!existsSync(vmlinuz) || !existsSync(vmlinux)) {
    t.skip(`${vmlinuz} or ${vmlinux} not found (fetch a kernel first)`);
    return;
  }
  const image = readFileSync(vmlinuz);
  const setupSects = image[0x1f1] || 4;
  const pm = (setupSects + 1) * 512;
  const offset = image.readUInt32LE(0x248);
  const length = image.readUInt32LE(0x24c);
  const payload = image.subarray(pm + offset, pm + offset + length);
  if (!isXz(payload)) {
    t.skip(`${vmlinuz} payload is not xz-compressed`);
    return;
  }
  const size = payload.readUInt32LE(payload.length - 4); // appended by the kernel build
  const start = process.hrtime.bigint();
  const out = xzDecompress(payload.subarray(0, payload.length - 4));
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.diagnostic(`decoded ${payload.length} -> ${out.length} bytes in ${ms.toFixed(0)} ms`);
  assert.equal(out.length, size);
  assert.ok(Buffer.from(out.buffer, out.byteOffset, out.length).equals(readFileSync(vmlinux)), 'differs from vmlinux');
});
