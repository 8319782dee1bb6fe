/**
 * virtio-net constants (feature bits, the per-frame header, the device
 * configuration) and bhyve's option handling: the legacy option string
 * (`tapN[,mac=xx:xx:xx:xx:xx:xx][,mtu=N]`, first token = back-end), MAC
 * parsing as ether_aton(3) accepts it, and the MAC bhyve derives without
 * `mac=`: OUI 00:a0:98 and the first three bytes of the MD5 of
 * "<slot>-<func>-<vmname>" (net_utils.c, net_genmac).
 */
import { createHash } from 'node:crypto';
import type { ConfigTree } from '../../config/tree.js';
import { parseLegacyOptions } from '../registry.js';

// Feature bits
export const F_CSUM = 0n, F_GUEST_CSUM = 1n, F_MTU = 3n, F_MAC = 5n;
export const F_GUEST_TSO4 = 7n, F_GUEST_TSO6 = 8n, F_GUEST_ECN = 9n, F_GUEST_UFO = 10n;
export const F_HOST_TSO4 = 11n, F_HOST_TSO6 = 12n, F_HOST_ECN = 13n, F_HOST_UFO = 14n;
export const F_MRG_RXBUF = 15n, F_STATUS = 16n;

// struct virtio_net_hdr
export const HDR_FLAGS = 0, HDR_GSO_TYPE = 1, HDR_NUM_BUFFERS = 10;
/** Without MRG_RXBUF on the legacy interface; with it, or VERSION_1, num_buffers follows. */
export const HDR_LEN_LEGACY = 10, HDR_LEN = 12;
export const HDR_F_NEEDS_CSUM = 1;
export const GSO_NONE = 0, GSO_TCPV4 = 1, GSO_UDP = 3, GSO_TCPV6 = 4, GSO_ECN = 0x80;

// struct virtio_net_config
export const C_MAC = 0, C_STATUS = 6, C_MAX_PAIRS = 8, C_MTU = 10;
export const NET_CONFIG_SIZE = 12;
export const S_LINK_UP = 1;

export const MIN_MTU = 68, MAX_MTU = 65535;

/** OUI of the MACs bhyve generates (NetApp's). */
export const BHYVE_OUI = [0x00, 0xa0, 0x98] as const;

/** Config keys of virtio-net (pci.B.S.F.KEY). */
export const NET_OPTION_KEYS = { backend: 'string', mac: 'string', mtu: 'int', bootindex: 'int' } as const;

/** bhyve's netbe_legacy_config: the first token names the back-end; the rest are key=value options. */
export function netLegacyConfig(config: ConfigTree, prefix: string, opts: string): void {
  if (opts === '') return;
  const comma = opts.indexOf(',');
  const first = comma < 0 ? opts : opts.slice(0, comma);
  if (first !== '') config.set(`${prefix}.backend`, first);
  if (comma >= 0) parseLegacyOptions(config, prefix, opts.slice(comma + 1));
}

/** Parse "xx:xx:xx:xx:xx:xx" (one or two hex digits per byte); undefined when malformed, multicast or zero. */
export function parseMac(s: string): Uint8Array | undefined {
  const parts = s.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-f]{1,2}$/i.test(p))) return undefined;
  const mac = Uint8Array.from(parts.map((p) => parseInt(p, 16)));
  if (mac[0] & 1 || mac.every((b) => b === 0)) return undefined;
  return mac;
}

/** bhyve's net_genmac. */
export function generateMac(slot: number, func: number, vmname: string): Uint8Array {
  const d = createHash('md5').update(`${slot}-${func}-${vmname}`).digest();
  return Uint8Array.of(...BHYVE_OUI, d[0], d[1], d[2]);
}

export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
