/**
 * Shared pieces of the end-to-end tests: boot a test guest with the `bhyve`
 * command line on /dev/kvm, bounded by a timeout, and collect what it wrote
 * on COM1 (the VMM's stdout), its stderr and its exit status.
 *
 * Compiled to dist/tests/e2e/harness.js; the repository root is three levels up.
 */
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BHYVE = join(ROOT, 'dist/bundle/bhyve.js');
export const GUEST_DIR = join(ROOT, 'tests/guests');
export const GUEST_OUT = join(GUEST_DIR, 'out');
export const NO_KVM = 'NO /dev/kvm: KVM tests not run';

/** Default bound on one VM run; PVM emulates every guest instruction, so be generous. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** bhyve(8) exit statuses. */
export const Status = { Reset: 0, PowerOff: 1, Halt: 2, TripleFault: 3, Error: 4 } as const;

function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export const HAVE_KVM = kvmUsable();
if (!HAVE_KVM) {
  process.stderr.write(`\n*** ${NO_KVM} ***\n\n`);
}

/** The path of a built ROM guest (tests/guests/out/NAME.bin). */
export function rom(name: string): string {
  return join(GUEST_OUT, `${name}.bin`);
}

/** The path of another built guest artefact (e.g. pvh.elf). */
export function guestFile(file: string): string {
  return join(GUEST_OUT, file);
}

let guestsBuilt = false;

/**
 * Build the guests with make (quick when up to date). Test files run in
 * parallel processes, so a lock directory keeps two makes apart.
 */
export function ensureGuests(): void {
  if (guestsBuilt) return;
  mkdirSync(GUEST_OUT, { recursive: true });
  const lock = join(GUEST_OUT, '.make.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock left by a killed run: break it once it is old.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 120_000) rmdirSync(lock);
      } catch {
        /* gone already */
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  try {
    execFileSync('make', ['-s', '-C', GUEST_DIR], { stdio: ['ignore', 'ignore', 'pipe'] });
  } finally {
    rmdirSync(lock);
  }
  guestsBuilt = true;
}

export interface RunResult {
  /** Exit status, or null when killed by a signal. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The non-empty lines of stdout, without carriage returns. */
  lines: string[];
  timedOut: boolean;
  ms: number;
}

export interface RunOptions {
  timeoutMs?: number;
  /** Extra environment variables for the VMM (e.g. TZ). */
  env?: Record<string, string>;
}

/**
 * Start the bundled `bhyve` with `args` (inside network namespace `netns`
 * when given: `ip netns exec` execs in place, so the child's pid is bhyve's),
 * stdout read as latin1 (COM1 bytes), stderr as UTF-8. Throws when the
 * bundle has not been built.
 */
export function spawnVmm(args: string[], opts: { env?: NodeJS.ProcessEnv; netns?: string } = {}): ChildProcessWithoutNullStreams {
  if (!existsSync(BHYVE)) throw new Error(`${BHYVE} is missing: run npm run build first`);
  const cmd = opts.netns ? ['ip', 'netns', 'exec', opts.netns, process.execPath] : [process.execPath];
  const child = spawn(cmd[0], [...cmd.slice(1), BHYVE, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout.setEncoding('latin1');
  child.stderr.setEncoding('utf8');
  child.stdin.on('error', () => { /* the VMM may exit before reading stdin */ });
  return child;
}

/** Run the VMM with `args`; never rejects (a timeout kills it and sets `timedOut`). */
export function runVmm(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawnVmm(args, opts);
    } catch (e) {
      reject(e);
      return;
    }
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.on('data', (s: string) => {
      stderr += s;
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const lines = stdout
        .split('\n')
        .map((l) => l.replace(/\r$/, ''))
        .filter((l) => l.length > 0);
      resolvePromise({ status, signal, stdout, stderr, lines, timedOut, ms: Date.now() - started });
    });
  });
}

/** Everything about a run, for assertion messages. */
export function describe(r: RunResult): string {
  return [
    `status=${r.status} signal=${r.signal} timedOut=${r.timedOut} ms=${r.ms}`,
    '--- stdout ---',
    r.stdout,
    '--- stderr ---',
    r.stderr,
  ].join('\n');
}

/** The usual machine: hostbridge, LPC with COM1 on stdio, a boot ROM. */
export function romArgs(name: string, extra: string[] = [], slots: string[] = ['-s', '0,hostbridge', '-s', '31,lpc']): string[] {
  return [...slots, '-l', 'com1,stdio', '-l', `bootrom,${rom(name)}`, ...extra, name.replace(/[^A-Za-z0-9]/g, '')];
}

/**
 * Boot a ROM guest: builds the guests if needed; fails the test (with the
 * whole output) if the VMM had to be killed.
 */
export async function boot(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  ensureGuests();
  const r = await runVmm(args, opts);
  if (r.timedOut) {
    throw new Error(`the VMM did not finish within ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms\n${describe(r)}`);
  }
  return r;
}

/** Skip loudly when there is no usable /dev/kvm; returns true when skipped. */
export function skipWithoutKvm(t: TestContext): boolean {
  if (HAVE_KVM) return false;
  t.skip(NO_KVM);
  return true;
}

/** The first line matching `re`, or undefined. */
export function findLine(r: RunResult, re: RegExp): RegExpMatchArray | undefined {
  for (const line of r.lines) {
    const m = line.match(re);
    if (m) return m;
  }
  return undefined;
}

/** Every line matching `re`. */
export function allLines(r: RunResult, re: RegExp): RegExpMatchArray[] {
  const out: RegExpMatchArray[] = [];
  for (const line of r.lines) {
    const m = line.match(re);
    if (m) out.push(m);
  }
  return out;
}

/** Resident bytes of the process's anonymous mappings of exactly `size` bytes (guest RAM), from /proc/PID/smaps. */
export function mappingRssBytes(pid: number, size: number): number {
  let rss = 0, match = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range) { match = parseInt(range[2], 16) - parseInt(range[1], 16) === size; continue; }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r && match) rss += Number(r[1]) * 1024;
  }
  return rss;
}

/** A process's resident set (VmRSS) in bytes. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * `p`, or `late` after `ms`, whichever comes first. The timer is cleared
 * either way: a pending one would keep the test process alive (a 10-minute
 * one after a Linux test once held CI up for that long).
 */
export async function within<T, L>(p: Promise<T>, ms: number, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<L>((r) => { timer = setTimeout(() => r(late), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}
