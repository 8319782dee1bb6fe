/*
 * A minimal virtio PCI driver for the virtqueue test and benchmark guests
 * (32-bit protected mode, no paging): finds the device, sets up MSI-X, MSI
 * or INTx, negotiates features through the modern interface (or the legacy
 * one with -DLEGACY), sets up queue 0 and submits chains; waits are
 * interrupt-driven and bounded by the LAPIC timer (about 4 s).
 *
 * Include after common.h; instantiate VIRTIO_DRIVER and PCI_ACCESS once.
 * The including guest provides `irq_handler` resuming at V_RESUME.
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

/* Reset, negotiate (everything offered but EVENT_IDX), set up queue 0 at QBASE, DRIVER_OK. */
vio_init:
        pushal
        xor %eax, %eax
        call vio_set_status
        mov $ST_ACK, %eax
        call vio_set_status
        mov $(ST_ACK | ST_DRIVER), %eax
        call vio_set_status
#ifdef LEGACY
        mov V_IO, %edx
        inl %dx, %eax
        mov %eax, %esi
        xor %edi, %edi
        and $~F_EVENT_IDX, %eax
        add $LEG_GUEST_FEATURES, %edx
        outl %eax, %dx
#else
        mov V_COMMON, %ebx
        movl $0, COM_DFSELECT(%ebx)
        mov COM_DF(%ebx), %esi
        movl $1, COM_DFSELECT(%ebx)
        mov COM_DF(%ebx), %edi
        movl $0, COM_GFSELECT(%ebx)
        mov %esi, %eax
        and $~F_EVENT_IDX, %eax
        mov %eax, COM_GF(%ebx)
        movl $1, COM_GFSELECT(%ebx)
        movl $1, COM_GF(%ebx)           /* VERSION_1 */
        mov $(ST_ACK | ST_DRIVER | ST_FEATURES_OK), %eax
        call vio_set_status
        call vio_get_status
        test $ST_FEATURES_OK, %eax
        jnz 1f
        PRINT32 "features rejected\n"
1:
#endif
        PRINT32 "features "
        HEX32 %esi, 8
        PRINT32 " "
        HEX32 %edi, 8
        PRINT32 "\n"
#ifdef LEGACY
        mov V_IO, %edx
        cmpl $MODE_MSIX, V_MODE
        jne 2f
        add $LEG_MSIX_CONFIG, %edx
        xor %eax, %eax
        outw %ax, %dx
        mov V_IO, %edx
2:      add $LEG_QUEUE_SEL, %edx
        xor %eax, %eax
        outw %ax, %dx
        mov V_IO, %edx
        add $LEG_QUEUE_NUM, %edx
        inw %dx, %ax
        movzwl %ax, %eax
        mov %eax, V_QSIZE
        call layout_queue
        mov V_IO, %edx
        add $LEG_QUEUE_PFN, %edx
        mov $(QBASE >> 12), %eax
        outl %eax, %dx
        cmpl $MODE_MSIX, V_MODE
        jne 3f
        mov V_IO, %edx
        add $LEG_MSIX_QUEUE, %edx
        mov $1, %eax
        outw %ax, %dx
3:      mov $(ST_ACK | ST_DRIVER | ST_DRIVER_OK), %eax
#else
        movw $0, COM_Q_SELECT(%ebx)
        movzwl COM_Q_SIZE(%ebx), %eax
        mov %eax, V_QSIZE
        call layout_queue
        cmpl $MODE_MSIX, V_MODE
        jne 2f
        movw $0, COM_MSIX(%ebx)
        movw $1, COM_Q_MSIX(%ebx)
2:      movl $QBASE, COM_Q_DESC(%ebx)
        movl $0, COM_Q_DESC + 4(%ebx)
        mov V_AVAIL, %eax
        mov %eax, COM_Q_AVAIL(%ebx)
        movl $0, COM_Q_AVAIL + 4(%ebx)
        mov V_USED, %eax
        mov %eax, COM_Q_USED(%ebx)
        movl $0, COM_Q_USED + 4(%ebx)
        movw $1, COM_Q_ENABLE(%ebx)
        movzwl COM_Q_NOFF(%ebx), %eax
        imul V_NMULT, %eax
        add V_NOTIFY, %eax
        mov %eax, V_QNOTIFY
        mov $(ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK), %eax
#endif
        call vio_set_status
        PRINT32 "queue size "
        DEC32 V_QSIZE
        PRINT32 "\n"
        popal
        ret

/* The legacy layout for V_QSIZE entries at QBASE (rings zeroed); indexes restart. */
layout_queue:
        pushal
        mov V_QSIZE, %ecx
        mov %ecx, %eax
        shl $4, %eax
        add $QBASE, %eax
        mov %eax, V_AVAIL
        lea 6 + 4095(%eax,%ecx,2), %eax
        and $~4095, %eax
        mov %eax, V_USED
        lea 6(%eax,%ecx,8), %ecx
        sub $QBASE, %ecx
        shr $2, %ecx
        inc %ecx
        mov $QBASE, %edi
        call zero
        movl $0, V_AIDX
        movl $0, V_USEEN
        popal
        ret

vio_set_status:
        push %edx
#ifdef LEGACY
        mov V_IO, %edx
        add $LEG_STATUS, %edx
        outb %al, %dx
#else
        mov V_COMMON, %edx
        movb %al, COM_STATUS(%edx)
#endif
        pop %edx
        ret

vio_get_status:
        push %edx
#ifdef LEGACY
        mov V_IO, %edx
        add $LEG_STATUS, %edx
        inb %dx, %al
#else
        mov V_COMMON, %edx
        movb COM_STATUS(%edx), %al
#endif
        movzbl %al, %eax
        pop %edx
        ret

/* Device configuration dword at offset %ecx into %eax. */
cfg_read32:
        push %edx
#ifdef LEGACY
        mov V_IO, %edx
        add $20, %edx
        cmpl $MODE_MSIX, V_MODE
        jne 1f
        add $4, %edx
1:      add %ecx, %edx
        inl %dx, %eax
#else
        mov V_DEVCFG, %edx
        mov (%edx,%ecx), %eax
#endif
        pop %edx
        ret

vio_notify:
        push %eax
        push %edx
        xor %eax, %eax
#ifdef LEGACY
        mov V_IO, %edx
        add $LEG_QUEUE_NOTIFY, %edx
        outw %ax, %dx
#else
        mov V_QNOTIFY, %edx
        movw %ax, (%edx)
#endif
        pop %edx
        pop %eax
        ret

/* Read (and so clear) the ISR status into %eax. */
vio_isr_read:
        push %edx
#ifdef LEGACY
        mov V_IO, %edx
        add $LEG_ISR, %edx
        inb %dx, %al
#else
        mov V_ISR, %edx
        movb (%edx), %al
#endif
        movzbl %al, %eax
        pop %edx
        ret

/* Put head %eax in the available ring (no notification). */
push_avail:
        pushal
        mov V_AIDX, %ecx
        mov V_QSIZE, %edx
        dec %edx
        and %ecx, %edx
        mov V_AVAIL, %edi
        mov %ax, 4(%edi,%edx,2)
        inc %ecx
        mov %ecx, V_AIDX
        mov %cx, 2(%edi)
        popal
        ret

/* Submit head %eax and wait for a used entry: id in %eax, length in %ecx (-1, 0 on timeout). */
submit:
        call push_avail
        call vio_notify
        /* fall through */
wait_used:
        push %edx
        push %edi
1:      mov V_USED, %edi
        movzwl 2(%edi), %eax
        cmp V_USEEN, %eax
        jne 2f
        call wait_irq
        cmpl $VEC_TIMER, V_LASTVEC
        jne 1b
        incl V_NTIMEOUT
        PRINT32 "TIMEOUT\n"
        mov $-1, %eax
        xor %ecx, %ecx
        jmp 3f
2:      mov V_USEEN, %edx
        mov V_QSIZE, %ecx
        dec %ecx
        and %ecx, %edx
        mov 4(%edi,%edx,8), %eax
        mov 8(%edi,%edx,8), %ecx
        incl V_USEEN
        andl $0xFFFF, V_USEEN
3:      pop %edi
        pop %edx
        ret

/* Sleep until an interrupt (or the ~4 s LAPIC timer); the vector is left in V_LASTVEC. */
wait_irq:
        pushal
        movl $0xFFFFFFFF, LAPIC_BASE + LAPIC_TICR
        movl $1f, V_RESUME
        sti
0:      hlt
        jmp 0b
1:      movl $0, LAPIC_BASE + LAPIC_TICR
        cmpl $VEC_TIMER, V_LASTVEC
        je 2f
        incl V_NIRQ
2:      call vio_isr_read
        movl $0, LAPIC_BASE + LAPIC_EOI
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
