/**
 * Launch -> Linux shell prompt: Debian's kernel (ELF vmlinux through PVH)
 * with the busybox initramfs, 1 vCPU, 384 MiB, until the initramfs prints
 * its ready line; then `poweroff -f`. With BHYVE_EMUL_STATS=1 each vCPU
 * reports, when it stops, the emulation failures it handled by instruction
 * (and, on PVM, the system calls repaired): those lines are the count per
 * boot. QEMU runs the same kernel and initramfs side by side where it can
 * (`-cpu host,-arch-capabilities`); on a PVM host it stops on the first
 * instruction KVM's emulator refuses, and the row says so.
 *
 * Called by bench/run.ts (`npm run bench linux`).
 */
import { spawn } from 'node:child_process';
import { LinuxGuest, SHELL_READY, BOOT_MS, CMDLINE_NO_MODULES as CMDLINE, BASE_INITRD as INITRD, VMLINUX } from '../tests/e2e/linux-shell.js';
import { ROOT, within } from '../tests/e2e/harness.js';

export interface LinuxBench { toShell: number; toExit: number; status: number | null; stats: string; qemu: string }

export async function benchLinux(): Promise<LinuxBench> {
  const t0 = Date.now();
  const vm = new LinuxGuest(['-c', '1', '-m', '384M', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio', '-A'],
    'benchlinux', { env: { BHYVE_EMUL_STATS: '1' }, initrd: INITRD, cmdline: CMDLINE });
  let toShell = NaN;
  try {
    if (await vm.waitFor(new RegExp(SHELL_READY), BOOT_MS)) toShell = Date.now() - t0;
    if (!Number.isNaN(toShell)) vm.send('poweroff -f\n');
    await within(vm.closed, 10 * 60_000, undefined);
  } finally {
    vm.kill();
  }
  const toExit = Date.now() - t0;
  const at = vm.out.indexOf('emulation failures handled');
  const stats = at < 0 ? '(no statistics)' : vm.out.slice(vm.out.lastIndexOf('\n', at) + 1).replace(/\r/g, '');
  return { toShell, toExit, status: vm.status, stats, qemu: await qemuLinux() };
}

/** QEMU on the same kernel: how far it gets (a PVM host stops it early). */
function qemuLinux(): Promise<string> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let out = '';
    const p = spawn('qemu-system-x86_64', ['-M', 'pc', '-accel', 'kvm', '-cpu', 'host,-arch-capabilities', '-m', '384M',
      '-nographic', '-no-reboot', '-kernel', VMLINUX, '-initrd', INITRD, '-append', CMDLINE], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const finish = (what: string) => { clearTimeout(timer); p.kill('SIGKILL'); resolve(`${what} after ${((Date.now() - t0) / 1000).toFixed(1)} s`); };
    const timer = setTimeout(() => finish('no shell'), BOOT_MS);
    const on = (s: Buffer) => {
      out = (out + s.toString('latin1')).slice(-8192);
      if (out.includes(SHELL_READY)) finish('shell');
      else if (/emulation failure|KVM internal error/i.test(out)) finish('stopped on a KVM emulation failure');
    };
    p.stdout.on('data', on);
    p.stderr.on('data', on);
    p.on('error', () => finish('not installed'));
    p.on('exit', () => finish(`exited (${/emulation failure|internal error/i.test(out) ? 'KVM emulation failure' : 'no shell'})`));
  });
}
