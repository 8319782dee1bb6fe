/**
 * Virtio constants (Virtual I/O Device (VIRTIO) Version 1.x, and the legacy
 * 0.9.5 PCI interface): device status, feature bits, split-ring layout, the
 * PCI capability types and register offsets of both interfaces.
 */

export const VIRTIO_VENDOR = 0x1af4;
/** Transitional PCI device IDs are 0x1000 + n; the subsystem ID carries the device type. */
export const VIRTIO_DEV_NET = 0x1000;
export const VIRTIO_DEV_BLOCK = 0x1001;
export const VIRTIO_DEV_BALLOON = 0x1002;
export const VIRTIO_DEV_RANDOM = 0x1005;

/** Device types (the subsystem device ID). */
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_BALLOON = 5;
export const VIRTIO_ID_ENTROPY = 4;

// Device status
export const STATUS_ACKNOWLEDGE = 0x01;
export const STATUS_DRIVER = 0x02;
export const STATUS_DRIVER_OK = 0x04;
export const STATUS_FEATURES_OK = 0x08;
export const STATUS_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

// Transport feature bits
export const F_NOTIFY_ON_EMPTY = 24n;
export const F_ANY_LAYOUT = 27n;
export const F_RING_INDIRECT_DESC = 28n;
export const F_RING_EVENT_IDX = 29n;
export const F_VERSION_1 = 32n;
export const F_ACCESS_PLATFORM = 33n;
export const bit = (n: bigint): bigint => 1n << n;

// Split virtqueue layout
export const DESC_SIZE = 16;
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;
export const AVAIL_F_NO_INTERRUPT = 1;
export const USED_F_NO_NOTIFY = 1;
/** avail: flags u16, idx u16, ring[n] u16, used_event u16. */
export const AVAIL_RING = 4;
/** used: flags u16, idx u16, ring[n] {id u32, len u32}, avail_event u16. */
export const USED_RING = 4;
export const USED_ELEM_SIZE = 8;
/** Largest split-queue size the spec allows; indirect tables are bounded the same way. */
export const QUEUE_SIZE_MAX = 32768;
export const INDIRECT_MAX = 1024;
/** Legacy queues are laid out in one block aligned to this (VIRTIO_PCI_VRING_ALIGN). */
export const LEGACY_VRING_ALIGN = 4096;
export const LEGACY_PFN_SHIFT = 12;

/** No MSI-X vector (VIRTIO_MSI_NO_VECTOR). */
export const NO_VECTOR = 0xffff;

// ISR status bits
export const ISR_QUEUE = 0x1;
export const ISR_CONFIG = 0x2;

// Legacy I/O BAR registers (virtio 0.9.5 PCI)
export const LEG_HOST_FEATURES = 0;
export const LEG_GUEST_FEATURES = 4;
export const LEG_QUEUE_PFN = 8;
export const LEG_QUEUE_NUM = 12;
export const LEG_QUEUE_SEL = 14;
export const LEG_QUEUE_NOTIFY = 16;
export const LEG_STATUS = 18;
export const LEG_ISR = 19;
export const LEG_MSIX_CONFIG = 20;
export const LEG_MSIX_QUEUE = 22;
/** Device config starts here without MSI-X enabled, and at LEG_CONFIG_MSIX with. */
export const LEG_CONFIG = 20;
export const LEG_CONFIG_MSIX = 24;

// Modern PCI capabilities (vendor-specific capability 0x09)
export const PCI_CAP_VENDOR = 0x09;
export const CAP_COMMON_CFG = 1;
export const CAP_NOTIFY_CFG = 2;
export const CAP_ISR_CFG = 3;
export const CAP_DEVICE_CFG = 4;
export const CAP_PCI_CFG = 5;
/** struct virtio_pci_cap: vndr, next, len, cfg_type, bar, id, pad[2], offset u32, length u32. */
export const CAP_LEN = 16;
export const CAP_NOTIFY_LEN = 20;
export const CAP_PCI_CFG_LEN = 20;
export const CAP_OFF_BAR = 4;
export const CAP_OFF_OFFSET = 8;
export const CAP_OFF_LENGTH = 12;
export const CAP_OFF_MULTIPLIER = 16;
export const CAP_OFF_PCI_CFG_DATA = 16;

// struct virtio_pci_common_cfg
export const COM_DFSELECT = 0x00;
export const COM_DF = 0x04;
export const COM_GFSELECT = 0x08;
export const COM_GF = 0x0c;
export const COM_MSIX = 0x10;
export const COM_NUMQ = 0x12;
export const COM_STATUS = 0x14;
export const COM_CFGGEN = 0x15;
export const COM_Q_SELECT = 0x16;
export const COM_Q_SIZE = 0x18;
export const COM_Q_MSIX = 0x1a;
export const COM_Q_ENABLE = 0x1c;
export const COM_Q_NOFF = 0x1e;
export const COM_Q_DESCLO = 0x20;
export const COM_Q_DESCHI = 0x24;
export const COM_Q_AVAILLO = 0x28;
export const COM_Q_AVAILHI = 0x2c;
export const COM_Q_USEDLO = 0x30;
export const COM_Q_USEDHI = 0x34;
export const COM_Q_NDATA = 0x38;
export const COM_Q_RESET = 0x3a;
export const COMMON_CFG_SIZE = 0x3c;
