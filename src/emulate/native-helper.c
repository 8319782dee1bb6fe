/* bhyve-ts emulator tests: run one instruction natively with given registers, flags and 64 bytes of memory; print the outcome. Built by native.test.ts. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

struct state { uint64_t r[16]; uint64_t flags; };
struct state g_state_buf;
void *g_code;
struct state *g_state;
extern void run_insn(struct state *s);
__asm__(
  ".text\n.globl run_insn\nrun_insn:\n"
  "push %rbx\npush %rbp\npush %r12\npush %r13\npush %r14\npush %r15\n"
  "mov %rdi, g_state(%rip)\n"
  "pushq 128(%rdi)\npopfq\n"
  "mov 0(%rdi),%rax\nmov 8(%rdi),%rcx\nmov 16(%rdi),%rdx\nmov 24(%rdi),%rbx\n"
  "mov 40(%rdi),%rbp\nmov 48(%rdi),%rsi\n"
  "mov 64(%rdi),%r8\nmov 72(%rdi),%r9\nmov 80(%rdi),%r10\nmov 88(%rdi),%r11\n"
  "mov 96(%rdi),%r12\nmov 104(%rdi),%r13\nmov 112(%rdi),%r14\nmov 120(%rdi),%r15\n"
  "mov 56(%rdi),%rdi\n"
  "call *g_code(%rip)\n"
  "pushfq\npush %rdi\n"
  "mov g_state(%rip),%rdi\n"
  "mov %rax,0(%rdi)\nmov %rcx,8(%rdi)\nmov %rdx,16(%rdi)\nmov %rbx,24(%rdi)\n"
  "mov %rbp,40(%rdi)\nmov %rsi,48(%rdi)\n"
  "mov %r8,64(%rdi)\nmov %r9,72(%rdi)\nmov %r10,80(%rdi)\nmov %r11,88(%rdi)\n"
  "mov %r12,96(%rdi)\nmov %r13,104(%rdi)\nmov %r14,112(%rdi)\nmov %r15,120(%rdi)\n"
  "pop %rax\nmov %rax,56(%rdi)\npop %rax\nmov %rax,128(%rdi)\n"
  "pop %r15\npop %r14\npop %r13\npop %r12\npop %rbp\npop %rbx\nret\n");

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

int main(void) {
  uint8_t *code = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  static uint8_t mem[64] __attribute__((aligned(64)));
  char line[4096];
  g_code = code;
  setvbuf(stdout, 0, _IOLBF, 0);
  while (fgets(line, sizeof line, stdin)) {
    /* insn-hex r0..r15 flags memreg mem-hex */
    char *tok = strtok(line, " \n");
    if (!tok) continue;
    size_t n = strlen(tok) / 2;
    for (size_t i = 0; i < n; i++) code[i] = hexval(tok[2 * i]) << 4 | hexval(tok[2 * i + 1]);
    code[n] = 0xc3;
    struct state s;
    for (int i = 0; i < 16; i++) s.r[i] = strtoull(strtok(0, " \n"), 0, 16);
    s.flags = strtoull(strtok(0, " \n"), 0, 16);
    int memreg = atoi(strtok(0, " \n"));
    char *mh = strtok(0, " \n");
    for (int i = 0; i < 64; i++) mem[i] = hexval(mh[2 * i]) << 4 | hexval(mh[2 * i + 1]);
    if (memreg >= 0) s.r[memreg] += (uint64_t)(uintptr_t)mem;
    s.r[4] = 0;
    run_insn(&s);
    if (memreg >= 0) s.r[memreg] -= (uint64_t)(uintptr_t)mem;
    for (int i = 0; i < 16; i++) printf("%llx ", (unsigned long long)s.r[i]);
    printf("%llx ", (unsigned long long)s.flags);
    for (int i = 0; i < 64; i++) printf("%02x", mem[i]);
    printf("\n");
  }
  return 0;
}
