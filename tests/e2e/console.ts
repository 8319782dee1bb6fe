/**
 * For end-to-end tests of guests that never power off by themselves (UEFI's
 * shell, memtest86+): run the VMM until what it wrote on COM1 satisfies a
 * predicate, then kill it; and a small VT100 screen that replays the cursor
 * addressing such guests use on a serial console, so a test can read rows
 * the way a user sees them instead of matching escape sequences.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawnVmm } from './harness.js';

export interface WatchResult {
  /** True when `until` held before the timeout or the VMM's exit. */
  matched: boolean;
  /** Exit status when the VMM exited by itself, else null (it was killed). */
  status: number | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from launch to the match (or to the end). */
  ms: number;
}

export interface WatchOptions {
  timeoutMs: number;
  env?: Record<string, string>;
  /**
   * Called with everything written so far on COM1 after each chunk; true ends
   * the run. `send` types into COM1 (the VMM's stdin).
   */
  until: (stdout: string, send: (text: string) => void) => boolean;
}

/** Run the VMM until `until` holds, it exits, or the timeout passes; never rejects for guest reasons. */
export function watchVmm(args: string[], opts: WatchOptions): Promise<WatchResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawnVmm(args, opts);
    } catch (e) {
      reject(e);
      return;
    }
    let stdout = '';
    let stderr = '';
    let matched = false;
    let ms = 0;
    const stop = (): void => {
      if (!ms) ms = Date.now() - started;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(stop, opts.timeoutMs);
    const send = (text: string): void => { child.stdin.write(text, 'latin1'); };
    child.stdout.on('data', (s: string) => {
      stdout += s;
      if (!matched && opts.until(stdout, send)) {
        matched = true;
        stop();
      }
    });
    child.stderr.on('data', (s: string) => { stderr += s; });
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ matched, status: matched ? null : status, stdout, stderr, ms: ms || Date.now() - started });
    });
  });
}

/** Everything about a watched run, for assertion messages. */
export function describeWatch(r: WatchResult, screen?: Screen): string {
  return [
    `matched=${r.matched} status=${r.status} ms=${r.ms}`,
    ...(screen ? ['--- screen ---', screen.text()] : []),
    '--- stdout (escapes shown as ^[) ---',
    r.stdout.replace(/\x1b/g, '^[').slice(-6000),
    '--- stderr ---',
    r.stderr.slice(-4000),
  ].join('\n');
}

const ESC = '\x1b';

/**
 * An 80x25 (by default) character screen fed with VT100 output: CSI cursor
 * positioning (H, f), erase display (2J), CR/LF/BS; attributes and modes
 * (m, h, l) are parsed and ignored. Text past the last column wraps.
 */
export class Screen {
  private readonly cells: string[][];
  private row = 0;
  private col = 0;
  private pending = '';

  constructor(readonly cols = 80, readonly rows = 25) {
    this.cells = Array.from({ length: rows }, () => new Array<string>(cols).fill(' '));
  }

  /** Feed more output (an escape sequence may be split across calls). */
  feed(data: string): this {
    const s = this.pending + data;
    this.pending = '';
    let i = 0;
    while (i < s.length) {
      const c = s[i];
      if (c === ESC) {
        const m = /^\x1b\[([?=]?)([0-9;]*)([A-Za-z])/.exec(s.slice(i, i + 32));
        if (!m) {
          if (s.length - i < 32 && /^\x1b(\[[?=]?[0-9;]*)?$/.test(s.slice(i))) { this.pending = s.slice(i); return this; }
          i++; // a lone or unknown escape: drop it
          continue;
        }
        this.csi(m[1], m[2], m[3]);
        i += m[0].length;
        continue;
      }
      if (c === '\r') this.col = 0;
      else if (c === '\n') this.lineFeed();
      else if (c === '\b') this.col = Math.max(0, this.col - 1);
      else if (c >= ' ') this.put(c);
      i++;
    }
    return this;
  }

  /** Row `n` (0-based), trailing blanks removed. */
  line(n: number): string {
    return (this.cells[n] ?? []).join('').trimEnd();
  }

  /** The whole screen, one line per row. */
  text(): string {
    return this.cells.map((_, n) => this.line(n)).join('\n');
  }

  private csi(mode: string, params: string, final: string): void {
    const nums = params.split(';').map((p) => (p === '' ? 0 : Number(p)));
    if (mode) return; // ?25l, =3h and the like: modes only
    switch (final) {
      case 'H':
      case 'f':
        this.row = clamp((nums[0] || 1) - 1, this.rows);
        this.col = clamp((nums[1] || 1) - 1, this.cols);
        break;
      case 'J':
        if (nums[0] === 2) for (const r of this.cells) r.fill(' ');
        break;
      case 'K':
        for (let c = this.col; c < this.cols; c++) this.cells[this.row][c] = ' ';
        break;
      default:
        break; // m (attributes) and anything else
    }
  }

  private put(ch: string): void {
    if (this.col >= this.cols) { this.col = 0; this.lineFeed(); }
    this.cells[this.row][this.col++] = ch;
  }

  private lineFeed(): void {
    if (this.row < this.rows - 1) { this.row++; return; }
    this.cells.shift();
    this.cells.push(new Array<string>(this.cols).fill(' '));
  }
}

const clamp = (n: number, max: number): number => Math.max(0, Math.min(max - 1, n));

