/*
 * virtio-blk benchmark guest (a 64 KiB boot ROM, flat 32-bit protected
 * mode): drives queue 0 of the virtio-blk device in slot 3 through the
 * modern interface with MSI-X, keeping QD requests in flight, in four
 * phases after an untimed warm-up: sequential write and read (SEQ_LEN-byte
 * requests over the whole disk), then 4 KiB random reads and writes
 * (RAND_COUNT each). Each phase
 * prints "phase NAME start" and "phase NAME end errors N"; the host times
 * the lines. Runs the same under bhyve-ts and QEMU (BARs placed by the
 * guest when no firmware did; exit through ACPI S5 or isa-debug-exit).
 *
 * Built by bench/vblk.ts with tests/guests/common.h and vqdrv.h.
 */
#include "common.h"
#define DEVID 0x1001
#include "vqdrv.h"

#ifndef QD
#define QD              8
#endif
#ifndef SEQ_LEN
#define SEQ_LEN         0x20000
#endif
#ifndef RAND_COUNT
#define RAND_COUNT      20000
#endif
#define RAND_LEN        4096
#define SLOT_HDRS       0x40000         /* header at + 32 * slot, status at + 16 */
#define SLOT_BUFS       0x400000        /* SEQ_LEN bytes per slot */
#define DEBUG_EXIT      0x501

#define B_TYPE          (SCRATCH + 0x80)
#define B_LEN           (SCRATCH + 0x84)
#define B_COUNT         (SCRATCH + 0x88)
#define B_RANDOM        (SCRATCH + 0x8C)
#define B_NEXT          (SCRATCH + 0x90)
#define B_SUB           (SCRATCH + 0x94)
#define B_DONE          (SCRATCH + 0x98)
#define B_SEED          (SCRATCH + 0x9C)
#define B_ERR           (SCRATCH + 0xA0)
#define B_SECS          (SCRATCH + 0xA4)
#define B_MASK          (SCRATCH + 0xA8)
#define B_KICK          (SCRATCH + 0xAC)

/* Run one phase: type, request bytes, request count, random (1) or sequential (0). */
.macro PHASE name, type, len, count, random
        PRINT32 "phase \name start\n"
        movl $\type, B_TYPE
        movl $\len, B_LEN
        movl $\count, B_COUNT
        movl $\random, B_RANDOM
        call run_phase
        PRINT32 "phase \name end errors "
        DEC32 B_ERR
        PRINT32 "\n"
.endm

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32
        mov $0xFF, %al
        outb %al, $0x21
        outb %al, $0xA1
        movl $(SVR_ENABLE | 0xFF), LAPIC_BASE + LAPIC_SVR
        movl $0, LAPIC_BASE + LAPIC_TPR
        movl $VEC_TIMER, LAPIC_BASE + LAPIC_LVT_TIMER
        movl $LAPIC_DIV_1, LAPIC_BASE + LAPIC_TDCR
        call find_device
        call setup_irq
        call vio_init
        mov $BLK_CAPACITY, %ecx
        call cfg_read32
        mov %eax, V_CAPACITY
        movl $0x2545F491, B_SEED
        /* untimed: JIT warm-up, guest buffers and host page tables populated, on both VMMs */
        PHASE warmup-write, T_OUT, SEQ_LEN, 1024, 0
        PHASE warmup-read, T_IN, RAND_LEN, 4096, 1
        PHASE seq-write, T_OUT, SEQ_LEN, 0, 0
        PHASE seq-read, T_IN, SEQ_LEN, 0, 0
        PHASE rand-read, T_IN, RAND_LEN, RAND_COUNT, 1
        PHASE rand-write, T_OUT, RAND_LEN, RAND_COUNT, 1
        PRINT32 "DONE\n"
        mov $PM1A_CNT, %dx
        mov $PM1_SLP_S5, %ax
        outw %ax, %dx
        mov $DEBUG_EXIT, %dx
        xor %al, %al
        outb %al, %dx
1:      hlt
        jmp 1b

/* QD slots of three descriptors each (3i header, 3i+1 data, 3i+2 status); refill as they complete. */
run_phase:
        pushal
        mov B_LEN, %eax
        shr $9, %eax
        mov %eax, B_SECS
        mov V_CAPACITY, %eax
        xor %edx, %edx
        divl B_SECS
        cmpl $0, B_COUNT
        jne 1f
        mov %eax, B_COUNT               /* sequential: the whole disk */
1:      dec %eax
        mov %eax, B_MASK                /* random: capacity / request, a power of two */
        movl $0, B_NEXT
        movl $0, B_DONE
        movl $0, B_ERR
        xor %esi, %esi                  /* slot */
2:      call slot_setup
        call slot_start
        inc %esi
        cmp $QD, %esi
        jb 2b
        movl $QD, B_SUB
        call vio_notify

3:      movl $0, B_KICK
4:      mov V_USED, %edi
        movzwl 2(%edi), %eax
        cmp V_USEEN, %eax
        je 6f
        mov V_USEEN, %edx
        mov V_QSIZE, %ecx
        dec %ecx
        and %ecx, %edx
        mov 4(%edi,%edx,8), %eax        /* head = 3 * slot */
        incl V_USEEN
        andl $0xFFFF, V_USEEN
        xor %edx, %edx
        mov $3, %ecx
        div %ecx
        mov %eax, %esi
        shl $5, %eax
        cmpb $0, SLOT_HDRS + 16(%eax)
        je 5f
        incl B_ERR
5:      incl B_DONE
        mov B_SUB, %eax
        cmp B_COUNT, %eax
        jae 4b
        incl B_SUB
        call slot_start
        movl $1, B_KICK
        jmp 4b
6:      cmpl $0, B_KICK
        je 7f
        call vio_notify
7:      mov B_DONE, %eax
        cmp B_COUNT, %eax
        jae 8f
        cmpl $0, B_KICK
        jne 3b                          /* look again before sleeping */
        call wait_fast
        jmp 3b
8:      popal
        ret

/* Descriptors of slot %esi for this phase. */
slot_setup:
        pushal
        lea (%esi,%esi,2), %ebx         /* 3 * slot */
        mov %ebx, %edi
        shl $4, %edi
        add $QBASE, %edi                /* its first descriptor */
        mov %esi, %eax
        shl $5, %eax
        add $SLOT_HDRS, %eax
        mov %eax, 0(%edi)
        movl $0, 4(%edi)
        movl $16, 8(%edi)
        movw $DESC_NEXT, 12(%edi)
        lea 1(%ebx), %ecx
        mov %cx, 14(%edi)
        mov B_TYPE, %ecx
        mov %ecx, (%eax)
        movl $0, 4(%eax)
        movl $0, 12(%eax)
        mov %esi, %ecx
        imul $SEQ_LEN, %ecx
        add $SLOT_BUFS, %ecx
        mov %ecx, 16(%edi)
        movl $0, 20(%edi)
        mov B_LEN, %ecx
        mov %ecx, 24(%edi)
        mov $DESC_NEXT, %ecx
        cmpl $T_IN, B_TYPE
        jne 1f
        or $DESC_WRITE, %ecx
1:      mov %cx, 28(%edi)
        lea 2(%ebx), %ecx
        mov %cx, 30(%edi)
        add $16, %eax
        mov %eax, 32(%edi)
        movl $0, 36(%edi)
        movl $1, 40(%edi)
        movw $DESC_WRITE, 44(%edi)
        movw $0, 46(%edi)
        popal
        ret

/* Next sector into slot %esi's header, status preset, head offered (no notify). */
slot_start:
        pushal
        cmpl $0, B_RANDOM
        je 1f
        mov B_SEED, %eax
        imul $1103515245, %eax
        add $12345, %eax
        mov %eax, B_SEED
        shr $8, %eax
        and B_MASK, %eax
        imul B_SECS, %eax
        jmp 2f
1:      mov B_NEXT, %eax
        mov B_SECS, %ecx
        add %eax, %ecx
        mov %ecx, B_NEXT
2:      mov %esi, %edx
        shl $5, %edx
        mov %eax, SLOT_HDRS + 8(%edx)
        movb $0xEE, SLOT_HDRS + 16(%edx)
        lea (%esi,%esi,2), %eax
        call push_avail
        popal
        ret

/* Sleep until an interrupt; clobbers %ebx and the flags. */
wait_fast:
        movl $1f, V_RESUME
        sti
0:      hlt
        jmp 0b
1:      movl $0, LAPIC_BASE + LAPIC_EOI
        ret

/* zero %ecx dwords at %edi (vio_init uses it) */
zero:
        push %ecx
        push %edi
1:      movl $0, (%edi)
        add $4, %edi
        dec %ecx
        jnz 1b
        pop %edi
        pop %ecx
        ret

irq_handler:
        add $16, %esp
        mov %ebx, V_LASTVEC
        jmp *V_RESUME

        VIRTIO_DRIVER
        PCI_ACCESS
        IDT_SUPPORT
        GUEST_LIBRARY
