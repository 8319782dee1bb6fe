/** Import every device emulation so that it registers itself. */
import './pci/hostbridge.js';
import './pci/lpc.js';
import './pci/uart-pci.js';
import './ahci/ahci.js';
import './virtio/rnd.js';
import './virtio/blk.js';
import './virtio/net.js';
import './virtio/balloon.js';
