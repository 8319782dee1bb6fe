/*
 * pmirq: protected-mode interrupts that return with iret, taken on a stack
 * whose segment has a base, as iPXE runs its C code. First a software
 * interrupt (int 0x40), then the local APIC timer (vector 0x41) waking a
 * hlt; each handler counts and irets. After each, the word pushed before
 * the interrupt must still be at SS:ESP.
 *
 * On a PVM host the frame of such an interrupt lands at the linear address
 * ESP without the SS base; the emulator moves it to SS:ESP before the iret
 * (src/emulate/pvm-frame.ts). Without that, the iret raises #GP and the
 * exception stub reports it.
 *   INT 0x40 returned
 *   TIMER 0x41 returned
 *   DONE
 */
#include "common.h"

#define SEL_STACK       0x18            /* 32-bit data segment based at STACK_BASE */
#define STACK_BASE      0x10000
#define STACK_ESP       0x8000          /* linear 0x18000 */
#define VEC_SOFT        0x40
#define VEC_TIMER       0x41
#define SPURIOUS_VEC    0xFF
#define CANARY          0x5AA5C33C

#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_ICR 0x380
#define LAPIC_TIMER_DCR 0x3E0
#define TIMER_DIV_1     0xB
#define TIMER_COUNT     100000

#define HITS            (SCRATCH + 0x00)

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        lgdt pm_gdt_desc                /* the same code/data selectors, plus SEL_STACK */
        call setup_idt32
        mov $VEC_SOFT, %ebx
        mov $soft_handler, %eax
        call set_gate
        mov $VEC_TIMER, %ebx
        mov $timer_handler, %eax
        call set_gate
        movl $(SVR_ENABLE | SPURIOUS_VEC), LAPIC_BASE + LAPIC_SVR
        movl $0, LAPIC_BASE + LAPIC_TPR
        movl $0, HITS

        mov $SEL_STACK, %ax
        mov %ax, %ss
        mov $STACK_ESP, %esp
        pushl $CANARY

        int $VEC_SOFT
        cmpl $1, HITS
        jne lost
        call check_stack
        PRINT32 "INT 0x40 returned\n"

        movl $TIMER_DIV_1, LAPIC_BASE + LAPIC_TIMER_DCR
        movl $VEC_TIMER, LAPIC_BASE + LAPIC_LVT_TIMER   /* one-shot, unmasked */
        movl $TIMER_COUNT, LAPIC_BASE + LAPIC_TIMER_ICR
1:      cli
        cmpl $2, HITS
        jae 2f
        sti                             /* the sti shadow covers the hlt */
        hlt
        jmp 1b
2:      call check_stack
        PRINT32 "TIMER 0x41 returned\n"
        DONE32

lost:
        PRINT32 "handler count wrong: "
        HEX32 HITS, 8
        PRINT32 "\n"
        POWEROFF

/* The canary pushed before the interrupts is still at SS:ESP+4 (above our return address). */
check_stack:
        cmpl $CANARY, 4(%esp)
        jne 1f
        cmp $(STACK_ESP - 8), %esp
        jne 1f
        ret
1:      PRINT32 "stack moved: esp "
        HEX32 %esp, 8
        PRINT32 " word "
        HEX32 4(%esp), 8
        PRINT32 "\n"
        POWEROFF

soft_handler:
        incl HITS
        iret

timer_handler:
        incl HITS
        movl $0, LAPIC_BASE + LAPIC_EOI
        iret

/* Gate %ebx -> handler %eax: present, DPL 0, 32-bit interrupt gate. */
set_gate:
        lea IDT_ADDR(,%ebx,8), %edi
        mov %ax, (%edi)
        movw $SEL_CODE32, 2(%edi)
        movw $0x8E00, 4(%edi)
        shr $16, %eax
        mov %ax, 6(%edi)
        ret

/* Any other vector >= 32 (exceptions are reported by IDT_SUPPORT). */
        UNEXPECTED_IRQ_HANDLER

        .pushsection .rodata.pmgdt, "a"
        .balign 8
pm_gdt: .quad 0
        .quad 0x00CF9B000000FFFF        /* 0x08 code, accessed bit preset (ROM) */
        .quad 0x00CF93000000FFFF        /* 0x10 data */
        .quad 0x00CF93010000FFFF        /* 0x18 data, base 0x10000 (STACK_BASE) */
pm_gdt_end:
        .balign 4
        .word 0
pm_gdt_desc:
        .word pm_gdt_end - pm_gdt - 1
        .long pm_gdt
        .popsection

        IDT_SUPPORT
        GUEST_LIBRARY
