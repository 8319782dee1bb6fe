import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUNDLE_DIR, CACHE_SUFFIX, compileCache, runBundle } from './code-cache.js';

const req = createRequire(import.meta.url);
const KEY = Symbol.for('bhyve-ts.code-cache.test');
const results = () => (globalThis as Record<symbol, unknown[]>)[KEY];

/** A directory laid out like dist/bundle with one bundle, `b`, reporting what it sees. */
function layout(body: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'code-cache-'));
  mkdirSync(join(dir, BUNDLE_DIR));
  const file = join(dir, BUNDLE_DIR, 'b.js');
  writeFileSync(file, body);
  return { dir, file };
}

const report = (v: string) => `(globalThis[Symbol.for('bhyve-ts.code-cache.test')] ??= []).push(${v});`;

test('code cache: a bundle runs with its stub\'s require and URL, with and without a cache', () => {
  const { dir, file } = layout(report("[__bundleUrl, __filename, typeof require('node:path').join, 1 + 1]"));
  try {
    (globalThis as Record<symbol, unknown[]>)[KEY] = [];
    const cold = runBundle(dir, 'b', req);
    assert.equal(cold.cached, false);
    compileCache(file);
    const warm = runBundle(dir, 'b', req);
    assert.equal(warm.cached, true);
    const [first, second] = results() as unknown[][];
    assert.deepEqual(first, second);
    assert.equal(first[0], pathToFileURL(join(dir, 'b.js')).href);
    assert.equal(first[1], join(dir, 'b.js'));
    assert.deepEqual(first.slice(2), ['function', 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('code cache: a cache made for other text of the same length is not used', () => {
  const { dir, file } = layout(report('"A"'));
  try {
    (globalThis as Record<symbol, unknown[]>)[KEY] = [];
    compileCache(file);
    writeFileSync(file, report('"B"'));
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const b = runBundle(dir, 'b', req);
    assert.equal(b.cached, false);
    assert.deepEqual(results(), ['B']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('code cache: save() writes a cache the next run uses; a damaged one is ignored', () => {
  const { dir, file } = layout(`${report('"x"')} function later() { return 42; } later();`);
  try {
    (globalThis as Record<symbol, unknown[]>)[KEY] = [];
    runBundle(dir, 'b', req).save();
    assert.equal(runBundle(dir, 'b', req).cached, true);
    writeFileSync(file + CACHE_SUFFIX, readFileSync(file + CACHE_SUFFIX).subarray(0, 40));
    assert.equal(runBundle(dir, 'b', req).cached, false);
    writeFileSync(file + CACHE_SUFFIX, 'no stamp at all');
    assert.equal(runBundle(dir, 'b', req).cached, false);
    assert.deepEqual(results(), ['x', 'x', 'x', 'x']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('code cache: a missing bundle is a CodeCacheError naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'code-cache-'));
  try {
    assert.throws(() => runBundle(dir, 'nope', req), (e: Error) => e.name === 'CodeCacheError' && e.message.includes('nope.js'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
