/**
 * Network namespaces for the network tests: each test makes its own
 * (`ip netns add`), with IPv6 off so the only traffic is what the test and
 * its guest send, and runs the VMM (and any host-side helper) inside it with
 * `ip netns exec`. Addresses are 10.0.2.0/24 inside the namespace only.
 *
 * A VMM started here streams its COM1 lines as they come (a test can answer
 * on stdin) and exposes its pid (ip netns exec execs in place).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { ensureGuests, spawnVmm, type RunResult } from './harness.js';

export const HOST_IP = '10.0.2.1';
export const GUEST_IP = '10.0.2.15';
export const PREFIX = 24;

/** Why network tests cannot run here, or undefined when they can. */
export function netUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespace tests need root';
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    return 'no usable /dev/net/tun';
  }
  if (spawnSync('ip', ['-V']).status !== 0) return 'no ip(8) (iproute2)';
  return undefined;
}

export class NetNs {
  private constructor(readonly name: string) {}

  /** A fresh namespace (a leftover one of the same name is replaced). */
  static create(tag: string): NetNs {
    const name = `bhyvets-${tag}-${process.pid}`;
    spawnSync('ip', ['netns', 'del', name]);
    execFileSync('ip', ['netns', 'add', name]);
    const ns = new NetNs(name);
    ns.exec(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ns.ip(['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Run a command inside; returns its stdout (throws on failure). */
  exec(args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  ip(args: string[]): string {
    return execFileSync('ip', ['-n', this.name, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** A persistent tap with the host address, up (it has carrier once the VMM attaches). */
  addTap(ifname: string): void {
    this.ip(['tuntap', 'add', 'dev', ifname, 'mode', 'tap', 'vnet_hdr']);
    this.configure(ifname);
  }

  configure(ifname: string): void {
    this.ip(['addr', 'add', `${HOST_IP}/${PREFIX}`, 'dev', ifname]);
    this.ip(['link', 'set', ifname, 'up']);
  }

  exists(ifname: string): boolean {
    return spawnSync('ip', ['-n', this.name, 'link', 'show', ifname], { stdio: 'ignore' }).status === 0;
  }

  link(ifname: string): { mac: string; flags: string[]; rxPackets: number; rxBytes: number; txPackets: number } {
    const j = JSON.parse(this.ip(['-s', '-j', 'link', 'show', ifname]))[0];
    return { mac: j.address, flags: j.flags, rxPackets: j.stats64.rx.packets, rxBytes: j.stats64.rx.bytes, txPackets: j.stats64.tx.packets };
  }

  /**
   * Watch the namespace's neighbour table (entries vanish when the tap loses
   * its carrier, so they are caught as they appear): stop() gives the
   * link-layer addresses seen for each IP address.
   */
  watchNeighbours(): { stop(): Map<string, string> } {
    // Killed by stop(), or by destroy() at the latest.
    const child = spawn('ip', ['-n', this.name, 'monitor', 'neigh'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.unref();
    this.own(child);
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => { out += s; });
    return {
      stop: () => {
        child.kill('SIGKILL');
        const seen = new Map<string, string>();
        for (const m of out.matchAll(/^(?:Deleted )?(\S+) dev \S+ lladdr (\S+)/gm)) seen.set(m[1], m[2]);
        return seen;
      },
    };
  }

  private readonly helpers: { kill(sig: NodeJS.Signals): boolean }[] = [];

  /** Remember a helper process to end with the namespace. */
  own(p: { kill(sig: NodeJS.Signals): boolean }): void { this.helpers.push(p); }

  destroy(): void {
    for (const p of this.helpers) p.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', this.name]);
  }
}

/** A VMM running inside a namespace. */
export interface NsVmm {
  readonly pid: number;
  /** Resolves with the first COM1 line matching `re` (rejects when the VMM exits first or after `ms`). */
  waitLine(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Send bytes to the guest's COM1. */
  send(s: string): void;
  kill(): void;
  readonly done: Promise<RunResult>;
}

/** Start the VMM inside `ns` (or, without one, in the test's own namespace). */
export function startVmm(ns: NetNs | undefined, args: string[], timeoutMs = 60_000): NsVmm {
  ensureGuests();
  const started = Date.now();
  const child = spawnVmm(args, { netns: ns?.name });
  ns?.own(child);
  let stdout = '', stderr = '', timedOut = false;
  const waiters: { re: RegExp; ok: (m: RegExpMatchArray) => void; fail: (e: Error) => void }[] = [];
  const lines = (): string[] => stdout.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.length > 0);
  const check = (): void => {
    for (const w of [...waiters]) {
      for (const l of lines()) {
        const m = l.match(w.re);
        if (m) { waiters.splice(waiters.indexOf(w), 1); w.ok(m); break; }
      }
    }
  };
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
  child.stdout.on('data', (s: string) => { stdout += s; check(); });
  child.stderr.on('data', (s: string) => { stderr += s; });
  const done = new Promise<RunResult>((resolve) => {
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      check();
      for (const w of waiters.splice(0)) w.fail(new Error(`the VMM exited before printing ${w.re}\n${stdout}\n${stderr}`));
      resolve({ status, signal, stdout, stderr, lines: lines(), timedOut, ms: Date.now() - started });
    });
  });
  return {
    pid: child.pid!,
    done,
    send: (s) => { child.stdin.write(s); },
    kill: () => { child.kill('SIGKILL'); },
    waitLine: (re, ms = timeoutMs) => new Promise((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`no line matching ${re} within ${ms} ms\n${stdout}\n${stderr}`)), ms);
      waiters.push({ re, ok: (m) => { clearTimeout(t); ok(m); }, fail: (e) => { clearTimeout(t); fail(e); } });
      check();
    }),
  };
}

/** A UDP echo-once server inside the namespace on 0.0.0.0:`port`: reports the first datagram and answers it with `reply`. */
export function udpResponder(ns: NetNs, port: number, reply: string): { ready: Promise<void>; got: Promise<{ from: string; port: number; data: string }>; stop(): void } {
  const script = `const d=require('dgram').createSocket('udp4');
d.on('message',(m,r)=>{console.log(JSON.stringify({from:r.address,port:r.port,data:m.toString('latin1')}));d.send(${JSON.stringify(reply)},r.port,r.address,()=>d.close());});
d.bind(${port},()=>console.log('ready'));setTimeout(()=>process.exit(0),60000);`;
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  ns.own(child);
  let out = '';
  let readyFn!: () => void, gotFn!: (v: { from: string; port: number; data: string }) => void, gotFail!: (e: Error) => void;
  const ready = new Promise<void>((r) => { readyFn = r; });
  const got = new Promise<{ from: string; port: number; data: string }>((r, f) => { gotFn = r; gotFail = f; });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s: string) => {
    out += s;
    for (const l of out.split('\n')) {
      if (l === 'ready') readyFn();
      else if (l.startsWith('{')) gotFn(JSON.parse(l));
    }
  });
  child.on('close', () => gotFail(new Error('the UDP responder ended without a datagram')));
  got.catch(() => {});
  return { ready, got, stop: () => { child.kill('SIGKILL'); } };
}
