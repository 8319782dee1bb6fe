/**
 * The DSDT: \_S5, the guest's interrupt model choice (PICM/_PIC, as bhyve),
 * and \_SB.PC00, the PCI root bridge with its windows, its _PRT (APIC mode:
 * slot/pin -> GSI), the HPET, a motherboard-resources device reserving the
 * ECAM and PM ports, and the ISA devices (PIC, PIT, RTC, COM ports).
 */

import { concat } from '../bytes.js';
import { type ComPort, type Platform, ecamRange } from '../platform.js';
import { type Aml, arg, device, eisaId, integer, method, name, pkg, ref, ret, scope, store } from './aml.js';
import { dwordMemory, ioFixed, irqNoFlags, memory32Fixed, qwordMemory, resourceTemplate, wordBusNumber, wordIO } from './resources.js';
import { AcpiError, sdt } from './sdt.js';
import { HPET_MMIO_SIZE } from './tables.js';

/** DSDT revision 2: 64-bit AML integers. */
export const DSDT_REVISION = 2;
export const PCI_ROOT_PATH = '\\_SB.PC00';

const S5_SLP_TYP = 5;
const PCI_CONFIG_PORT = 0xcf8;
const PCI_CONFIG_PORTS = 8;
const LEGACY_IO_END = 0x0cf7;
const LEGACY_IO_RESUME = 0x0d00;
const IO_SPACE_END = 0xffff;
const PRT_ALL_FUNCTIONS = 0xffff;
const PIC_MASTER = 0x20;
const PIC_SLAVE = 0xa0;
const PIC_CASCADE_IRQ = 2;
const PIT_PORT = 0x40;
const PIT_PORTS = 4;
const PIT_IRQ = 0;
const RTC_PORTS = 2;
const UART_PORTS = 8;
const PM1_EVT_PORTS = 4;
const PM1_CNT_PORTS = 2;
const PM_TMR_PORTS = 4;

export function buildDsdt(p: Platform): Uint8Array {
  const aml = concat([
    name('_S5', pkg([integer(S5_SLP_TYP), integer(0)])),
    name('PICM', integer(0)),
    method('_PIC', 1, [store(arg(0), ref('PICM'))]),
    scope('\\_SB', [pciRoot(p)]),
  ]);
  return sdt('DSDT', DSDT_REVISION, aml);
}

function busRange(p: Platform): [number, number] {
  return p.ecam ? [p.ecam.busStart, p.ecam.busEnd] : [0, 255];
}

function pciRoot(p: Platform): Aml {
  const [busStart] = busRange(p);
  const body: Aml[] = p.ecam
    ? [name('_HID', eisaId('PNP0A08')), name('_CID', eisaId('PNP0A03'))]
    : [name('_HID', eisaId('PNP0A03'))];
  body.push(
    name('_UID', integer(0)),
    method('_BBN', 0, [ret(integer(busStart))]),
    name('_CRS', resourceTemplate(rootResources(p))),
  );
  if (p.intxRoutes.length > 0) body.push(name('_PRT', pkg(routingTable(p))));
  if (p.hpet) body.push(hpetDevice(p.hpet.address));
  body.push(systemResources(p));
  const isa = isaDevices(p);
  if (p.lpc.present && p.lpc.slot !== undefined) {
    const adr = ((p.lpc.slot << 16) | (p.lpc.func ?? 0)) >>> 0;
    body.push(device('ISA', [name('_ADR', integer(adr)), ...isa]));
  } else {
    body.push(...isa);
  }
  return device('PC00', body);
}

function rootResources(p: Platform): Uint8Array[] {
  const [busStart, busEnd] = busRange(p);
  const [ioStart, ioEnd] = p.pciWindows.io;
  const [m32Start, m32End] = p.pciWindows.mem32;
  const [m64Start, m64End] = p.pciWindows.mem64;
  if (!(ioStart >= LEGACY_IO_RESUME && ioEnd <= IO_SPACE_END && ioStart <= ioEnd)) {
    throw new AcpiError(`PCI I/O window 0x${ioStart.toString(16)}-0x${ioEnd.toString(16)} must lie in 0xd00-0xffff`);
  }
  if (!(m32Start <= m32End && m32End <= 0xffffffff)) throw new AcpiError('PCI 32-bit memory window must lie below 4 GiB');
  const res = [
    wordBusNumber(busStart, busEnd),
    ioFixed(PCI_CONFIG_PORT, PCI_CONFIG_PORTS),
    wordIO(0, LEGACY_IO_END),
  ];
  if (ioStart > LEGACY_IO_RESUME) res.push(wordIO(LEGACY_IO_RESUME, ioStart - 1));
  res.push(wordIO(ioStart, ioEnd), dwordMemory(m32Start, m32End));
  if (m64End > m64Start) res.push(qwordMemory(m64Start, m64End));
  return res;
}

function routingTable(p: Platform): Aml[] {
  const [busStart] = busRange(p);
  const io = p.ioapic;
  const seen = new Set<string>();
  const sorted = [...p.intxRoutes].sort((a, b) => a.slot - b.slot || a.pin - b.pin);
  return sorted.map((r) => {
    const where = `INTx route ${r.bus}:${r.slot} pin ${r.pin}`;
    if (r.bus !== busStart) throw new AcpiError(`${where}: only the root bus ${busStart} is described`);
    if (!(r.slot >= 0 && r.slot < 32 && r.pin >= 0 && r.pin < 4)) throw new AcpiError(`${where}: bad slot or pin`);
    if (!(r.gsi >= io.gsiBase && r.gsi < io.gsiBase + io.pins)) throw new AcpiError(`${where}: GSI ${r.gsi} is not an I/O APIC pin`);
    const key = `${r.slot}/${r.pin}`;
    if (seen.has(key)) throw new AcpiError(`${where}: routed twice`);
    seen.add(key);
    return pkg([integer(((r.slot << 16) | PRT_ALL_FUNCTIONS) >>> 0), integer(r.pin), integer(0), integer(r.gsi)]);
  });
}

function hpetDevice(address: number): Aml {
  return device('HPET', [
    name('_HID', eisaId('PNP0103')),
    name('_UID', integer(0)),
    name('_CRS', resourceTemplate([memory32Fixed(address, HPET_MMIO_SIZE)])),
  ]);
}

/** Motherboard resources (PNP0C02): the PM register block and the ECAM window. */
function systemResources(p: Platform): Aml {
  const res = [
    ioFixed(p.pm.pm1aEvt, PM1_EVT_PORTS),
    ioFixed(p.pm.pm1aCnt, PM1_CNT_PORTS),
    ioFixed(p.pm.pmTmr, PM_TMR_PORTS),
  ];
  if (p.ecam) {
    const { start, size } = ecamRange(p.ecam);
    res.push(memory32Fixed(start, size));
  }
  return device('SYSR', [
    name('_HID', eisaId('PNP0C02')),
    name('_UID', integer(1)),
    name('_CRS', resourceTemplate(res)),
  ]);
}

function isaDevices(p: Platform): Aml[] {
  const out = [
    simpleDevice('PIC', 'PNP0000', [ioFixed(PIC_MASTER, 2), ioFixed(PIC_SLAVE, 2), irqNoFlags([PIC_CASCADE_IRQ])]),
    simpleDevice('TIMR', 'PNP0100', [ioFixed(PIT_PORT, PIT_PORTS), irqNoFlags([PIT_IRQ])]),
    simpleDevice('RTC', 'PNP0B00', [ioFixed(p.rtc.port, RTC_PORTS), irqNoFlags([p.rtc.irq])]),
  ];
  if (p.lpc.present) p.lpc.comPorts.forEach((c, i) => out.push(comDevice(c, i)));
  return out;
}

function simpleDevice(dev: string, hid: string, res: Uint8Array[]): Aml {
  return device(dev, [name('_HID', eisaId(hid)), name('_CRS', resourceTemplate(res))]);
}

function comDevice(c: ComPort, index: number): Aml {
  const unit = /^COM(\d+)$/.exec(c.name);
  const uid = unit ? Number(unit[1]) : index + 1;
  return device(c.name, [
    name('_HID', eisaId('PNP0501')),
    name('_UID', integer(uid)),
    name('_CRS', resourceTemplate([ioFixed(c.port, UART_PORTS), irqNoFlags([c.irq])])),
  ]);
}
