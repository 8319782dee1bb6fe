import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vcpuCpuid, type CpuidEntry } from './cpuid.js';

const base: CpuidEntry[] = [
  { fn: 1, index: 0, flags: 0, eax: 0xb00f21, ebx: 0x1020800, ecx: 0x1202000, edx: 0x78bfbff },
  { fn: 0x80000008, index: 0, flags: 0, eax: 0x3030, ebx: 0, ecx: 0x7001, edx: 0 },
];
const one = { cpus: 1, sockets: 1, cores: 1, threads: 1 };
const leaf = (e: CpuidEntry[], fn: number): CpuidEntry => e.find((x) => x.fn === fn)!;

test('physical address bits: the host\'s by default, lowered (never raised) by physBits', () => {
  assert.equal(leaf(vcpuCpuid(base, 0, one), 0x80000008).eax, 0x3030);
  assert.equal(leaf(vcpuCpuid(base, 0, one, 36), 0x80000008).eax, 0x3024, 'linear bits kept');
  assert.equal(leaf(vcpuCpuid(base, 0, one, 52), 0x80000008).eax, 0x3030);
  assert.equal(base[1].eax, 0x3030, 'the host entries are not changed');
});

test('topology: APIC id, logical count and the hypervisor bit in leaf 1', () => {
  const e = leaf(vcpuCpuid(base, 3, { cpus: 4, sockets: 1, cores: 4, threads: 1 }), 1);
  assert.equal(e.ebx >>> 24, 3);
  assert.equal((e.ebx >> 16) & 0xff, 4);
  assert.ok(e.ecx & (1 << 31));
});
