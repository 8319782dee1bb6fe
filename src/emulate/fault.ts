/**
 * Exceptions an emulated instruction raises in the guest, and the error for
 * what the emulator itself cannot do (the VM then stops with status 4).
 */

export const DE = 0, DB = 1, BP = 3, OF_VEC = 4, UD = 6, NM = 7, TS = 10, NP = 11, SS_VEC = 12, GP = 13, PF = 14, MF = 16, AC_VEC = 17;

export const VECTOR_NAMES: Record<number, string> = {
  0: '#DE', 1: '#DB', 3: '#BP', 4: '#OF', 6: '#UD', 7: '#NM', 10: '#TS', 11: '#NP', 12: '#SS', 13: '#GP', 14: '#PF', 16: '#MF', 17: '#AC',
};

/** A guest exception: injected into the guest instead of completing the instruction. */
export class GuestFault extends Error {
  constructor(readonly vector: number, readonly errorCode?: number, readonly cr2?: bigint) {
    super(`${VECTOR_NAMES[vector] ?? `vector ${vector}`}${errorCode !== undefined ? `(0x${errorCode.toString(16)})` : ''}${cr2 !== undefined ? ` at 0x${cr2.toString(16)}` : ''}`);
    this.name = 'GuestFault';
  }
}

/** Something the emulator cannot do; the VM stops with a report. */
export class EmulationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EmulationError';
  }
}

export const gp = (code = 0): GuestFault => new GuestFault(GP, code);
export const ud = (): GuestFault => new GuestFault(UD);
export const nm = (): GuestFault => new GuestFault(NM);
export const ss = (code = 0): GuestFault => new GuestFault(SS_VEC, code);
export const np = (code = 0): GuestFault => new GuestFault(NP, code);

// #PF error-code bits
export const PFEC_P = 1, PFEC_W = 2, PFEC_U = 4, PFEC_RSVD = 8, PFEC_I = 0x10, PFEC_PK = 0x20;
