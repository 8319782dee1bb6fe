/** Import every device emulation so that it registers itself. */
import './pci/hostbridge.js';
import './pci/lpc.js';
import './pci/uart-pci.js';
