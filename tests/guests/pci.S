/*
 * pci: enumerates PCI bus 0 through configuration mechanism #1 (0xCF8/0xCFC)
 * in flat 32-bit protected mode, sizes every BAR (decoding off, write ~0,
 * read back, restore) and cross-checks the same configuration space through
 * ECAM at 0xE0000000.
 *
 *   PCI 00:SS.F VVVV:DDDD class CCCCCC hdr HH
 *     BARn io addr AAAAAAAA size SSSSSSSS
 *     BARn mem32 addr AAAAAAAA size SSSSSSSS [pref]
 *     BARn mem64 addr AAAAAAAAAAAAAAAA size SSSSSSSSSSSSSSSS [pref]
 *   PCI functions N
 *   ECAM differ 00:SS.F off XX cf8 XXXXXXXX ecam XXXXXXXX   (only on mismatch)
 *   ECAM agree | ECAM MISMATCH n
 *   ECAM rw ok | ECAM rw bad ...
 *   DONE
 *
 * A function is named by %ebx = slot << 11 | function << 8 (bus 0).
 */
#include "common.h"

#define PCIR_VENDOR     0x00
#define PCIR_DEVICE     0x02
#define PCIR_COMMAND    0x04
#define PCIR_REVID      0x08
#define PCIR_HDRTYPE    0x0E
#define PCIR_BAR0       0x10
#define PCIR_INTLINE    0x3C
#define HDR_MULTIFUNC   0x80
#define CMD_DECODE      0x03            /* I/O and memory space enable */

#define FUNC_STEP       0x100
#define SLOT_STEP       0x800
#define BDF_END         0x10000

/* Variables in RAM. */
#define V_NFUNCS        (SCRATCH + 0x00)
#define V_BAR_END       (SCRATCH + 0x04)
#define V_BAR_ORIG      (SCRATCH + 0x08)
#define V_BAR_MASK      (SCRATCH + 0x0C)
#define V_HI_ORIG       (SCRATCH + 0x10)
#define V_HI_MASK       (SCRATCH + 0x14)
#define V_CMD           (SCRATCH + 0x18)
#define V_MISMATCH      (SCRATCH + 0x1C)
#define V_SAVE          (SCRATCH + 0x20)
#define DEVLIST         0x2000          /* %ebx of every function found */

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32
        movl $0, V_NFUNCS
        movl $0, V_MISMATCH

        /* ---- enumerate ---- */
        xor %ebx, %ebx
scan:
        mov $PCIR_VENDOR, %ecx
        call pci_read16
        cmp $0xffff, %eax
        je absent
        mov V_NFUNCS, %eax
        mov %ebx, DEVLIST(,%eax,4)
        incl V_NFUNCS
        call show_function
        test $0x700, %ebx
        jnz next_func
        mov $PCIR_HDRTYPE, %ecx
        call pci_read8
        test $HDR_MULTIFUNC, %al
        jnz next_func
        jmp next_slot
absent:
        test $0x700, %ebx
        jnz next_func
next_slot:
        and $0xF800, %ebx
        add $SLOT_STEP, %ebx
        cmp $BDF_END, %ebx
        jb scan
        jmp scan_done
next_func:
        add $FUNC_STEP, %ebx            /* past function 7 this carries into the next slot */
        cmp $BDF_END, %ebx
        jb scan
scan_done:
        PRINT32 "PCI functions "
        DEC32 V_NFUNCS
        PRINT32 "\n"

        /* ---- ECAM: dword 0 of function 0 of every slot (absent ones too) ---- */
        xor %ebx, %ebx
1:      xor %ecx, %ecx
        call compare_dword
        add $SLOT_STEP, %ebx
        cmp $BDF_END, %ebx
        jb 1b

        /* ---- ECAM: the whole header of every function found ---- */
        xor %esi, %esi
2:      cmp V_NFUNCS, %esi
        jae 4f
        mov DEVLIST(,%esi,4), %ebx
        xor %ecx, %ecx
3:      call compare_dword
        add $4, %ecx
        cmp $0x40, %ecx
        jb 3b
        inc %esi
        jmp 2b
4:
        cmpl $0, V_MISMATCH
        jne 5f
        PRINT32 "ECAM agree\n"
        jmp 6f
5:      PRINT32 "ECAM MISMATCH "
        DEC32 V_MISMATCH
        PRINT32 "\n"
6:
        /* ---- a write through one path is seen through the other ---- */
        cmpl $0, V_NFUNCS
        je 9f
        mov DEVLIST, %ebx
        mov $PCIR_INTLINE, %ecx
        call pci_read8
        mov %eax, V_SAVE
        mov %ebx, %edx
        shl $4, %edx
        movb $0x5A, ECAM_BASE + PCIR_INTLINE(%edx)
        call pci_read8
        cmp $0x5A, %al
        jne 8f
        mov $0xA5, %edi
        call pci_write8
        movzbl ECAM_BASE + PCIR_INTLINE(%edx), %eax
        cmp $0xA5, %al
        jne 8f
        mov V_SAVE, %edi
        call pci_write8
        PRINT32 "ECAM rw ok\n"
        jmp 9f
8:      PRINT32 "ECAM rw bad "
        HEX32 %eax, 2
        PRINT32 "\n"
9:
        DONE32

/* ------------------------------------------------------------------ */

/* One function: identification line, then its BARs. */
show_function:
        pushal
        PRINT32 "PCI 00:"
        mov %ebx, %eax
        shr $11, %eax
        HEX32 %eax, 2
        PRINT32 "."
        mov %ebx, %eax
        shr $8, %eax
        and $7, %eax
        HEX32 %eax, 1
        PRINT32 " "
        mov $PCIR_VENDOR, %ecx
        call pci_read16
        HEX32 %eax, 4
        PRINT32 ":"
        mov $PCIR_DEVICE, %ecx
        call pci_read16
        HEX32 %eax, 4
        PRINT32 " class "
        mov $PCIR_REVID, %ecx
        call pci_read32
        shr $8, %eax
        HEX32 %eax, 6
        PRINT32 " hdr "
        mov $PCIR_HDRTYPE, %ecx
        call pci_read8
        HEX32 %eax, 2
        PRINT32 "\n"

        and $0x7f, %eax
        mov $(PCIR_BAR0 + 6 * 4), %edx
        cmp $0, %eax
        je 1f
        mov $(PCIR_BAR0 + 2 * 4), %edx
        cmp $1, %eax
        je 1f
        mov $PCIR_BAR0, %edx            /* unknown layout: no BARs */
1:      mov %edx, V_BAR_END

        /* decoding off while sizing */
        mov $PCIR_COMMAND, %ecx
        call pci_read16
        mov %eax, V_CMD
        mov %eax, %edi
        and $~CMD_DECODE, %edi
        call pci_write16

        mov $PCIR_BAR0, %ecx
bar_loop:
        cmp V_BAR_END, %ecx
        jae bars_done
        call pci_read32
        mov %eax, V_BAR_ORIG
        mov $0xffffffff, %edi
        call pci_write32
        call pci_read32
        mov %eax, V_BAR_MASK
        mov V_BAR_ORIG, %edi
        call pci_write32
        cmpl $0, V_BAR_MASK
        je bar_next

        PRINT32 "  BAR"
        mov %ecx, %eax
        sub $PCIR_BAR0, %eax
        shr $2, %eax
        HEX32 %eax, 1
        testl $1, V_BAR_ORIG
        jz bar_mem

        PRINT32 " io addr "
        mov V_BAR_ORIG, %eax
        and $~3, %eax
        HEX32 %eax, 8
        PRINT32 " size "
        mov V_BAR_MASK, %eax
        and $~3, %eax
        test $0xffff0000, %eax
        jnz 2f
        or $0xffff0000, %eax            /* 16-bit I/O decoder */
2:      not %eax
        inc %eax
        HEX32 %eax, 8
        jmp bar_eol

bar_mem:
        mov V_BAR_ORIG, %eax
        and $6, %eax
        cmp $4, %eax
        je bar_mem64
        PRINT32 " mem32 addr "
        mov V_BAR_ORIG, %eax
        and $~0xf, %eax
        HEX32 %eax, 8
        PRINT32 " size "
        mov V_BAR_MASK, %eax
        and $~0xf, %eax
        not %eax
        inc %eax
        HEX32 %eax, 8
        jmp bar_pref

bar_mem64:
        add $4, %ecx                    /* the upper half is the next register */
        call pci_read32
        mov %eax, V_HI_ORIG
        mov $0xffffffff, %edi
        call pci_write32
        call pci_read32
        mov %eax, V_HI_MASK
        mov V_HI_ORIG, %edi
        call pci_write32
        PRINT32 " mem64 addr "
        HEX32 V_HI_ORIG, 8
        mov V_BAR_ORIG, %eax
        and $~0xf, %eax
        HEX32 %eax, 8
        PRINT32 " size "
        mov V_BAR_MASK, %eax
        and $~0xf, %eax
        mov V_HI_MASK, %edx
        not %eax
        not %edx
        add $1, %eax
        adc $0, %edx
        HEX32 %edx, 8
        HEX32 %eax, 8
bar_pref:
        testl $8, V_BAR_ORIG
        jz bar_eol
        PRINT32 " pref"
bar_eol:
        PRINT32 "\n"
bar_next:
        add $4, %ecx
        jmp bar_loop

bars_done:
        mov $PCIR_COMMAND, %ecx
        mov V_CMD, %edi
        call pci_write16
        popal
        ret

/* Compare the dword at (%ebx, %ecx) through both mechanisms; report a difference. */
compare_dword:
        pushal
        call pci_read32
        mov %eax, %esi
        call ecam_read32
        cmp %eax, %esi
        je 1f
        incl V_MISMATCH
        mov %eax, %edi
        PRINT32 "ECAM differ 00:"
        mov %ebx, %eax
        shr $11, %eax
        HEX32 %eax, 2
        PRINT32 "."
        mov %ebx, %eax
        shr $8, %eax
        and $7, %eax
        HEX32 %eax, 1
        PRINT32 " off "
        HEX32 %ecx, 2
        PRINT32 " cf8 "
        HEX32 %esi, 8
        PRINT32 " ecam "
        HEX32 %edi, 8
        PRINT32 "\n"
1:      popal
        ret

/* ---- configuration access; %ebx = function, %ecx = register ---- */

/* select the dword holding register %ecx; leaves %dx = 0xCFC + (%ecx & 3) */
pci_select:
        push %eax
        mov %ecx, %eax
        and $0xfc, %eax
        or %ebx, %eax
        or $PCI_ENABLE, %eax
        mov $PCI_CONF_ADDR, %dx
        outl %eax, %dx
        mov %ecx, %edx
        and $3, %edx
        add $PCI_CONF_DATA, %edx
        pop %eax
        ret

pci_read32:
        push %edx
        call pci_select
        inl %dx, %eax
        pop %edx
        ret

pci_read16:
        push %edx
        call pci_select
        inw %dx, %ax
        movzwl %ax, %eax
        pop %edx
        ret

pci_read8:
        push %edx
        call pci_select
        inb %dx, %al
        movzbl %al, %eax
        pop %edx
        ret

/* value in %edi */
pci_write32:
        push %eax
        push %edx
        call pci_select
        mov %edi, %eax
        outl %eax, %dx
        pop %edx
        pop %eax
        ret

pci_write16:
        push %eax
        push %edx
        call pci_select
        mov %edi, %eax
        outw %ax, %dx
        pop %edx
        pop %eax
        ret

pci_write8:
        push %eax
        push %edx
        call pci_select
        mov %edi, %eax
        outb %al, %dx
        pop %edx
        pop %eax
        ret

/* ECAM: bus 0 function %ebx at ECAM_BASE + (slot << 15 | func << 12) */
ecam_read32:
        push %edx
        mov %ebx, %edx
        shl $4, %edx
        add %ecx, %edx
        mov ECAM_BASE(%edx), %eax
        pop %edx
        ret

        UNEXPECTED_IRQ_HANDLER

        IDT_SUPPORT
        GUEST_LIBRARY
