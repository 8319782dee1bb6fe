import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { MachineContext } from '../vmm/context.js';
import { testCtx } from './pci/pci-test-ctx.js';
import { DEBUGCON_PORT, DEBUGCON_READBACK, DebugCon, prepareDebugCon } from './debugcon.js';

const log = () => join(mkdtempSync(join(tmpdir(), 'debugcon-')), 'log');

/** After the test: close the sink prepareDebugCon opened on `path`, remove its directory. */
const cleanup = (t: TestContext, ctx: MachineContext, path: string) => t.after(() => {
  const fd = ctx.resources.get('debugcon');
  if (typeof fd === 'number') closeSync(fd);
  rmSync(dirname(path), { recursive: true, force: true });
});

test('debug console: bytes to the sink, 0xE9 read back', (t) => {
  const path = log();
  const { ctx } = testCtx({ 'lpc.debugcon': path });
  cleanup(t, ctx, path);
  prepareDebugCon(ctx);
  new DebugCon(ctx);
  for (const c of 'hi\n') ctx.io.write(DEBUGCON_PORT, 1, c.charCodeAt(0));
  assert.equal(ctx.io.read(DEBUGCON_PORT, 1), DEBUGCON_READBACK);
  assert.equal(readFileSync(path, 'utf8'), 'hi\n');
});

test('debug console inside another device\'s range takes only byte accesses of 0x402', (t) => {
  const path = log();
  const { ctx } = testCtx({ 'lpc.debugcon': path });
  cleanup(t, ctx, path);
  const seen: string[] = [];
  ctx.io.register(0x400, 4, {
    read: (off, size) => { seen.push(`r${off}/${size}`); return 0x1234; },
    write: (off, size, v) => { seen.push(`w${off}/${size}=${v.toString(16)}`); },
  }, 'pm1a_evt');
  prepareDebugCon(ctx);
  new DebugCon(ctx);
  ctx.io.write(0x402, 1, 0x41);
  assert.equal(ctx.io.read(0x402, 1), DEBUGCON_READBACK);
  ctx.io.write(0x402, 2, 0x0120);
  assert.equal(ctx.io.read(0x402, 2), 0x1234);
  ctx.io.write(0x400, 1, 0x5);
  assert.deepEqual(seen, ['w2/2=120', 'r2/2', 'w0/1=5']);
  assert.equal(readFileSync(path, 'utf8'), 'A');
  assert.match(ctx.io.owner(0x403)!.name, /pm1a_evt\+debugcon/);
});

test('debug console: an unwritable sink is a start-up error', () => {
  const { ctx } = testCtx({ 'lpc.debugcon': '/nonexistent/dir/log' });
  assert.throws(() => prepareDebugCon(ctx), /lpc.debugcon: cannot open \/nonexistent\/dir\/log \(ENOENT\)/);
});
