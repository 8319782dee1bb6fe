/**
 * QEMU's firmware configuration device (fw_cfg), as bhyve offers it with
 * `-l fwcfg=qemu`, at QEMU's x86 ports:
 *   0x510  selector (16-bit write): picks an item and rewinds it
 *   0x511  data (8-bit read): the selected item's next byte, 0 past its end
 *   0x514  DMA address, 64 bits big-endian: a 32-bit write of the high half
 *          at 0x514, then one of the low half at 0x518 starts the transfer
 *          (reads give the signature "QEMU CFG")
 * A DMA request is a 16-byte big-endian FWCfgDmaAccess {u32 control; u32
 * length; u64 address} in guest memory; control selects (bits 16-31 the key),
 * reads, skips or writes, and is rewritten to 0 or the error bit when done.
 * Every item is read-only here: a DMA write sets the error bit.
 *
 * The items (built once on the main thread, see items.ts) reach every thread
 * through ctx.resources; the selector, the offset and the DMA high half live
 * in the arena.
 */
import type { MachineContext } from '../../vmm/context.js';

export const FW_CFG_PORT_SEL = 0x510;
export const FW_CFG_PORT_DATA = 0x511;
export const FW_CFG_PORT_DMA = 0x514;
const SEL_DATA_LEN = 2;
const DMA_LEN = 8;
const DMA_LOW = 4;

// Item keys (QEMU's fw_cfg.h).
export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_UUID = 0x02;
export const FW_CFG_RAM_SIZE = 0x03;
export const FW_CFG_NOGRAPHIC = 0x04;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_BOOT_MENU = 0x0e;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_FILE_DIR = 0x19;
export const FW_CFG_FILE_FIRST = 0x20;
export const FW_CFG_FILE_SLOTS = 0x1000 - FW_CFG_FILE_FIRST;
export const FW_CFG_ARCH_LOCAL = 0x8000;
export const FW_CFG_IRQ0_OVERRIDE = FW_CFG_ARCH_LOCAL | 0x02;
export const FW_CFG_WRITE_CHANNEL = 0x4000;
const FW_CFG_INDEX_MASK = 0x3fff;

/** FW_CFG_ID bits. */
export const FW_CFG_VERSION = 0x01;
export const FW_CFG_VERSION_DMA = 0x02;

// FWCfgDmaAccess.control bits.
export const FW_CFG_DMA_CTL_ERROR = 0x01;
export const FW_CFG_DMA_CTL_READ = 0x02;
export const FW_CFG_DMA_CTL_SKIP = 0x04;
export const FW_CFG_DMA_CTL_SELECT = 0x08;
export const FW_CFG_DMA_CTL_WRITE = 0x10;
export const FW_CFG_DMA_ACCESS_SIZE = 16;
/** What reads of the DMA register give, byte by byte. */
export const FW_CFG_DMA_SIGNATURE = 'QEMU CFG';

/** The ctx.resources key of the item table. */
export const FWCFG_RESOURCE = 'fwcfg.items';

/** Every item by key (structured-cloneable). */
export interface FwCfgItems { items: [number, Uint8Array][] }

const PAGE = 4096;
const BIG = 1 << 20;

/** The item an access selects: the architecture bit and the index, without the write bit. */
export function itemKey(selector: number): number {
  return (selector & FW_CFG_ARCH_LOCAL) | (selector & FW_CFG_INDEX_MASK);
}

export class FwCfg {
  private readonly st: { sel: number; off: number; dmaHigh: number };
  /** Per thread on purpose: an immutable copy of the shared item table. */
  private table: Map<number, Uint8Array> | undefined;

  constructor(private readonly ctx: MachineContext) {
    this.st = ctx.arena.struct({ sel: 'u32', off: 'u32', dmaHigh: 'u32' });
    ctx.io.register(FW_CFG_PORT_SEL, SEL_DATA_LEN, {
      read: (off, size) => this.ioRead(off, size),
      write: (off, size, v) => this.ioWrite(off, size, v),
    }, 'fwcfg');
    ctx.io.register(FW_CFG_PORT_DMA, DMA_LEN, {
      read: (off, size) => dmaSignature(off, size),
      write: (off, size, v) => this.dmaWrite(off, size, v),
    }, 'fwcfg.dma');
  }

  private item(key: number): Uint8Array | undefined {
    if (!this.table) {
      const r = this.ctx.resources.get(FWCFG_RESOURCE) as FwCfgItems | undefined;
      if (!r) return undefined; // not published yet: the guest sees an empty device
      this.table = new Map(r.items);
    }
    return this.table.get(itemKey(key));
  }

  private ioRead(off: number, size: number): number {
    if (off === 0 && size === 2) return this.st.sel & 0xffff;
    if (off !== 1 || size !== 1) return 0;
    const data = this.item(this.st.sel);
    const at = this.st.off;
    if (!data || at >= data.length) return 0;
    this.st.off = at + 1;
    return data[at];
  }

  private ioWrite(off: number, size: number, v: number): void {
    // Writes to the data port are ignored, as QEMU 2.4+ does.
    if (off !== 0 || size !== 2) return;
    this.st.sel = v & 0xffff;
    this.st.off = 0;
  }

  private dmaWrite(off: number, size: number, v: number): void {
    if (size !== 4) return;
    if (off === 0) {
      this.st.dmaHigh = bswap32(v);
    } else if (off === DMA_LOW) {
      const addr = this.st.dmaHigh * 2 ** 32 + bswap32(v);
      this.st.dmaHigh = 0;
      this.dma(addr);
    }
  }

  /** Run the FWCfgDmaAccess at guest address `addr`. */
  private dma(addr: number): void {
    const hdr = this.ctx.mem.slice(addr, FW_CFG_DMA_ACCESS_SIZE);
    if (!hdr) return; // nowhere to report an error
    const dv = new DataView(hdr.buffer, hdr.byteOffset, hdr.byteLength);
    const control = dv.getUint32(0, false);
    let length = dv.getUint32(4, false);
    let address = Number(dv.getBigUint64(8, false));
    if (control & FW_CFG_DMA_CTL_SELECT) {
      this.st.sel = control >>> 16;
      this.st.off = 0;
    }
    const read = (control & FW_CFG_DMA_CTL_READ) !== 0;
    const write = !read && (control & FW_CFG_DMA_CTL_WRITE) !== 0;
    const skip = !read && !write && (control & FW_CFG_DMA_CTL_SKIP) !== 0;
    if (!read && !write && !skip) length = 0;
    const data = this.item(this.st.sel);
    let error = false;
    while (length > 0 && !error) {
      const at = this.st.off;
      const avail = data ? Math.max(0, data.length - at) : 0;
      const len = avail === 0 ? length : Math.min(length, avail);
      if (write) {
        error = true; // no item is writable
      } else if (read) {
        error = avail === 0 ? !fillGuest(this.ctx, address, len) : !copyToGuest(this.ctx, address, data!.subarray(at, at + len));
      }
      if (avail !== 0) this.st.off = at + len;
      address += len;
      length -= len;
    }
    dv.setUint32(0, error ? FW_CFG_DMA_CTL_ERROR : 0, false);
  }
}

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

function dmaSignature(off: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + (FW_CFG_DMA_SIGNATURE.charCodeAt(off + i) || 0);
  return v;
}

/**
 * Apply `fn` to the guest range [gpa, gpa+len) in pieces that each lie in one
 * segment (segments are page-aligned); false when any byte is not RAM
 * (the pieces before it have been done, as a real DMA engine would have).
 */
function eachGuestPiece(ctx: MachineContext, gpa: number, len: number, fn: (view: Uint8Array, done: number) => void): boolean {
  if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(gpa + len)) return false;
  let done = 0;
  while (done < len) {
    const at = gpa + done;
    // A whole MiB at a time where it lies in one segment, else one page.
    const view = ctx.mem.slice(at, Math.min(len - done, BIG - (at % BIG))) ?? ctx.mem.slice(at, Math.min(len - done, PAGE - (at % PAGE)));
    if (!view) return false;
    fn(view, done);
    done += view.length;
  }
  return true;
}

function copyToGuest(ctx: MachineContext, gpa: number, data: Uint8Array): boolean {
  return eachGuestPiece(ctx, gpa, data.length, (view, done) => view.set(data.subarray(done, done + view.length)));
}

function fillGuest(ctx: MachineContext, gpa: number, len: number): boolean {
  return eachGuestPiece(ctx, gpa, len, (view) => view.fill(0));
}
