/*
 * hpet: an HPET timer interrupt in flat 32-bit protected mode.
 *
 * Default build: timer 0 routed to IOAPIC pin 20, level-triggered; the
 * IOAPIC sends it to the BSP's local APIC as vector 0x40.
 * -DHPET_FSB: timer 0 uses FSB (MSI) delivery straight to the local APIC:
 * address 0xFEE00000, data vector 0x41.
 *
 * The handler prints "HPET IRQ vector 0x40" (or "MSI vector 0x41"), the
 * counter, the comparator and the interrupt status, and powers off: a
 * protected-mode iret is not possible on this host, so there is no return.
 */
#include "common.h"

#define VEC_IOAPIC      0x40
#define VEC_MSI         0x41
#define HPET_PIN        20
#define SPURIOUS_VEC    0xFF

#define TN_INT_LEVEL    (1 << 1)
#define TN_INT_ENABLE   (1 << 2)
#define TN_ROUTE_SHIFT  9
#define TN_FSB_ENABLE   (1 << 14)
#define TN_FSB_CAP      (1 << 15)
#define REDIR_LEVEL     (1 << 15)
#define REDIR_REMOTE_IRR (1 << 14)
#define MSI_ADDR        0xFEE00000      /* destination APIC 0, physical */

/* 2 ms in femtoseconds, the unit of the HPET period: 2e12 = 0x1D1_A94A2000 */
#define DELAY_FS_HI     0x1D1
#define DELAY_FS_LO     0xA94A2000

#define V_CMP           (SCRATCH + 0x00)

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32

        PRINT32 "LAPIC id "
        HEX32 LAPIC_BASE + LAPIC_ID, 8
        PRINT32 " ver "
        HEX32 LAPIC_BASE + LAPIC_VER, 8
        PRINT32 "\n"
        movl $(SVR_ENABLE | SPURIOUS_VEC), LAPIC_BASE + LAPIC_SVR
        movl $0, LAPIC_BASE + LAPIC_TPR

        PRINT32 "IOAPIC id "
        mov $IOAPIC_REG_ID, %ecx
        call ioapic_read
        HEX32 %eax, 8
        PRINT32 " ver "
        mov $IOAPIC_REG_VER, %ecx
        call ioapic_read
        HEX32 %eax, 8
        PRINT32 "\n"

        PRINT32 "HPET cap "
        HEX32 HPET_BASE + HPET_CAP, 8
        PRINT32 " period "
        HEX32 HPET_BASE + HPET_PERIOD, 8
        PRINT32 "\n"
        PRINT32 "HPET T0 conf "
        HEX32 HPET_BASE + HPET_T0_CONF, 8
        PRINT32 " routes "
        HEX32 HPET_BASE + HPET_T0_ROUTE_CAP, 8
        PRINT32 "\n"

#ifndef HPET_FSB
        mov HPET_BASE + HPET_T0_ROUTE_CAP, %eax
        test $(1 << HPET_PIN), %eax
        jnz 1f
        PRINT32 "HPET pin 20 not routable\n"
        DONE32
1:
        mov $(IOAPIC_REDIR(HPET_PIN) + 1), %ecx
        mov $0, %eax                    /* destination APIC id 0 */
        call ioapic_write
        mov $IOAPIC_REDIR(HPET_PIN), %ecx
        mov $(VEC_IOAPIC | REDIR_LEVEL), %eax   /* fixed, physical, active high, unmasked */
        call ioapic_write
        PRINT32 "IOAPIC pin 20 redir "
        call ioapic_read
        HEX32 %eax, 8
        PRINT32 "\n"
        mov $(TN_INT_LEVEL | TN_INT_ENABLE | (HPET_PIN << TN_ROUTE_SHIFT)), %esi
#else
        mov HPET_BASE + HPET_T0_CONF, %eax
        test $TN_FSB_CAP, %eax
        jnz 1f
        PRINT32 "HPET FSB not supported\n"
        DONE32
1:
        movl $VEC_MSI, HPET_BASE + HPET_T0_FSB           /* data: fixed, edge */
        movl $MSI_ADDR, HPET_BASE + HPET_T0_FSB + 4      /* address */
        mov $(TN_FSB_ENABLE | TN_INT_ENABLE), %esi
#endif

        /* comparator = 2 ms worth of ticks, counted from zero */
        mov $DELAY_FS_HI, %edx
        mov $DELAY_FS_LO, %eax
        mov HPET_BASE + HPET_PERIOD, %ecx
        div %ecx
        mov %eax, V_CMP
        movl $0, HPET_BASE + HPET_CONFIG
        movl $0, HPET_BASE + HPET_COUNTER
        movl $0, HPET_BASE + HPET_COUNTER + 4
        mov %eax, HPET_BASE + HPET_T0_CMP
        movl $0, HPET_BASE + HPET_T0_CMP + 4
        mov %esi, HPET_BASE + HPET_T0_CONF
        movl $HPET_CFG_ENABLE, HPET_BASE + HPET_CONFIG
        PRINT32 "HPET armed comparator "
        HEX32 V_CMP, 8
        PRINT32 " conf "
        HEX32 HPET_BASE + HPET_T0_CONF, 8
        PRINT32 "\n"
        sti
2:      hlt
        jmp 2b

/* %ebx = vector; never returns */
irq_handler:
        mov HPET_BASE + HPET_COUNTER, %esi
        cmp $VEC_IOAPIC, %ebx
        jne 1f
        PRINT32 "HPET IRQ vector 0x"
        jmp 3f
1:      cmp $VEC_MSI, %ebx
        jne 2f
        PRINT32 "MSI vector 0x"
        jmp 3f
2:      PRINT32 "unexpected interrupt vector 0x"
3:      HEX32 %ebx, 2
        PRINT32 "\n"
        PRINT32 "HPET counter "
        HEX32 %esi, 8
        PRINT32 " comparator "
        HEX32 V_CMP, 8
        PRINT32 " isr "
        HEX32 HPET_BASE + HPET_ISR, 8
        PRINT32 "\n"
#ifndef HPET_FSB
        PRINT32 "IOAPIC pin 20 redir "
        mov $IOAPIC_REDIR(HPET_PIN), %ecx
        call ioapic_read
        HEX32 %eax, 8
        PRINT32 "\n"
#endif
        DONE32

/* IOAPIC register %ecx -> %eax */
ioapic_read:
        mov %ecx, IOAPIC_BASE + IOAPIC_REGSEL
        mov IOAPIC_BASE + IOAPIC_WIN, %eax
        ret

/* IOAPIC register %ecx <- %eax */
ioapic_write:
        mov %ecx, IOAPIC_BASE + IOAPIC_REGSEL
        mov %eax, IOAPIC_BASE + IOAPIC_WIN
        ret

        IDT_SUPPORT
        GUEST_LIBRARY
