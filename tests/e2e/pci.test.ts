/**
 * PCI bus 0 as the guest sees it through 0xCF8/0xCFC, cross-checked through
 * ECAM at 0xE0000000: the devices match the -s slots, BARs are sized and
 * assigned without overlap, multi-function slots are flagged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boot, describe, romArgs, skipWithoutKvm, Status, type RunResult } from './harness.js';

interface Bar {
  index: number;
  kind: 'io' | 'mem32' | 'mem64';
  addr: bigint;
  size: bigint;
}

interface Func {
  bdf: string;
  vendor: string;
  device: string;
  cls: string;
  hdr: number;
  bars: Bar[];
}

const FUNC_RE = /^PCI 00:([0-9a-f]{2})\.([0-7]) ([0-9a-f]{4}):([0-9a-f]{4}) class ([0-9a-f]{6}) hdr ([0-9a-f]{2})$/;
const BAR_RE = /^ {2}BAR([0-5]) (io|mem32|mem64) addr ([0-9a-f]+) size ([0-9a-f]+)( pref)?$/;

function parse(r: RunResult): Map<string, Func> {
  const funcs = new Map<string, Func>();
  let cur: Func | undefined;
  for (const line of r.lines) {
    const f = line.match(FUNC_RE);
    if (f) {
      cur = { bdf: `${f[1]}.${f[2]}`, vendor: f[3], device: f[4], cls: f[5], hdr: parseInt(f[6], 16), bars: [] };
      funcs.set(cur.bdf, cur);
      continue;
    }
    const b = line.match(BAR_RE);
    if (b) {
      assert.ok(cur, `BAR line before any function: ${line}`);
      cur.bars.push({ index: Number(b[1]), kind: b[2] as Bar['kind'], addr: BigInt(`0x${b[3]}`), size: BigInt(`0x${b[4]}`) });
    }
  }
  return funcs;
}

test('pci: enumeration matches the -s slots, BARs sized and assigned, ECAM agrees', async (t) => {
  if (skipWithoutKvm(t)) return;
  const slots = ['-s', '0,hostbridge', '-s', '3,uart', '-s', '4:0,uart', '-s', '4:2,uart', '-s', '0:5:0,uart', '-s', '31,lpc'];
  const r = await boot(romArgs('pci', [], slots));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.equal(r.lines.at(-1), 'DONE', why);

  const funcs = parse(r);
  assert.deepEqual([...funcs.keys()].sort(), ['00.0', '03.0', '04.0', '04.2', '05.0', '1f.0'], why);
  assert.ok(r.lines.includes('PCI functions 6'), why);

  const hb = funcs.get('00.0')!;
  assert.equal(`${hb.vendor}:${hb.device}`, '1275:1275', why);
  assert.equal(hb.cls, '060000', why);

  const lpc = funcs.get('1f.0')!;
  assert.equal(`${lpc.vendor}:${lpc.device}`, '8086:7000', why);
  assert.equal(lpc.cls.slice(0, 4), '0601', `LPC is an ISA bridge\n${why}`);

  for (const bdf of ['03.0', '04.0', '04.2', '05.0']) {
    const u = funcs.get(bdf)!;
    assert.equal(`${u.vendor}:${u.device}`, '131f:2000', `${bdf}\n${why}`);
    assert.equal(u.cls.slice(0, 4), '0700', `${bdf} is a serial controller\n${why}`);
    const io = u.bars.find((b) => b.kind === 'io');
    assert.ok(io, `${bdf} has an I/O BAR\n${why}`);
    assert.equal(io.size, 8n, `${bdf} I/O BAR is 8 ports\n${why}`);
    assert.ok(io.addr !== 0n && io.addr % io.size === 0n, `${bdf} I/O BAR assigned and aligned\n${why}`);
  }

  // Multi-function: slot 4 has functions 0 and 2, so function 0 says so.
  assert.ok(funcs.get('04.0')!.hdr & 0x80, `00:04.0 header type has the multi-function bit\n${why}`);
  assert.equal(funcs.get('03.0')!.hdr & 0x80, 0, `00:03.0 is single-function\n${why}`);

  // No two BARs of the same space overlap; memory BARs are naturally aligned.
  const all = [...funcs.values()].flatMap((f) => f.bars.map((b) => ({ ...b, bdf: f.bdf })));
  for (const b of all) {
    assert.ok(b.size > 0n && (b.size & (b.size - 1n)) === 0n, `BAR size is a power of two: ${JSON.stringify(b, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
    if (b.kind !== 'io') assert.equal(b.addr % b.size, 0n, `${b.bdf} BAR${b.index} aligned\n${why}`);
  }
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const a = all[i];
      const b = all[j];
      if ((a.kind === 'io') !== (b.kind === 'io')) continue;
      const overlap = a.addr < b.addr + b.size && b.addr < a.addr + a.size;
      assert.ok(!overlap, `${a.bdf} BAR${a.index} overlaps ${b.bdf} BAR${b.index}\n${why}`);
    }
  }

  assert.ok(r.lines.includes('ECAM agree'), `ECAM and 0xCF8/0xCFC show the same configuration space\n${why}`);
  assert.ok(r.lines.includes('ECAM rw ok'), `a write through one mechanism is seen through the other\n${why}`);
});

test('pci: amd_hostbridge has an AMD vendor id', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('pci', [], ['-s', '0,amd_hostbridge', '-s', '31,lpc']));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  const funcs = parse(r);
  assert.deepEqual([...funcs.keys()].sort(), ['00.0', '1f.0'], why);
  assert.equal(funcs.get('00.0')!.vendor, '1022', why);
  assert.equal(funcs.get('00.0')!.cls, '060000', why);
  assert.ok(r.lines.includes('ECAM agree'), why);
});
