/*
 * bhyve-ts emulator test guest (kvm.test.ts): 64-bit code loaded at 0x20000,
 * identity-mapped, entered at CPL 0 with the IDT at 0x2000 and the GDT at
 * 0x1000 (0x08 code, 0x10 data).
 * Each step reports on port 0x80 (a step number or a value), the test
 * checks the sequence; port 0xf4 ends the run. Exercises, under KVM: int3
 * (#BP injected as a trap), int n (software interrupt), iretq (emulated),
 * ud2 (#UD), popcnt and cmpxchg16b (emulated), a #PF raised by an emulated
 * instruction (CR2). (Here KVM itself handles iretq in long mode and ud2.)
 */
#define REPORT(v) mov $(v), %eax; out %eax, $0x80
.code64
.globl _start
_start:
  REPORT(1)
  int3                         /* #BP handler reports 3, iretq */
  REPORT(2)
  int $0x40                    /* handler reports 0x40, iretq */
  REPORT(4)
  ud2                          /* #UD handler reports 6, skips 2 bytes, iretq */
  REPORT(5)
  mov $0xf0f0, %rbx
  popcnt %rbx, %rax
  out %eax, $0x80              /* 8 */
  lea data(%rip), %rsi
  mov (%rsi), %rax
  mov 8(%rsi), %rdx
  mov $0x1111, %rbx
  mov $0x2222, %rcx
  lock cmpxchg16b (%rsi)
  mov (%rsi), %rax
  out %eax, $0x80              /* 0x1111 */
  mov $0x7ff000, %rsi          /* the top 4 KiB page of the map is not present */
  popcnt (%rsi), %rax          /* #PF with CR2 = 0x7ff000, handler skips 5 bytes */
  REPORT(9)
back:
  REPORT(0xaa)
  out %al, $0xf4

.macro HANDLER name, vec, skip, err
\name:
  .if \err
  pop %rcx
  .endif
  REPORT(\vec)
  .if \skip
  addq $\skip, (%rsp)
  .endif
  iretq
.endm
  HANDLER h_bp, 3, 0, 0
  HANDLER h_40, 0x40, 0, 0
  HANDLER h_ud, 6, 2, 0
h_pf:
  pop %rcx
  REPORT(14)
  mov %cr2, %rax
  out %eax, $0x80
  mov %ecx, %eax
  out %eax, $0x80
  addq $5, (%rsp)
  iretq

.balign 16
data: .quad 0, 0
.balign 8
.globl vectors
vectors: .quad 3, h_bp, 0x40, h_40, 6, h_ud, 14, h_pf, 0, 0
