/*
 * exits: one source, five ROMs, each leaving the VM a different way
 * (bhyve(8) exit statuses):
 *   -DEXIT_RESET     write 0x06 to the reset control port 0xCF9  -> 0 (reset)
 *   -DEXIT_POWEROFF  ACPI S5 through PM1a_CNT (port 0x404)       -> 1 (power off)
 *   -DEXIT_HALT      cli; hlt                                     -> 2 (halt)
 *   -DEXIT_TRIPLE    zero-limit IDT, then divide by zero          -> 3 (triple fault)
 *   -DEXIT_STRICT    read unemulated port 0x1234 (run with -e)    -> 4 (error)
 * Each prints "EXIT <kind>" first so the tests know the guest ran.
 */
#include "common.h"

#define UNEMULATED_PORT 0x1234

        RESET_VECTOR
        .text
        .code16
start:
        REAL_MODE_SETUP

#if defined(EXIT_RESET)
        PRINT16 "EXIT reset\n"
        RESET

#elif defined(EXIT_POWEROFF)
        PRINT16 "EXIT poweroff\n"
        POWEROFF

#elif defined(EXIT_HALT)
        PRINT16 "EXIT halt\n"
1:      cli
        hlt
        jmp 1b

#elif defined(EXIT_TRIPLE)
        PRINT16 "EXIT triple\n"
        ENTER_PM32 pm32
        lidt null_idt                   /* limit 0: every vector is out of bounds */
        xor %edx, %edx
        mov $1, %eax
        xor %ecx, %ecx
        div %ecx                        /* #DE -> #GP -> #DF -> shutdown */
        PRINT32 "EXIT triple: still running after the fault\n"
        POWEROFF

        .pushsection .rodata, "a"
        .balign 4
        .word 0
null_idt:
        .word 0
        .long 0
        .popsection

#elif defined(EXIT_STRICT)
        PRINT16 "EXIT strict\n"
        mov $UNEMULATED_PORT, %dx
        inb %dx, %al
        PRINT16 "EXIT strict: port read returned "
        movzbl %al, %eax
        HEX16 %eax, 2
        PRINT16 ", -e not in force\n"
        POWEROFF

#else
#error "define one of EXIT_RESET EXIT_POWEROFF EXIT_HALT EXIT_TRIPLE EXIT_STRICT"
#endif

        GUEST_LIBRARY
