/**
 * The block back-end shared by every disk model (virtio-blk, ahci-hd,
 * ahci-cd), after bhyve's block_if.c: a raw file or a host block device,
 * opened once on the main thread with bhyve's options
 *   path, ro, nocache (O_DIRECT), direct/sync (O_SYNC), nodelete,
 *   sectorsize=logical[/physical], ser=
 * and locked (flock, shared when read-only) so two VMs cannot write one image.
 *
 * The I/O is synchronous and meant for the I/O thread only: a device's
 * prepare() calls prepareBlock() (main thread), which leaves a plain
 * BlockResource in ctx.resources; any thread rebuilds a BlockBackend from
 * it with blockBackend() around the same fd.
 */
import * as fs from 'node:fs';
import type { MachineContext } from '../vmm/context.js';
import { BlockError, defaultSerial, parseSectorSize, SERIAL_MAX, type BlockOptions } from './block-config.js';
import { BounceBuffer } from './block-io.js';
import { blkdev, canPunchHoles, lockFd, punchHole } from './block-host.js';

export {
  BLOCK_OPTION_KEYS, BlockError, blockLegacyConfig, defaultSerial, parseBlockOptions, parseSectorSize, SERIAL_MAX,
  type BlockOptions,
} from './block-config.js';

/** What the main thread leaves in ctx.resources (structured-cloneable). */
export interface BlockResource {
  kind: 'block';
  path: string;
  fd: number;
  size: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  readonly: boolean;
  canDiscard: boolean;
  isDevice: boolean;
  nocache: boolean;
  serial: string;
}

const DEFAULT_SECTOR = 512;
const MAX_SECTOR = 65536;
/** Buffers per preadv/pwritev call (IOV_MAX is 1024). */
const IOV_BATCH = 1024;

function openError(path: string, e: unknown): BlockError {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'does not exist'
    : code === 'EACCES' || code === 'EPERM' ? 'is not readable (permission denied)'
    : code === 'EISDIR' ? 'is a directory'
    : code === 'EINVAL' ? 'cannot be opened with these options (O_DIRECT unsupported?)'
    : `cannot be opened (${code ?? (e as Error).message})`;
  return new BlockError(`disk image ${path} ${why}`, { cause: e });
}

/** Open and describe an image (main thread). Throws BlockError with one line naming the path. */
export function openBlockResource(path: string, o: BlockOptions = {}): BlockResource {
  if (path === '') throw new BlockError('missing disk image path');
  const c = fs.constants;
  const extra = (o.nocache ? c.O_DIRECT : 0) | (o.direct ? c.O_SYNC : 0);
  const sizes = o.sectorsize === undefined ? undefined : parseSectorSize(path, o.sectorsize);
  let ro = o.ro ?? false;
  let fd: number;
  try {
    fd = fs.openSync(path, (ro ? c.O_RDONLY : c.O_RDWR) | extra);
  } catch (e) {
    // As bhyve: a read-write open that fails for lack of permission falls back to read-only.
    const code = (e as NodeJS.ErrnoException).code;
    if (ro || (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM')) throw openError(path, e);
    try { fd = fs.openSync(path, c.O_RDONLY | extra); } catch (e2) { throw openError(path, e2); }
    ro = true;
  }
  try {
    return describe(path, fd, ro, o, sizes);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

function describe(path: string, fd: number, ro: boolean, o: BlockOptions, sizes: [number, number] | undefined): BlockResource {
  const st = fs.fstatSync(fd);
  if (st.isDirectory()) throw new BlockError(`disk image ${path} is a directory`);
  const isDevice = st.isBlockDevice();
  if (!isDevice && !st.isFile()) throw new BlockError(`disk image ${path} is neither a file nor a block device`);
  if (!lockFd(fd, ro)) throw new BlockError(`disk image ${path} is locked by another process`);
  let size = st.size, logical = DEFAULT_SECTOR, physical = st.blksize > 0 ? Math.min(st.blksize, MAX_SECTOR) : DEFAULT_SECTOR;
  let canDiscard = false;
  if (isDevice) {
    const d = blkdev(fd, st.rdev);
    if (!d) throw new BlockError(`disk image ${path}: cannot read the device's size`);
    [size, logical, physical, canDiscard] = [d.size, d.logical, d.physical, d.discard];
  } else {
    canDiscard = !ro && canPunchHoles(fd, size);
  }
  if (sizes) {
    if (isDevice && (sizes[0] < logical || sizes[0] % logical !== 0)) {
      throw new BlockError(`disk image ${path}: bad sectorsize '${o.sectorsize}' (the device's sector size is ${logical})`);
    }
    [logical, physical] = sizes;
  }
  if (physical < logical) physical = logical;
  const serial = (o.serial ?? defaultSerial(path)).slice(0, SERIAL_MAX);
  return {
    kind: 'block', path, fd, size, logicalSectorSize: logical, physicalSectorSize: physical,
    readonly: ro, canDiscard: canDiscard && !ro && !o.nodelete, isDevice, nocache: o.nocache ?? false, serial,
  };
}

/**
 * Synchronous I/O on an open image. Reads past the end return zeros; callers
 * check ranges against `size` before writing. Errors throw BlockError (the
 * device turns them into its own error status).
 */
export class BlockBackend {
  readonly path: string;
  readonly fd: number;
  readonly size: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly readonly: boolean;
  readonly canDiscard: boolean;
  readonly serial: string;
  private readonly isDevice: boolean;
  private readonly bounce: BounceBuffer | undefined;

  constructor(r: BlockResource) {
    this.path = r.path;
    this.fd = r.fd;
    this.size = r.size;
    this.logicalSectorSize = r.logicalSectorSize;
    this.physicalSectorSize = r.physicalSectorSize;
    this.readonly = r.readonly;
    this.canDiscard = r.canDiscard;
    this.serial = r.serial;
    this.isDevice = r.isDevice;
    this.bounce = r.nocache ? new BounceBuffer(r.fd, r.size) : undefined;
  }

  /** Fill `buf` from byte `offset`. */
  read(offset: number, buf: Uint8Array): void {
    this.check(offset, buf.length);
    try {
      if (this.bounce && this.bounce.read(offset, buf)) return;
      let done = 0;
      while (done < buf.length) {
        const n = fs.readSync(this.fd, buf, done, buf.length - done, offset + done);
        if (n === 0) { buf.fill(0, done); return; }
        done += n;
      }
    } catch (e) {
      throw this.ioError('read', e);
    }
  }

  /** Write `data` at byte `offset`. */
  write(offset: number, data: Uint8Array): void {
    if (this.readonly) throw new BlockError(`disk image ${this.path} is read-only`);
    this.check(offset, data.length);
    try {
      if (this.bounce && this.bounce.write(offset, data)) return;
      let done = 0;
      while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, offset + done);
    } catch (e) {
      throw this.ioError('write', e);
    }
  }

  /** Scatter read: fill `bufs` in order from byte `offset` (preadv). */
  readv(offset: number, bufs: Uint8Array[]): void {
    this.vector(offset, bufs, false);
  }

  /** Gather write: write `bufs` in order at byte `offset` (pwritev). */
  writev(offset: number, bufs: Uint8Array[]): void {
    if (this.readonly) throw new BlockError(`disk image ${this.path} is read-only`);
    this.vector(offset, bufs, true);
  }

  private vector(offset: number, bufs: Uint8Array[], write: boolean): void {
    let total = 0;
    for (const b of bufs) total += b.length;
    this.check(offset, total);
    if (this.bounce) {
      for (const b of bufs) {
        if (write) this.write(offset, b); else this.read(offset, b);
        offset += b.length;
      }
      return;
    }
    try {
      for (let i = 0; i < bufs.length; i += IOV_BATCH) {
        const batch = bufs.slice(i, i + IOV_BATCH);
        let want = 0;
        for (const b of batch) want += b.length;
        const n = write ? fs.writevSync(this.fd, batch, offset) : fs.readvSync(this.fd, batch, offset);
        if (n < want) this.finishShort(offset, batch, n, write);
        offset += want;
      }
    } catch (e) {
      throw this.ioError(write ? 'write' : 'read', e);
    }
  }

  /** Complete a short vectored transfer buffer by buffer. */
  private finishShort(offset: number, batch: Uint8Array[], done: number, write: boolean): void {
    let pos = offset;
    for (const b of batch) {
      const end = pos + b.length;
      if (end > offset + done) {
        const skip = Math.max(0, offset + done - pos);
        const rest = b.subarray(skip);
        if (write) this.write(pos + skip, rest); else this.read(pos + skip, rest);
      }
      pos = end;
    }
  }

  /** Make completed writes durable (fdatasync). */
  flush(): void {
    if (this.readonly) return;
    try { fs.fdatasyncSync(this.fd); } catch (e) { throw this.ioError('flush', e); }
  }

  /** Deallocate [offset, offset+len); a no-op when discard is not possible. */
  discard(offset: number, len: number): void {
    if (this.readonly) throw new BlockError(`disk image ${this.path} is read-only`);
    this.check(offset, len);
    if (!this.canDiscard || len === 0) return;
    const err = punchHole(this.fd, this.isDevice, offset, len);
    if (err !== 0) throw new BlockError(`disk image ${this.path}: discard failed (errno ${err})`);
  }

  private check(offset: number, len: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || offset + len > this.size) {
      throw new BlockError(`disk image ${this.path}: access [${offset}, +${len}) outside the image`);
    }
  }

  private ioError(op: string, e: unknown): BlockError {
    if (e instanceof BlockError) return e;
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return new BlockError(`disk image ${this.path}: ${op} failed (${code})`, { cause: e });
  }
}

/** Open an image and wrap it (tests, tools; devices use prepareBlock/blockBackend). */
export function openBlock(path: string, opts: BlockOptions = {}): BlockBackend {
  return new BlockBackend(openBlockResource(path, opts));
}

const resourceKey = (key: string): string => `block:${key}`;

/** Main thread, in a device's prepare(): open `path` for the device `key`. */
export function prepareBlock(ctx: MachineContext, key: string, path: string, opts: BlockOptions): BlockResource {
  const r = openBlockResource(path, opts);
  ctx.resources.set(resourceKey(key), r);
  return r;
}

export function isBlockResource(v: unknown): v is BlockResource {
  return typeof v === 'object' && v !== null && (v as BlockResource).kind === 'block';
}

/** The description of device `key`'s image, on any thread (undefined when none). */
export function blockResource(ctx: MachineContext, key: string): BlockResource | undefined {
  const r = ctx.resources.get(resourceKey(key));
  return isBlockResource(r) ? r : undefined;
}

/** A back-end around device `key`'s fd, on any thread (I/O belongs on the I/O thread). */
export function blockBackend(ctx: MachineContext, key: string): BlockBackend | undefined {
  const r = blockResource(ctx, key);
  return r && new BlockBackend(r);
}

/** Close an image opened by openBlock (tests, tools). */
export function closeBlock(b: BlockBackend): void {
  try { fs.closeSync(b.fd); } catch { /* already closed */ }
}
