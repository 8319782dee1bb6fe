/** 64-bit values in two little-endian words of a shared Int32Array (the PVM repair's and its fault log's). */
export function getU64(words: Int32Array, i: number): bigint {
  return BigInt(words[i] >>> 0) | (BigInt(words[i + 1] >>> 0) << 32n);
}

export function setU64(words: Int32Array, i: number, v: bigint): void {
  words[i] = Number(v & 0xffffffffn) | 0;
  words[i + 1] = Number((v >> 32n) & 0xffffffffn) | 0;
}
