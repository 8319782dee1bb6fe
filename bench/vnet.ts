/**
 * virtio-net transmit throughput, bhyve-ts against QEMU running the same
 * guest (bench/vnet.S) on a tap each, in a network namespace made for the
 * run: the guest sends FRAMES frames as fast as the device takes them,
 * 1514-byte frames, then 64 KiB TSO frames (HOST_TSO4: one virtio-net
 * header, segmented on the host). The clock runs from the guest's GO line
 * to its END line; the bytes are what the host kernel counted on the tap
 * (rx_bytes), which must be every frame. Both sides use ioeventfd; QEMU's
 * tap has vhost off (user space on both sides). Median of RUNS runs.
 *
 *   node dist/bench/vnet.js          (or call benchVirtioNet() from run.ts)
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const OUT = '.cache/bench';
const RUNS = 3;
/**
 * Runs of one to two seconds each: shorter ones (500k and 200k frames, about
 * 0.4 s) mostly measured how fast each side warms up (our I/O thread's JIT,
 * the first allocations of the host's network stack), not throughput.
 */
const CASES = [
  { name: '1514-byte frames', frameLen: 1514, frames: 2_000_000 },
  { name: '64 KiB TSO frames', frameLen: 64014, frames: 1_000_000 },
];

export interface NetFigures { name: string; ours: number; qemu?: number; unit: 'Gbit/s' }

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
}

function buildGuest(frameLen: number, frames: number): string {
  const base = join(OUT, `vnet-${frameLen}-${frames}`);
  sh('gcc', ['-m32', '-c', '-Wa,--fatal-warnings', '-I', 'tests/guests', `-DFRAME_LEN=${frameLen}`, `-DFRAMES=${frames}`, 'bench/vnet.S', '-o', `${base}.o`]);
  sh('ld', ['-m', 'elf_i386', '--no-warn-rwx-segments', '-nostdlib', '-T', 'tests/guests/rom.ld', '-o', `${base}.elf`, `${base}.o`]);
  sh('objcopy', ['-O', 'binary', '-j', '.rom', `${base}.elf`, `${base}.bin`]);
  return `${base}.bin`;
}

/** Why the benchmark cannot run here, or undefined. */
function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, taps)';
  try { accessSync('/dev/net/tun', constants.R_OK | constants.W_OK); } catch { return 'no /dev/net/tun'; }
  if (spawnSync('ip', ['-V']).status !== 0) return 'no ip(8)';
  return undefined;
}

class Namespace {
  readonly name = `bhyvets-netbench-${process.pid}`;
  constructor() {
    spawnSync('ip', ['netns', 'del', this.name]);
    execFileSync('ip', ['netns', 'add', this.name]);
    execFileSync('ip', ['netns', 'exec', this.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  }
  tap(ifname: string): void {
    execFileSync('ip', ['-n', this.name, 'tuntap', 'add', 'dev', ifname, 'mode', 'tap', 'vnet_hdr']);
    execFileSync('ip', ['-n', this.name, 'link', 'set', ifname, 'up']);
  }
  rxBytes(ifname: string): number {
    return JSON.parse(execFileSync('ip', ['-n', this.name, '-s', '-j', 'link', 'show', ifname], { encoding: 'utf8' }))[0].stats64.rx.bytes;
  }
  destroy(): void { spawnSync('ip', ['netns', 'del', this.name]); }
}

/** Run a VMM in the namespace; seconds from its GO line to its END line. */
function timeRun(ns: Namespace, cmd: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns.name, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '', err = '', go = 0n, end = 0n;
    const killer = setTimeout(() => p.kill('SIGKILL'), 300_000);
    p.stdout.setEncoding('latin1');
    p.stdout.on('data', (s: string) => {
      const now = process.hrtime.bigint();
      buf += s;
      if (!go && /^GO\r?$/m.test(buf)) go = now;
      if (!end && /^END\r?$/m.test(buf)) end = now;
    });
    p.stderr.on('data', (s: Buffer) => { err += s.toString(); });
    p.on('error', reject);
    p.on('close', () => {
      clearTimeout(killer);
      if (!go || !end) reject(new Error(`${cmd[0]}: no GO/END lines\n${buf}\n${err}`));
      else resolve(Number(end - go) / 1e9);
    });
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function throughput(ns: Namespace, ifname: string, cmd: string[], bytes: number): Promise<number> {
  const before = ns.rxBytes(ifname);
  const s = await timeRun(ns, cmd);
  const got = ns.rxBytes(ifname) - before;
  if (got !== bytes) throw new Error(`${cmd[0]}: the tap counted ${got} bytes, expected ${bytes}`);
  return (bytes * 8) / s / 1e9;
}

export async function benchVirtioNet(log: (s: string) => void = console.log): Promise<NetFigures[]> {
  const why = unavailable();
  if (why) { log(`virtio-net: skipped (${why})`); return []; }
  mkdirSync(OUT, { recursive: true });
  const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64']).stdout?.toString().trim();
  const ns = new Namespace();
  const out: NetFigures[] = [];
  try {
    ns.tap('tapbench0');
    ns.tap('tapbench1');
    log(`# virtio-net transmit, guest-driven (bench/vnet.S), tap in a namespace, median of ${RUNS}`);
    for (const c of CASES) {
      const rom = buildGuest(c.frameLen, c.frames);
      const ours = ['node', 'dist/bundle/bhyve.js', '-s', '0,hostbridge', '-s', '3,virtio-net,tapbench0', '-s', '31,lpc', '-l', 'com1,stdio', '-l', `bootrom,${rom}`, 'netbench'];
      const ref = qemu ? [qemu, '-M', 'pc', '-accel', 'kvm', '-cpu', 'host,-arch-capabilities', '-m', '256M', '-nodefaults', '-no-user-config',
        '-display', 'none', '-serial', 'stdio', '-bios', rom, '-netdev', 'tap,id=n0,ifname=tapbench1,script=no,downscript=no,vhost=off',
        '-device', 'virtio-net-pci,netdev=n0', '-device', 'isa-debug-exit,iobase=0x501,iosize=1', '-no-reboot'] : undefined;
      const per = { ours: [] as number[], qemu: [] as number[] };
      for (let i = 0; i < RUNS; i++) {
        per.ours.push(await throughput(ns, 'tapbench0', ours, c.frames * c.frameLen));
        if (ref) per.qemu.push(await throughput(ns, 'tapbench1', ref, c.frames * c.frameLen));
      }
      const f: NetFigures = { name: `tx ${c.name}`, ours: median(per.ours), qemu: ref ? median(per.qemu) : undefined, unit: 'Gbit/s' };
      out.push(f);
      const q = f.qemu === undefined ? 'QEMU not installed' : `QEMU ${f.qemu.toFixed(2).padStart(7)} Gbit/s   ratio ${(f.ours / f.qemu).toFixed(2)}x`;
      log(`virtio-net ${f.name.padEnd(23)} bhyve-ts ${f.ours.toFixed(2).padStart(7)} Gbit/s   ${q}`);
    }
  } finally {
    ns.destroy();
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchVirtioNet().catch((e) => { console.error(`bench vnet: ${(e as Error).message}`); process.exit(1); });
}
