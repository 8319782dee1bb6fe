/**
 * The LPC (PCI-ISA) bridge, as bhyve's pci_lpc.c: an Intel 82371SB-like
 * function 8086:7000 of class "ISA bridge", only one, only on bus 0. It owns
 * the legacy serial ports COM1-COM4 (always present; unconnected without a
 * back-end) and shows the PIRQ router's registers at 0x60-0x63 (PIRQ A-D)
 * and 0x68-0x6B (PIRQ E-H): an ISA IRQ, or 0x80 when disabled.
 *
 * Where the ACPI PM block lives is also readable as an ICH9 LPC bridge
 * shows it (PMBASE at 0x40, ACPI_CNTL at 0x44 with ACPI_EN set): firmware
 * written for QEMU's q35 machine (Debian's OVMF) takes the PM timer from
 * there when the LPC bridge sits at 0:1f.0, and leaves an enabled block
 * where it is. Both registers are read-only here; the block does not move.
 */
import { connectTtyInput, prepareTty, TtyError, ttyWriter } from '../../backends/tty.js';
import { ConfigError, type ConfigTree } from '../../config/tree.js';
import type { MachineContext } from '../../vmm/context.js';
import { DeviceError, parseLegacyOptions, registerPci, type PciBdf } from '../registry.js';
import { Uart16550, UART_IO_SIZE } from '../uart16550.js';
import { PciFunction } from './function.js';
import { CLASS_BRIDGE, SUBCLASS_BRIDGE_ISA } from './regs.js';
import { PM1A_EVT_BLK } from '../pm.js';
import type { PciRoot } from './root.js';

export const LPC_VENDOR = 0x8086;
export const LPC_DEVICE = 0x7000;
const PIRQ_AD = 0x60;
const PIRQ_EH = 0x68;
/** ICH9 LPC: ACPI PM I/O base (bit 0 reads as 1: an I/O address). */
export const ICH9_PMBASE = 0x40;
const ICH9_PMBASE_IO = 0x1;
/** ICH9 LPC: ACPI control; ACPI_EN says PMBASE decodes. */
export const ICH9_ACPI_CNTL = 0x44;
export const ICH9_ACPI_CNTL_ACPI_EN = 0x80;

export interface LpcUart { name: string; acpiName: string; base: number; irq: number }
/** The legacy serial ports, with the resources the DSDT describes. */
export const LPC_UARTS: readonly LpcUart[] = [
  { name: 'com1', acpiName: 'COM1', base: 0x3f8, irq: 4 },
  { name: 'com2', acpiName: 'COM2', base: 0x2f8, irq: 3 },
  { name: 'com3', acpiName: 'COM3', base: 0x3e8, irq: 4 },
  { name: 'com4', acpiName: 'COM4', base: 0x2e8, irq: 3 },
];
export const FWCFG_KINDS = ['bhyve', 'qemu'];
/** What `-l help` lists. */
export const LPC_DEVICE_NAMES = ['bootrom', 'fwcfg', ...LPC_UARTS.map((u) => u.name)];

export class LpcBridge extends PciFunction {
  readonly uarts: Uart16550[] = [];
  private root: PciRoot | undefined;

  constructor(ctx: MachineContext, prefix: string, bdf: PciBdf) {
    super(ctx, bdf, `lpc@${prefix}`);
    if (bdf.bus !== 0) throw new DeviceError('lpc bridge must be on bus 0');
    this.setIds({ vendor: LPC_VENDOR, device: LPC_DEVICE, classCode: CLASS_BRIDGE, subclass: SUBCLASS_BRIDGE_ISA });
    this.set32(ICH9_PMBASE, PM1A_EVT_BLK | ICH9_PMBASE_IO);
    this.set8(ICH9_ACPI_CNTL, ICH9_ACPI_CNTL_ACPI_EN);
    for (const u of LPC_UARTS) {
      const key = `lpc.${u.name}`;
      // ISA serial interrupts are edges: pulse while an interrupt is pending (as bhyve).
      const uart = new Uart16550(ctx, `${prefix}.${u.name}`, (level) => { if (level) ctx.irq.pulse(u.irq); }, ttyWriter(ctx, key));
      this.uarts.push(uart);
      connectTtyInput(ctx, key, uart);
    }
  }

  protected override onAttach(root: PciRoot): void {
    if (root.lpc) throw new DeviceError('only one lpc bridge is allowed');
    root.lpc = this;
    this.root = root;
    LPC_UARTS.forEach((u, i) => {
      root.reserveIsaIrq(u.irq);
      this.ctx.io.register(u.base, UART_IO_SIZE, this.uarts[i], u.name);
    });
  }

  protected override cfgReadHook(off: number, size: number): number | undefined {
    const n = pirqIndex(off);
    if (n < 0 || !this.root) return undefined;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.root.pirqRead(n + i);
    return v;
  }

  protected override cfgWriteHook(off: number, size: number, val: number): boolean {
    if (off >= ICH9_PMBASE && off < ICH9_ACPI_CNTL + 4) return true; // read-only: the PM block stays put
    const n = pirqIndex(off);
    if (n < 0 || !this.root) return false;
    for (let i = 0; i < size; i++) this.root.pirqWrite(n + i, (val >>> (8 * i)) & 0xff);
    return true;
  }
}

/** PIRQ number (0-7) of an aligned access at `off`, or -1. */
function pirqIndex(off: number): number {
  if (off >= PIRQ_AD && off < PIRQ_AD + 4) return off - PIRQ_AD;
  if (off >= PIRQ_EH && off < PIRQ_EH + 4) return off - PIRQ_EH + 4;
  return -1;
}

/**
 * Parse one `-l` argument into the config tree (bhyve's lpc_device_parse):
 * `comN,BACKEND`, `bootrom,ROM[,VARS][,key=value...]`, `fwcfg=bhyve|qemu`.
 * `help` returns the device names instead.
 */
export function lpcLegacyConfig(config: ConfigTree, arg: string): string[] | undefined {
  if (arg === 'help') return [...LPC_DEVICE_NAMES];
  const comma = arg.indexOf(',');
  const head = comma < 0 ? arg : arg.slice(0, comma);
  const rest = comma < 0 ? undefined : arg.slice(comma + 1);
  const eq = head.indexOf('=');
  const name = (eq < 0 ? head : head.slice(0, eq)).toLowerCase();
  if (name === 'bootrom' && eq < 0) {
    const [rom, vars, ...opts] = (rest ?? '').split(',');
    if (!rom) throw new ConfigError(`invalid bootrom option '${arg}'`);
    config.set('lpc.bootrom', rom);
    if (vars !== undefined && vars !== '') {
      if (vars.includes('=')) opts.unshift(vars);
      else config.set('lpc.bootvars', vars);
    }
    parseLegacyOptions(config, 'lpc', opts.join(','));
    return undefined;
  }
  if (name === 'fwcfg') {
    const kind = eq < 0 ? rest : head.slice(eq + 1);
    if (kind === undefined || !FWCFG_KINDS.includes(kind)) throw new ConfigError(`lpc fwcfg: '${kind ?? ''}' is not one of ${FWCFG_KINDS.join(', ')}`);
    config.set('lpc.fwcfg', kind);
    return undefined;
  }
  if (LPC_UARTS.some((u) => u.name === name) && eq < 0) {
    if (!rest) throw new ConfigError(`lpc ${name}: missing back-end (stdio or a tty path)`);
    config.set(`lpc.${name}.path`, rest);
    return undefined;
  }
  throw new ConfigError(`unknown lpc device '${head}' (see -l help)`);
}

registerPci({
  name: 'lpc',
  options: {},
  prepare(ctx, _prefix, bdf) {
    if (bdf.bus !== 0) throw new DeviceError('lpc bridge must be on bus 0');
    for (const u of LPC_UARTS) {
      const path = ctx.config.get(`lpc.${u.name}.path`);
      if (path === undefined) continue;
      try {
        prepareTty(ctx, `lpc.${u.name}`, path);
      } catch (e) {
        if (e instanceof TtyError) throw new DeviceError(`${u.name}: ${e.message}`, { cause: e });
        throw e;
      }
    }
  },
  create: (ctx, prefix, bdf) => new LpcBridge(ctx, prefix, bdf),
});
