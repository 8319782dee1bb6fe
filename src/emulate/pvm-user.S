/*
 * bhyve-ts: a user-mode probe for kvm.test.ts. The kernel half runs at
 * 0xffffffff80020000 (supervisor-only pages, like Linux's text); the user
 * half runs at the same bytes' identity address with CPL 3. Sequence:
 * report CS (0x80); a loop; iretq to CPL 3; a user loop; a read of a
 * supervisor page (#PF, error 5: the handler reports and skips it); syscall
 * (the entry reports CS, SS and RCX on 0x90/0x94 and reads a supervisor
 * page); sysretq back; report 0x300 and stop on port 0xf4.
 */
.code64
KOFF = 0xffffffff80000000
.globl _start
_start:
  mov %cs, %eax; out %eax, $0x80
  mov $100000, %ecx
1: dec %ecx; jnz 1b
  mov $0x11, %eax; out %eax, $0x80      /* kernel loop done */
  pushq $0x2b
  pushq $0x90000
  pushq $0x2
  pushq $0x33
  lea user(%rip), %rax
  movabs $KOFF, %rcx
  sub %rcx, %rax
  push %rax
  iretq
user:
  mov $1000000, %ecx
1: dec %ecx; jnz 1b
  movabs $KOFF+0x20000, %rax
  mov (%rax), %rbx                       /* expect #PF err 5 from CPL 3 */
  mov $0x77, %eax
  syscall
  mov $0x300, %eax
  out %eax, $0x80                        /* expect #GP at CPL 3 */
  out %al, $0xf4
entry:
  mov %cs, %eax; out %eax, $0x90
  mov %ss, %eax; out %eax, $0x90
  mov %rcx, %rax; out %eax, $0x94
  movabs $KOFF+0x20000, %rax
  mov (%rax), %rbx                       /* supervisor read: ok at CPL 0 */
  mov $0x200, %eax; out %eax, $0x90
  sysretq
pf:
  mov $14, %eax; out %eax, $0x84
  mov (%rsp), %rax; out %eax, $0x84
  mov 8(%rsp), %rax; out %eax, $0x88
  mov 16(%rsp), %rax; out %eax, $0x8c
  mov 32(%rsp), %rax; out %eax, $0x8c
  addq $3, 8(%rsp)
  add $8, %rsp
  iretq
gp:
  mov $13, %eax; out %eax, $0x84
  mov (%rsp), %rax; out %eax, $0x84
  mov 8(%rsp), %rax; out %eax, $0x88
  mov 16(%rsp), %rax; out %eax, $0x8c
  out %al, $0xf4
.globl syms
syms: .quad entry, pf, gp
