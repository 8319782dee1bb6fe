/**
 * Drive Debian's kernel with the busybox initramfs (scripts/fetch-kernel.sh,
 * scripts/build-initramfs.sh) on COM1: start bhyve with the Linux loader,
 * wait for console lines, run shell commands and read their output.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, spawnVmm } from './harness.js';

export const VMLINUX = join(ROOT, '.cache/kernel/vmlinux');
export const VMLINUZ = join(ROOT, '.cache/kernel/vmlinuz');
/** Uncompressed (scripts/build-initramfs.sh writes both): gunzip at CPL 0 is slow where the kernel is emulated. */
export const INITRD = join(ROOT, '.cache/initramfs.cpio');
/** The same without kernel modules, for guests with no devices to drive: a third of the size to unpack. */
export const BASE_INITRD = join(ROOT, '.cache/initramfs-base.cpio');
export const SHELL_READY = 'bhyve-ts initramfs ready';
export const PVM = existsSync('/sys/module/kvm_pvm');
/** Kernel-mode code runs through KVM's instruction emulator on PVM: a boot takes minutes there. */
export const BOOT_MS = PVM ? 45 * 60_000 : 5 * 60_000;
/**
 * cryptomgr.notests, rodata=off: the crypto self-tests and the W+X page-table
 * walk are pure computation, minutes of it through an emulator. Never
 * `noxsave`: on PVM user code runs natively with the host's AVX-512 (glibc's
 * memcpy uses ymm16/17), and a kernel without XSAVE does not save those
 * registers across a context switch (README, the TLS defect).
 */
export const CMDLINE = 'console=ttyS0 earlyprintk=serial nowatchdog cryptomgr.notests rodata=off bhyve_ts_test=1';
/** The same without the initramfs's device modules (scripts/build-initramfs.sh skips them). */
export const CMDLINE_NO_MODULES = `${CMDLINE} bhyve_ts_modules=0`;

/** The kernel's report of a user process killed by a fault (show_unhandled_signals), or the shell's. */
const USER_FAULT = /segfault at|traps: .*(general protection|trap invalid opcode)|Segmentation fault/;
/** Lines worth showing whatever the tail holds: the VMM's PVM reports, bhyve's own, user segfaults, kernel oopses. */
const NOTABLE = /^pvm: |^bhyve: |segfault at|\bBUG:|Oops|WARNING:|Kernel panic|emulation failure/;
/** The kernel's last line after a panic: nothing the test waits for can come after it. */
const PANICKED = /---\[ end Kernel panic/;

export class LinuxGuest {
  out = '';
  status: number | null = null;
  /** The kernel panicked: waits end at once (see PANICKED). */
  panicked = false;
  readonly closed: Promise<number | null>;
  private readonly child: ChildProcessWithoutNullStreams;
  private seq = 0;

  /** `args` are bhyve's arguments before the kernel options and the VM name. */
  constructor(args: string[], name: string, opts: { kernel?: string; initrd?: string; cmdline?: string; env?: NodeJS.ProcessEnv; netns?: string } = {}) {
    const all = [...args, '-o', `boot.kernel=${opts.kernel ?? VMLINUX}`, '-o', `boot.initrd=${opts.initrd ?? INITRD}`,
      '-o', `boot.cmdline=${opts.cmdline ?? CMDLINE}`, name];
    // BHYVE_PVM_DEBUG: on PVM, a user fault that looks like the TLS defect is reported with FS, the TLS words and more (README).
    this.child = spawnVmm(all, { ...opts, env: { BHYVE_PVM_DEBUG: '1', ...opts.env } });
    this.child.stdout.on('data', (s: string) => {
      this.out += s;
      // Only the new text and a line's worth before it: a chunk may split the line.
      if (!this.panicked && PANICKED.test(this.out.slice(-(s.length + 80)))) this.panicked = true;
    });
    this.child.stderr.on('data', (s: string) => { this.out += s; });
    this.closed = new Promise((resolve) => this.child.on('close', (code) => { this.status = code; resolve(code); }));
  }

  get pid(): number { return this.child.pid ?? -1; }

  /** Resolves with the match once `re` matches the output so far; undefined on timeout, exit or a kernel panic. */
  waitFor(re: RegExp, ms: number, from = 0): Promise<RegExpMatchArray | undefined> {
    return new Promise((resolve) => {
      const test = () => re.exec(this.out.slice(from)) ?? undefined;
      const now = test();
      if (now || this.status !== null || this.panicked) return resolve(now);
      const done = (m: RegExpMatchArray | undefined) => {
        clearTimeout(timer);
        this.child.stdout.off('data', on);
        resolve(m);
      };
      const on = () => { const m = test(); if (m || this.panicked) done(m); };
      const timer = setTimeout(() => done(test()), ms);
      this.child.stdout.on('data', on);
      void this.closed.then(() => done(test()));
    });
  }

  send(s: string): void {
    this.child.stdin.write(s);
  }

  /**
   * The console lines in which the kernel reported a user process killed by
   * a fault (a segfault, a general protection fault, an invalid opcode): each
   * is a defect of the VMM until shown otherwise, and the tests assert there
   * are none.
   */
  userFaults(): string[] {
    return this.out.split('\n').filter((l) => USER_FAULT.test(l)).map((l) => l.trim().slice(0, 300));
  }

  /** Run a shell command; its output (between markers the tty echo cannot match), or undefined on timeout. */
  async sh(cmd: string, ms = 120_000): Promise<string | undefined> {
    const n = ++this.seq;
    const from = this.out.length;
    this.send(`echo @@""B${n}; ${cmd}; echo @@""E${n}\n`);
    const m = await this.waitFor(new RegExp(`@@B${n}\\r?\\n([\\s\\S]*?)@@E${n}`), ms, from);
    return m?.[1].replace(/\r/g, '');
  }

  /**
   * What a failure report shows: the VMM's and the kernel's lines about
   * faults (which a 3000-character tail of a long boot may not reach), then
   * the tail of the console.
   */
  tail(n = 3000): string {
    const notable = this.out.split('\n').filter((l) => NOTABLE.test(l)).slice(0, 20).map((l) => l.slice(0, 600));
    return (notable.length ? `notable lines:\n${notable.join('\n')}\n--- tail:\n` : '') + this.out.slice(-n);
  }

  kill(): void {
    if (this.status === null) this.child.kill('SIGKILL');
  }
}
