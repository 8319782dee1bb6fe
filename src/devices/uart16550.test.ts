import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Uart16550 } from './uart16550.js';
import { testCtx } from './pci/pci-test-ctx.js';

const DATA = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

function setup() {
  const t = testCtx();
  const out: number[] = [];
  const levels: boolean[] = [];
  const uart = new Uart16550(t.ctx, 'com1', (l) => levels.push(l), {
    write: (b) => { if (typeof b === 'number') out.push(b); else out.push(...b); },
  });
  const rd = (r: number): number => uart.read(r, 1);
  const wr = (r: number, v: number): void => uart.write(r, 1, v);
  return { t, uart, out, levels, rd, wr, level: () => levels[levels.length - 1] };
}

test('reset state: divisor 12, no interrupt, transmitter empty, DCD/DSR/CTS up', () => {
  const { rd, wr } = setup();
  assert.equal(rd(IIR), 0x01);
  assert.equal(rd(LSR), 0x60);
  assert.equal(rd(MSR), 0xb0);
  wr(LCR, 0x80);
  assert.equal(rd(DATA), 12);
  assert.equal(rd(IER), 0);
});

test('DLAB selects the divisor latch; clearing it restores RBR/IER', () => {
  const { rd, wr, out } = setup();
  wr(LCR, 0x83);
  wr(DATA, 0x01);
  wr(IER, 0x02);
  assert.equal(rd(DATA), 0x01);
  assert.equal(rd(IER), 0x02);
  assert.deepEqual(out, []);
  wr(LCR, 0x03);
  assert.equal(rd(IER), 0);
  assert.equal(rd(LCR), 0x03);
  wr(DATA, 0x41);
  assert.deepEqual(out, [0x41]);
});

test('IER keeps bits 0-3 only; scratch register reads back (8250 probe)', () => {
  const { rd, wr } = setup();
  wr(IER, 0xff);
  assert.equal(rd(IER), 0x0f);
  wr(IER, 0);
  wr(SCR, 0xa5);
  assert.equal(rd(SCR), 0xa5);
  wr(SCR, 0x5a);
  assert.equal(rd(SCR), 0x5a);
});

test('loopback: MSR reflects MCR (0x1A gives 0x90) and THR loops to RBR', () => {
  const { rd, wr, out } = setup();
  rd(MSR);
  wr(MCR, 0x1a); // LOOP | OUT2 | RTS
  assert.equal(rd(MSR) & 0xf0, 0x90);
  wr(MCR, 0x1f);
  assert.equal(rd(MSR) & 0xf0, 0xf0);
  wr(DATA, 0x55);
  assert.equal(rd(LSR) & 0x01, 0x01);
  assert.equal(rd(DATA), 0x55);
  assert.equal(rd(LSR) & 0x01, 0);
  assert.deepEqual(out, []);
  wr(MCR, 0x00);
  assert.equal(rd(MSR) & 0xf0, 0xb0);
});

test('MSR delta bits are set on change and cleared by reading', () => {
  const { rd, wr } = setup();
  rd(MSR);
  wr(MCR, 0x10); // loopback, all lines low: CTS, DSR, DCD drop
  const m = rd(MSR);
  assert.equal(m & 0x0f, 0x01 | 0x02 | 0x08);
  assert.equal(rd(MSR) & 0x0f, 0);
});

test('FIFO enable shows in IIR; receive fills up to 16 bytes, then refuses', () => {
  const { rd, wr, uart } = setup();
  wr(FCR, 0x01);
  assert.equal(rd(IIR), 0xc1);
  for (let i = 0; i < 16; i++) assert.equal(uart.receive(i), true);
  assert.equal(uart.receive(99), false);
  for (let i = 0; i < 16; i++) assert.equal(rd(DATA), i);
  assert.equal(rd(LSR) & 0x01, 0);
  wr(FCR, 0x00);
  assert.equal(rd(IIR), 0x01);
  assert.equal(uart.receive(1), true);
  assert.equal(uart.receive(2), false, 'without FIFO the holding register has one byte');
});

test('a refused byte asks the main thread to retry when the guest reads', () => {
  const { t, rd, wr, uart } = setup();
  wr(FCR, 0x01);
  for (let i = 0; i < 16; i++) uart.receive(i);
  let retries = 0;
  uart.onRxSpace = () => { retries++; uart.receive(0x77); };
  assert.equal(uart.receive(0x77), false);
  t.runTimers();
  assert.equal(retries, 0);
  rd(DATA);
  t.runTimers();
  assert.equal(retries, 1);
  for (let i = 1; i < 16; i++) rd(DATA);
  assert.equal(rd(DATA), 0x77);
});

test('interrupt priorities: line status > received data > THRE > modem status', () => {
  const { rd, wr, uart, level } = setup();
  wr(MCR, 0x10);
  wr(IER, 0x0f); // all sources; THRE becomes pending at once
  wr(FCR, 0x01);
  for (let i = 0; i < 17; i++) wr(DATA, i); // the 17th overruns the FIFO
  assert.equal(level(), true);
  assert.equal(rd(IIR) & 0x0f, 0x06, 'overrun');
  assert.equal(rd(LSR) & 0x03, 0x03, 'LSR shows data and overrun; reading clears OE');
  assert.equal(rd(IIR) & 0x0f, 0x04, 'data at/over the trigger level');
  for (let i = 0; i < 16; i++) rd(DATA);
  assert.equal(rd(IIR) & 0x0f, 0x02, 'THRE');
  assert.equal(rd(IIR) & 0x0f, 0x00, 'reading IIR cleared THRE; modem status delta left');
  rd(MSR);
  assert.equal(rd(IIR), 0xc1);
  assert.equal(level(), false);
  wr(MCR, 0);
  wr(FCR, 0xc1); // trigger level 14
  uart.receive(0x31);
  assert.equal(rd(IIR) & 0x0f, 0x0c, 'below the trigger level: timeout indication');
  wr(FCR, 0x01); // trigger level 1
  assert.equal(rd(IIR) & 0x0f, 0x04);
});

test('enabling THRE raises it at once; IIR read acknowledges it (8250 THRE test)', () => {
  const { rd, wr, level } = setup();
  wr(IER, 0x02);
  assert.equal(level(), true);
  assert.equal(rd(IIR), 0x02);
  assert.equal(level(), false);
  assert.equal(rd(IIR), 0x01);
  wr(IER, 0);
  wr(IER, 0x02);
  assert.equal(rd(IIR), 0x02);
  wr(DATA, 0x41);
  assert.equal(rd(IIR), 0x02, 'a transmitted byte leaves THR empty again');
});

test('host input is dropped in loopback; 2-byte accesses split into bytes', () => {
  const { rd, wr, uart } = setup();
  wr(MCR, 0x10);
  assert.equal(uart.receive(0x42), true);
  assert.equal(rd(LSR) & 0x01, 0);
  wr(MCR, 0);
  uart.write(LCR, 2, 0x0b03); // LCR=0x03, MCR=0x0b
  assert.equal(uart.read(LCR, 2), 0x0b03);
  assert.equal(rd(8 + 0), 0xff, 'outside the register block');
});
