/*
 * A minimal virtio PCI driver for the virtqueue test and benchmark guests
 * (32-bit protected mode, no paging): finds the device, sets up MSI-X, MSI
 * or INTx, negotiates features through the modern interface (or the legacy
 * one with -DLEGACY), sets up queue 0 and submits chains; waits are
 * interrupt-driven and bounded by the LAPIC timer (about 4 s).
 *
 * Include after common.h; instantiate VIRTIO_DRIVER and PCI_ACCESS once.
 * The including guest provides `irq_handler` resuming at V_RESUME.
 * This file: constants, discovery and interrupt set-up; vqdrv-queue.h: the
 * transport (negotiation, queue 0, notify, waits).
 */
#ifndef GUESTS_VQDRV_H
#define GUESTS_VQDRV_H

#ifndef DEVID
#define DEVID           0x1001
#endif
#define VIRTIO_VENDOR   0x1AF4

#define PCIR_COMMAND    0x04
#define PCIR_BAR0       0x10
#define PCIR_CAP_PTR    0x34
#define PCIR_INTPIN     0x3D
#define CAP_MSI         0x05
#define CAP_MSIX        0x11
#define CAP_VENDOR      0x09
#define SLOT_STEP       0x800
/* BAR addresses used when no firmware assigned them */
#define BAR0_DEFAULT    0xC000
#define BAR1_DEFAULT    0xC1000000
#define BAR4_DEFAULT    0xC2000000

#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TICR      0x380
#define LAPIC_TDCR      0x3E0
#define LAPIC_DIV_1     0xB
#define MSI_ADDR        0xFEE00000

#define VEC_TIMER       0x40
#define VEC_MSIX        0x50            /* + 0 configuration, + 1 queue 0 */
#define VEC_MSI         0x58
#define VEC_INTX        0x60

/* device status */
#define ST_ACK          0x01
#define ST_DRIVER       0x02
#define ST_DRIVER_OK    0x04
#define ST_FEATURES_OK  0x08
/* modern common configuration */
#define COM_DFSELECT    0x00
#define COM_DF          0x04
#define COM_GFSELECT    0x08
#define COM_GF          0x0C
#define COM_MSIX        0x10
#define COM_STATUS      0x14
#define COM_Q_SELECT    0x16
#define COM_Q_SIZE      0x18
#define COM_Q_MSIX      0x1A
#define COM_Q_ENABLE    0x1C
#define COM_Q_NOFF      0x1E
#define COM_Q_DESC      0x20
#define COM_Q_AVAIL     0x28
#define COM_Q_USED      0x30
/* legacy I/O registers */
#define LEG_HOST_FEATURES 0
#define LEG_GUEST_FEATURES 4
#define LEG_QUEUE_PFN   8
#define LEG_QUEUE_NUM   12
#define LEG_QUEUE_SEL   14
#define LEG_QUEUE_NOTIFY 16
#define LEG_STATUS      18
#define LEG_ISR         19
#define LEG_MSIX_CONFIG 20
#define LEG_MSIX_QUEUE  22

#define F_EVENT_IDX     (1 << 29)
#define DESC_NEXT       1
#define DESC_WRITE      2
#define DESC_INDIRECT   4

/* virtio-blk */
#define T_IN            0
#define T_OUT           1
#define T_FLUSH         4
#define T_GET_ID        8
#define BLK_CAPACITY    0
#define BLK_SIZE_OFF    20

/* guest memory */
#define QBASE           0x10000         /* descriptors, then the rings */
#define HDR             0x20000
#define STATUS          0x20100
#define IDBUF           0x20200
#define INDIR           0x20400
#define DATA_W          0x30000
#define DATA_R          0x31000
#define DATA_R2         0x32000

/* variables */
#define V_BDF           (SCRATCH + 0x00)
#define V_IO            (SCRATCH + 0x04)
#define V_COMMON        (SCRATCH + 0x08)
#define V_NOTIFY        (SCRATCH + 0x0C)
#define V_NMULT         (SCRATCH + 0x10)
#define V_ISR           (SCRATCH + 0x14)
#define V_DEVCFG        (SCRATCH + 0x18)
#define V_QSIZE         (SCRATCH + 0x1C)
#define V_AVAIL         (SCRATCH + 0x20)
#define V_USED          (SCRATCH + 0x24)
#define V_AIDX          (SCRATCH + 0x28)
#define V_USEEN         (SCRATCH + 0x2C)
#define V_MODE          (SCRATCH + 0x30)        /* 1 MSI-X, 2 MSI, 3 INTx */
#define V_RESUME        (SCRATCH + 0x38)
#define V_LASTVEC       (SCRATCH + 0x3C)
#define V_NIRQ          (SCRATCH + 0x40)
#define V_NTIMEOUT      (SCRATCH + 0x44)
#define V_QNOTIFY       (SCRATCH + 0x48)
#define V_CAPACITY      (SCRATCH + 0x4C)
#define V_GSI           (SCRATCH + 0x50)
#define R_TYPE          (SCRATCH + 0x60)
#define R_SECTOR        (SCRATCH + 0x64)
#define R_DATA          (SCRATCH + 0x68)
#define R_LEN           (SCRATCH + 0x6C)
#define R_DIR           (SCRATCH + 0x70)
#define R_USEDLEN       (SCRATCH + 0x74)

#define MODE_MSIX       1
#define MODE_MSI        2
#define MODE_INTX       3

#include "vqdrv-queue.h"

/* Descriptor \idx at QBASE: address (below 4 GiB), length, flags, next. */
.macro DESC idx, addr, len, flags, next
        movl \addr, QBASE + 16 * \idx
        movl $0, QBASE + 16 * \idx + 4
        movl \len, QBASE + 16 * \idx + 8
        movw \flags, QBASE + 16 * \idx + 12
        movw \next, QBASE + 16 * \idx + 14
.endm

.macro SETREQ type, sector, data, len, dir
        push %eax
        mov \sector, %eax
        mov %eax, R_SECTOR
        pop %eax
        movl \type, R_TYPE
        movl \data, R_DATA
        movl \len, R_LEN
        movl \dir, R_DIR
.endm

/* "NAME status SS len LLLLLLLL" for the status in %eax */
.macro REPORT name
        PRINT32 "\name status "
        HEX32 %eax, 2
        PRINT32 " len "
        HEX32 R_USEDLEN, 8
        PRINT32 "\n"
.endm

.macro VIRTIO_DRIVER
        VIRTIO_QUEUE
        .text
        .code32
/* Bus 0, function 0 of each slot: the first 1AF4:DEVID; decoding and bus mastering on. */
find_device:
        pushal
        xor %ebx, %ebx
1:      xor %ecx, %ecx
        call pci_read32
        cmp $((DEVID << 16) | VIRTIO_VENDOR), %eax
        je 2f
        add $SLOT_STEP, %ebx
        cmp $0x10000, %ebx
        jb 1b
        PRINT32 "virtio device not found\n"
        POWEROFF
2:      mov %ebx, V_BDF
        /* no firmware ran (QEMU with this ROM as its BIOS): place the BARs ourselves */
        mov $(PCIR_BAR0 + 16), %ecx
        call pci_read32
        and $~0xF, %eax
        jnz 3f
        mov $PCIR_BAR0, %ecx
        mov $BAR0_DEFAULT, %edi
        call pci_write32
        mov $(PCIR_BAR0 + 4), %ecx
        mov $BAR1_DEFAULT, %edi
        call pci_write32
        mov $(PCIR_BAR0 + 16), %ecx
        mov $BAR4_DEFAULT, %edi
        call pci_write32
        mov $(PCIR_BAR0 + 20), %ecx
        xor %edi, %edi
        call pci_write32
3:      mov $PCIR_COMMAND, %ecx
        call pci_read16
        or $7, %eax
        mov %eax, %edi
        call pci_write16
        PRINT32 "virtio found slot "
        mov %ebx, %eax
        shr $11, %eax
        HEX32 %eax, 2
#ifdef LEGACY
        PRINT32 " legacy\n"
        mov $PCIR_BAR0, %ecx
        call pci_read32
        and $0xFFFC, %eax
        mov %eax, V_IO
#else
        PRINT32 " modern\n"
        call modern_caps
#endif
        popal
        ret

/* Capability %edx of function %ebx: its offset in %ecx, 0 when absent. */
cap_find:
        push %eax
        mov $PCIR_CAP_PTR, %ecx
        call pci_read8
        mov %eax, %ecx
1:      test %ecx, %ecx
        jz 2f
        call pci_read8
        cmp %edx, %eax
        je 2f
        inc %ecx
        call pci_read8
        mov %eax, %ecx
        jmp 1b
2:      pop %eax
        ret

/* The address of BAR %eax (memory; 64-bit BARs must be below 4 GiB) in %eax. */
bar_addr:
        push %ecx
        shl $2, %eax
        add $PCIR_BAR0, %eax
        mov %eax, %ecx
        call pci_read32
        and $~0xF, %eax
        pop %ecx
        ret

#ifndef LEGACY
/* Walk the vendor capabilities: common, notify (+ multiplier), ISR, device. */
modern_caps:
        pushal
        mov $PCIR_CAP_PTR, %ecx
        call pci_read8
        mov %eax, %esi
1:      test %esi, %esi
        jz 9f
        mov %esi, %ecx
        call pci_read8
        cmp $CAP_VENDOR, %eax
        jne 8f
        lea 4(%esi), %ecx
        call pci_read8
        call bar_addr
        mov %eax, %edi
        lea 8(%esi), %ecx
        call pci_read32
        add %eax, %edi
        lea 3(%esi), %ecx
        call pci_read8
        cmp $1, %eax
        jne 2f
        mov %edi, V_COMMON
2:      cmp $2, %eax
        jne 3f
        mov %edi, V_NOTIFY
        lea 16(%esi), %ecx
        call pci_read32
        mov %eax, V_NMULT
        jmp 8f
3:      cmp $3, %eax
        jne 4f
        mov %edi, V_ISR
4:      cmp $4, %eax
        jne 8f
        mov %edi, V_DEVCFG
8:      lea 1(%esi), %ecx
        call pci_read8
        mov %eax, %esi
        jmp 1b
9:      popal
        ret
#endif

/* MSI-X (entries 0 and 1), else MSI, else INTx through the IOAPIC. */
setup_irq:
        pushal
        mov V_BDF, %ebx
#ifndef FORCE_INTX
        mov $CAP_MSIX, %edx
        call cap_find
        test %ecx, %ecx
        jz 1f
        mov %ecx, %esi
        lea 4(%esi), %ecx
        call pci_read32
        mov %eax, %edx
        and $7, %eax
        call bar_addr
        and $~7, %edx
        add %eax, %edx                  /* the table */
        movl $MSI_ADDR, 0(%edx)
        movl $0, 4(%edx)
        movl $VEC_MSIX, 8(%edx)
        movl $0, 12(%edx)
        movl $MSI_ADDR, 16(%edx)
        movl $0, 20(%edx)
        movl $(VEC_MSIX + 1), 24(%edx)
        movl $0, 28(%edx)
        lea 2(%esi), %ecx
        call pci_read16
        or $0x8000, %eax
        mov %eax, %edi
        call pci_write16
        movl $MODE_MSIX, V_MODE
        PRINT32 "irq msix\n"
        popal
        ret
1:      mov $CAP_MSI, %edx
        call cap_find
        test %ecx, %ecx
        jz 2f
        mov %ecx, %esi
        lea 4(%esi), %ecx
        mov $MSI_ADDR, %edi
        call pci_write32
        lea 8(%esi), %ecx
        xor %edi, %edi
        call pci_write32
        lea 12(%esi), %ecx
        mov $VEC_MSI, %edi
        call pci_write16
        lea 2(%esi), %ecx
        call pci_read16
        or $1, %eax
        mov %eax, %edi
        call pci_write16
        movl $MODE_MSI, V_MODE
        PRINT32 "irq msi\n"
        popal
        ret
2:
#endif
        mov $PCIR_INTPIN, %ecx
        call pci_read8
        mov %ebx, %edx
        shr $11, %edx
        lea -1(%eax,%edx), %eax
        and $3, %eax
        add $16, %eax
        mov %eax, V_GSI
        lea 0x10(,%eax,2), %ecx         /* redirection entry: low dword */
        lea 1(%ecx), %edx
        mov %edx, IOAPIC_BASE + IOAPIC_REGSEL
        movl $0, IOAPIC_BASE + IOAPIC_WIN
        mov %ecx, IOAPIC_BASE + IOAPIC_REGSEL
        movl $(VEC_INTX | 0x8000), IOAPIC_BASE + IOAPIC_WIN   /* level-triggered, unmasked */
        movl $MODE_INTX, V_MODE
        PRINT32 "irq intx gsi "
        HEX32 V_GSI, 2
        PRINT32 "\n"
        popal
        ret

.endm

/* Configuration mechanism #1: %ebx = bus 0 function (slot << 11 | fn << 8), %ecx = register. */
.macro PCI_ACCESS
        .text
        .code32
pci_select:
        push %eax
        mov %ecx, %eax
        and $0xfc, %eax
        or %ebx, %eax
        or $PCI_ENABLE, %eax
        mov $PCI_CONF_ADDR, %dx
        outl %eax, %dx
        mov %ecx, %edx
        and $3, %edx
        add $PCI_CONF_DATA, %edx
        pop %eax
        ret
pci_read32:
        push %edx
        call pci_select
        inl %dx, %eax
        pop %edx
        ret
pci_read16:
        push %edx
        call pci_select
        inw %dx, %ax
        movzwl %ax, %eax
        pop %edx
        ret
pci_read8:
        push %edx
        call pci_select
        inb %dx, %al
        movzbl %al, %eax
        pop %edx
        ret
pci_write32:
        push %eax
        push %edx
        call pci_select
        mov %edi, %eax
        outl %eax, %dx
        pop %edx
        pop %eax
        ret
pci_write16:
        push %eax
        push %edx
        call pci_select
        mov %edi, %eax
        outw %ax, %dx
        pop %edx
        pop %eax
        ret
.endm

#endif
