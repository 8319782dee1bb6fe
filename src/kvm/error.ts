import { errno, strerror } from './libc.js';

export class KvmError extends Error {
  readonly errno: number;
  constructor(message: string, err = 0, options?: ErrorOptions) {
    super(err ? `${message}: ${strerror(err)}` : message, options);
    this.name = 'KvmError';
    this.errno = err;
  }
}

/** Throw a KvmError naming `what` when a libc call returned -1. */
export function check(ret: number, what: string): number {
  if (ret < 0) throw new KvmError(what, errno());
  return ret;
}
