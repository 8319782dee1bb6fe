import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { prepareTty, TtyInput, ttyWriter, type TtyResource } from './tty.js';
import { testCtx } from '../devices/pci/pci-test-ctx.js';

test('a file back-end is opened once and written from a writer built from the resource', (t) => {
  const { ctx } = testCtx();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tty-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'out');
  fs.writeFileSync(file, '');
  prepareTty(ctx, 'lpc.com1', file);
  const r = ctx.resources.get('tty:lpc.com1') as TtyResource;
  assert.equal(r.isTty, false);
  assert.equal(r.inFd, undefined, 'a plain file is output-only');
  // Another thread sees only the plain record (structured clone) and writes on the same fd.
  const other = testCtx({}, { role: 'vcpu', resources: new Map([['tty:lpc.com1', structuredClone(r)]]) });
  const w = ttyWriter(other.ctx, 'lpc.com1')!;
  w.write(0x68);
  w.write(new TextEncoder().encode('i\n'));
  assert.equal(fs.readFileSync(file, 'utf8'), 'hi\n');
  assert.equal(ttyWriter(ctx, 'lpc.com2'), undefined, 'no back-end: unconnected');
  fs.closeSync(r.outFd);
});

test('open errors are one line naming the path; stdio can be used once', () => {
  const { ctx } = testCtx();
  assert.throws(() => prepareTty(ctx, 'lpc.com1', '/nonexistent/ttyX'), { name: 'TtyError', message: 'cannot open serial back-end /nonexistent/ttyX: ENOENT' });
  prepareTty(ctx, 'lpc.com1', 'stdio');
  assert.throws(() => prepareTty(ctx, 'lpc.com2', 'stdio'), { message: 'stdio is already the back-end of lpc.com1' });
});

test('input is offered byte by byte; refused bytes are held and retried in order', async () => {
  const { ctx } = testCtx();
  const res: TtyResource = { kind: 'tty', path: 'stdio', outFd: 1, inFd: 0, isTty: false };
  const got: number[] = [];
  let room = 2;
  const input = new TtyInput(ctx, res, (b) => { if (room === 0) return false; room--; got.push(b); return true; });
  const src = new PassThrough();
  input.start(src);
  src.write(Buffer.from('abcde'));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(String.fromCharCode(...got), 'ab');
  assert.equal(src.isPaused(), true, 'the stream pauses while bytes are held');
  room = 10;
  ctx.arena.locked(() => input.retry());
  assert.deepEqual(String.fromCharCode(...got), 'abcde');
  assert.equal(src.isPaused(), false);
  src.end();
  await new Promise((r) => setImmediate(r));
  input.stop();
});
