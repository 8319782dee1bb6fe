/*
 * ahci: drives every AHCI HBA on PCI bus 0 directly (flat 32-bit protected
 * mode, polling, no interrupts). For each implemented port:
 *   HBA SS.F pi PPPPPPPP cap CCCCCCCC
 *   PORT SS.F.PP sig SSSSSSSS ssts TTTTTTTT
 * a disk (signature 00000101):
 *   ID SS.F.PP sectors NNNNNNNN model MMMMMMMMMMMMMMMM
 *   SEC0 SS.F.PP b0b1b2b3b4b5b6b7          (first bytes of sector 0)
 *   WRITE SS.F.PP ok | err tfd TTTTTTTT    (2 sectors at LBA 2, two PRD entries)
 *   READBACK SS.F.PP ok | bad              (NCQ READ FPDMA QUEUED, compared)
 *   the first disk also gets hostile commands:
 *   HOSTILE SS.F.PP n tfd TTTTTTTT is IIIIIIII   (n = 1 PRD beyond RAM, 2 PRD in
 *                                                the boot ROM, 3 table in the hole)
 *   RECOVER SS.F.PP ok | err
 * a CD (signature eb140101):
 *   CD SS.F.PP last LLLLLLLL bsize BBBBBBBB   (READ CAPACITY)
 *   PVD SS.F.PP XXXXX                         (READ(10) of block 16: "CD001")
 *   DONE
 * The 8 bytes written at LBA 2 start with "AHCI", slot, function, port, 5Ah;
 * byte i >= 8 is i & FFh.
 */
#include "common.h"

#define PCIR_COMMAND    0x04
#define PCIR_CLASSREV   0x08
#define PCIR_BAR5       0x24
#define CMD_MEM_BM      0x06            /* memory decode, bus master */
#define CLASS_AHCI      0x010601

#define HBA_CAP         0x00
#define HBA_GHC         0x04
#define HBA_PI          0x0C
#define GHC_AE          0x80000000
#define PORT_REGS(n)    (0x100 + (n) * 0x80)
#define P_CLB           0x00
#define P_CLBU          0x04
#define P_FB            0x08
#define P_FBU           0x0C
#define P_IS            0x10
#define P_CMD           0x18
#define P_TFD           0x20
#define P_SIG           0x24
#define P_SSTS          0x28
#define P_SERR          0x30
#define P_SACT          0x34
#define P_CI            0x38
#define PCMD_IDLE       0x16            /* SUD | POD | FRE */
#define PCMD_RUN        0x17            /* ... | ST */
#define PCMD_CR_FR      0xC000
#define PIS_TFES        0x40000000
#define SIG_ATA         0x00000101
#define SIG_ATAPI       0xEB140101
#define TIMEOUT         200000

/* Guest memory used by the driver. */
#define CLB_ADDR        0x20000
#define FB_ADDR         0x21000
#define CT              0x22000         /* command table of slot 0 */
#define ACMD            (CT + 0x40)
#define PRDT            (CT + 0x80)
#define WBUF            0x30000
#define RBUF            0x34000
#define IDBUF           0x38000
#define HDR_A           0x20            /* ATAPI */
#define HDR_W           0x40            /* write */
#define HDR(prds, flags) (5 | (flags) | ((prds) << 16))

/* Variables. */
#define V_BDF           (SCRATCH + 0x00)        /* slot << 11 | function << 8 */
#define V_ABAR          (SCRATCH + 0x04)
#define V_PORT          (SCRATCH + 0x08)
#define V_PI            (SCRATCH + 0x0C)
#define V_CTBA          (SCRATCH + 0x10)
#define V_HOSTILE_DONE  (SCRATCH + 0x14)

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32
        movl $0, V_HOSTILE_DONE
        movl $0, V_BDF
scan:
        mov V_BDF, %ebx
        mov $PCIR_CLASSREV, %ecx
        call cfg_read
        shr $8, %eax
        cmp $CLASS_AHCI, %eax
        jne next_fn
        call do_hba
next_fn:
        addl $0x100, V_BDF
        cmpl $0x10000, V_BDF
        jb scan
        DONE32

/* ---- PCI configuration (%ebx = BDF bits, %ecx = offset) -------------------- */
cfg_select:
        mov %ebx, %eax
        or %ecx, %eax
        or $PCI_ENABLE, %eax
        mov $PCI_CONF_ADDR, %dx
        outl %eax, %dx
        mov $PCI_CONF_DATA, %dx
        ret
cfg_read:
        push %edx
        call cfg_select
        inl %dx, %eax
        pop %edx
        ret
cfg_write:                              /* value in %esi */
        push %edx
        call cfg_select
        mov %esi, %eax
        outl %eax, %dx
        pop %edx
        ret

/* "SS.F" of V_BDF, then ".P" of V_PORT when %al is nonzero. */
print_where:
        push %eax
        mov $' ', %al
        call putc32
        mov V_BDF, %eax
        shr $11, %eax
        HEX32 %eax, 2
        mov $'.', %al
        call putc32
        mov V_BDF, %eax
        shr $8, %eax
        and $7, %eax
        HEX32 %eax, 1
        pop %eax
        test %al, %al
        jz 1f
        mov $'.', %al
        call putc32
        HEX32 V_PORT, 2
1:      ret

/* ---- one HBA --------------------------------------------------------------- */
do_hba:
        mov V_BDF, %ebx
        mov $PCIR_BAR5, %ecx
        call cfg_read
        and $0xFFFFFFF0, %eax
        mov %eax, V_ABAR
        mov $PCIR_COMMAND, %ecx
        call cfg_read
        or $CMD_MEM_BM, %eax
        mov %eax, %esi
        call cfg_write
        mov V_ABAR, %edi
        movl $GHC_AE, HBA_GHC(%edi)
        mov HBA_PI(%edi), %eax
        mov %eax, V_PI
        PRINT32 "HBA"
        xor %al, %al
        call print_where
        PRINT32 " pi "
        HEX32 V_PI, 8
        PRINT32 " cap "
        HEX32 HBA_CAP(%edi), 8
        PRINT32 "\n"
        movl $0, V_PORT
port_loop:
        mov V_PORT, %ecx
        mov V_PI, %eax
        bt %ecx, %eax
        jnc port_next
        call do_port
port_next:
        incl V_PORT
        cmpl $32, V_PORT
        jb port_loop
        ret

/* ---- one port: %ebp = its registers ---------------------------------------- */
do_port:
        mov V_PORT, %ebp
        shl $7, %ebp
        add V_ABAR, %ebp
        add $0x100, %ebp
        PRINT32 "PORT"
        mov $1, %al
        call print_where
        PRINT32 " sig "
        HEX32 P_SIG(%ebp), 8
        PRINT32 " ssts "
        HEX32 P_SSTS(%ebp), 8
        PRINT32 "\n"
        call port_start
        mov P_SIG(%ebp), %eax
        cmp $SIG_ATA, %eax
        jne 1f
        call do_disk
        jmp 2f
1:      cmp $SIG_ATAPI, %eax
        jne 2f
        call do_cd
2:      call port_stop
        ret

port_stop:
        movl $PCMD_IDLE, P_CMD(%ebp)
        mov $TIMEOUT, %ecx
1:      mov P_CMD(%ebp), %eax
        test $0x8000, %eax                      /* CR */
        jz 2f
        dec %ecx
        jnz 1b
2:      movl $0x06, P_CMD(%ebp)                 /* FRE off too */
        ret

port_start:
        call port_stop
        movl $CLB_ADDR, P_CLB(%ebp)
        movl $0, P_CLBU(%ebp)
        movl $FB_ADDR, P_FB(%ebp)
        movl $0, P_FBU(%ebp)
        movl $0xFFFFFFFF, P_SERR(%ebp)
        movl $0xFFFFFFFF, P_IS(%ebp)
        movl $PCMD_IDLE, P_CMD(%ebp)
        movl $PCMD_RUN, P_CMD(%ebp)
        ret

/* After a task-file error: stop (clears PxCI), clear PxIS, start. */
port_recover:
        call port_stop
        movl $0xFFFFFFFF, P_IS(%ebp)
        movl $0xFFFFFFFF, P_SERR(%ebp)
        movl $PCMD_IDLE, P_CMD(%ebp)
        movl $PCMD_RUN, P_CMD(%ebp)
        ret

/* A fresh command FIS: register H2D, command %al, device 40h (LBA). */
ct_new:
        push %edi
        push %ecx
        push %eax
        mov $CT, %edi
        mov $0x20, %ecx
        xor %eax, %eax
        rep stosl
        pop %eax
        movb $0x27, CT
        movb $0x80, CT + 1
        movb %al, CT + 2
        movb $0x40, CT + 7
        movl $CT, V_CTBA
        pop %ecx
        pop %edi
        ret

/* PRD entry %edx: address %eax, length %ecx bytes. */
set_prd:
        push %edx
        shl $4, %edx
        mov %eax, PRDT(%edx)
        movl $0, PRDT + 4(%edx)
        movl $0, PRDT + 8(%edx)
        dec %ecx
        mov %ecx, PRDT + 12(%edx)
        inc %ecx
        pop %edx
        ret

/*
 * Issue slot 0 with header DW0 %ecx (NCQ when %eax != 0) and wait for
 * PxCI/PxSACT to clear or a task-file error. Returns %eax = PxTFD, %ebx = PxIS.
 */
issue:
        movl $0xFFFFFFFF, P_IS(%ebp)
        mov %ecx, CLB_ADDR
        movl $0, CLB_ADDR + 4
        mov V_CTBA, %ecx
        mov %ecx, CLB_ADDR + 8
        movl $0, CLB_ADDR + 12
        test %eax, %eax
        jz 1f
        movl $1, P_SACT(%ebp)
1:      movl $1, P_CI(%ebp)
        mov $TIMEOUT, %ecx
2:      mov P_IS(%ebp), %ebx
        test $PIS_TFES, %ebx
        jnz 3f
        mov P_CI(%ebp), %eax
        or P_SACT(%ebp), %eax
        test $1, %eax
        jz 3f
        dec %ecx
        jnz 2b
        PRINT32 "TIMEOUT\n"
3:      mov P_TFD(%ebp), %eax
        ret

#include "ahci-disk.inc"
#include "ahci-cd.inc"

irq_handler:
        PRINT32 "unexpected interrupt\n"
        POWEROFF

        IDT_SUPPORT
        GUEST_LIBRARY
