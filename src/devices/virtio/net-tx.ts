/**
 * What a transmit chain of virtio-net must be before its bytes go to the
 * tap: readable buffers only, a virtio-net header and an Ethernet header,
 * at most the largest frame, and only the offloads the driver negotiated
 * (the tap would act on any it is handed).
 */
import { MAX_FRAME } from '../../backends/net.js';
import type { ChainBatch } from './chain-batch.js';
import * as N from './net-config.js';

const mask = (f: bigint): number => 1 << Number(f);
const M_CSUM = mask(N.F_CSUM), M_HOST_ECN = mask(N.F_HOST_ECN), M_HOST_UFO = mask(N.F_HOST_UFO);
const M_HOST_TSO4 = mask(N.F_HOST_TSO4), M_HOST_TSO6 = mask(N.F_HOST_TSO6);

/** Whether chain i of a transmit batch may go to the tap (`lo`: the low feature bits, `hdr`: the header size). */
export function txOk(b: ChainBatch, i: number, lo: number, hdr: number): boolean {
  if (b.nWrite[i] > 0) return false;
  const bytes = b.readBytes[i];
  if (bytes < hdr + 14 || bytes > hdr + MAX_FRAME) return false;
  const flags = b.readByte(i, N.HDR_FLAGS), gsoType = b.readByte(i, N.HDR_GSO_TYPE);
  if (flags & N.HDR_F_NEEDS_CSUM && !(lo & M_CSUM)) return false;
  if (gsoType & N.GSO_ECN && !(lo & M_HOST_ECN)) return false;
  switch (gsoType & ~N.GSO_ECN) {
    case N.GSO_NONE: return true;
    case N.GSO_TCPV4: return (lo & M_HOST_TSO4) !== 0;
    case N.GSO_TCPV6: return (lo & M_HOST_TSO6) !== 0;
    case N.GSO_UDP: return (lo & M_HOST_UFO) !== 0;
    default: return false;
  }
}
