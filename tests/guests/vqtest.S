/*
 * virtio: drives a virtio PCI device's first virtqueue directly, in flat
 * 32-bit protected mode, through the modern 1.x interface (capabilities in
 * a memory BAR) or, with -DLEGACY, the legacy 0.9.5 I/O BAR. Interrupts:
 * MSI-X when the device offers it, else MSI (-W), else INTx through the
 * IOAPIC (-DFORCE_INTX skips MSI-X). Every wait is bounded by the LAPIC timer.
 *
 * DEVID 0x1001 (virtio-blk): writes, reads back, reads what the host put in
 * sector 16, flushes, gets the serial, reads through an indirect table, then
 * sends hostile chains (a buffer outside guest memory, a length running past
 * memory, a chain looping on itself, a next index beyond the queue, a bad
 * indirect table, a head beyond the queue, an available index running ahead)
 * and checks the device recovers after a reset. DEVID 0x1005 (virtio-rnd):
 * two 64-byte requests, then a buffer outside guest memory.
 *
 * Output lines (checked by tests/e2e/virtio.test.ts; the driver is vqdrv.h):
 *   virtio found slot SS modern|legacy
 *   irq msix|msi|intx gsi GG
 *   features XXXXXXXX XXXXXXXX      (high word 0 in legacy)
 *   queue size NNNN
 *   NAME status SS len LLLLLLLL     (one per request)
 *   ...
 *   interrupts N timeouts N
 *   DONE
 */
#include "common.h"
#include "vqdrv.h"

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32
        mov $0xFF, %al                  /* mask the PICs: INTx also reaches them through the PIRQ router */
        outb %al, $0x21
        outb %al, $0xA1
        movl $(SVR_ENABLE | 0xFF), LAPIC_BASE + LAPIC_SVR
        movl $0, LAPIC_BASE + LAPIC_TPR
        movl $VEC_TIMER, LAPIC_BASE + LAPIC_LVT_TIMER
        movl $LAPIC_DIV_1, LAPIC_BASE + LAPIC_TDCR
        movl $0, V_NIRQ
        movl $0, V_NTIMEOUT
        call find_device
        call setup_irq
        call vio_init
#if DEVID == 0x1005
        call rnd_tests
#else
        call blk_tests
#endif
        PRINT32 "interrupts "
        DEC32 V_NIRQ
        PRINT32 " timeouts "
        DEC32 V_NTIMEOUT
        PRINT32 "\n"
        DONE32

/* ---------------------------------------------------------------- blk */
#if DEVID != 0x1005
blk_tests:
        mov $BLK_CAPACITY, %ecx
        call cfg_read32
        mov %eax, V_CAPACITY
        PRINT32 "capacity "
        HEX32 %eax, 8
        mov $BLK_SIZE_OFF, %ecx
        call cfg_read32
        PRINT32 " blk_size "
        HEX32 %eax, 8
        PRINT32 "\n"

        /* the pattern: dword i of DATA_W is 0xB10C0000 + i */
        xor %ecx, %ecx
1:      lea 0xB10C0000(%ecx), %eax
        mov %eax, DATA_W(,%ecx,4)
        inc %ecx
        cmp $1024, %ecx
        jb 1b

        SETREQ $T_OUT, $2, $DATA_W, $4096, $0
        call blk_req
        REPORT "write"

        mov $DATA_R, %edi
        mov $1024, %ecx
        call zero
        SETREQ $T_IN, $2, $DATA_R, $4096, $DESC_WRITE
        call blk_req
        REPORT "read"
        call verify

        SETREQ $T_IN, $16, $DATA_R2, $512, $DESC_WRITE
        call blk_req
        REPORT "hostread"
        PRINT32 "hostdata "
        HEX32 DATA_R2, 8
        PRINT32 " "
        HEX32 DATA_R2 + 4, 8
        PRINT32 " "
        HEX32 DATA_R2 + 508, 8
        PRINT32 "\n"

        SETREQ $T_FLUSH, $0, $0, $0, $0
        call blk_req
        REPORT "flush"

        mov $IDBUF, %edi
        mov $8, %ecx
        call zero
        SETREQ $T_GET_ID, $0, $IDBUF, $20, $DESC_WRITE
        call blk_req
        REPORT "getid"
        call print_id

        /* one request through an indirect table: header, 512 bytes, status */
        mov $DATA_R, %edi
        mov $1024, %ecx
        call zero
        SETREQ $T_IN, $2, $DATA_R, $512, $DESC_WRITE
        call blk_build
        movl $HDR, INDIR
        movl $0, INDIR + 4
        movl $16, INDIR + 8
        movl $(1 | (1 << 16)), INDIR + 12       /* NEXT, next 1 */
        movl $DATA_R, INDIR + 16
        movl $0, INDIR + 20
        movl $512, INDIR + 24
        movl $(3 | (2 << 16)), INDIR + 28       /* NEXT|WRITE, next 2 */
        movl $STATUS, INDIR + 32
        movl $0, INDIR + 36
        movl $1, INDIR + 40
        movl $2, INDIR + 44                     /* WRITE */
        DESC 0, $INDIR, $48, $DESC_INDIRECT, $0
        call blk_submit
        REPORT "indirect"
        PRINT32 "indirect data "
        HEX32 DATA_R, 8
        PRINT32 " "
        HEX32 DATA_R + 508, 8
        PRINT32 "\n"

        SETREQ $T_IN, V_CAPACITY, $DATA_R, $512, $DESC_WRITE
        call blk_req
        REPORT "beyond"

        SETREQ $0x99, $0, $0, $0, $0
        call blk_req
        REPORT "unsupported"

        /* ---- hostile chains ---- */
        SETREQ $T_IN, $2, $DATA_R, $512, $DESC_WRITE
        call blk_build
        movl $0x100, QBASE + 16 + 4             /* data at 1 TiB */
        call blk_submit
        REPORT "hostile-addr"

        SETREQ $T_OUT, $2, $DATA_W, $512, $0
        call blk_build
        movl $0xFFFFF000, QBASE + 16 + 8        /* runs far past guest memory */
        call blk_submit
        REPORT "hostile-len"

        SETREQ $T_OUT, $2, $DATA_W, $512, $0
        call blk_build
        movw $(DESC_WRITE | DESC_NEXT), QBASE + 32 + 12
        movw $2, QBASE + 32 + 14                /* the status descriptor points at itself */
        call blk_submit
        REPORT "hostile-loop"

        SETREQ $T_OUT, $2, $DATA_W, $512, $0
        call blk_build
        movw $999, QBASE + 14                   /* next beyond the queue */
        call blk_submit
        REPORT "hostile-next"

        SETREQ $T_IN, $2, $DATA_R, $512, $DESC_WRITE
        call blk_build
        DESC 0, $INDIR, $40, $DESC_INDIRECT, $0 /* not a whole number of descriptors */
        call blk_submit
        REPORT "hostile-indirect"

        /* a head beyond the queue: the device needs a reset */
        mov $300, %eax
        call push_avail
        call vio_notify
        call wait_needs_reset
        PRINT32 "hostile-head device status "
        HEX32 %eax, 2
        PRINT32 "\n"
        call vio_init
        call recovered

        /* an available index 500 entries ahead */
        mov V_AVAIL, %edi
        mov V_AIDX, %eax
        add $500, %eax
        mov %ax, 2(%edi)
        call vio_notify
        call wait_needs_reset
        PRINT32 "hostile-idx device status "
        HEX32 %eax, 2
        PRINT32 "\n"
        call vio_init
        call recovered
        ret

/* Wait for DEVICE_NEEDS_RESET (a configuration interrupt announces it); the status in %eax. */
wait_needs_reset:
1:      call vio_get_status
        test $0x40, %eax
        jnz 2f
        call wait_irq
        cmpl $VEC_TIMER, V_LASTVEC
        jne 1b
        incl V_NTIMEOUT
        PRINT32 "TIMEOUT\n"
        call vio_get_status
2:      ret

recovered:
        mov $DATA_R, %edi
        mov $1024, %ecx
        call zero
        SETREQ $T_IN, $2, $DATA_R, $4096, $DESC_WRITE
        call blk_req
        REPORT "recovered"
        call verify
        ret

/* DATA_R == DATA_W? */
verify:
        pushal
        xor %ecx, %ecx
1:      mov DATA_R(,%ecx,4), %eax
        cmp DATA_W(,%ecx,4), %eax
        jne 2f
        inc %ecx
        cmp $1024, %ecx
        jb 1b
        PRINT32 "verify ok\n"
        popal
        ret
2:      PRINT32 "verify bad at "
        HEX32 %ecx, 4
        PRINT32 "\n"
        popal
        ret

print_id:
        pushal
        PRINT32 "serial '"
        mov $IDBUF, %esi
1:      movb (%esi), %al
        test %al, %al
        jz 2f
        call putc32
        inc %esi
        cmp $(IDBUF + 20), %esi
        jb 1b
2:      PRINT32 "'\n"
        popal
        ret

/* Header, data (when R_LEN != 0) and status descriptors 0-2 from R_*; status byte preset to 0xEE. */
blk_build:
        mov R_TYPE, %eax
        mov %eax, HDR
        movl $0, HDR + 4
        mov R_SECTOR, %eax
        mov %eax, HDR + 8
        movl $0, HDR + 12
        movb $0xEE, STATUS
        DESC 0, $HDR, $16, $DESC_NEXT, $1
        cmpl $0, R_LEN
        jne 1f
        movw $2, QBASE + 14
        jmp 2f
1:      mov R_DATA, %eax
        mov %eax, QBASE + 16
        movl $0, QBASE + 20
        mov R_LEN, %eax
        mov %eax, QBASE + 24
        mov R_DIR, %eax
        or $DESC_NEXT, %eax
        mov %ax, QBASE + 28
        movw $2, QBASE + 30
2:      DESC 2, $STATUS, $1, $DESC_WRITE, $0
        ret

/* Submit head 0; returns the status byte in %eax, the used length in R_USEDLEN. */
blk_submit:
        xor %eax, %eax
        call submit
        mov %ecx, R_USEDLEN
        movzbl STATUS, %eax
        ret

blk_req:
        call blk_build
        jmp blk_submit
#endif

/* ---------------------------------------------------------------- rnd */
#if DEVID == 0x1005
rnd_tests:
        mov $DATA_R, %edi
        mov $16, %ecx
        call zero
        mov $DATA_R2, %edi
        call zero
        DESC 0, $DATA_R, $64, $DESC_WRITE, $0
        xor %eax, %eax
        call submit
        PRINT32 "rnd1 len "
        HEX32 %ecx, 8
        PRINT32 "\n"
        DESC 0, $DATA_R2, $64, $DESC_WRITE, $0
        xor %eax, %eax
        call submit
        PRINT32 "rnd2 len "
        HEX32 %ecx, 8
        PRINT32 "\n"
        xor %ecx, %ecx
        xor %edx, %edx                  /* equal dwords */
        xor %ebx, %ebx                  /* zero dwords */
1:      mov DATA_R(,%ecx,4), %eax
        cmp DATA_R2(,%ecx,4), %eax
        jne 2f
        inc %edx
2:      test %eax, %eax
        jnz 3f
        inc %ebx
3:      inc %ecx
        cmp $16, %ecx
        jb 1b
        PRINT32 "rnd equal "
        DEC32 %edx
        PRINT32 " zero "
        DEC32 %ebx
        PRINT32 "\n"
        DESC 0, $DATA_R, $64, $DESC_WRITE, $0
        movl $0x100, QBASE + 4          /* outside guest memory */
        xor %eax, %eax
        call submit
        PRINT32 "rnd-hostile len "
        HEX32 %ecx, 8
        PRINT32 "\n"
        DESC 0, $DATA_R, $16, $DESC_WRITE, $0
        xor %eax, %eax
        call submit
        PRINT32 "rnd3 len "
        HEX32 %ecx, 8
        PRINT32 "\n"
        ret
#endif

/* zero %ecx dwords at %edi */
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

/* %ebx = vector; resume the interrupted wait_irq with the stack it had (no iret) */
irq_handler:
        add $16, %esp                   /* the stub's vector, then EIP, CS, EFLAGS */
        mov %ebx, V_LASTVEC
        jmp *V_RESUME

        VIRTIO_DRIVER
        PCI_ACCESS
        IDT_SUPPORT
        GUEST_LIBRARY
