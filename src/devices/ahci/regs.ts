/**
 * AHCI 1.3 and ATA/ATAPI constants: HBA and port registers, FIS layouts,
 * ATA status/error bits and command codes, SCSI (MMC) opcodes.
 */

// ---- HBA (generic host control) registers, offsets in ABAR -------------------
export const HBA_CAP = 0x00;
export const HBA_GHC = 0x04;
export const HBA_IS = 0x08;
export const HBA_PI = 0x0c;
export const HBA_VS = 0x10;
export const HBA_CCC_CTL = 0x14;
export const HBA_CCC_PORTS = 0x18;
export const HBA_EM_LOC = 0x1c;
export const HBA_EM_CTL = 0x20;
export const HBA_CAP2 = 0x24;
export const HBA_BOHC = 0x28;
/** Port N's registers start at PORT_BASE + N * PORT_STEP. */
export const PORT_BASE = 0x100;
export const PORT_STEP = 0x80;
export const MAX_PORTS = 32;
/** bhyve's default port count (Intel ICH8) when no port is configured. */
export const DEF_PORTS = 6;

export const CAP_S64A = 1 << 31;
export const CAP_SNCQ = 1 << 30;
export const CAP_SSNTF = 1 << 29;
export const CAP_SMPS = 1 << 28;
export const CAP_SSS = 1 << 27;
export const CAP_SALP = 1 << 26;
export const CAP_SAL = 1 << 25;
export const CAP_SCLO = 1 << 24;
export const CAP_ISS_SHIFT = 20;
export const CAP_PMD = 1 << 15;
export const CAP_SSC = 1 << 14;
export const CAP_PSC = 1 << 13;
export const CAP_NCS_SHIFT = 8;
export const CAP_SXS = 1 << 5;
export const CAP2_APST = 1 << 2;
export const AHCI_VERSION_1_3 = 0x00010300;

export const GHC_HR = 1 << 0;
export const GHC_IE = 1 << 1;
export const GHC_AE = 1 << 31;

// ---- port registers, offsets in the port's block ------------------------------
export const P_CLB = 0x00;
export const P_CLBU = 0x04;
export const P_FB = 0x08;
export const P_FBU = 0x0c;
export const P_IS = 0x10;
export const P_IE = 0x14;
export const P_CMD = 0x18;
export const P_TFD = 0x20;
export const P_SIG = 0x24;
export const P_SSTS = 0x28;
export const P_SCTL = 0x2c;
export const P_SERR = 0x30;
export const P_SACT = 0x34;
export const P_CI = 0x38;
export const P_SNTF = 0x3c;
export const P_FBS = 0x40;

/** PxIS / PxIE bits. */
export const PIS_DHRS = 1 << 0;
export const PIS_PSS = 1 << 1;
export const PIS_DSS = 1 << 2;
export const PIS_SDBS = 1 << 3;
export const PIS_TFES = 1 << 30;
export const P_IE_MASK = 0xfdc000ff;

/** PxCMD bits. */
export const PCMD_ST = 1 << 0;
export const PCMD_SUD = 1 << 1;
export const PCMD_POD = 1 << 2;
export const PCMD_CLO = 1 << 3;
export const PCMD_FRE = 1 << 4;
export const PCMD_CCS_SHIFT = 8;
export const PCMD_CCS_MASK = 0x1f << PCMD_CCS_SHIFT;
export const PCMD_FR = 1 << 14;
export const PCMD_CR = 1 << 15;
export const PCMD_CPS = 1 << 16;
export const PCMD_APSTE = 1 << 23;
export const PCMD_ATAPI = 1 << 24;
export const PCMD_DLAE = 1 << 25;
export const PCMD_ALPE = 1 << 26;
export const PCMD_ASP = 1 << 27;
export const PCMD_ICC_MASK = 0xf << 28;
/** PxCMD bits the guest writes (bhyve's set). */
export const PCMD_WRITABLE = (PCMD_ST | PCMD_SUD | PCMD_POD | PCMD_CLO | PCMD_FRE | PCMD_APSTE | PCMD_ATAPI |
  PCMD_DLAE | PCMD_ALPE | PCMD_ASP | PCMD_ICC_MASK) >>> 0;

/** PxSSTS / PxSCTL fields. */
export const SSTS_DET_NO_DEVICE = 0x0;
export const SSTS_DET_PHY_ONLINE = 0x3;
export const SSTS_SPD_MASK = 0xf0;
export const SSTS_SPD_GEN3 = 0x30;
export const SSTS_IPM_ACTIVE = 0x100;
export const SCTL_DET_MASK = 0xf;
export const SCTL_DET_RESET = 0x1;
export const SCTL_SPD_MASK = 0xf0;

/** Device signatures (PxSIG). */
export const SIG_ATA = 0x00000101;
export const SIG_ATAPI = 0xeb140101;

// ---- command list, command table, FIS --------------------------------------
export const CMD_HDR_SIZE = 32;
export const CMD_SLOTS = 32;
export const CMD_LIST_SIZE = CMD_HDR_SIZE * CMD_SLOTS;
/** Command header: DW0 flags (CFL 4:0, A 5, W 6), PRDTL 31:16; DW1 PRDBC; DW2-3 CTBA. */
export const HDR_CFL_MASK = 0x1f;
export const HDR_ATAPI = 1 << 5;
export const HDR_WRITE = 1 << 6;
export const HDR_PRDBC = 4;
export const HDR_CTBA = 8;
/** Command table: CFIS at 0, ACMD (ATAPI packet) at 0x40, PRDT at 0x80. */
export const CT_ACMD = 0x40;
export const CT_PRDT = 0x80;
export const PRD_SIZE = 16;
export const PRD_DBC_MASK = 0x3fffff;
/** The received-FIS area (no FIS-based switching): 256 bytes. */
export const RFIS_SIZE = 256;
export const RFIS_PSFIS = 0x20;
export const RFIS_RFIS = 0x40;
export const RFIS_SDBFIS = 0x58;

export const FIS_REG_H2D = 0x27;
export const FIS_REG_D2H = 0x34;
export const FIS_PIO_SETUP = 0x5f;
export const FIS_SET_DEV_BITS = 0xa1;
/** H2D FIS: C bit (command, not control) in byte 1; SRST in the control byte (15). */
export const FIS_H2D_C = 0x80;
export const FIS_CTL_SRST = 0x04;
/** D2H/SDB FIS: the interrupt bit in byte 1. */
export const FIS_I = 0x40;

// ---- ATA task file ----------------------------------------------------------------
export const ATA_S_ERROR = 0x01;
export const ATA_S_DRQ = 0x08;
export const ATA_S_DSC = 0x10;
export const ATA_S_DMA = 0x20;
export const ATA_S_READY = 0x40;
export const ATA_S_BUSY = 0x80;
export const ATA_E_ABORT = 0x04;
export const ATA_E_IDNF = 0x10;
/** ATAPI interrupt reason (sector count register). */
export const ATA_I_CMD = 0x01;
export const ATA_I_IN = 0x02;
export const OK_STATUS = ATA_S_READY | ATA_S_DSC;

export const ATA_NOP = 0x00;
export const ATA_DATA_SET_MANAGEMENT = 0x06;
export const ATA_DEVICE_RESET = 0x08;
export const ATA_READ = 0x20;
export const ATA_READ48 = 0x24;
export const ATA_READ_DMA48 = 0x25;
export const ATA_READ_MUL48 = 0x29;
export const ATA_READ_LOG_EXT = 0x2f;
export const ATA_WRITE = 0x30;
export const ATA_WRITE48 = 0x34;
export const ATA_WRITE_DMA48 = 0x35;
export const ATA_WRITE_MUL48 = 0x39;
export const ATA_READ_VERIFY = 0x40;
export const ATA_READ_VERIFY48 = 0x42;
export const ATA_READ_LOG_DMA_EXT = 0x47;
export const ATA_READ_FPDMA_QUEUED = 0x60;
export const ATA_WRITE_FPDMA_QUEUED = 0x61;
export const ATA_SEND_FPDMA_QUEUED = 0x64;
export const ATA_PACKET_CMD = 0xa0;
export const ATA_ATAPI_IDENTIFY = 0xa1;
export const ATA_SMART_CMD = 0xb0;
export const ATA_READ_MUL = 0xc4;
export const ATA_WRITE_MUL = 0xc5;
export const ATA_SET_MULTI = 0xc6;
export const ATA_READ_DMA = 0xc8;
export const ATA_WRITE_DMA = 0xca;
export const ATA_STANDBY_IMMEDIATE = 0xe0;
export const ATA_IDLE_IMMEDIATE = 0xe1;
export const ATA_STANDBY_CMD = 0xe2;
export const ATA_IDLE_CMD = 0xe3;
export const ATA_CHECK_POWER_MODE = 0xe5;
export const ATA_SLEEP = 0xe6;
export const ATA_FLUSHCACHE = 0xe7;
export const ATA_FLUSHCACHE48 = 0xea;
export const ATA_IDENTIFY = 0xec;
export const ATA_SETFEATURES = 0xef;
export const ATA_SECURITY_FREEZE_LOCK = 0xf5;

/** SET FEATURES subcommands (feature register). */
export const SF_ENAB_WCACHE = 0x02;
export const SF_SETXFER = 0x03;
export const SF_ENAB_SATA_SF = 0x10;
export const SF_DIS_RCACHE = 0x55;
export const SF_DIS_WCACHE = 0x82;
export const SF_DIS_SATA_SF = 0x90;
export const SF_ENAB_RCACHE = 0xaa;
export const SATA_SF_AN = 0x05;
/** Transfer mode classes (SET FEATURES / SETXFER count register). */
export const XFER_PIO = 0x00;
export const XFER_PIO0 = 0x08;
export const XFER_WDMA0 = 0x20;
export const XFER_UDMA0 = 0x40;
export const XFER_UDMA6 = 0x46;
export const DSM_TRIM = 0x01;
export const SFPDMA_DSM = 0x00;

// ---- SCSI / MMC (ATAPI packets) ------------------------------------------------
export const SCSI_TEST_UNIT_READY = 0x00;
export const SCSI_REQUEST_SENSE = 0x03;
export const SCSI_INQUIRY = 0x12;
export const SCSI_MODE_SENSE_6 = 0x1a;
export const SCSI_START_STOP_UNIT = 0x1b;
export const SCSI_PREVENT_ALLOW = 0x1e;
export const SCSI_READ_CAPACITY = 0x25;
export const SCSI_READ_10 = 0x28;
export const SCSI_READ_TOC = 0x43;
export const SCSI_GET_CONFIGURATION = 0x46;
export const SCSI_GET_EVENT_STATUS = 0x4a;
export const SCSI_MODE_SENSE_10 = 0x5a;
export const SCSI_REPORT_LUNS = 0xa0;
export const SCSI_READ_12 = 0xa8;

export const SENSE_NONE = 0x0;
export const SENSE_ILLEGAL_REQUEST = 0x5;
export const ASC_INVALID_OPCODE = 0x20;
export const ASC_LBA_OUT_OF_RANGE = 0x21;
export const ASC_INVALID_FIELD = 0x24;
export const ASC_SAVING_NOT_SUPPORTED = 0x39;
export const ASC_MEDIUM_REMOVAL_PREVENTED = 0x53;
export const CD_SECTOR = 2048;
