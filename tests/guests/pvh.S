/*
 * pvh: a kernel entered through the PVH boot path (Xen ELF note
 * XEN_ELFNOTE_PHYS32_ENTRY): flat 32-bit protected mode, paging off,
 * %ebx = struct hvm_start_info. It prints
 *   PVH magic 336ec578 version V flags F modules N
 *   PVH cmdline <text>                         (when there is one)
 *   MEMMAP entries N
 *   E820 addr AAAAAAAAAAAAAAAA size SSSSSSSSSSSSSSSS type T    (one per entry)
 *   RSDP AAAAAAAA [scan] rev R rsdt AAAAAAAA xsdt AAAAAAAAAAAAAAAA csum ok|bad
 *   TABLE SIGN addr AAAAAAAA len LLLLLLLL csum ok|bad   (XSDT/RSDT, each entry, the DSDT)
 *   MADT lapics N ioapics M
 *   DONE
 * and powers off through PM1a_CNT.
 *
 * Built twice: out/pvh.elf is an ELF32 (i386) file; out/pvh64.elf
 * (-DPVH_ELF64) holds the same 32-bit code in an ELF64 (x86-64) file with an
 * 8-byte entry note, the shape of Linux's vmlinux.
 */
#include "common.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578

/* struct hvm_start_info */
#define SI_MAGIC        0
#define SI_VERSION      4
#define SI_FLAGS        8
#define SI_NR_MODULES   12
#define SI_CMDLINE      24
#define SI_RSDP         32
#define SI_MEMMAP       40
#define SI_MEMMAP_N     48
/* struct hvm_memmap_table_entry */
#define MM_ADDR         0
#define MM_SIZE         8
#define MM_TYPE         16
#define MM_ENTRY_SIZE   24

/* ACPI */
#define RSDP_REV        15
#define RSDP_RSDT       16
#define RSDP_LEN        20
#define RSDP_XSDT       24
#define RSDP_V1_LEN     20
#define SDT_LEN         4
#define SDT_HDR_LEN     36
#define FADT_DSDT       40
#define FADT_X_DSDT     140
#define MADT_ENTRIES    44
#define MADT_LAPIC      0
#define MADT_IOAPIC     1
#define MADT_X2APIC     9
#define MAX_TABLE_LEN   0x100000
#define BIOS_AREA       0xE0000
#define BIOS_AREA_END   0x100000

/* Variables live in .bss: low memory belongs to the loader (start info, memmap). */
#define V_INFO          vars + 0x00
#define V_LAPICS        vars + 0x04
#define V_IOAPICS       vars + 0x08

        .section .note.Xen, "a"
        .balign 4
        .long 4                         /* namesz */
#ifdef PVH_ELF64
        .long 8                         /* descsz: a 64-bit pointer, as older Linux has it */
#else
        .long 4                         /* descsz */
#endif
        .long XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
#ifdef PVH_ELF64
        .quad pvh_start
#else
        .long pvh_start
#endif
        .balign 4

        .text
        .code32
        .globl pvh_start
pvh_start:
        cli
        cld
        lgdt gdt_desc
        ljmp $SEL_CODE32, $1f
1:      mov $SEL_DATA32, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov %ax, %fs
        mov %ax, %gs
        mov $stack_top, %esp
        mov %ebx, V_INFO
        mov %ebx, %ebp

        cmpl $HVM_START_MAGIC, SI_MAGIC(%ebp)
        je 2f
        PRINT32 "PVH bad magic "
        HEX32 SI_MAGIC(%ebp), 8
        PRINT32 " at "
        HEX32 %ebp, 8
        PRINT32 "\n"
        DONE32
2:
        PRINT32 "PVH magic "
        HEX32 SI_MAGIC(%ebp), 8
        PRINT32 " version "
        DEC32 SI_VERSION(%ebp)
        PRINT32 " flags "
        HEX32 SI_FLAGS(%ebp), 8
        PRINT32 " modules "
        DEC32 SI_NR_MODULES(%ebp)
        PRINT32 "\n"

        cmpl $0, SI_CMDLINE + 4(%ebp)
        jne 3f
        mov SI_CMDLINE(%ebp), %esi
        test %esi, %esi
        jz 3f
        PRINT32 "PVH cmdline "
        call puts32
        PRINT32 "\n"
3:
        /* ---- memory map (version 1 and later) ---- */
        cmpl $1, SI_VERSION(%ebp)
        jb no_memmap
        PRINT32 "MEMMAP entries "
        DEC32 SI_MEMMAP_N(%ebp)
        PRINT32 "\n"
        cmpl $0, SI_MEMMAP + 4(%ebp)
        jne no_memmap
        mov SI_MEMMAP(%ebp), %esi
        mov SI_MEMMAP_N(%ebp), %ecx
        cmp $128, %ecx
        jbe 4f
        mov $128, %ecx                  /* a sane bound */
4:      test %ecx, %ecx
        jz 5f
        PRINT32 "E820 addr "
        HEX32 MM_ADDR + 4(%esi), 8
        HEX32 MM_ADDR(%esi), 8
        PRINT32 " size "
        HEX32 MM_SIZE + 4(%esi), 8
        HEX32 MM_SIZE(%esi), 8
        PRINT32 " type "
        DEC32 MM_TYPE(%esi)
        PRINT32 "\n"
        add $MM_ENTRY_SIZE, %esi
        dec %ecx
        jmp 4b
no_memmap:
        PRINT32 "MEMMAP none\n"
5:
        /* ---- ACPI ---- */
        cmpl $0, SI_RSDP + 4(%ebp)
        jne rsdp_scan
        mov SI_RSDP(%ebp), %esi
        test %esi, %esi
        jz rsdp_scan
        PRINT32 "RSDP "
        HEX32 %esi, 8
        jmp rsdp_found
rsdp_scan:
        mov $BIOS_AREA, %esi
6:      cmpl $0x20445352, (%esi)        /* "RSD " */
        jne 7f
        cmpl $0x20525450, 4(%esi)       /* "PTR " */
        je 8f
7:      add $16, %esi
        cmp $BIOS_AREA_END, %esi
        jb 6b
        PRINT32 "RSDP none\n"
        DONE32
8:      PRINT32 "RSDP "
        HEX32 %esi, 8
        PRINT32 " scan"
rsdp_found:
        PRINT32 " rev "
        movzbl RSDP_REV(%esi), %eax
        DEC32 %eax
        PRINT32 " rsdt "
        HEX32 RSDP_RSDT(%esi), 8
        PRINT32 " xsdt "
        HEX32 RSDP_XSDT + 4(%esi), 8
        HEX32 RSDP_XSDT(%esi), 8
        PRINT32 " csum "
        mov $RSDP_V1_LEN, %ecx
        cmpb $2, RSDP_REV(%esi)
        jb 9f
        mov RSDP_LEN(%esi), %ecx
9:      call print_checksum
        PRINT32 "\n"

        movl $0, V_LAPICS
        movl $0, V_IOAPICS
        cmpb $2, RSDP_REV(%esi)
        jb use_rsdt
        cmpl $0, RSDP_XSDT + 4(%esi)
        jne use_rsdt
        mov RSDP_XSDT(%esi), %edi
        test %edi, %edi
        jz use_rsdt
        mov $8, %edx                    /* entry size */
        jmp walk
use_rsdt:
        mov RSDP_RSDT(%esi), %edi
        mov $4, %edx
walk:
        call print_table
        jc acpi_done
        mov SDT_LEN(%edi), %ecx
        add %edi, %ecx                  /* end of the entries */
        lea SDT_HDR_LEN(%edi), %esi
10:     cmp %ecx, %esi
        jae acpi_done
        cmp $8, %edx
        jne 11f
        cmpl $0, 4(%esi)
        je 11f
        PRINT32 "TABLE above 4G skipped\n"
        jmp 12f
11:     push %edi
        mov (%esi), %edi
        call print_table
        jc 13f
        call table_extras
13:     pop %edi
12:     add %edx, %esi
        jmp 10b

acpi_done:
        PRINT32 "MADT lapics "
        DEC32 V_LAPICS
        PRINT32 " ioapics "
        DEC32 V_IOAPICS
        PRINT32 "\n"
        DONE32

/*
 * TABLE SIGN addr A len L csum ok|bad for the table at %edi.
 * CF set when the table cannot be read (null or absurd length).
 */
print_table:
        pushal
        test %edi, %edi
        jz 2f
        mov SDT_LEN(%edi), %ecx
        cmp $SDT_HDR_LEN, %ecx
        jb 2f
        cmp $MAX_TABLE_LEN, %ecx
        ja 2f
        PRINT32 "TABLE "
        mov (%edi), %eax
        mov $4, %edx
1:      call putc32
        shr $8, %eax
        dec %edx
        jnz 1b
        PRINT32 " addr "
        HEX32 %edi, 8
        PRINT32 " len "
        HEX32 %ecx, 8
        PRINT32 " csum "
        mov %edi, %esi
        call print_checksum
        PRINT32 "\n"
        popal
        clc
        ret
2:      PRINT32 "TABLE unreadable at "
        HEX32 %edi, 8
        PRINT32 "\n"
        popal
        stc
        ret

/* "ok" when the %ecx bytes at %esi sum to zero, else "bad" */
print_checksum:
        pushal
        xor %eax, %eax
1:      test %ecx, %ecx
        jz 2f
        add (%esi), %al
        inc %esi
        dec %ecx
        jmp 1b
2:      test %al, %al
        jnz 3f
        PRINT32 "ok"
        popal
        ret
3:      PRINT32 "bad"
        popal
        ret

/* Table-specific follow-ups for the table at %edi: the FADT's DSDT, the MADT's entries. */
table_extras:
        pushal
        mov (%edi), %eax
        cmp $0x50434146, %eax           /* "FACP" */
        jne 3f
        mov SDT_LEN(%edi), %ecx
        cmp $(FADT_X_DSDT + 8), %ecx
        jb 1f
        cmpl $0, FADT_X_DSDT + 4(%edi)
        jne 1f
        mov FADT_X_DSDT(%edi), %eax
        test %eax, %eax
        jnz 2f
1:      mov FADT_DSDT(%edi), %eax
2:      mov %eax, %edi
        call print_table
        jmp 9f
3:      cmp $0x43495041, %eax           /* "APIC" */
        jne 9f
        mov SDT_LEN(%edi), %ecx
        add %edi, %ecx
        lea MADT_ENTRIES(%edi), %esi
4:      lea 2(%esi), %eax
        cmp %ecx, %eax
        ja 9f
        movzbl 1(%esi), %edx            /* entry length */
        cmp $2, %edx
        jb 9f
        movzbl (%esi), %eax
        cmp $MADT_IOAPIC, %eax
        jne 5f
        incl V_IOAPICS
        jmp 7f
5:      cmp $MADT_LAPIC, %eax
        jne 6f
        testb $1, 4(%esi)               /* flags: enabled */
        jz 7f
        incl V_LAPICS
        jmp 7f
6:      cmp $MADT_X2APIC, %eax
        jne 7f
        testb $1, 8(%esi)
        jz 7f
        incl V_LAPICS
7:      add %edx, %esi
        jmp 4b
9:      popal
        ret

        GUEST_LIBRARY

        .bss
        .balign 16
vars:   .skip 16
        .skip 8192
stack_top:
