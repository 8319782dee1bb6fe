/**
 * PCI configuration-space register offsets and bits (PCI Local Bus 3.0,
 * PCI Express Base), named as the rest of the PCI layer uses them.
 */

export const CFG_SIZE = 4096;
/** The conventional (type 0 header + device-specific) part of config space. */
export const CFG_STD = 256;

export const PCIR_VENDOR = 0x00;
export const PCIR_DEVICE = 0x02;
export const PCIR_COMMAND = 0x04;
export const PCIR_STATUS = 0x06;
export const PCIR_REVID = 0x08;
export const PCIR_PROGIF = 0x09;
export const PCIR_SUBCLASS = 0x0a;
export const PCIR_CLASS = 0x0b;
export const PCIR_CACHELNSZ = 0x0c;
export const PCIR_LATTIMER = 0x0d;
export const PCIR_HDRTYPE = 0x0e;
export const PCIR_BAR0 = 0x10;
export const PCIR_BAR_END = 0x28;
export const PCIR_SUBVEND = 0x2c;
export const PCIR_SUBDEV = 0x2e;
export const PCIR_BIOS = 0x30;
export const PCIR_CAP_PTR = 0x34;
export const PCIR_INTLINE = 0x3c;
export const PCIR_INTPIN = 0x3d;
export const CAP_START = 0x40;

export const CMD_PORTEN = 0x0001;
export const CMD_MEMEN = 0x0002;
export const CMD_BUSMASTER = 0x0004;
export const CMD_INTXDIS = 0x0400;
/** Command bits a guest may change (bhyve: bits 0-6 and 8-10). */
export const CMD_WRITABLE = 0x077f;

export const STATUS_INTX = 0x0008;
export const STATUS_CAPLIST = 0x0010;

export const HDRTYPE_NORMAL = 0x00;
export const HDRTYPE_MFDEV = 0x80;

export const BAR_IO_SPACE = 0x1;
export const BAR_MEM_64 = 0x4;
export const BAR_MEM_PREFETCH = 0x8;

export const CAPID_MSI = 0x05;
export const CAPID_EXPRESS = 0x10;
export const CAPID_MSIX = 0x11;

export const MSICTRL_ENABLE = 0x0001;
export const MSICTRL_MMC_SHIFT = 1;
export const MSICTRL_MME_SHIFT = 4;
export const MSICTRL_MME_MASK = 0x0070;
export const MSICTRL_64BIT = 0x0080;

export const MSIXCTRL_TABLE_SIZE = 0x07ff;
export const MSIXCTRL_FUNCTION_MASK = 0x4000;
export const MSIXCTRL_ENABLE = 0x8000;
export const MSIX_ENTRY_SIZE = 16;
export const MSIX_VCTRL_MASK = 0x1;

/** PCI Express capability device/port types (bits 4-7 of the capabilities register). */
export const PCIEM_TYPE_ENDPOINT = 0x00;
export const PCIEM_TYPE_ROOT_PORT = 0x40;
export const PCIEM_TYPE_ROOT_INT_EP = 0x90;

/** Class codes used by the emulations here. */
export const CLASS_BRIDGE = 0x06;
export const SUBCLASS_BRIDGE_HOST = 0x00;
export const SUBCLASS_BRIDGE_ISA = 0x01;
export const CLASS_SIMPLECOMM = 0x07;
export const SUBCLASS_SIMPLECOMM_UART = 0x00;
