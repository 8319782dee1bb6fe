/**
 * The vector registers (XMM/YMM/ZMM 0-31) and opmasks as views into KVM's
 * XSAVE buffer: XMM i at 160 + 16i, YMM high halves in component 2, ZMM
 * high halves of 0-15 in component 6, ZMM 16-31 whole in component 7
 * (standard offsets from CPUID leaf 0xD). Loaded once per instruction,
 * written back with the header bits of what changed.
 */
import type { VcpuPort } from './cpu.js';
import { components } from './xsave.js';
import { EmulationError } from './fault.js';

const XMM = 160, XSTATE_BV = 512;
const YMM = 2, ZMM_HI256 = 6, HI16_ZMM = 7;

export class VecRegs {
  readonly buf: Buffer;
  private dirty = 0n;
  private readonly off: Map<number, { offset: number }>;

  constructor(readonly vcpu: VcpuPort) {
    this.buf = vcpu.getXsave();
    this.off = components(vcpu);
  }

  private comp(i: number): number {
    const c = this.off.get(i);
    if (!c || !c.offset) throw new EmulationError(`XSAVE component ${i} has no standard offset`);
    return c.offset;
  }

  /** The 64 bytes of register r (bytes past what the CPU implements read as 0). */
  get(r: number): Uint8Array {
    // KVM_GET_XSAVE fills components not in use with their initial values (zeros).
    const out = new Uint8Array(64);
    if (r < 16) {
      out.set(this.buf.subarray(XMM + 16 * r, XMM + 16 * r + 16), 0);
      if (this.off.has(YMM)) out.set(this.slice(YMM, 16 * r, 16), 16);
      if (this.off.has(ZMM_HI256)) out.set(this.slice(ZMM_HI256, 32 * r, 32), 32);
    } else {
      out.set(this.slice(HI16_ZMM, 64 * (r - 16), 64), 0);
    }
    return out;
  }

  private slice(c: number, at: number, n: number): Uint8Array {
    const o = this.comp(c) + at;
    return this.buf.subarray(o, o + n);
  }

  /**
   * Write `bytes` (16, 32 or 64) into register r. VEX/EVEX writes clear the
   * rest of the register; legacy SSE writes leave bits 255:128 alone.
   */
  set(r: number, bytes: Uint8Array, zeroUpper: boolean): void {
    const full = new Uint8Array(64);
    if (!zeroUpper) full.set(this.get(r));
    full.set(bytes.subarray(0, Math.min(64, bytes.length)), 0);
    if (r < 16) {
      this.buf.set(full.subarray(0, 16), XMM + 16 * r);
      this.dirty |= 2n;
      if (zeroUpper || bytes.length > 16) { this.slice(YMM, 16 * r, 16).set(full.subarray(16, 32)); this.dirty |= 1n << BigInt(YMM); }
      if ((zeroUpper || bytes.length > 32) && this.off.has(ZMM_HI256)) {
        this.slice(ZMM_HI256, 32 * r, 32).set(full.subarray(32, 64));
        this.dirty |= 1n << BigInt(ZMM_HI256);
      }
    } else {
      this.slice(HI16_ZMM, 64 * (r - 16), 64).set(full);
      this.dirty |= 1n << BigInt(HI16_ZMM);
    }
  }

  /** vzeroupper / vzeroall. */
  zero(all: boolean): void {
    for (let r = 0; r < 16; r++) this.set(r, all ? new Uint8Array(16) : this.get(r).subarray(0, 16), true);
  }

  get mxcsr(): number {
    return this.buf.readUInt32LE(24);
  }

  commit(): void {
    if (!this.dirty) return;
    // A component marked not-in-use would be loaded as zeros: mark every one we wrote.
    this.buf.writeBigUInt64LE(this.buf.readBigUInt64LE(XSTATE_BV) | this.dirty, XSTATE_BV);
    this.vcpu.setXsave(this.buf);
    this.dirty = 0n;
  }
}
