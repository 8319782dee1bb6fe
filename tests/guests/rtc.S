/*
 * rtc: reads the MC146818 CMOS clock and the memory-size bytes in real mode.
 *   RTC century CC year YY month MM day DD hour HH min MM sec SS
 *   RTC regA AA regB BB regD DD
 *   CMOS 34=.. 35=.. 5b=.. 5c=.. 5d=..
 *   NVRAM rw ok
 * Values are raw register contents in hex (BCD unless regB bit 2 is set).
 */
#include "common.h"

#define CMOS_INDEX      0x70
#define CMOS_DATA       0x71
#define RTC_SEC         0x00
#define RTC_MIN         0x02
#define RTC_HOUR        0x04
#define RTC_DAY         0x07
#define RTC_MONTH       0x08
#define RTC_YEAR        0x09
#define RTC_REG_A       0x0A
#define RTC_REG_B       0x0B
#define RTC_REG_D       0x0D
#define RTC_CENTURY     0x32
#define REG_A_UIP       0x80
#define NVRAM_SCRATCH   0x3F

#define TIME_BUF        SCRATCH         /* 7 bytes: century year month day hour min sec */

        RESET_VECTOR
        .text
        .code16
start:
        REAL_MODE_SETUP

read_again:
        call wait_uip
        mov $RTC_SEC, %al
        call cmos_read
        mov %al, %bl                    /* seconds before */
        mov $TIME_BUF, %di
        mov $RM(time_regs), %esi        /* register list, read through CS */
        mov $7, %cx
1:      movb %cs:(%esi), %al
        call cmos_read
        mov %al, (%di)
        inc %esi
        inc %di
        dec %cx
        jnz 1b
        mov $RTC_SEC, %al
        call cmos_read
        cmp %al, %bl
        jne read_again                  /* a second ticked while reading */

        PRINT16 "RTC century "
        HEX16 TIME_BUF+0, 2
        PRINT16 " year "
        HEX16 TIME_BUF+1, 2
        PRINT16 " month "
        HEX16 TIME_BUF+2, 2
        PRINT16 " day "
        HEX16 TIME_BUF+3, 2
        PRINT16 " hour "
        HEX16 TIME_BUF+4, 2
        PRINT16 " min "
        HEX16 TIME_BUF+5, 2
        PRINT16 " sec "
        HEX16 TIME_BUF+6, 2
        PRINT16 "\n"

        PRINT16 "RTC regA "
        mov $RTC_REG_A, %al
        call print_cmos
        PRINT16 " regB "
        mov $RTC_REG_B, %al
        call print_cmos
        PRINT16 " regD "
        mov $RTC_REG_D, %al
        call print_cmos
        PRINT16 "\n"

        PRINT16 "CMOS 34="
        mov $0x34, %al
        call print_cmos
        PRINT16 " 35="
        mov $0x35, %al
        call print_cmos
        PRINT16 " 5b="
        mov $0x5b, %al
        call print_cmos
        PRINT16 " 5c="
        mov $0x5c, %al
        call print_cmos
        PRINT16 " 5d="
        mov $0x5d, %al
        call print_cmos
        PRINT16 "\n"

        /* NVRAM is plain storage: two patterns must read back. */
        mov $0x5A, %ah
        call nvram_check
        jne nvram_bad
        mov $0xA5, %ah
        call nvram_check
        jne nvram_bad
        PRINT16 "NVRAM rw ok\n"
        DONE16
nvram_bad:
        PRINT16 "NVRAM rw bad "
        HEX16 %eax, 4
        PRINT16 "\n"
        DONE16

/* %al = register -> %al = value */
cmos_read:
        outb %al, $CMOS_INDEX
        inb $CMOS_DATA, %al
        ret

/* print register %al as two hex digits */
print_cmos:
        push %eax
        call cmos_read
        movzbl %al, %eax
        HEX16 %eax, 2
        pop %eax
        ret

/* wait until no update is in progress */
wait_uip:
        mov $RTC_REG_A, %al
        call cmos_read
        test $REG_A_UIP, %al
        jnz wait_uip
        ret

/* write %ah to the scratch byte, read it back into %al; ZF set when equal */
nvram_check:
        mov $NVRAM_SCRATCH, %al
        outb %al, $CMOS_INDEX
        mov %ah, %al
        outb %al, $CMOS_DATA
        mov $NVRAM_SCRATCH, %al
        call cmos_read
        cmp %al, %ah
        ret

        .pushsection .rodata, "a"
time_regs:
        .byte RTC_CENTURY, RTC_YEAR, RTC_MONTH, RTC_DAY, RTC_HOUR, RTC_MIN, RTC_SEC
        .popsection

        GUEST_LIBRARY
