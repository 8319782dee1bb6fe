/*
 * virtio-net transmit benchmark guest (built by bench/vnet.ts with
 * -I tests/guests): FRAMES frames of FRAME_LEN Ethernet bytes, as fast as
 * the device takes them, through the legacy interface, polling. Every
 * descriptor of the 256-entry transmit queue points at the same frame, so
 * sending is only moving the avail index; the guest notifies when the device
 * asks for it (USED_F_NO_NOTIFY clear). Frames over 1514 bytes are TSO
 * frames (HOST_TSO4, a virtio-net header asking for segmentation and the TCP
 * checksum). They go to a MAC nobody has, so the host drops them right after
 * counting them on the tap.
 *
 *   features FFFFFFFF
 *   GO                 (the host starts its clock)
 *   END                (every frame completed)
 *   SENT N
 * then QEMU's isa-debug-exit (port 0x501) and ACPI S5.
 */
#include "common.h"
#include "vnet.h"

#ifndef FRAMES
#define FRAMES          10000
#endif
#ifndef FRAME_LEN
#define FRAME_LEN       1514
#endif
#define TSO             (FRAME_LEN > 1514)
#define MSS             1448

#define DEV_NET         0x1000
#define F_CSUM          (1 << 0)
#define F_MAC           (1 << 5)
#define F_HOST_TSO4     (1 << 11)
#define F_MRG_RXBUF     (1 << 15)
#define TXQ_MEM         0x14000
#define FRAME           0x100000        /* header, then the Ethernet frame */
#define HDR_LEN         12              /* with MRG_RXBUF */
#define BE16(x)         ((((x) & 0xff) << 8) | (((x) >> 8) & 0xff))

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32
        movl $(F_MAC | F_MRG_RXBUF | F_CSUM | F_HOST_TSO4), V_FEATURES
        mov $PCI_ID(DEV_NET), %eax
        call vio_open
        jnc 1f
        PRINT32 "no virtio-net\n"
        jmp out
1:      PRINT32 "features "
        HEX32 V_FEATURES, 8
        PRINT32 "\n"
        testl $F_MRG_RXBUF, V_FEATURES
        jz 2f
#if TSO
        testl $F_HOST_TSO4, V_FEATURES
        jnz 3f
2:      PRINT32 "no TSO\n"
        jmp out
3:
#else
        jmp 3f
2:      PRINT32 "no MRG_RXBUF\n"
        jmp out
3:
#endif
        mov $1, %eax
        mov $TXQ_MEM, %edi
        call vio_queue
        mov $ST_DRIVER_OK, %al
        call vio_status_or
        call build_frame

        /* every descriptor points at the frame; avail slot i holds descriptor i */
        mov $QS(1), %ebx
        mov Q_SIZE(%ebx), %ebp
        mov Q_AVAIL(%ebx), %edi
        xor %ecx, %ecx
4:      mov $FRAME, %esi
        mov $(HDR_LEN + FRAME_LEN), %edx
        xor %eax, %eax
        call q_desc
        mov %cx, 4(%edi,%ecx,2)
        inc %ecx
        cmp %ebp, %ecx
        jb 4b

        PRINT32 "GO\n"
        mov Q_USED(%ebx), %ebx
        xor %esi, %esi                  /* frames made available */
spin:
        movzwl 2(%ebx), %eax            /* completed (16 bits) */
        mov %esi, %ecx
        sub %eax, %ecx
        and $0xffff, %ecx               /* in flight */
        cmp $FRAMES, %esi
        jae drain
        mov %ebp, %edx
        sub %ecx, %edx                  /* free slots */
        jz spin
        add %edx, %esi
        cmp $FRAMES, %esi
        jbe 5f
        mov $FRAMES, %esi
5:      mov %si, 2(%edi)
        lock orl $0, (%esp)             /* publish before reading the device's wish */
        testw $USED_F_NO_NOTIFY, (%ebx)
        jnz spin
        mov $1, %eax
        call vio_notify
        jmp spin
drain:
        test %ecx, %ecx
        jnz spin
        PRINT32 "END\nSENT "
        DEC32 %esi
        PRINT32 "\n"
out:    mov $0x501, %dx
        outb %al, %dx
        POWEROFF

/* The frame at FRAME: virtio-net header, Ethernet, IPv4, TCP, zeros. */
build_frame:
        mov $FRAME, %edi
        mov $((HDR_LEN + 64) / 4), %ecx
        xor %eax, %eax
        rep stosl
#if TSO
        movl $((54 << 16) | 0x0101), FRAME      /* NEEDS_CSUM, GSO TCPv4, hdr_len 54 */
        movl $((34 << 16) | MSS), FRAME + 4     /* gso_size, csum_start */
        movl $16, FRAME + 8                     /* csum_offset (TCP checksum) */
#endif
        mov $(FRAME + HDR_LEN), %edi
        movl $0x00000002, (%edi)                /* to 02:00:00:00:00:02: nobody */
        movl $0xa0000200, 4(%edi)               /* from 00:a0:98:00:00:01 */
        movl $0x01000098, 8(%edi)
        movw $BE16(0x0800), 12(%edi)
        movl $((BE16(FRAME_LEN - 14) << 16) | 0x45), 14(%edi)
        movl $0x00400000, 18(%edi)              /* don't fragment */
        movl $0x00000640, 22(%edi)              /* TTL 64, TCP */
        movl $0x0F02000A, 26(%edi)              /* 10.0.2.15 */
        movl $0x0202000A, 30(%edi)              /* 10.0.2.2 */
        movl $((BE16(5001) << 16) | BE16(5001)), 34(%edi)
        movl $(0xffff1050), 46(%edi)            /* offset 5, ACK, window 65535 */
        lea 14(%edi), %esi
        mov $10, %ecx
        xor %eax, %eax
1:      movzwl (%esi), %edx
        add %edx, %eax
        add $2, %esi
        dec %ecx
        jnz 1b
        mov %eax, %edx
        shr $16, %edx
        and $0xffff, %eax
        add %edx, %eax
        mov %eax, %edx
        shr $16, %edx
        add %edx, %eax
        not %eax
        mov %ax, 24(%edi)
        ret

irq_handler:
        PRINT32 "unexpected interrupt\n"
        jmp out

        VIRTIO_ROUTINES
        HPET_ROUTINES
        IDT_SUPPORT
        GUEST_LIBRARY
