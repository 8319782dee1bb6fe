/**
 * Compare-and-swap on live guest RAM, so that LOCK-prefixed instructions
 * stay atomic against the other vCPUs: Atomics for naturally aligned 1, 2,
 * 4 and 8 bytes, libatomic's __atomic_compare_exchange (cmpxchg16b on
 * x86-64) for 16 bytes. Anything else (a split lock) is a plain copy.
 */
import { koffi } from '../kvm/libc.js';
import { fromBytes, toBytes } from './mmu.js';

type CasFn = (size: number, ptr: bigint, expected: Buffer, desired: Buffer, success: number, failure: number) => boolean;
let cas16: CasFn | null | undefined;
const SEQ_CST = 5;

function libatomic(): CasFn | null {
  if (cas16 === undefined) {
    try {
      const lib = koffi.load('libatomic.so.1');
      cas16 = lib.func('bool __atomic_compare_exchange(size_t size, uint64_t ptr, void *expected, void *desired, int success, int failure)') as CasFn;
    } catch {
      cas16 = null;
    }
  }
  return cas16;
}

/** Replace the bytes of `view` by `next` if they still hold `old`; true when replaced. */
export function cas(view: Uint8Array, old: bigint, next: bigint): boolean {
  const n = view.length;
  const aligned = view.byteOffset % n === 0;
  if (aligned && (n === 1 || n === 2 || n === 4)) {
    const a = n === 1 ? new Uint8Array(view.buffer, view.byteOffset, 1) : n === 2 ? new Uint16Array(view.buffer, view.byteOffset, 1) : new Uint32Array(view.buffer, view.byteOffset, 1);
    return Atomics.compareExchange(a, 0, Number(old), Number(next)) === Number(old);
  }
  if (aligned && n === 8) {
    const a = new BigUint64Array(view.buffer, view.byteOffset, 1);
    return Atomics.compareExchange(a, 0, old, next) === old;
  }
  if (aligned && n === 16) {
    const f = libatomic();
    if (f) return f(16, BigInt(koffi.address(view)), Buffer.from(toBytes(old, 16)), Buffer.from(toBytes(next, 16)), SEQ_CST, SEQ_CST);
  }
  if (fromBytes(view) !== old) return false;
  view.set(toBytes(next, n));
  return true;
}
