/*
 * A minimal legacy (0.9.5) virtio-PCI driver for the test guests, in flat
 * 32-bit protected mode, polling only (no interrupts: every avail ring gets
 * VRING_AVAIL_F_NO_INTERRUPT). Include after common.h; emit the routines with
 * VIRTIO_ROUTINES and HPET_ROUTINES inside .code32 text.
 *
 * A function with BAR 0 unassigned (no firmware ran, as under QEMU) gets
 * IO_BAR_DEFAULT. Queues use the legacy layout (descriptors, then the avail
 * ring, then the used ring on the next 4 KiB boundary), in RAM the caller
 * chooses. Per-queue driver state lives in QS(n).
 */
#ifndef GUESTS_VNET_H
#define GUESTS_VNET_H

#define VIRTIO_VENDOR   0x1af4
#define PCI_ID(dev)     (((dev) << 16) | VIRTIO_VENDOR)
#define PCIR_COMMAND    0x04
#define PCIR_BAR0       0x10
#define CMD_IO_MEM_BM   0x07
#define IO_BAR_DEFAULT  0xC000

/* Legacy virtio-PCI registers (I/O BAR 0). */
#define VIO_HOST_FEATURES  0x00
#define VIO_GUEST_FEATURES 0x04
#define VIO_QUEUE_PFN      0x08
#define VIO_QUEUE_NUM      0x0C
#define VIO_QUEUE_SEL      0x0E
#define VIO_QUEUE_NOTIFY   0x10
#define VIO_STATUS         0x12
#define VIO_CONFIG         0x14         /* device configuration (MSI-X off) */

#define ST_ACK          0x01
#define ST_DRIVER       0x02
#define ST_DRIVER_OK    0x04
#define ST_NEEDS_RESET  0x40

#define DESC_F_NEXT     1
#define DESC_F_WRITE    2
#define DESC_F_INDIRECT 4
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1

/* Variables. */
#define V_IOBASE        (SCRATCH + 0x40)
#define V_BDF           (SCRATCH + 0x44)
#define V_FEATURES      (SCRATCH + 0x48) /* in: wanted; out: negotiated */
#define V_TPM           (SCRATCH + 0x4C) /* HPET ticks per millisecond */
#define V_DEADLINE      (SCRATCH + 0x50)

/* Queue state: ring addresses, size, the driver's avail index, used entries consumed. */
#define QS(n)           (0x0800 + (n) * 0x20)
#define Q_DESC          0
#define Q_AVAIL         4
#define Q_USED          8
#define Q_SIZE          12
#define Q_AIDX          16
#define Q_UIDX          20

.macro VIRTIO_ROUTINES
/* pci_read32: %ebx = bus << 16 | slot << 11 | func << 8, %ecx = offset -> %eax. */
pci_read32:
        push %edx
        call pci_select
        mov $PCI_CONF_DATA, %dx
        inl %dx, %eax
        pop %edx
        ret

/* pci_write32: %ebx, %ecx as above, %eax = value. */
pci_write32:
        push %edx
        push %eax
        call pci_select
        pop %eax
        mov $PCI_CONF_DATA, %dx
        outl %eax, %dx
        pop %edx
        ret

pci_select:
        mov %ecx, %eax
        and $0xfc, %eax
        or %ebx, %eax
        or $PCI_ENABLE, %eax
        mov $PCI_CONF_ADDR, %dx
        outl %eax, %dx
        ret

/* pci_find: %eax = device << 16 | vendor -> %ebx = the function (bus 0), CF set when absent. */
pci_find:
        push %ecx
        push %edx
        mov %eax, %edx
        xor %ebx, %ebx
1:      xor %ecx, %ecx
        call pci_read32
        cmp %edx, %eax
        je 2f
        add $0x100, %ebx
        cmp $0x10000, %ebx
        jb 1b
        stc
        jmp 3f
2:      clc
3:      pop %edx
        pop %ecx
        ret

/*
 * vio_open: %eax = PCI id, V_FEATURES = features wanted. Finds the function,
 * places BAR 0 if unassigned, enables I/O decoding and bus mastering, resets
 * the device, sets ACKNOWLEDGE|DRIVER and writes the features both sides have
 * (left in V_FEATURES). CF set when there is no such device.
 */
vio_open:
        push %eax
        push %ebx
        push %ecx
        push %edx
        call pci_find
        jc 9f
        mov %ebx, V_BDF
        mov $PCIR_BAR0, %ecx
        call pci_read32
        and $0xfffffffc, %eax
        jnz 1f
        mov $IO_BAR_DEFAULT, %eax
        call pci_write32
1:      mov %eax, V_IOBASE
        mov $PCIR_COMMAND, %ecx
        call pci_read32
        or $CMD_IO_MEM_BM, %eax
        call pci_write32
        mov V_IOBASE, %edx
        add $VIO_STATUS, %edx
        xor %al, %al
        outb %al, %dx
        mov $(ST_ACK | ST_DRIVER), %al
        outb %al, %dx
        mov V_IOBASE, %edx
        inl %dx, %eax
        and %eax, V_FEATURES
        mov V_FEATURES, %eax
        add $VIO_GUEST_FEATURES, %edx
        outl %eax, %dx
        clc
9:      pop %edx
        pop %ecx
        pop %ebx
        pop %eax
        ret

/* vio_queue: %eax = queue index, %edi = 4 KiB-aligned RAM for its rings. Fills QS(index), zeroes the rings, writes the PFN. */
vio_queue:
        pusha
        mov %eax, %esi
        mov V_IOBASE, %edx
        add $VIO_QUEUE_SEL, %edx
        outw %ax, %dx
        mov V_IOBASE, %edx
        add $VIO_QUEUE_NUM, %edx
        xor %eax, %eax
        inw %dx, %ax
        mov %esi, %ebx
        shl $5, %ebx
        add $QS(0), %ebx
        mov %eax, Q_SIZE(%ebx)
        mov %edi, Q_DESC(%ebx)
        mov %eax, %ecx
        shl $4, %ecx
        add %edi, %ecx
        mov %ecx, Q_AVAIL(%ebx)
        lea 6(%ecx,%eax,2), %ecx
        add $4095, %ecx
        and $~4095, %ecx
        mov %ecx, Q_USED(%ebx)
        movl $0, Q_AIDX(%ebx)
        movl $0, Q_UIDX(%ebx)
        lea 6(%ecx,%eax,8), %ecx        /* end of the used ring */
        sub %edi, %ecx
        shr $2, %ecx
        inc %ecx
        push %edi
        xor %eax, %eax
        rep stosl
        pop %edi
        mov Q_AVAIL(%ebx), %eax
        movw $AVAIL_F_NO_INTERRUPT, (%eax)
        mov V_IOBASE, %edx
        add $VIO_QUEUE_PFN, %edx
        mov %edi, %eax
        shr $12, %eax
        outl %eax, %dx
        popa
        ret

/* vio_status_or: %al = bits to add to the device status. */
vio_status_or:
        push %eax
        push %edx
        mov %al, %ah
        mov V_IOBASE, %edx
        add $VIO_STATUS, %edx
        inb %dx, %al
        or %ah, %al
        outb %al, %dx
        pop %edx
        pop %eax
        ret

/* vio_status: -> %eax = the device status. */
vio_status:
        push %edx
        mov V_IOBASE, %edx
        add $VIO_STATUS, %edx
        xor %eax, %eax
        inb %dx, %al
        pop %edx
        ret

/* vio_cfg8: %ecx = device configuration offset -> %eax = that byte. */
vio_cfg8:
        push %edx
        mov V_IOBASE, %edx
        add $VIO_CONFIG, %edx
        add %ecx, %edx
        xor %eax, %eax
        inb %dx, %al
        pop %edx
        ret

/* vio_notify: %eax = queue index. */
vio_notify:
        push %edx
        mov V_IOBASE, %edx
        add $VIO_QUEUE_NOTIFY, %edx
        outw %ax, %dx
        pop %edx
        ret

/* q_desc: %ebx = QS, %ecx = descriptor, %esi = address, %edx = length, %eax = flags | next << 16. */
q_desc:
        push %edi
        mov %ecx, %edi
        shl $4, %edi
        add Q_DESC(%ebx), %edi
        mov %esi, (%edi)
        movl $0, 4(%edi)
        mov %edx, 8(%edi)
        mov %eax, 12(%edi)
        pop %edi
        ret

/* q_add: %ebx = QS, %ecx = head descriptor: next avail slot, then publish the avail index. */
q_add:
        push %eax
        push %edx
        push %esi
        mov Q_AIDX(%ebx), %eax
        mov Q_SIZE(%ebx), %esi
        dec %esi
        and %eax, %esi
        mov Q_AVAIL(%ebx), %edx
        mov %cx, 4(%edx,%esi,2)
        inc %eax
        mov %eax, Q_AIDX(%ebx)
        mov %ax, 2(%edx)
        pop %esi
        pop %edx
        pop %eax
        ret

/* q_used: %ebx = QS -> CF set when no new used entry; else %ecx = id, %edx = length (consumed). */
q_used:
        push %eax
        push %esi
        mov Q_USED(%ebx), %esi
        movzwl 2(%esi), %eax
        cmpw Q_UIDX(%ebx), %ax
        je 1f
        mov Q_UIDX(%ebx), %eax
        incl Q_UIDX(%ebx)
        mov Q_SIZE(%ebx), %ecx
        dec %ecx
        and %ecx, %eax
        mov 4(%esi,%eax,8), %ecx
        mov 8(%esi,%eax,8), %edx
        clc
        jmp 2f
1:      stc
2:      pop %esi
        pop %eax
        ret
.endm

/* HPET-based time: hpet_init once; deadline_ms %eax sets V_DEADLINE; expired sets CF once it passed. */
.macro HPET_ROUTINES
hpet_init:
        push %eax
        push %ecx
        push %edx
        mov (HPET_BASE + HPET_PERIOD), %ecx     /* femtoseconds per tick */
        mov $0xE8, %edx                         /* 10^12 fs = 1 ms */
        mov $0xD4A51000, %eax
        div %ecx
        mov %eax, V_TPM
        mov (HPET_BASE + HPET_CONFIG), %eax
        or $HPET_CFG_ENABLE, %eax
        mov %eax, (HPET_BASE + HPET_CONFIG)
        pop %edx
        pop %ecx
        pop %eax
        ret

deadline_ms:
        push %eax
        push %edx
        mull V_TPM
        add (HPET_BASE + HPET_COUNTER), %eax
        mov %eax, V_DEADLINE
        pop %edx
        pop %eax
        ret

expired:
        push %eax
        mov (HPET_BASE + HPET_COUNTER), %eax
        sub V_DEADLINE, %eax
        cmp $0x80000000, %eax                   /* CF (expired) when now - deadline >= 0 */
        pop %eax
        ret
.endm

#endif
