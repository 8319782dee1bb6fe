/*
 * Shared definitions and GNU as macros for the bhyve-ts test guests.
 *
 * A ROM guest is linked by rom.ld at 0xF0000: the 64 KiB boot ROM is mapped
 * at 0xFFFF0000 and aliased at 0xF0000, so in real mode (CS = 0xF000) a
 * symbol's offset is RM(symbol), and in flat 32-bit protected mode its
 * address is the symbol itself.
 *
 * Rules these guests follow because /dev/kvm here is PVM (every guest
 * kernel-mode instruction goes through KVM's emulator): no int3/int n/ud2,
 * no protected-mode iret, no paging, few instructions.
 *
 * Comments use C syntax: the file goes through cpp.
 */
#ifndef GUESTS_COMMON_H
#define GUESTS_COMMON_H

#define ROM_BASE        0xF0000
#define RM(x)           ((x) - ROM_BASE)

/* Serial port COM1 (16550). */
#define COM1            0x3F8
#define COM_LSR         5
#define LSR_THRE        0x20

/* Exits, as bhyve(8) reports them. */
#define RESET_PORT      0xCF9
#define RESET_CPU       0x06
#define PM1A_CNT        0x404
#define PM1_SLP_S5      0x3400          /* SLP_TYP = 5 (bits 12:10), SLP_EN (bit 13) */

/* Memory used by the guests (lowmem RAM). */
#define IDT_ADDR        0x1000          /* 256 gates x 8 bytes */
#define STACK_TOP       0x7000          /* BSP stack, real and protected mode */
#define SCRATCH         0x0600          /* small shared variables */

/* GDT selectors (see GDT_TABLE). */
#define SEL_CODE32      0x08
#define SEL_DATA32      0x10

/* Local APIC, IOAPIC, HPET. */
#define LAPIC_BASE      0xFEE00000
#define LAPIC_ID        0x020
#define LAPIC_VER       0x030
#define LAPIC_TPR       0x080
#define LAPIC_EOI       0x0B0
#define LAPIC_SVR       0x0F0
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define SVR_ENABLE      0x100

#define IOAPIC_BASE     0xFEC00000
#define IOAPIC_REGSEL   0x00
#define IOAPIC_WIN      0x10
#define IOAPIC_REG_ID   0x00
#define IOAPIC_REG_VER  0x01
#define IOAPIC_REDIR(pin)  (0x10 + 2 * (pin))

#define HPET_BASE       0xFED00000
#define HPET_CAP        0x000
#define HPET_PERIOD     0x004           /* high half of the capabilities */
#define HPET_CONFIG     0x010
#define HPET_ISR        0x020
#define HPET_COUNTER    0x0F0
#define HPET_T0_CONF    0x100
#define HPET_T0_ROUTE_CAP 0x104
#define HPET_T0_CMP     0x108
#define HPET_T0_FSB     0x110           /* data in the low dword, address in the high */
#define HPET_CFG_ENABLE 0x1

/* PCI configuration mechanism #1 and ECAM. */
#define PCI_CONF_ADDR   0xCF8
#define PCI_CONF_DATA   0xCFC
#define PCI_ENABLE      0x80000000
#ifndef ECAM_BASE
#define ECAM_BASE       0xE0000000
#endif

/* ---------------------------------------------------------------- macros */

/* Print a string literal; preserves every register. Use the mode suffix. */
.macro PRINT16 str
        .pushsection .rodata.str, "a"
.Lstr\@: .asciz "\str"
        .popsection
        push %esi
        mov $RM(.Lstr\@), %esi
        call puts16
        pop %esi
.endm

.macro PRINT32 str
        .pushsection .rodata.str, "a"
.Lstr\@: .asciz "\str"
        .popsection
        push %esi
        mov $.Lstr\@, %esi
        call puts32
        pop %esi
.endm

/* Print `val` (any operand movable to %eax) as `digits` hex digits; preserves registers. */
.macro HEX16 val, digits
        push %eax
        push %ecx
        mov \val, %eax
        mov $\digits, %ecx
        call puthex16
        pop %ecx
        pop %eax
.endm

.macro HEX32 val, digits
        push %eax
        push %ecx
        mov \val, %eax
        mov $\digits, %ecx
        call puthex32
        pop %ecx
        pop %eax
.endm

.macro DEC16 val
        push %eax
        mov \val, %eax
        call putdec16
        pop %eax
.endm

.macro DEC32 val
        push %eax
        mov \val, %eax
        call putdec32
        pop %eax
.endm

/* ACPI S5 through PM1a_CNT: bhyve exits with status 1. Never returns. */
.macro POWEROFF
        mov $PM1A_CNT, %dx
        mov $PM1_SLP_S5, %ax
        outw %ax, %dx
.Lspin\@: jmp .Lspin\@
.endm

/* Reset through the 0xCF9 reset control register: status 0. */
.macro RESET
        mov $RESET_PORT, %dx
        mov $RESET_CPU, %al
        outb %al, %dx
.Lspin\@: jmp .Lspin\@
.endm

/* Print DONE and power off. */
.macro DONE16
        PRINT16 "DONE\n"
        POWEROFF
.endm

.macro DONE32
        PRINT32 "DONE\n"
        POWEROFF
.endm

/*
 * The reset vector at ROM offset 0xFFF0: jump to `start` in the 0xF0000
 * alias. rom.ld defines reset_target = start - ROM_BASE (as cannot put a
 * symbol with that addend in a 16-bit field).
 */
.macro RESET_VECTOR
        .pushsection .reset, "ax"
        .code16
        ljmp $0xf000, $reset_target
        .globl start
        .popsection
.endm

/*
 * Real-mode prologue: segments and a stack in low RAM, DS = 0.
 * Strings are read through CS, so DS is free for RAM.
 */
.macro REAL_MODE_SETUP
        cli
        cld
        xor %ax, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $STACK_TOP, %esp
.endm

/*
 * From real mode (CS = 0xF000) into flat 32-bit protected mode without
 * paging; continues at `label` (emitted by the macro) with a fresh stack.
 */
.macro ENTER_PM32 label
        .code16
        cli
        cld
        mov $RM(gdt_desc), %ebx
        lgdtl %cs:(%ebx)
        mov %cr0, %eax
        or $1, %eax
        mov %eax, %cr0
        ljmpl $SEL_CODE32, $\label
        .code32
\label:
        mov $SEL_DATA32, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov %ax, %fs
        mov %ax, %gs
        mov $STACK_TOP, %esp
.endm

/* Flat GDT: null, 32-bit code (0x08), 32-bit data (0x10). */
.macro GDT_TABLE
        .pushsection .rodata.gdt, "a"
        .balign 8
gdt:    .quad 0
        .quad 0x00CF9B000000FFFF        /* accessed bit preset: the GDT is in ROM */
        .quad 0x00CF93000000FFFF
gdt_end:
        .balign 4
        .word 0
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt
        .popsection
.endm

/*
 * Console routines for one CPU mode (sfx = 16 or 32), emitted under the
 * matching .code directive. Strings are read through %cs, so %esi is
 * CS-relative: RM(x) in real mode, x in flat protected mode.
 *   putcN   %al            one character
 *   putsN   %esi           NUL-terminated string
 *   puthexN %eax, %ecx     the low %ecx hex digits of %eax
 *   putdecN %eax           unsigned decimal
 * All preserve every register.
 */
.macro CONSOLE_ROUTINES sfx
putc\sfx:
        push %edx
#ifdef UART_POLL
        push %eax
        mov $(COM1 + COM_LSR), %dx
.Lpoll\@:
        inb %dx, %al
        test $LSR_THRE, %al
        jz .Lpoll\@
        pop %eax
#endif
        mov $COM1, %dx
        outb %al, %dx
        pop %edx
        ret

puts\sfx:
        push %eax
        push %esi
.Lnext\@:
        movb %cs:(%esi), %al
        test %al, %al
        jz .Lend\@
        call putc\sfx
        inc %esi
        jmp .Lnext\@
.Lend\@:
        pop %esi
        pop %eax
        ret

puthex\sfx:
        push %eax
        push %ebx
        push %ecx
        push %edx
        mov %eax, %ebx
        mov %ecx, %edx
        mov $8, %ecx
        sub %edx, %ecx
        shl $2, %ecx
        shl %cl, %ebx                   /* first digit now in the top nibble */
.Ldigit\@:
        rol $4, %ebx
        mov %bl, %al
        and $0xf, %al
        cmp $10, %al
        jb .Lnum\@
        add $('a' - '0' - 10), %al
.Lnum\@:
        add $'0', %al
        call putc\sfx
        dec %edx
        jnz .Ldigit\@
        pop %edx
        pop %ecx
        pop %ebx
        pop %eax
        ret

putdec\sfx:
        push %eax
        push %ebx
        push %ecx
        push %edx
        mov $10, %ebx
        xor %ecx, %ecx
.Ldiv\@:
        xor %edx, %edx
        div %ebx
        push %edx
        inc %ecx
        test %eax, %eax
        jnz .Ldiv\@
.Lout\@:
        pop %eax
        add $'0', %al
        call putc\sfx
        dec %ecx
        jnz .Lout\@
        pop %edx
        pop %ecx
        pop %ebx
        pop %eax
        ret
.endm

/* Both sets of routines plus the GDT: include once per ROM guest. */
.macro GUEST_LIBRARY
        .text
        .code16
        CONSOLE_ROUTINES 16
        .code32
        CONSOLE_ROUTINES 32
        GDT_TABLE
.endm

/* The `irq_handler` of a guest that expects no interrupt: report the vector, power off. */
.macro UNEXPECTED_IRQ_HANDLER
irq_handler:
        PRINT32 "unexpected interrupt vector 0x"
        HEX32 %ebx, 2
        PRINT32 "\n"
        POWEROFF
.endm

/*
 * An IDT for protected mode: 256 fixed-size stubs (16 bytes apart), each
 * pushes its vector and jumps to isr_common. Exceptions (vectors < 32) are
 * reported and power the VM off; other vectors call the guest's
 * `irq_handler` with the vector in %ebx (it must not return: no iret here).
 * setup_idt32 builds the gates at IDT_ADDR and loads IDTR.
 */
.macro IDT_SUPPORT
        .text
        .code32
        .balign 16
isr_stubs:
        .set .Lvec, 0
        .rept 256
        .balign 16, 0x90
        .byte 0x68                      /* push imm32 */
        .long .Lvec
        .byte 0xE9                      /* jmp rel32 */
        .long isr_common - (. + 4)
        .set .Lvec, .Lvec + 1
        .endr

isr_common:
        mov (%esp), %ebx
        cmp $32, %ebx
        jae irq_handler
        PRINT32 "EXCEPTION vector 0x"
        HEX32 %ebx, 2
        PRINT32 " stack"
        mov $1, %esi
.Lstack\@:
        mov $' ', %al
        call putc32
        mov (%esp,%esi,4), %eax
        HEX32 %eax, 8
        inc %esi
        cmp $5, %esi
        jb .Lstack\@
        mov $'\n', %al
        call putc32
        POWEROFF

setup_idt32:
        push %eax
        push %ecx
        push %edi
        mov $IDT_ADDR, %edi
        mov $isr_stubs, %eax
        mov $256, %ecx
.Lgate\@:
        mov %ax, (%edi)                 /* offset 15:0 */
        movw $SEL_CODE32, 2(%edi)
        movw $0x8E00, 4(%edi)           /* present, DPL 0, 32-bit interrupt gate */
        push %eax
        shr $16, %eax
        mov %ax, 6(%edi)                /* offset 31:16 */
        pop %eax
        add $16, %eax
        add $8, %edi
        dec %ecx
        jnz .Lgate\@
        lidt idt_desc
        pop %edi
        pop %ecx
        pop %eax
        ret

        .pushsection .rodata.idt, "a"
        .balign 4
        .word 0
idt_desc:
        .word 256 * 8 - 1
        .long IDT_ADDR
        .popsection
.endm

#endif
