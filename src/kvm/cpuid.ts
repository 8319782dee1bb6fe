/**
 * CPUID policy: start from what KVM supports on this host, then present the
 * topology of `-c` (sockets, cores, threads) and the hypervisor bit, per vCPU.
 */
import * as C from './constants.js';
import { check } from './error.js';
import { ioctlPtr } from './libc.js';

export interface Topology { cpus: number; sockets: number; cores: number; threads: number }

export interface CpuidEntry {
  fn: number; index: number; flags: number; eax: number; ebx: number; ecx: number; edx: number;
}

const MAX_ENTRIES = 256;

export function supportedCpuid(kvmFd: number): CpuidEntry[] {
  const b = Buffer.alloc(8 + MAX_ENTRIES * C.CPUID_ENTRY_SIZE);
  b.writeUInt32LE(MAX_ENTRIES, 0);
  check(ioctlPtr(kvmFd, C.KVM_GET_SUPPORTED_CPUID, b), 'KVM_GET_SUPPORTED_CPUID');
  const n = b.readUInt32LE(0);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = 8 + i * C.CPUID_ENTRY_SIZE;
    out.push({
      fn: b.readUInt32LE(o), index: b.readUInt32LE(o + 4), flags: b.readUInt32LE(o + 8),
      eax: b.readUInt32LE(o + 12), ebx: b.readUInt32LE(o + 16), ecx: b.readUInt32LE(o + 20), edx: b.readUInt32LE(o + 24),
    });
  }
  return out;
}

const bitsFor = (n: number) => (n <= 1 ? 0 : Math.ceil(Math.log2(n)));

/**
 * The entries for one vCPU (APIC id = vCPU id, as bhyve). `physBits`, when
 * given, lowers the physical address width of leaf 0x80000008 (never raises
 * it): firmware sizes its identity map by it (OVMF maps all of it, in 2 MiB
 * pages when CPUID offers no 1 GiB pages, as under PVM).
 */
export function vcpuCpuid(base: CpuidEntry[], vcpu: number, topo: Topology, physBits?: number): CpuidEntry[] {
  const perPkg = topo.cores * topo.threads;
  const smtBits = bitsFor(topo.threads);
  const pkgBits = smtBits + bitsFor(topo.cores);
  const out = base.map((e) => ({ ...e }));
  for (const e of out) {
    switch (e.fn) {
      case 1:
        e.ebx = (e.ebx & 0x0000ffff) | ((Math.min(perPkg, 255) & 0xff) << 16) | ((vcpu & 0xff) << 24);
        if (perPkg > 1) e.edx |= 1 << 28; // HTT
        e.ecx |= 1 << 31; // hypervisor present
        break;
      case 4: // deterministic cache parameters: cores per package, threads sharing
        if ((e.eax & 0x1f) !== 0) {
          const level = (e.eax >> 5) & 7;
          const sharing = level >= 3 ? perPkg : topo.threads;
          e.eax = (e.eax & 0x3fff) | (((sharing - 1) & 0xfff) << 14) | (((topo.cores - 1) & 0x3f) << 26);
        }
        break;
      case 0xb: case 0x1f:
        if (e.index === 0) { e.eax = smtBits; e.ebx = topo.threads; e.ecx = (1 << 8) | 0; }
        else if (e.index === 1) { e.eax = pkgBits; e.ebx = perPkg; e.ecx = (2 << 8) | 1; }
        else { e.eax = 0; e.ebx = 0; e.ecx = e.index; }
        e.edx = vcpu;
        break;
      case 0x80000008:
        e.ecx = (e.ecx & ~0xf0ff) | ((perPkg - 1) & 0xff) | (pkgBits << 12);
        if (physBits !== undefined) e.eax = (e.eax & ~0xff) | Math.min(physBits, e.eax & 0xff);
        break;
    }
  }
  return out;
}

export function encodeCpuid(entries: CpuidEntry[]): Buffer {
  const b = Buffer.alloc(entries.length * C.CPUID_ENTRY_SIZE);
  entries.forEach((e, i) => {
    const o = i * C.CPUID_ENTRY_SIZE;
    b.writeUInt32LE(e.fn >>> 0, o); b.writeUInt32LE(e.index >>> 0, o + 4); b.writeUInt32LE(e.flags >>> 0, o + 8);
    b.writeUInt32LE(e.eax >>> 0, o + 12); b.writeUInt32LE(e.ebx >>> 0, o + 16);
    b.writeUInt32LE(e.ecx >>> 0, o + 20); b.writeUInt32LE(e.edx >>> 0, o + 24);
  });
  return b;
}
