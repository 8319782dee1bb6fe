/**
 * Runs one of the command's bundles (dist/bundle/code/NAME.js, CommonJS,
 * built by scripts/bundle.mjs) through vm.Script with the V8 code cache made
 * at build time (NAME.js.cache). Each thread then deserializes compiled code
 * instead of parsing half a megabyte of JavaScript and compiling every
 * function it calls on the way to the guest. A missing, stale or rejected
 * cache (another Node, other V8 flags) only costs that time back.
 *
 * V8 checks only the length of the source a cache was made from, so a cache
 * file starts with a stamp of its bundle (size and modification time) and is
 * ignored when the bundle no longer matches it.
 *
 * The build makes the caches in training runs (BHYVE_CODE_CACHE_TRAIN set):
 * every thread saves its cache once its work is done, so the cache holds the
 * functions a start-up actually compiles.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';

/** The bundles, in dist/bundle/code/, that the entry stubs run. */
export const BUNDLE_DIR = 'code';
export const CACHE_SUFFIX = '.cache';
/** Set in the build's training runs: the bundles whose caches the run saves. */
export const TRAIN_ENV = 'BHYVE_CODE_CACHE_TRAIN';
const STAMP_TAG = 'bhyve-ts code cache';
const NEWLINE = 0x0a;
const TRAIN_WAIT_MS = 10_000;

export class CodeCacheError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CodeCacheError';
  }
}

export interface LoadedBundle {
  /** The bundle's path. */
  file: string;
  /** Whether V8 used the code cache. */
  cached: boolean;
  /** Write the code cache of everything compiled so far. */
  save(): void;
}

/**
 * The source text a cache belongs to: the bundle wrapped like a CommonJS
 * module, plus the URL its `import.meta.url` stands for (scripts/bundle.mjs
 * defines it as __bundleUrl).
 */
export function wrapBundle(source: string): string {
  return `(function (exports, require, module, __filename, __dirname, __bundleUrl) {${source}\n})`;
}

/** A bundle's text and the stamp its cache must carry. */
function readBundle(file: string): { source: string; stamp: string } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new CodeCacheError(`cannot read ${file}: run npm run build`, { cause: e });
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    return { source: readFileSync(fd, 'utf8'), stamp: `${STAMP_TAG} ${st.size} ${st.mtimeNs}` };
  } finally {
    closeSync(fd);
  }
}

/** The V8 data of `file`'s cache when its stamp is `stamp`. */
function readCache(file: string, stamp: string): Buffer | undefined {
  let raw: Buffer;
  try {
    raw = readFileSync(file + CACHE_SUFFIX);
  } catch {
    return undefined;
  }
  const eol = raw.indexOf(NEWLINE);
  if (eol < 0 || raw.toString('latin1', 0, eol) !== stamp) return undefined;
  return raw.subarray(eol + 1);
}

/** Replace `file`'s cache (atomically: a reader never sees half of one). */
function writeCache(file: string, stamp: string, data: Buffer): void {
  const tmp = `${file}${CACHE_SUFFIX}.${process.pid}.tmp`;
  writeFileSync(tmp, Buffer.concat([Buffer.from(`${stamp}\n`, 'latin1'), data]));
  renameSync(tmp, file + CACHE_SUFFIX);
}

/** Build time: a cache of `file` compiled but not run (its top-level code only). */
export function compileCache(file: string): void {
  const { source, stamp } = readBundle(file);
  writeCache(file, stamp, new Script(wrapBundle(source), { filename: file }).createCachedData());
}

/**
 * Run bundle `name` for the entry stubs in `dir` (dist/bundle), with `req`
 * the calling stub's require. The bundle resolves packages and
 * `import.meta.url` as if it were `dir/NAME.js`, so
 * new URL('./vcpu-worker.js', import.meta.url) names the thread's entry stub.
 */
export function runBundle(dir: string, name: string, req: NodeJS.Require): LoadedBundle {
  const file = join(dir, BUNDLE_DIR, `${name}.js`);
  const { source, stamp } = readBundle(file);
  // A training run starts from nothing: a cache it loaded would end up in the one it saves.
  const cachedData = trainingRun() ? undefined : readCache(file, stamp);
  const script = new Script(wrapBundle(source), { filename: file, cachedData });
  const loaded: LoadedBundle = {
    file,
    cached: cachedData !== undefined && !script.cachedDataRejected,
    save: () => writeCache(file, stamp, script.createCachedData()),
  };
  const entry = join(dir, `${name}.js`);
  const module = { exports: {} };
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  fn.call(module.exports, module.exports, req, module, entry, dir, pathToFileURL(entry).href);
  return loaded;
}

/** In a training run, the names of the bundles whose caches it saves; otherwise undefined. */
export function trainingRun(): string[] | undefined {
  const v = process.env[TRAIN_ENV];
  return v === undefined ? undefined : v.split(',').filter(Boolean);
}

/**
 * Training run, main thread: on exit, save the main bundle's cache if asked
 * to, then wait (bounded) until the thread bundles asked for have saved
 * theirs (a thread saves when its work ends: see thread-launch.ts).
 */
export function saveOnExit(dir: string, main: LoadedBundle, mainName: string, names: string[]): void {
  const threadCache = (n: string) => join(dir, BUNDLE_DIR, `${n}.js${CACHE_SUFFIX}`);
  const threads = names.filter((n) => n !== mainName);
  for (const n of threads) rmSync(threadCache(n), { force: true });
  const exit = process.exit.bind(process);
  process.exit = ((code?: number) => {
    if (names.includes(mainName)) main.save();
    const pending = new Set(threads);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const deadline = Date.now() + TRAIN_WAIT_MS;
    while (pending.size && Date.now() < deadline) {
      for (const n of pending) if (existsSync(threadCache(n))) pending.delete(n);
      if (pending.size) Atomics.wait(nap, 0, 0, 10);
    }
    if (pending.size) process.stderr.write(`bhyve: code cache training: no cache from ${[...pending].join(', ')}\n`);
    return exit(code);
  }) as typeof process.exit;
}
