/**
 * Unit-test scaffolding for the AHCI HBA: real guest memory (anonymous
 * mmap), disk images in a temporary directory opened through the block
 * back-end, the device built through its registration, and a tiny AHCI
 * driver that lays out command lists/tables in guest memory. What a test
 * file opens and creates here is closed and removed after its tests.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { isBlockResource } from '../../backends/block.js';
import { GuestMemory } from '../../kvm/memory.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, mmap, PROT_READ, PROT_WRITE } from '../../kvm/libc.js';
import type { Doorbell, MachineContext } from '../../vmm/context.js';
import { testCtx, type IrqRecord } from '../pci/pci-test-ctx.js';
import { findPci } from '../registry.js';
import './ahci.js';
import type { AhciHba } from './hba.js';
import * as A from './regs.js';

export const RAM_SIZE = 16 << 20;
export const ROM_GPA = 0xfff00000;
export const CLB = (n: number): number => 0x10000 + n * 0x1000;
export const FB = (n: number): number => CLB(n) + 0x400;
export const CTBA = (n: number, slot: number): number => 0x100000 + n * 0x10000 + slot * 0x400;
export const DATA = 0x400000;

/** Run last first: the images' fds are closed before their directories are removed. */
const cleanups: (() => void)[] = [];
after(() => { for (const f of cleanups.reverse()) f(); });

function anon(size: number): bigint {
  return BigInt(mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) as number | bigint);
}

export function tmpFile(name: string, size: number, fill: (buf: Buffer) => void = () => {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ahci-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = path.join(dir, name);
  const b = Buffer.alloc(size);
  fill(b);
  fs.writeFileSync(p, b);
  return p;
}

export interface AhciTest {
  hba: AhciHba;
  ctx: MachineContext;
  mem: GuestMemory;
  irqs: IrqRecord[];
  /** Doorbell rings not yet handled (async mode). */
  rings: number;
  /** Async mode: run the doorbell handler as the I/O thread would (under the device lock). */
  runIo(): void;
}

/** Build `device` (ahci, ahci-hd, ahci-cd) with legacy options `opts`; `async` gives it a doorbell. */
export function makeAhci(device: string, opts: string, o: { async?: boolean; config?: Record<string, string> } = {}): AhciTest {
  const t = testCtx(o.config ?? {});
  const mem = new GuestMemory([
    { name: 'lowmem', gpa: 0, size: RAM_SIZE, host: anon(RAM_SIZE), readonly: false, devmem: false },
    { name: 'bootrom', gpa: ROM_GPA, size: 1 << 20, host: anon(1 << 20), readonly: true, devmem: true },
  ]);
  let handler: (() => void) | undefined;
  const test = { rings: 0 } as AhciTest;
  const doorbell = (_name: string, h: () => void): Doorbell => {
    handler = h;
    return { fd: -1, ring: () => { test.rings++; }, bind: () => false };
  };
  const ctx: MachineContext = { ...t.ctx, mem, ...(o.async ? { doorbell } : {}) };
  cleanups.push(() => { for (const r of ctx.resources.values()) if (isBlockResource(r)) fs.closeSync(r.fd); });
  const prefix = 'pci.0.4.0';
  const emu = findPci(device)!;
  ctx.config.set(`${prefix}.device`, device);
  emu.legacyConfig!(ctx.config, prefix, opts);
  emu.prepare!(ctx, prefix, { bus: 0, slot: 4, func: 0 });
  const hba = emu.create(ctx, prefix, { bus: 0, slot: 4, func: 0 }) as AhciHba;
  Object.assign(test, {
    hba, ctx, mem, irqs: t.irqs,
    runIo: () => {
      test.rings = 0;
      ctx.arena.locked(() => handler?.());
    },
  });
  return test;
}

export interface IssueSpec {
  cfis: Uint8Array;
  acmd?: number[];
  prdt?: [number, number][];
  write?: boolean;
  /** Override the command table address. */
  ctba?: number;
  prdtl?: number;
}

/** A register H2D FIS with the C bit. */
export function h2d(cmd: number, f: { lba?: number; count?: number; features?: number; device?: number } = {}): Uint8Array {
  const b = new Uint8Array(20);
  const lba = f.lba ?? 0, count = f.count ?? 0, feat = f.features ?? 0;
  b[0] = A.FIS_REG_H2D;
  b[1] = A.FIS_H2D_C;
  b[2] = cmd;
  b[3] = feat & 0xff;
  b[4] = lba & 0xff;
  b[5] = (lba >>> 8) & 0xff;
  b[6] = (lba >>> 16) & 0xff;
  b[7] = f.device ?? 0x40;
  b[8] = (lba / 2 ** 24) & 0xff;
  b[9] = (lba / 2 ** 32) & 0xff;
  b[10] = (lba / 2 ** 40) & 0xff;
  b[11] = (feat >>> 8) & 0xff;
  b[12] = count & 0xff;
  b[13] = (count >>> 8) & 0xff;
  return b;
}

/** A minimal AHCI driver over the test HBA. */
export class Driver {
  constructor(readonly t: AhciTest) {}
  reg(off: number): number { return this.t.hba.abarRead(off, 4); }
  setReg(off: number, v: number): void { this.t.hba.abarWrite(off, 4, v); }
  preg(n: number, off: number): number { return this.reg(A.PORT_BASE + n * A.PORT_STEP + off); }
  setPreg(n: number, off: number, v: number): void { this.setReg(A.PORT_BASE + n * A.PORT_STEP + off, v); }
  ram(gpa: number, len: number): Uint8Array { return this.t.mem.slice(gpa, len)!; }

  /** Point the port at its command list and FIS area, enable FIS receive, start it. */
  start(n: number): void {
    this.setPreg(n, A.P_CLB, CLB(n));
    this.setPreg(n, A.P_CLBU, 0);
    this.setPreg(n, A.P_FB, FB(n));
    this.setPreg(n, A.P_FBU, 0);
    this.setPreg(n, A.P_SERR, 0xffffffff);
    this.setPreg(n, A.P_IS, 0xffffffff);
    this.setPreg(n, A.P_CMD, A.PCMD_SUD | A.PCMD_POD | A.PCMD_FRE | A.PCMD_ST);
  }

  /** Stop the port (clears CI after an error), then start it again. */
  restart(n: number): void {
    this.setPreg(n, A.P_CMD, A.PCMD_SUD | A.PCMD_POD | A.PCMD_FRE);
    this.setPreg(n, A.P_IS, 0xffffffff);
    this.setPreg(n, A.P_CMD, A.PCMD_SUD | A.PCMD_POD | A.PCMD_FRE | A.PCMD_ST);
  }

  /** Lay out slot `slot` of port `n` and issue it (PxCI; PxSACT first for NCQ when `ncq`). */
  issue(n: number, slot: number, spec: IssueSpec, ncq = false): void {
    const prdt = spec.prdt ?? [];
    const ctba = spec.ctba ?? CTBA(n, slot);
    const hdr = new DataView(this.ram(CLB(n) + slot * A.CMD_HDR_SIZE, A.CMD_HDR_SIZE).slice().buffer);
    const flags = 5 | (spec.acmd ? A.HDR_ATAPI : 0) | (spec.write ? A.HDR_WRITE : 0);
    hdr.setUint16(0, flags, true);
    hdr.setUint16(2, spec.prdtl ?? prdt.length, true);
    hdr.setUint32(4, 0, true);
    hdr.setUint32(8, ctba % 2 ** 32, true);
    hdr.setUint32(12, Math.floor(ctba / 2 ** 32), true);
    this.ram(CLB(n) + slot * A.CMD_HDR_SIZE, A.CMD_HDR_SIZE).set(new Uint8Array(hdr.buffer));
    const table = this.t.mem.slice(ctba, A.CT_PRDT + prdt.length * A.PRD_SIZE);
    if (table) {
      table.fill(0, 0, A.CT_PRDT);
      table.set(spec.cfis);
      if (spec.acmd) table.set(spec.acmd, A.CT_ACMD);
      const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
      prdt.forEach(([gpa, len], i) => {
        const o = A.CT_PRDT + i * A.PRD_SIZE;
        dv.setUint32(o, gpa % 2 ** 32, true);
        dv.setUint32(o + 4, Math.floor(gpa / 2 ** 32), true);
        dv.setUint32(o + 8, 0, true);
        dv.setUint32(o + 12, (len - 1) & A.PRD_DBC_MASK, true);
      });
    }
    if (ncq) this.setPreg(n, A.P_SACT, 1 << slot);
    this.setPreg(n, A.P_CI, 1 << slot);
  }

  /** The received D2H register FIS (status, error). */
  d2h(n: number): { status: number; error: number; count: number } {
    const f = this.ram(FB(n) + A.RFIS_RFIS, 20);
    return { status: f[2], error: f[3], count: f[12] };
  }

  prdbc(n: number, slot: number): number {
    return this.t.mem.dataView(CLB(n) + slot * A.CMD_HDR_SIZE + A.HDR_PRDBC, 4)!.getUint32(0, true);
  }
}
