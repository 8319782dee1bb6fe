/*
 * rmirq: real-mode interrupts and iret. First an iret with a hand-built
 * frame ("IRET ok"), then a real hardware interrupt: the 8254 PIT channel 0
 * in one-shot mode fires IRQ0 through the 8259 PIC (vector 8, IVT entry at
 * 0x20); the handler counts, sends EOI and irets back to the hlt.
 *   IRET ok
 *   RM IRQ0 count N
 *   DONE
 */
#include "common.h"

#define PIC1_CMD        0x20
#define PIC1_DATA       0x21
#define PIC2_CMD        0xA0
#define PIC2_DATA       0xA1
#define ICW1_INIT_ICW4  0x11
#define PIC1_VECTOR     0x08
#define PIC2_VECTOR     0x70
#define PIC_EOI         0x20
#define PIT_CH0         0x40
#define PIT_CMD         0x43
#define PIT_CH0_MODE0   0x30            /* channel 0, lobyte/hibyte, mode 0, binary */
#define PIT_10MS        11932           /* 1193182 Hz / 100 */
#define IVT_IRQ0        (PIC1_VECTOR * 4)

#define MSR_APIC_BASE   0x1B
#define APIC_BASE_ENABLE (1 << 11)

#define IRQ_COUNT       (SCRATCH + 0x00)

        RESET_VECTOR
        .text
        .code16
start:
        REAL_MODE_SETUP
        movw $0, IRQ_COUNT

        /* iret through a frame built by hand: flags, cs, ip */
        pushf
        push %cs
        mov $RM(1f), %eax
        push %ax
        iret
        PRINT16 "IRET went nowhere\n"
        DONE16
1:      PRINT16 "IRET ok\n"

        /*
         * The PIC's INTR reaches the CPU only through LINT0 in ExtINT mode or
         * with the local APIC hardware-disabled; firmware sets up the former,
         * which needs the APIC's MMIO (out of reach in real mode), so this
         * guest turns the APIC off (IA32_APIC_BASE bit 11).
         */
        mov $MSR_APIC_BASE, %ecx
        rdmsr
        and $~APIC_BASE_ENABLE, %eax
        wrmsr

        /* IVT entry for IRQ0 */
        mov $RM(irq0_handler), %eax
        mov %ax, IVT_IRQ0
        movw $0xF000, IVT_IRQ0 + 2

        /* 8259s: master at vector 8, slave at 0x70; only IRQ0 unmasked */
        mov $ICW1_INIT_ICW4, %al
        outb %al, $PIC1_CMD
        outb %al, $PIC2_CMD
        mov $PIC1_VECTOR, %al
        outb %al, $PIC1_DATA
        mov $PIC2_VECTOR, %al
        outb %al, $PIC2_DATA
        mov $0x04, %al                  /* slave on IRQ2 */
        outb %al, $PIC1_DATA
        mov $0x02, %al                  /* slave identity */
        outb %al, $PIC2_DATA
        mov $0x01, %al                  /* 8086 mode */
        outb %al, $PIC1_DATA
        outb %al, $PIC2_DATA
        mov $0xFE, %al
        outb %al, $PIC1_DATA
        mov $0xFF, %al
        outb %al, $PIC2_DATA

        /* PIT channel 0: one shot in 10 ms */
        mov $PIT_CH0_MODE0, %al
        outb %al, $PIT_CMD
        mov $(PIT_10MS & 0xff), %al
        outb %al, $PIT_CH0
        mov $(PIT_10MS >> 8), %al
        outb %al, $PIT_CH0

2:      cli
        cmpw $0, IRQ_COUNT
        jne 3f
        sti                             /* the sti shadow covers the hlt */
        hlt
        jmp 2b
3:
        PRINT16 "RM IRQ0 count "
        movzwl IRQ_COUNT, %eax
        DEC16 %eax
        PRINT16 "\n"
        DONE16

irq0_handler:
        push %ax
        incw IRQ_COUNT
        mov $PIC_EOI, %al
        outb %al, $PIC1_CMD
        pop %ax
        iret

        GUEST_LIBRARY
