/*
 * headstart: device state stays one across the move of vCPU 0 from the main
 * thread to its own thread (src/vmm/head-start.ts). Writes COM1's scratch
 * register, then makes LOOPS port-0x80 exits (long enough for the move to
 * happen meanwhile), reads the scratch register back and powers off.
 */
#include "common.h"

#define COM_SCR         7
#define LOOPS           60000

        RESET_VECTOR
        .text
        .code16
start:
        REAL_MODE_SETUP
        PRINT16 "HEADSTART begin\n"
        mov $(COM1 + COM_SCR), %dx
        mov $0xa5, %al
        outb %al, %dx
        mov $0x80, %dx
        mov $LOOPS, %ecx
1:      outb %al, %dx
        dec %ecx
        jnz 1b
        mov $(COM1 + COM_SCR), %dx
        inb %dx, %al
        movzbl %al, %ebx
        PRINT16 "HEADSTART scratch "
        HEX16 %ebx, 2
        PRINT16 "\n"
        POWEROFF

        GUEST_LIBRARY
