/*
 * smp: the BSP (flat 32-bit protected mode) starts the APs with INIT and
 * SIPI (vector 0xF0: the APs begin in real mode at 0xF000:0000, which is
 * offset 0 of this ROM). Each AP enters protected mode, prints
 * "AP up apic=N cpuid=M" under a spinlock and counts itself with lock incl.
 * The BSP waits until the count has not changed for one second (HPET main
 * counter), then prints "CPUS n" (APs + itself) and powers off.
 */
#include "common.h"

#define ICR_INIT_ALL_BUT_SELF   0x000C4500      /* INIT, level assert, all excluding self */
#define ICR_SIPI_ALL_BUT_SELF   0x000C4600      /* startup; | vector */
#define ICR_BUSY                (1 << 12)
#define SIPI_VECTOR             0xF0            /* 0xF000:0000 */

#define AP_COUNT        (SCRATCH + 0x00)
#define PRINT_LOCK      (SCRATCH + 0x04)
#define V_TICKS_1S      (SCRATCH + 0x08)
#define V_LAST          (SCRATCH + 0x0C)
#define V_SINCE         (SCRATCH + 0x10)
#define AP_STACKS       0x10000                 /* 1 KiB per APIC id above this */

/* one second in femtoseconds: 1e15 = 0x38D7E_A4C68000 */
#define SECOND_FS_HI    0x38D7E
#define SECOND_FS_LO    0xA4C68000

/* ---------------------------------------------------------------- AP */
        .section .text.ap, "ax"
        .code16
ap_entry:                                       /* ROM offset 0 */
        ENTER_PM32 ap_pm32
        lidt idt_desc
        mov LAPIC_BASE + LAPIC_ID, %esi
        shr $24, %esi
        mov %esi, %esp
        inc %esp
        shl $10, %esp
        add $AP_STACKS, %esp
        mov $1, %eax
        cpuid
        shr $24, %ebx
        call lock_print
        PRINT32 "AP up apic="
        DEC32 %esi
        PRINT32 " cpuid="
        DEC32 %ebx
        PRINT32 "\n"
        call unlock_print
        lock incl AP_COUNT
1:      cli
        hlt
        jmp 1b

/* ---------------------------------------------------------------- BSP */
        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32
        movl $0, AP_COUNT
        movl $0, PRINT_LOCK

        mov LAPIC_BASE + LAPIC_ID, %esi
        shr $24, %esi
        mov $1, %eax
        cpuid
        shr $24, %ebx
        PRINT32 "BSP apic="
        DEC32 %esi
        PRINT32 " cpuid="
        DEC32 %ebx
        PRINT32 "\n"
        movl $(SVR_ENABLE | 0xFF), LAPIC_BASE + LAPIC_SVR

        /* HPET main counter as the clock */
        mov $SECOND_FS_HI, %edx
        mov $SECOND_FS_LO, %eax
        mov HPET_BASE + HPET_PERIOD, %ecx
        div %ecx
        mov %eax, V_TICKS_1S
        movl $HPET_CFG_ENABLE, HPET_BASE + HPET_CONFIG

        /* INIT, 10 ms, SIPI, 200 us, SIPI */
        movl $0, LAPIC_BASE + LAPIC_ICR_HI
        movl $ICR_INIT_ALL_BUT_SELF, LAPIC_BASE + LAPIC_ICR_LO
        call wait_icr
        mov $100, %ecx                  /* 1/100 s */
        call delay
        movl $(ICR_SIPI_ALL_BUT_SELF | SIPI_VECTOR), LAPIC_BASE + LAPIC_ICR_LO
        call wait_icr
        mov $5000, %ecx                 /* 1/5000 s */
        call delay
        movl $(ICR_SIPI_ALL_BUT_SELF | SIPI_VECTOR), LAPIC_BASE + LAPIC_ICR_LO
        call wait_icr

        /* wait until the AP count has been stable for a second */
        movl $0, V_LAST
        mov HPET_BASE + HPET_COUNTER, %eax
        mov %eax, V_SINCE
1:      mov AP_COUNT, %ecx
        mov HPET_BASE + HPET_COUNTER, %eax
        cmp V_LAST, %ecx
        je 2f
        mov %ecx, V_LAST
        mov %eax, V_SINCE
2:      sub V_SINCE, %eax
        cmp V_TICKS_1S, %eax
        jb 1b

        call lock_print
        mov AP_COUNT, %eax
        inc %eax
        PRINT32 "CPUS "
        DEC32 %eax
        PRINT32 "\n"
        DONE32

/* wait for the ICR delivery status to clear */
wait_icr:
        testl $ICR_BUSY, LAPIC_BASE + LAPIC_ICR_LO
        jnz wait_icr
        ret

/* busy-wait 1/%ecx of a second on the HPET counter */
delay:
        pushal
        xor %edx, %edx
        mov V_TICKS_1S, %eax
        div %ecx
        mov %eax, %ecx
        mov HPET_BASE + HPET_COUNTER, %ebx
1:      mov HPET_BASE + HPET_COUNTER, %eax
        sub %ebx, %eax
        cmp %ecx, %eax
        jb 1b
        popal
        ret

lock_print:
        push %eax
1:      mov $1, %eax
        xchg %eax, PRINT_LOCK
        test %eax, %eax
        jnz 1b
        pop %eax
        ret

unlock_print:
        movl $0, PRINT_LOCK
        ret

        UNEXPECTED_IRQ_HANDLER

        IDT_SUPPORT
        GUEST_LIBRARY
