/**
 * SMP: the BSP starts the APs with INIT/SIPI; each AP reports its local APIC
 * id (and the initial APIC id CPUID leaf 1 gives it) and counts itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allLines, boot, describe, findLine, romArgs, skipWithoutKvm, Status } from './harness.js';

for (const ncpus of [2, 4]) {
  test(`smp: -c ${ncpus} brings up ${ncpus - 1} AP(s)`, async (t) => {
    if (skipWithoutKvm(t)) return;
    // More vCPUs than this host may have CPUs: raise the limit (bhyve's hw.vmm.maxcpu).
    const r = await boot(romArgs('smp', ['-c', String(ncpus), '-o', `vmm.maxcpu=${ncpus}`]));
    const why = describe(r);
    assert.equal(r.status, Status.PowerOff, why);

    const bsp = findLine(r, /^BSP apic=(\d+) cpuid=(\d+)$/);
    assert.ok(bsp, why);
    assert.equal(bsp[1], '0', `the BSP has APIC id 0\n${why}`);

    const aps = allLines(r, /^AP up apic=(\d+) cpuid=(\d+)$/);
    const ids = aps.map((m) => Number(m[1])).sort((a, b) => a - b);
    assert.deepEqual(ids, Array.from({ length: ncpus - 1 }, (_, i) => i + 1), `one line per AP, ids 1..${ncpus - 1}\n${why}`);
    assert.ok(r.lines.includes(`CPUS ${ncpus}`), why);
    assert.equal(r.lines.at(-1), 'DONE', why);

    // CPUID leaf 1 EBX[31:24] must be each vCPU's own APIC id.
    assert.equal(bsp[2], bsp[1], `BSP CPUID initial APIC id\n${why}`);
    for (const m of aps) assert.equal(m[2], m[1], `AP ${m[1]}: CPUID initial APIC id\n${why}`);
  });
}

test('smp: -c 1 has no APs', async (t) => {
  if (skipWithoutKvm(t)) return;
  const r = await boot(romArgs('smp'));
  const why = describe(r);
  assert.equal(r.status, Status.PowerOff, why);
  assert.equal(allLines(r, /^AP up/).length, 0, why);
  assert.ok(r.lines.includes('CPUS 1'), why);
});
