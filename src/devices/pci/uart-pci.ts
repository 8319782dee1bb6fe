/**
 * A 16550 UART on PCI, as bhyve's pci_uart.c: vendor 0x131F device 0x2000,
 * class "simple communications / UART", one 8-byte I/O BAR and a
 * level-triggered INTx. `-s N,uart,PATH` sets the back-end (config key `path`).
 */
import { connectTtyInput, prepareTty, TtyError, ttyWriter } from '../../backends/tty.js';
import type { MachineContext } from '../../vmm/context.js';
import { DeviceError, registerPci, type PciBdf } from '../registry.js';
import { Uart16550, UART_IO_SIZE } from '../uart16550.js';
import { PciFunction } from './function.js';
import { CLASS_SIMPLECOMM, SUBCLASS_SIMPLECOMM_UART } from './regs.js';

export const PCI_UART_VENDOR = 0x131f;
export const PCI_UART_DEVICE = 0x2000;

export class PciUart extends PciFunction {
  readonly uart: Uart16550;

  constructor(ctx: MachineContext, prefix: string, bdf: PciBdf) {
    super(ctx, bdf, `uart@${prefix}`);
    this.uart = new Uart16550(ctx, prefix, (level) => this.intx(level), ttyWriter(ctx, prefix));
    this.addBar(0, { kind: 'io', size: UART_IO_SIZE, device: this.uart });
    this.requestIntx();
    this.setIds({ vendor: PCI_UART_VENDOR, device: PCI_UART_DEVICE, classCode: CLASS_SIMPLECOMM, subclass: SUBCLASS_SIMPLECOMM_UART });
    connectTtyInput(ctx, prefix, this.uart);
  }
}

registerPci({
  name: 'uart',
  options: { path: 'path' },
  legacyConfig(config, prefix, opts) {
    if (opts !== '') config.set(`${prefix}.path`, opts);
  },
  prepare(ctx, prefix) {
    const path = ctx.config.get(`${prefix}.path`);
    if (path === undefined) return;
    try {
      prepareTty(ctx, prefix, path);
    } catch (e) {
      if (e instanceof TtyError) throw new DeviceError(`uart at ${prefix}: ${e.message}`, { cause: e });
      throw e;
    }
  },
  create: (ctx, prefix, bdf) => new PciUart(ctx, prefix, bdf),
});
