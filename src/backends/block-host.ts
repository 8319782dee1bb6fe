/**
 * Host calls of the block back-end that Node's fs lacks, through koffi:
 * flock, fallocate (hole punching) and the Linux block-device ioctls.
 */
import * as fs from 'node:fs';
import { errno, ioctlPtr, koffi } from '../kvm/libc.js';

const libc = koffi.load('libc.so.6');
const flockFn = libc.func('int flock(int fd, int op)');
const fallocateFn = libc.func('int fallocate(int fd, int mode, int64_t off, int64_t len)');

const LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;
const FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;
/** Linux <linux/fs.h> block ioctls. */
const BLKSSZGET = 0x1268, BLKDISCARD = 0x1277, BLKPBSZGET = 0x127b, BLKGETSIZE64 = 0x80081272;
const EINTR = 4;

/** Take a non-blocking advisory lock: shared for read-only users, exclusive otherwise. False when held elsewhere. */
export function lockFd(fd: number, shared: boolean): boolean {
  for (;;) {
    if (flockFn(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) === 0) return true;
    if (errno() !== EINTR) return false;
  }
}

/** Whether the file system can punch holes: probe with an empty hole past the end (changes nothing). */
export function canPunchHoles(fd: number, size: number): boolean {
  const at = Math.ceil(size / 4096) * 4096 + 4096;
  return fallocateFn(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, 4096) === 0;
}

/** Deallocate a range; returns 0 or an errno. */
export function punchHole(fd: number, isDevice: boolean, offset: number, len: number): number {
  let rc: number;
  if (isDevice) {
    const range = new BigUint64Array([BigInt(offset), BigInt(len)]);
    rc = ioctlPtr(fd, BLKDISCARD, range) as number;
  } else {
    rc = fallocateFn(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) as number;
  }
  return rc === 0 ? 0 : errno();
}

export interface BlockDeviceInfo { size: number; logical: number; physical: number; discard: boolean }

/** Size, sector sizes and discard support of a host block device; undefined when the ioctls fail. */
export function blkdev(fd: number, rdev: number): BlockDeviceInfo | undefined {
  const size = new BigUint64Array(1);
  const ss = new Int32Array(1);
  const ps = new Uint32Array(1);
  if (ioctlPtr(fd, BLKGETSIZE64, size) !== 0) return undefined;
  if (ioctlPtr(fd, BLKSSZGET, ss) !== 0 || ss[0] <= 0) ss[0] = 512;
  if (ioctlPtr(fd, BLKPBSZGET, ps) !== 0 || ps[0] === 0) ps[0] = ss[0];
  const major = (rdev >>> 8) & 0xfff, minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  let discard = false;
  try {
    discard = Number(fs.readFileSync(`/sys/dev/block/${major}:${minor}/queue/discard_max_bytes`, 'utf8').trim()) > 0;
  } catch { /* no sysfs entry: no discard */ }
  return { size: Number(size[0]), logical: ss[0], physical: ps[0], discard };
}
