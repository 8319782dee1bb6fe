/**
 * virtio-blk throughput, bhyve-ts against QEMU running the same guest
 * (bench/vblk.S): sequential write and read in 128 KiB requests over a
 * 256 MiB raw image, then 4 KiB random reads and writes, QD requests in
 * flight, MSI-X, ioeventfd/irqfd on both sides, after an untimed warm-up.
 * Phases are timed from the guest's COM1 lines; runs alternate between the
 * VMMs and each figure is the median of RUNS runs.
 *
 *   node dist/bench/vblk.js            (or call benchVirtioBlk() from run.ts)
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const OUT = '.cache/bench';
const IMAGE_MB = 256;
const SEQ_LEN = 128 * 1024;
const RAND_COUNT = 20000;
const RUNS = 3;
const PHASES = ['seq-write', 'seq-read', 'rand-read', 'rand-write'] as const;
type Phase = typeof PHASES[number];

export interface BlkFigures { phase: Phase; ours: number; qemu?: number; unit: string }

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
}

function buildGuest(qd: number): string {
  const base = join(OUT, `vblk-qd${qd}`);
  sh('gcc', ['-m32', '-c', '-Wa,--fatal-warnings', '-I', 'tests/guests', `-DQD=${qd}`, `-DSEQ_LEN=${SEQ_LEN}`, `-DRAND_COUNT=${RAND_COUNT}`, 'bench/vblk.S', '-o', `${base}.o`]);
  sh('ld', ['-m', 'elf_i386', '--no-warn-rwx-segments', '-nostdlib', '-T', 'tests/guests/rom.ld', '-o', `${base}.elf`, `${base}.o`]);
  sh('objcopy', ['-O', 'binary', '-j', '.rom', `${base}.elf`, `${base}.bin`]);
  return `${base}.bin`;
}

/** Run a VMM; the ms between each phase's start and end line. */
function timePhases(cmd: string, args: string[]): Promise<Map<Phase, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const starts = new Map<string, bigint>();
    const times = new Map<Phase, number>();
    let buf = '', err = '';
    const killer = setTimeout(() => p.kill('SIGKILL'), 600_000);
    p.stdout.setEncoding('latin1');
    p.stdout.on('data', (s: string) => {
      const now = process.hrtime.bigint();
      buf += s;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const m = /^phase (\S+) (start|end)(?: errors (\d+))?$/.exec(line);
        if (!m) continue;
        if (m[2] === 'start') starts.set(m[1], now);
        else if (m[3] !== '0') err += `${m[1]}: ${m[3]} errors\n`;
        else if ((PHASES as readonly string[]).includes(m[1])) times.set(m[1] as Phase, Number(now - starts.get(m[1])!) / 1e6);
      }
    });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('error', reject);
    p.on('exit', () => {
      clearTimeout(killer);
      if (times.size !== PHASES.length) reject(new Error(`${cmd}: incomplete run\n${err}`));
      else resolve(times);
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Alternate the VMMs run by run (so neither always meets a busier page cache); medians per phase. */
async function medians(cmds: [string, string[]][]): Promise<Map<Phase, number>[]> {
  const runs: Map<Phase, number>[][] = cmds.map(() => []);
  for (let i = 0; i < RUNS; i++) {
    for (const [k, [cmd, args]] of cmds.entries()) runs[k].push(await timePhases(cmd, args));
  }
  return runs.map((rs) => new Map(PHASES.map((ph) => [ph, median(rs.map((r) => r.get(ph)!))])));
}

/** A raw image full of data, on disk (no dirty pages left to write back) and in the page cache. */
function makeImage(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(2 ** 20, 0x5a);
  for (let i = 0; i < IMAGE_MB; i++) writeSync(fd, chunk);
  fsyncSync(fd);
  closeSync(fd);
}

/** MB/s for the sequential phases, thousands of IOPS for the random ones. */
function rate(phase: Phase, ms: number): number {
  return phase.startsWith('seq') ? (IMAGE_MB * 2 ** 20) / 1e6 / (ms / 1000) : RAND_COUNT / (ms / 1000) / 1000;
}

export async function benchVirtioBlk(qd = 8, log: (s: string) => void = console.log): Promise<BlkFigures[]> {
  mkdirSync(OUT, { recursive: true });
  const rom = buildGuest(qd);
  const img = join(OUT, 'vblk.img');
  makeImage(img);
  try {
    const ours: [string, string[]] = ['node', ['dist/bundle/bhyve.js', '-s', '0,hostbridge', '-s', `3,virtio-blk,${img}`, '-s', '31,lpc', '-l', 'com1,stdio', '-l', `bootrom,${rom}`, 'vblkbench']];
    const qemuBin = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64']).stdout?.toString().trim();
    const cmds: [string, string[]][] = [ours];
    if (qemuBin && existsSync(qemuBin)) {
      cmds.push([qemuBin, ['-M', 'pc', '-accel', 'kvm', '-cpu', 'host,-arch-capabilities', '-m', '256M', '-nodefaults', '-no-user-config',
        '-display', 'none', '-serial', 'stdio', '-bios', rom, '-no-reboot', '-device', 'isa-debug-exit,iobase=0x501,iosize=1',
        '-drive', `file=${img},if=none,id=d0,format=raw,cache=writeback,aio=threads`, '-device', 'virtio-blk-pci,drive=d0,addr=3']]);
    }
    const [mine, qemu] = await medians(cmds);
    log(`# virtio-blk throughput (${IMAGE_MB} MiB image in the page cache, QD ${qd}, median of ${RUNS})`);
    const out: BlkFigures[] = [];
    for (const ph of PHASES) {
      const unit = ph.startsWith('seq') ? 'MB/s' : 'kIOPS';
      const o = rate(ph, mine.get(ph)!), q = qemu && rate(ph, qemu.get(ph)!);
      out.push({ phase: ph, ours: o, qemu: q, unit });
      const name = `${ph} ${ph.startsWith('seq') ? '128K' : '4K'}`.padEnd(16);
      log(q === undefined
        ? `${name} bhyve-ts ${o.toFixed(1).padStart(8)} ${unit}   (qemu-system-x86_64 not installed)`
        : `${name} bhyve-ts ${o.toFixed(1).padStart(8)} ${unit}   QEMU ${q.toFixed(1).padStart(8)} ${unit}   ratio ${(o / q).toFixed(2)}x`);
    }
    return out;
  } finally {
    rmSync(img, { force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const qd = Number(process.argv[2] ?? 8);
  benchVirtioBlk(qd).catch((e) => { console.error(`bench: ${(e as Error).message}`); process.exit(1); });
}
