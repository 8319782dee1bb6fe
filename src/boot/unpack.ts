/**
 * Unpacking a bzImage on the host: its payload (the compressed ELF vmlinux
 * that the kernel's own decompressor would unpack at CPL 0) is found through
 * payload_offset/payload_length in the setup header (boot protocol 2.08+;
 * parseSetupHeader already asks for 2.12, the 64-bit entry),
 * decompressed here, and the ELF is then entered through its PVH note like
 * a plain vmlinux (pvh.ts).
 *
 * Why: on a PVM host the decompressor runs through KVM's instruction
 * emulator for many minutes; on hardware KVM it costs a fraction of a second
 * and keeps the kernel's own placement (KASLR), so `boot.unpack=auto` unpacks
 * on PVM hosts only, and only for images whose payload it can unpack (others,
 * such as memtest86+ with no payload at all, take the 64-bit entry).
 *
 * Formats: xz (Debian's kernels; src/boot/xz.ts) and gzip (node:zlib).
 * zstd, lzma, lz4, bzip2 and lzo payloads are refused with a message that
 * names them and says to set boot.unpack=false.
 */
import { gunzipSync } from 'node:zlib';
import { LoaderError, hex } from './common.js';
import { type SetupInfo } from './bzimage.js';
import { xzDecompress } from './xz.js';

/** payload_offset and payload_length: relative to the protected-mode kernel. */
export const HDR_PAYLOAD_OFFSET = 0x248;
export const HDR_PAYLOAD_LENGTH = 0x24c;
/** The kernel build appends the uncompressed size (u32 LE) to the compressed data. */
const SIZE_TRAILER = 4;
/** Far above any kernel (Debian's vmlinux is ~66 MB): a bound on what a hostile image can make us allocate. */
export const MAX_VMLINUX = 512 * 2 ** 20;

const MAGICS: [string, number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['lzma', [0x5d, 0x00, 0x00]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f]],
];

/** The payload formats this loader unpacks itself. */
const UNPACKABLE = new Set(['xz', 'gzip']);

export function payloadFormat(p: Uint8Array): string {
  for (const [name, m] of MAGICS) if (m.every((b, i) => p[i] === b)) return name;
  return 'unknown';
}

/** The compressed payload of a bzImage (with the size trailer), bounds-checked. */
export function bzPayload(path: string, image: Uint8Array, h: SetupInfo): Uint8Array {
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const off = h.pmOffset + v.getUint32(HDR_PAYLOAD_OFFSET, true);
  const len = v.getUint32(HDR_PAYLOAD_LENGTH, true);
  if (len <= SIZE_TRAILER || off + len > image.length) {
    throw new LoaderError(`${path}: payload ${hex(off)}+${hex(len)} lies outside the ${image.length}-byte image`);
  }
  return image.subarray(off, off + len);
}

/**
 * True when the image carries a payload this loader can unpack (xz or gzip,
 * inside the image). memtest86+, for one, is a bzImage with no payload.
 */
export function canUnpack(image: Uint8Array, h: SetupInfo): boolean {
  try {
    return UNPACKABLE.has(payloadFormat(bzPayload('', image, h)));
  } catch {
    return false;
  }
}

/** Decompress a bzImage's payload to the ELF vmlinux it carries. */
export function unpackBzImage(path: string, image: Uint8Array, h: SetupInfo): Uint8Array {
  const payload = bzPayload(path, image, h);
  const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const size = pv.getUint32(payload.length - SIZE_TRAILER, true);
  if (size === 0 || size > MAX_VMLINUX) throw new LoaderError(`${path}: payload claims ${size} bytes uncompressed`);
  const data = payload.subarray(0, payload.length - SIZE_TRAILER);
  const fmt = payloadFormat(data);
  let out: Uint8Array;
  try {
    if (fmt === 'xz') out = xzDecompress(data, { maxOutput: size });
    else if (fmt === 'gzip') out = gunzipSync(data, { maxOutputLength: size });
    else throw new LoaderError(`${path}: cannot unpack a ${fmt} payload here; set boot.unpack=false to run the kernel's own decompressor`);
  } catch (e) {
    if (e instanceof LoaderError) throw e;
    throw new LoaderError(`${path}: ${fmt} payload: ${(e as Error).message}`, { cause: e });
  }
  if (out.length !== size) throw new LoaderError(`${path}: payload unpacked to ${out.length} bytes, the image says ${size}`);
  return out;
}
