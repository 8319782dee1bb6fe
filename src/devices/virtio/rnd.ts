/**
 * virtio-rnd (`-s N,virtio-rnd`), after bhyve's pci_virtio_rnd.c: an entropy
 * device with one request queue; every device-writable buffer is filled
 * from the host's random source.
 */
import { randomFillSync } from 'node:crypto';
import type { MachineContext } from '../../vmm/context.js';
import { registerPci, type PciBdf } from '../registry.js';
import { VIRTIO_DEV_RANDOM, VIRTIO_ID_ENTROPY } from './constants.js';
import { VirtioDevice } from './device.js';
import type { Virtqueue } from './virtqueue.js';

export const RND_QUEUE_SIZE = 64;
/** At most this much entropy per request (the driver accepts short answers). */
export const RND_MAX_BYTES = 65536;
const CLASS_CRYPTO = 0x10;

export class VirtioRnd extends VirtioDevice {
  constructor(ctx: MachineContext, prefix: string, bdf: PciBdf) {
    super(ctx, bdf, `virtio-rnd@${prefix}`, {
      deviceType: VIRTIO_ID_ENTROPY, pciDevice: VIRTIO_DEV_RANDOM, classCode: CLASS_CRYPTO, subclass: 0,
      queueSizes: [RND_QUEUE_SIZE], features: 0n, configSize: 0,
    });
  }

  protected onQueue(q: Virtqueue): void {
    this.serve(q, (c) => {
      if (c.error) return 0;
      let n = 0;
      for (const b of c.writable) {
        const k = Math.min(b.length, RND_MAX_BYTES - n);
        randomFillSync(b, 0, k);
        n += k;
        if (n === RND_MAX_BYTES) break;
      }
      return n;
    });
  }
}

registerPci({
  name: 'virtio-rnd',
  options: {},
  create: (ctx, prefix, bdf) => new VirtioRnd(ctx, prefix, bdf),
});
