/**
 * SeaBIOS -> GRUB -> file on COM1, from each disk model (virtio-blk, AHCI
 * disk, AHCI CD), on bhyve-ts and on QEMU (-M pc) side by side: the same
 * Debian SeaBIOS and the same images (scripts/build-grub-images.sh). Times
 * are from launch to the file's contents appearing on COM1, and to exit
 * (GRUB halts: ACPI power-off), medians of `runs` interleaved runs.
 *
 * Called by bench/run.ts: `await benchSeabiosGrub({ runs, pinCpu })`; runnable
 * alone as `node dist/bench/seabios-grub.js [runs]`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../tests/e2e/harness.js';
import { DISK_MODELS, GRUB_TIMEOUT_MS, bhyveArgs, ensureGrubImages, payload, qemuArgs } from '../tests/e2e/seabios.js';

export interface GrubTiming { toFile: number; toExit: number }
export interface GrubRow { device: string; bhyve: GrubTiming; qemu?: GrubTiming }
export interface GrubBenchOptions {
  /** Runs per side and model (median); default 3. */
  runs?: number;
  /** Host CPU for the vCPU of both sides (bhyve -p 0:N, taskset -c N), as bench/run.ts. */
  pinCpu?: string;
  /** Where result lines go; default console.log. */
  log?: (line: string) => void;
}

/** Launch a VMM; time to the first stdout containing `marker`, and to exit, in ms (NaN when never seen). */
function timeToMarker(cmd: string, args: string[], marker: string): Promise<GrubTiming> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    let toFile = NaN;
    let out = '';
    const p = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
    const killer = setTimeout(() => p.kill('SIGKILL'), GRUB_TIMEOUT_MS);
    p.stdout.setEncoding('latin1');
    p.stdout.on('data', (s: string) => {
      if (!Number.isNaN(toFile)) return;
      out = (out + s).slice(-4096);
      if (out.includes(marker)) toFile = ms();
    });
    p.on('error', reject);
    p.on('exit', () => { clearTimeout(killer); resolve({ toFile, toExit: ms() }); });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const medianTiming = (ts: GrubTiming[]): GrubTiming => ({ toFile: median(ts.map((t) => t.toFile)), toExit: median(ts.map((t) => t.toExit)) });
const fmt = (v: number) => (Number.isNaN(v) ? '   (never)' : `${(v / 1000).toFixed(2).padStart(8)} s`);

export async function benchSeabiosGrub(opts: GrubBenchOptions = {}): Promise<GrubRow[]> {
  const runs = opts.runs ?? 3;
  const log = opts.log ?? ((l: string) => console.log(l));
  ensureGrubImages();
  const marker = payload();
  const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64']).stdout?.toString().trim();
  const bhyve = join(ROOT, 'dist/bundle/bhyve.js');
  const pin = opts.pinCpu;
  log(`# SeaBIOS -> GRUB -> file on COM1 (Debian SeaBIOS and grub-pc-bin, 512 MiB, median of ${runs}${pin ? `, vCPU on host CPU ${pin}` : ''})`);
  const rows: GrubRow[] = [];
  for (const m of DISK_MODELS) {
    const ours: GrubTiming[] = [], ref: GrubTiming[] = [];
    for (let i = 0; i < runs; i++) {
      ours.push(await timeToMarker(process.execPath, [bhyve, ...(pin ? ['-p', `0:${pin}`] : []), ...bhyveArgs(m)], marker));
      if (qemu) ref.push(await timeToMarker(pin ? 'taskset' : qemu, [...(pin ? ['-c', pin, qemu] : []), ...qemuArgs(m)], marker));
    }
    const row: GrubRow = { device: m.device, bhyve: medianTiming(ours), qemu: qemu ? medianTiming(ref) : undefined };
    rows.push(row);
    const ratio = row.qemu ? `   ratio ${(row.bhyve.toFile / row.qemu.toFile).toFixed(2)}x` : '   (qemu-system-x86_64 not installed)';
    log(`seabios-grub ${m.device.padEnd(11)} to file: bhyve-ts ${fmt(row.bhyve.toFile)}   QEMU ${row.qemu ? fmt(row.qemu.toFile) : '      -'}${ratio}`
      + `   (to exit: ${fmt(row.bhyve.toExit)} / ${row.qemu ? fmt(row.qemu.toExit) : '-'})`);
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  benchSeabiosGrub({ runs: Number(process.argv[2] ?? 3) }).catch((e) => { console.error(`bench: ${(e as Error).message}`); process.exit(1); });
}
