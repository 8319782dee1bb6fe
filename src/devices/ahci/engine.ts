/**
 * The command engine (bhyve's ahci_handle_port / ahci_handle_slot): scans a
 * started port's issued slots from the current command slot, fetches each
 * command header and table from guest memory, and runs it to completion.
 * A command list, command table or PRDT outside guest memory ends the
 * command with a task-file error (ABORT), never a host access.
 */
import { handleAta } from './ata.js';
import { ABORT_TFD, Command, type EngineHost } from './command.js';
import type { AhciPort } from './port.js';
import * as A from './regs.js';
import { parsePrdt } from './sg.js';

/** Enough scan steps to visit every slot after each of 32 commands. */
const MAX_STEPS = A.CMD_SLOTS * (A.CMD_SLOTS + 2);
const CFIS_BYTES = 64;
const ACMD_BYTES = 16;

/** Run every runnable command of `p`; returns the number of commands started. */
export function runPort(host: EngineHost, p: AhciPort): number {
  const s = p.s;
  let started = 0;
  for (let step = 0; step < MAX_STEPS; step++) {
    if (!p.present || !(s.cmd & A.PCMD_ST)) break;
    if ((s.ci & ~s.pending) === 0) break;
    if (s.tfd & (A.ATA_S_BUSY | A.ATA_S_DRQ) || s.waitforclear) break;
    const slot = s.ccs & 31;
    if (s.ci & ~s.pending & (1 << slot)) {
      s.cmd = ((s.cmd & ~A.PCMD_CCS_MASK) | (slot << A.PCMD_CCS_SHIFT)) >>> 0;
      handleSlot(host, p, slot);
      started++;
    }
    s.ccs = (slot + 1) & 31;
  }
  return started;
}

function handleSlot(host: EngineHost, p: AhciPort, slot: number): void {
  const mem = host.ctx.mem;
  const hdrAddr = p.clbAddr + slot * A.CMD_HDR_SIZE;
  const hdr = mem.dataView(hdrAddr, A.CMD_HDR_SIZE);
  const empty = new Uint8Array(CFIS_BYTES);
  if (!hdr) return p.d2h(slot, empty, ABORT_TFD);
  const prdtl = hdr.getUint16(2, true);
  const ctba = hdr.getUint32(A.HDR_CTBA + 4, true) * 2 ** 32 + ((hdr.getUint32(A.HDR_CTBA, true) & ~0x7f) >>> 0);
  const table = mem.slice(ctba, A.CT_PRDT + prdtl * A.PRD_SIZE);
  if (!table) return p.d2h(slot, empty, ABORT_TFD);
  const cfis = table.slice(0, CFIS_BYTES);
  if (cfis[0] !== A.FIS_REG_H2D) return p.d2h(slot, cfis, ABORT_TFD);
  const s = p.s;
  if (!(cfis[1] & A.FIS_H2D_C)) { // a control FIS: software reset on SRST's falling edge
    if (cfis[15] & A.FIS_CTL_SRST) {
      s.reset = 1;
    } else if (s.reset) {
      s.reset = 0;
      p.resetPort();
    }
    s.ci = (s.ci & ~(1 << slot)) >>> 0;
    return;
  }
  const acmd = table.slice(A.CT_ACMD, A.CT_ACMD + ACMD_BYTES);
  const prds = parsePrdt(table.subarray(A.CT_PRDT), prdtl);
  const c = new Command(host, p, slot, cfis, acmd, prds, hdrAddr);
  try {
    handleAta(c);
  } catch {
    // A fault of ours must not take the I/O thread down: fail the command instead.
    if (!c.stale) c.abort();
  }
}
