/*
 * The transport half of the virtqueue test driver (see vqdrv.h): reset and
 * feature negotiation through the modern or (-DLEGACY) legacy registers,
 * queue 0 at QBASE in the legacy layout, status, device configuration,
 * notify, ISR, submitting a head and waiting for its used entry.
 */
#ifndef GUESTS_VQDRV_QUEUE_H
#define GUESTS_VQDRV_QUEUE_H

.macro VIRTIO_QUEUE
        .text
        .code32
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

#endif
