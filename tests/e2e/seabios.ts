/**
 * Shared by the SeaBIOS -> GRUB end-to-end tests and bench/seabios-grub.ts:
 * the images scripts/build-grub-images.sh makes, and the command lines that
 * boot them through Debian's SeaBIOS from each disk model, on bhyve-ts and on
 * QEMU (the reference). GRUB prints the payload file between two markers on
 * COM1 and halts (ACPI S5: bhyve exit status 1).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.js';

export const SEABIOS = '/usr/share/seabios/bios-256k.bin';
export const GRUB_DIR = join(ROOT, '.cache/grub');
export const DISK_IMAGE = join(GRUB_DIR, 'disk.img');
export const CD_IMAGE = join(GRUB_DIR, 'cd.iso');
export const GRUB_START = 'GRUB-CFG-START';
export const GRUB_END = 'GRUB-CFG-END';
/** SeaBIOS and GRUB run mostly in emulated kernel mode here: minutes, not seconds. */
export const GRUB_TIMEOUT_MS = 6 * 60_000;

export interface DiskModel {
  /** bhyve's -s emulation name. */
  device: string;
  image: string;
  /** Extra -s options (after the path). */
  opts: string[];
  /** The same disk under QEMU (-M pc). */
  qemu: string[];
}

export const DISK_MODELS: readonly DiskModel[] = [
  { device: 'virtio-blk', image: DISK_IMAGE, opts: ['ro'], qemu: ['-drive', `file=${DISK_IMAGE},if=virtio,format=raw,readonly=on`] },
  {
    device: 'ahci-hd', image: DISK_IMAGE, opts: ['ro'],
    qemu: ['-device', 'ahci,id=ahci', '-drive', `id=d0,file=${DISK_IMAGE},if=none,format=raw,snapshot=on`, '-device', 'ide-hd,drive=d0,bus=ahci.0'],
  },
  {
    device: 'ahci-cd', image: CD_IMAGE, opts: [],
    qemu: ['-device', 'ahci,id=ahci', '-drive', `id=c0,file=${CD_IMAGE},if=none,format=raw,media=cdrom,readonly=on`, '-device', 'ide-cd,drive=c0,bus=ahci.0'],
  },
];

let built = false;

/** Build the images (and install SeaBIOS/GRUB tools) once; a lock keeps parallel test files apart. */
export function ensureGrubImages(): void {
  if (built) return;
  mkdirSync(GRUB_DIR, { recursive: true });
  const lock = join(GRUB_DIR, '.build.lock');
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 10 * 60_000) rmdirSync(lock);
      } catch {
        /* gone already */
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    execFileSync('bash', [join(ROOT, 'scripts/build-grub-images.sh')], { stdio: ['ignore', 'ignore', 'pipe'] });
  } finally {
    rmdirSync(lock);
  }
  if (!existsSync(SEABIOS)) throw new Error(`${SEABIOS} is missing (apt-get install seabios)`);
  built = true;
}

/** The line GRUB must print: the contents of the file on the image's file system. */
export function payload(): string {
  return readFileSync(join(GRUB_DIR, 'payload'), 'utf8').trim();
}

/** bhyve-ts: SeaBIOS through fw_cfg, booting `m` in slot 4. */
export function bhyveArgs(m: DiskModel, extra: string[] = [], slot = 4): string[] {
  return [
    '-s', '0,hostbridge', '-s', '31,lpc', '-s', [slot, m.device, m.image, ...m.opts].join(','),
    '-l', 'com1,stdio', '-l', 'fwcfg=qemu', '-l', `bootrom,${SEABIOS}`, '-m', '512M', ...extra, 'grubvm',
  ];
}

/**
 * QEMU: the same firmware and disk on an i440FX PC. -nographic makes SeaBIOS
 * mirror its console on COM1 as it does on bhyve-ts (fw_cfg NOGRAPHIC), so
 * both run the same guest code.
 */
export function qemuArgs(m: DiskModel): string[] {
  return [
    '-M', 'pc', '-accel', 'kvm', '-cpu', 'host,-arch-capabilities', '-m', '512M', '-nodefaults', '-no-user-config',
    '-nographic', '-serial', 'stdio', '-no-reboot', '-bios', SEABIOS, ...m.qemu,
  ];
}
