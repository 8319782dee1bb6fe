/**
 * FADT (signature "FACP", revision 6.0: bhyve's 5.1 layout plus the
 * hypervisor vendor id, which iasl also disassembles cleanly) and FACS.
 * PM1a event/control and the PM timer come from Platform.pm; the reset
 * register is port 0xCF9 written with 0x06; the power button is the fixed
 * feature one (PWR_BUTTON clear).
 */

import { ByteWriter } from '../bytes.js';
import type { Platform } from '../platform.js';
import {
  ACCESS_BYTE, ACCESS_DWORD, ACCESS_WORD, GAS_NONE, GAS_SYSTEM_IO,
  type Gas, finishSdt, startSdt, writeGas,
} from './sdt.js';

export const FADT_REVISION = 6;
export const FADT_MINOR_REVISION = 0;
export const FADT_LENGTH = 276;

// Field offsets (ACPI 5.2.9), for readers and tests.
export const FADT_OFF = {
  firmwareCtrl: 36, dsdt: 40, sciInt: 46, smiCmd: 48, acpiEnable: 52, acpiDisable: 53,
  pm1aEvtBlk: 56, pm1aCntBlk: 64, pmTmrBlk: 76, pm1EvtLen: 88, pm1CntLen: 89, pmTmrLen: 91,
  century: 108, iapcBootArch: 109, flags: 112, resetReg: 116, resetValue: 128, minorRevision: 131,
  xFirmwareCtrl: 132, xDsdt: 140, xPm1aEvtBlk: 148, xPm1aCntBlk: 172, xPmTmrBlk: 208, hypervisorId: 268,
} as const;

// FADT flags (ACPI table 5.10).
export const FADT_WBINVD = 1 << 0;
export const FADT_PROC_C1 = 1 << 2;
export const FADT_PWR_BUTTON = 1 << 4;
export const FADT_SLP_BUTTON = 1 << 5;
export const FADT_TMR_VAL_EXT = 1 << 8;
export const FADT_RESET_REG_SUP = 1 << 10;
export const FADT_HEADLESS = 1 << 12;
export const FADT_FORCE_APIC_PHYSICAL_DESTINATION_MODE = 1 << 19;
export const FADT_HW_REDUCED_ACPI = 1 << 20;

// IA-PC boot architecture flags.
export const BOOT_VGA_NOT_PRESENT = 1 << 2;
export const BOOT_PCIE_ASPM_CONTROLS = 1 << 4;

export const RESET_PORT = 0xcf9;
export const RESET_VALUE = 0x06;
export const RTC_CENTURY_INDEX = 0x32;

const PM_PROFILE_UNSPECIFIED = 0;
const INT_MODEL_APIC = 1; // reserved since ACPI 2.0; bhyve writes 1
const PM1_EVT_LEN = 4;
const PM1_CNT_LEN = 2;
const PM_TMR_LEN = 4;

/** bhyve's flags: no control-method power button, so the fixed-feature one is used. */
export function fadtFlags(p: Platform): number {
  return (FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_RESET_REG_SUP | FADT_HEADLESS |
    FADT_FORCE_APIC_PHYSICAL_DESTINATION_MODE | (p.pm.timer32 === false ? 0 : FADT_TMR_VAL_EXT)) >>> 0;
}

function io(address: number, bytes: number, access: number): Gas {
  return { space: GAS_SYSTEM_IO, bitWidth: bytes * 8, access, address };
}

export function buildFadt(p: Platform, facsAddress: number, dsdtAddress: number): Uint8Array {
  const pm = p.pm;
  const w = startSdt('FACP', FADT_REVISION);
  w.u32(facsAddress).u32(dsdtAddress);
  w.u8(INT_MODEL_APIC).u8(PM_PROFILE_UNSPECIFIED).u16(pm.sciIrq);
  w.u32(pm.smiCmd).u8(pm.acpiEnable).u8(pm.acpiDisable).u8(0 /* S4BIOS_REQ */).u8(0 /* PSTATE_CNT */);
  w.u32(pm.pm1aEvt).u32(0).u32(pm.pm1aCnt).u32(0).u32(0 /* PM2 */).u32(pm.pmTmr).u32(0).u32(0 /* GPE0/1 */);
  w.u8(PM1_EVT_LEN).u8(PM1_CNT_LEN).u8(0).u8(PM_TMR_LEN).u8(0).u8(0).u8(0 /* GPE1_BASE */).u8(0 /* CST_CNT */);
  w.u16(0).u16(0 /* C2/C3 latency */).u16(0).u16(0 /* flush size/stride */);
  w.u8(0).u8(0 /* duty */).u8(0).u8(0 /* day/month alarm */).u8(RTC_CENTURY_INDEX);
  w.u16(BOOT_VGA_NOT_PRESENT | BOOT_PCIE_ASPM_CONTROLS).u8(0);
  w.u32(fadtFlags(p));
  writeGas(w, io(RESET_PORT, 1, ACCESS_BYTE));
  w.u8(RESET_VALUE).u16(0 /* ARM boot flags */).u8(FADT_MINOR_REVISION);
  w.u64(facsAddress).u64(dsdtAddress);
  writeGas(w, io(pm.pm1aEvt, PM1_EVT_LEN, ACCESS_WORD));
  writeGas(w, GAS_NONE); // X_PM1b_EVT_BLK
  writeGas(w, io(pm.pm1aCnt, PM1_CNT_LEN, ACCESS_WORD));
  writeGas(w, GAS_NONE); // X_PM1b_CNT_BLK
  writeGas(w, GAS_NONE); // X_PM2_CNT_BLK
  writeGas(w, io(pm.pmTmr, PM_TMR_LEN, ACCESS_DWORD));
  writeGas(w, GAS_NONE); // X_GPE0_BLK
  writeGas(w, GAS_NONE); // X_GPE1_BLK
  writeGas(w, GAS_NONE); // SLEEP_CONTROL_REG (HW-reduced only)
  writeGas(w, GAS_NONE); // SLEEP_STATUS_REG
  w.u64(0); // hypervisor vendor identity
  return finishSdt(w);
}

// FACS (ACPI 5.2.10): no checksum, 64-byte aligned.
export const FACS_LENGTH = 64;
export const FACS_ALIGN = 64;
const FACS_VERSION = 2;

export function buildFacs(): Uint8Array {
  return new ByteWriter()
    .ascii('FACS', 4).u32(FACS_LENGTH).u32(0 /* hardware signature */).u32(0 /* waking vector */)
    .u32(0 /* global lock */).u32(0 /* flags */).u64(0 /* X waking vector */).u8(FACS_VERSION)
    .zeros(3).u32(0 /* OSPM flags */).zeros(24)
    .finish();
}
