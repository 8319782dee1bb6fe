/**
 * Debian's OVMF (package ovmf): the split image, code and a copy of the
 * variable store, as bhyve(8) takes them (`-l bootrom,CODE,VARS`), on the
 * machine that build expects: QEMU's q35 host bridge (`hostbridge,model=q35`,
 * ECAM behind PCIEXBAR) with the LPC bridge at 0:1f.0 (where OVMF reads the
 * ACPI PM base), and QEMU's fw_cfg for memory, CPUs, ACPI and SMBIOS.
 * `x86.physbits=36` keeps OVMF's identity map at 64 GiB (see below).
 * With nothing to boot, the boot manager falls through to the built-in UEFI
 * shell; the test waits for its prompt, types `ver` and checks the answer.
 *
 * Speed on a PVM host: every firmware instruction runs in KVM's instruction
 * emulator. OVMF executes about 1.1e9 instructions before the boot manager
 * prints its first line (counted under QEMU's TCG with an instruction-count
 * plugin); 0.45e9 of them are SEC decompressing the firmware volumes (LZMA),
 * and with this host's 48 physical address bits another ~0.2e9 would go
 * to DxeIpl building 2 MiB-page tables for a 1 TiB address space (PVM's
 * CPUID offers no 1 GiB pages; OVMF caps the width at 40 bits then), which
 * reporting 36 bits avoids. At about 0.5 µs an instruction the rest is
 * still 7 minutes or more, and several times that on a loaded machine,
 * hence the long bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipWithoutKvm } from './harness.js';
import { describeWatch, Screen, watchVmm } from './console.js';

const CODE = '/usr/share/OVMF/OVMF_CODE.fd';
const VARS = '/usr/share/OVMF/OVMF_VARS.fd';
const TIMEOUT_MS = Number(process.env.BHYVE_OVMF_TIMEOUT_MS ?? 40 * 60_000);
const PROMPT = /Shell> /;

const plain = (s: string): string => s.replace(/\x1b\[[?=]?[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '');

test('Debian OVMF reaches the UEFI shell on COM1 and runs a command', { timeout: TIMEOUT_MS + 60_000 }, async (t) => {
  if (skipWithoutKvm(t)) return;
  if (!existsSync(CODE) || !existsSync(VARS)) { t.skip(`no ${CODE} (package ovmf)`); return; }
  const dir = mkdtempSync(join(tmpdir(), 'bhyvets-ovmf-'));
  try {
    const vars = join(dir, 'vars.fd');
    copyFileSync(VARS, vars);
    let typed = -1;
    const r = await watchVmm([
      '-m', '256M', '-o', 'x86.physbits=36', '-s', '0,hostbridge,model=q35', '-s', '31,lpc', '-l', 'com1,stdio', '-l', 'fwcfg=qemu',
      '-l', `bootrom,${CODE},${vars}`, 'ovmf',
    ], {
      timeoutMs: TIMEOUT_MS,
      until: (out, send) => {
        const text = plain(out);
        if (typed < 0) {
          if (!PROMPT.test(text)) return false;
          typed = text.length;
          send('ver\r');
          return false;
        }
        // The answer to `ver`, then the next prompt.
        return PROMPT.test(text.slice(typed)) && /UEFI Interactive Shell v\d/.test(text.slice(typed));
      },
    });
    const text = plain(r.stdout);
    const out = describeWatch(r, new Screen().feed(r.stdout));
    t.diagnostic(`OVMF: shell prompt ${typed >= 0 ? 'reached' : 'not reached'}; run ${Math.round(r.ms / 1000)} s`);
    assert.match(text, /BdsDxe: (loading|starting) Boot\d+ "EFI Internal Shell"/, `the boot manager started the shell\n${out}`);
    assert.match(text, /UEFI Interactive Shell v2\.\d/, `the shell's banner\n${out}`);
    assert.match(text, /UEFI v2\.\d+ \(EDK II, 0x[0-9A-F]+\)/, `the firmware's version line\n${out}`);
    assert.ok(typed >= 0, `the shell prompt\n${out}`);
    assert.ok(r.matched, `the shell answered 'ver' and prompted again\n${out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
