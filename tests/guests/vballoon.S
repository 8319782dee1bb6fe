/*
 * vballoon: drives virtio-balloon through the legacy interface, polling, in
 * flat 32-bit protected mode. The target (num_pages) comes from the host.
 *
 *   balloon io IIII target N
 *   TOUCHED N          N pages from 16 MiB written with a pattern; waits for a byte on COM1
 *   INFLATED N         their frame numbers given to the device (256 a chain), actual = N
 *   ZERO N             inflated pages that now read as zero (the host dropped them)
 *   BAD used N         a chain naming frames outside RAM (ROM, PCI hole, 16 TiB) completed
 *   ROM ok | ROM bad   the boot ROM still holds what its shadow copy holds
 *                      waits for a byte on COM1
 *   DEFLATED N         the frames taken back (deflate queue), actual = 0
 *   RETOUCH ok | bad   the pages hold new data again
 *   DONE
 */
#include "common.h"
#include "vnet.h"

#define DEV_BALLOON     0x1002
#define INFLQ_MEM       0x10000
#define DEFLQ_MEM       0x14000
#define PFNS            0x100000        /* frame numbers, 4 bytes each */
#define BADPFNS         0x0F000
#define TOUCH_BASE      0x01000000
#define PER_CHAIN       256
#define MAX_PAGES       32768           /* 128 chains of 256 */
#define PATTERN         0xA5A5A5A5
#define ROM_TOP         0xFFFF0000      /* the boot ROM; its shadow copy is at 0xF0000 */

#define V_PAGES         (SCRATCH + 0x60)
#define V_CHAINS        (SCRATCH + 0x64)

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32
        call hpet_init
        movl $0, V_FEATURES
        mov $PCI_ID(DEV_BALLOON), %eax
        call vio_open
        jnc 1f
        PRINT32 "no virtio-balloon\n"
        DONE32
1:      xor %eax, %eax
        mov $INFLQ_MEM, %edi
        call vio_queue
        mov $1, %eax
        mov $DEFLQ_MEM, %edi
        call vio_queue
        mov $ST_DRIVER_OK, %al
        call vio_status_or
        xor %ecx, %ecx
        call cfg32
        cmp $MAX_PAGES, %eax
        jbe 2f
        mov $MAX_PAGES, %eax
2:      mov %eax, V_PAGES
        PRINT32 "balloon io "
        HEX32 V_IOBASE, 4
        PRINT32 " target "
        DEC32 V_PAGES
        PRINT32 "\n"

        /* touch every page */
        mov V_PAGES, %ecx
        mov $TOUCH_BASE, %edi
3:      test %ecx, %ecx
        jz 4f
        movl $PATTERN, (%edi)
        add $4096, %edi
        dec %ecx
        jmp 3b
4:      PRINT32 "TOUCHED "
        DEC32 V_PAGES
        PRINT32 "\n"
        call wait_key

        /* their frame numbers, then chains of PER_CHAIN on the inflate queue */
        xor %ecx, %ecx
5:      cmp V_PAGES, %ecx
        jae 6f
        lea (TOUCH_BASE >> 12)(%ecx), %eax
        mov %eax, PFNS(,%ecx,4)
        inc %ecx
        jmp 5b
6:      mov $QS(0), %ebx
        call post_pfns
        mov $1, %ecx
        xor %eax, %eax
        call wait_used
        mov V_PAGES, %eax
        mov $4, %ecx
        call set_cfg32                  /* actual */
        PRINT32 "INFLATED "
        DEC32 V_PAGES
        PRINT32 "\n"

        /* the pages read as zero now */
        xor %edx, %edx
        mov V_PAGES, %ecx
        mov $TOUCH_BASE, %edi
7:      test %ecx, %ecx
        jz 8f
        cmpl $0, (%edi)
        jne 1f
        inc %edx
1:      add $4096, %edi
        dec %ecx
        jmp 7b
8:      PRINT32 "ZERO "
        DEC32 %edx
        PRINT32 "\n"

        /* frames outside RAM: the ROM's last page, the PCI hole, 16 TiB, the LAPIC */
        movl $0xFFFFF, BADPFNS
        movl $0xC0000, BADPFNS + 4
        movl $0xFFFFFFFF, BADPFNS + 8
        movl $0xFEE00, BADPFNS + 12
        mov $QS(0), %ebx
        mov $127, %ecx
        mov $BADPFNS, %esi
        mov $16, %edx
        xor %eax, %eax
        call q_desc
        call q_add
        xor %eax, %eax
        call vio_notify
        mov $1, %ecx
        call wait_used
        PRINT32 "BAD used "
        DEC32 Q_UIDX(%ebx)
        PRINT32 "\n"
        mov $ROM_TOP, %esi
        mov $0xF0000, %edi
        mov $4096, %ecx
        repe cmpsl
        jne 9f
        PRINT32 "ROM ok\n"
        jmp 1f
9:      PRINT32 "ROM bad\n"
1:      call wait_key

        /* deflate everything and write new data */
        mov $QS(1), %ebx
        call post_pfns
        mov $1, %eax
        mov $1, %ecx
        call wait_used
        xor %eax, %eax
        mov $4, %ecx
        call set_cfg32
        PRINT32 "DEFLATED "
        DEC32 V_PAGES
        PRINT32 "\n"
        mov V_PAGES, %ecx
        mov $TOUCH_BASE, %edi
2:      test %ecx, %ecx
        jz 3f
        movl $0x5A5A5A5A, (%edi)
        cmpl $0x5A5A5A5A, (%edi)
        jne 4f
        add $4096, %edi
        dec %ecx
        jmp 2b
3:      PRINT32 "RETOUCH ok\n"
        DONE32
4:      PRINT32 "RETOUCH bad\n"
        DONE32

/* Post V_PAGES frame numbers from PFNS on queue %ebx, PER_CHAIN a chain (descriptor k = chain k); notify. */
post_pfns:
        pushal
        xor %ecx, %ecx                  /* chain */
        mov V_PAGES, %ebp               /* frames left */
        mov $PFNS, %esi
1:      test %ebp, %ebp
        jz 3f
        mov $PER_CHAIN, %edx
        cmp %edx, %ebp
        jae 2f
        mov %ebp, %edx
2:      sub %edx, %ebp
        shl $2, %edx
        xor %eax, %eax
        call q_desc
        call q_add
        add %edx, %esi
        inc %ecx
        jmp 1b
3:      mov %ecx, V_CHAINS
        mov %ebx, %eax
        sub $QS(0), %eax
        shr $5, %eax
        call vio_notify
        popal
        ret

/* Wait (10 s at most) until queue %ebx has used every chain posted on it; %ecx != 0: all of them. */
wait_used:
        pushal
        mov $10000, %eax
        call deadline_ms
1:      mov Q_USED(%ebx), %esi
        movzwl 2(%esi), %eax
        cmpw Q_AIDX(%ebx), %ax
        je 2f
        call expired
        jnc 1b
        PRINT32 "TIMEOUT\n"
2:      mov Q_AIDX(%ebx), %eax
        mov %eax, Q_UIDX(%ebx)
        popal
        ret

/* Device configuration dword at %ecx -> %eax; set_cfg32 writes %eax there. */
cfg32:
        push %edx
        mov V_IOBASE, %edx
        add $VIO_CONFIG, %edx
        add %ecx, %edx
        inl %dx, %eax
        pop %edx
        ret

set_cfg32:
        push %edx
        mov V_IOBASE, %edx
        add $VIO_CONFIG, %edx
        add %ecx, %edx
        outl %eax, %dx
        pop %edx
        ret

/* Wait for a byte on COM1 (the test's go-ahead), and drop it. */
wait_key:
        push %eax
        push %edx
        mov $(COM1 + COM_LSR), %dx
1:      inb %dx, %al
        test $1, %al
        jz 1b
        mov $COM1, %dx
        inb %dx, %al
        pop %edx
        pop %eax
        ret

irq_handler:
        PRINT32 "unexpected interrupt\n"
        DONE32

        VIRTIO_ROUTINES
        HPET_ROUTINES
        IDT_SUPPORT
        GUEST_LIBRARY
