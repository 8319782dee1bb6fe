import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GuestMemory } from '../../kvm/memory.js';
import { testCtx } from '../pci/pci-test-ctx.js';
import * as F from './fwcfg.js';

const RAM = 1 << 20;

/** A context with 1 MiB of fake guest RAM at 0 and the given items published. */
function setup(items: [number, Uint8Array][]) {
  const ram = new Uint8Array(RAM);
  const t = testCtx();
  const mem = {
    slice: (gpa: number, len: number) => (Number.isSafeInteger(gpa) && gpa >= 0 && len >= 0 && gpa + len <= RAM ? ram.subarray(gpa, gpa + len) : undefined),
  } as unknown as GuestMemory;
  Object.assign(t.ctx, { mem });
  t.ctx.resources.set(F.FWCFG_RESOURCE, { items } satisfies F.FwCfgItems);
  const dev = new F.FwCfg(t.ctx);
  const io = t.ctx.io;
  const select = (key: number) => io.write(F.FW_CFG_PORT_SEL, 2, key);
  const readBytes = (n: number) => Array.from({ length: n }, () => io.read(F.FW_CFG_PORT_DATA, 1)!);
  const dv = new DataView(ram.buffer);
  /** Write an FWCfgDmaAccess at `at` and start it through the DMA register. */
  const dma = (at: number, control: number, length: number, address: number) => {
    dv.setUint32(at, control, false);
    dv.setUint32(at + 4, length, false);
    dv.setBigUint64(at + 8, BigInt(address), false);
    const be = (v: number) => ((v & 0xff) << 24 | (v & 0xff00) << 8 | (v >>> 8) & 0xff00 | v >>> 24) >>> 0;
    io.write(F.FW_CFG_PORT_DMA, 4, be(Math.floor(at / 2 ** 32)));
    io.write(F.FW_CFG_PORT_DMA + 4, 4, be(at % 2 ** 32));
    return dv.getUint32(at, false);
  };
  return { ram, dev, io, select, readBytes, dma };
}

const bytes = (s: string) => new TextEncoder().encode(s);

test('I/O interface: selector, byte reads, 0 past the end and for missing items', () => {
  const { select, readBytes, io } = setup([[F.FW_CFG_SIGNATURE, bytes('QEMU')], [F.FW_CFG_FILE_FIRST, bytes('ab')]]);
  select(F.FW_CFG_SIGNATURE);
  assert.equal(String.fromCharCode(...readBytes(4)), 'QEMU');
  assert.deepEqual(readBytes(2), [0, 0], 'past the end');
  select(F.FW_CFG_FILE_FIRST | F.FW_CFG_WRITE_CHANNEL);
  assert.deepEqual(readBytes(3), [0x61, 0x62, 0], 'the write-channel bit does not change the item');
  select(F.FW_CFG_FILE_FIRST);
  assert.equal(io.read(F.FW_CFG_PORT_SEL, 2), F.FW_CFG_FILE_FIRST);
  io.write(F.FW_CFG_PORT_DATA, 1, 0x55); // ignored
  assert.deepEqual(readBytes(1), [0x61], 'selecting rewinds; data writes are ignored');
  select(0x1234);
  assert.deepEqual(readBytes(2), [0, 0], 'missing item');
  select(F.FW_CFG_ARCH_LOCAL | F.FW_CFG_SIGNATURE);
  assert.deepEqual(readBytes(1), [0], 'the architecture bit selects another item');
});

test('DMA register reads give "QEMU CFG"', () => {
  const { io } = setup([]);
  const sig = [0, 4].flatMap((o) => { const v = io.read(F.FW_CFG_PORT_DMA + o, 4)!; return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24]; });
  assert.equal(String.fromCharCode(...sig), F.FW_CFG_DMA_SIGNATURE);
});

test('DMA: select and read, skip, zero fill past the end, status written back', () => {
  const { ram, dma } = setup([[F.FW_CFG_FILE_FIRST, bytes('0123456789')]]);
  ram.fill(0xee, 0x2000, 0x2020);
  const sel = (F.FW_CFG_FILE_FIRST << 16) | F.FW_CFG_DMA_CTL_SELECT;
  assert.equal(dma(0x1000, sel | F.FW_CFG_DMA_CTL_READ, 4, 0x2000), 0);
  assert.equal(new TextDecoder().decode(ram.subarray(0x2000, 0x2004)), '0123');
  assert.equal(dma(0x1000, F.FW_CFG_DMA_CTL_SKIP, 2, 0), 0);
  assert.equal(dma(0x1000, F.FW_CFG_DMA_CTL_READ, 8, 0x2010), 0);
  assert.deepEqual([...ram.subarray(0x2010, 0x2019)], [...bytes('6789'), 0, 0, 0, 0, 0xee], 'the rest is zero-filled');
  assert.equal(dma(0x1000, 0, 100, 0x2000), 0, 'no operation: nothing happens');
});

test('DMA: writes, and buffers outside guest memory, set the error bit', () => {
  const { ram, dma } = setup([[F.FW_CFG_FILE_FIRST, bytes('data')]]);
  const sel = (F.FW_CFG_FILE_FIRST << 16) | F.FW_CFG_DMA_CTL_SELECT;
  assert.equal(dma(0x1000, sel | F.FW_CFG_DMA_CTL_WRITE, 4, 0x2000), F.FW_CFG_DMA_CTL_ERROR);
  assert.equal(dma(0x1000, sel | F.FW_CFG_DMA_CTL_READ, 4, RAM - 2), F.FW_CFG_DMA_CTL_ERROR, 'crosses the end of RAM');
  assert.deepEqual([...ram.subarray(RAM - 2)], [0x64, 0x61], 'the part inside was written, as a DMA engine would');
  assert.equal(dma(0x1000, sel | F.FW_CFG_DMA_CTL_READ, 0xffffffff, 0x2000), F.FW_CFG_DMA_CTL_ERROR, 'a 4 GiB read runs off RAM');
  assert.equal(dma(0x1000, sel | F.FW_CFG_DMA_CTL_READ, 4, 2 ** 60), F.FW_CFG_DMA_CTL_ERROR, 'an address beyond 2^53');
});

test('DMA: a request block outside guest memory is ignored', () => {
  const { io, ram } = setup([[F.FW_CFG_FILE_FIRST, bytes('data')]]);
  io.write(F.FW_CFG_PORT_DMA, 4, 0x01000000); // high half 1: 4 GiB up
  io.write(F.FW_CFG_PORT_DMA + 4, 4, 0);
  io.write(F.FW_CFG_PORT_DMA + 4, 4, 0xf8ff0f00); // 0xffff8 byte-swapped: straddles the end of RAM
  io.write(F.FW_CFG_PORT_DMA, 2, 0); // wrong size: ignored
  assert.ok(ram.every((b) => b === 0));
});

test('the device reads as empty until the items are published', () => {
  const t = testCtx();
  new F.FwCfg(t.ctx);
  t.ctx.io.write(F.FW_CFG_PORT_SEL, 2, F.FW_CFG_SIGNATURE);
  assert.equal(t.ctx.io.read(F.FW_CFG_PORT_DATA, 1), 0);
});
