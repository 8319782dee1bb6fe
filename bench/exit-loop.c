/* Reference: the smallest C KVM loop that runs the same boot ROM guest and
 * handles its port-I/O exits (ignores them), stopping on the ACPI S5 write. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: exit-loop ROM\n"); return 4; }
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000);
  ioctl(vm, KVM_CREATE_IRQCHIP, 0);
  size_t memsz = 256 << 20, romsz = 65536;
  void *ram = mmap(0, memsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  void *rom = mmap(0, romsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  FILE *f = fopen(argv[1], "rb");
  if (!f || fread(rom, 1, romsz, f) != romsz) { fprintf(stderr, "cannot read %s\n", argv[1]); return 4; }
  struct kvm_userspace_memory_region r[3] = {
    { .slot = 0, .guest_phys_addr = 0, .memory_size = 0xF0000, .userspace_addr = (unsigned long)ram },
    { .slot = 1, .flags = KVM_MEM_READONLY, .guest_phys_addr = 0xF0000, .memory_size = romsz, .userspace_addr = (unsigned long)rom },
    { .slot = 2, .flags = KVM_MEM_READONLY, .guest_phys_addr = 0x100000000ULL - romsz, .memory_size = romsz, .userspace_addr = (unsigned long)rom },
  };
  for (int i = 0; i < 3; i++) if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r[i]) < 0) { perror("memslot"); return 4; }
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  int runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(0, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) { perror("KVM_RUN"); return 4; }
    if (run->exit_reason == KVM_EXIT_IO) {
      if (run->io.port == 0x3f8 && run->io.direction == KVM_EXIT_IO_OUT) { write(1, (char *)run + run->io.data_offset, 1); continue; }
      if (run->io.port == 0x404 && run->io.direction == KVM_EXIT_IO_OUT) return 1;
      continue;
    }
    fprintf(stderr, "exit %d\n", run->exit_reason);
    return 4;
  }
}
