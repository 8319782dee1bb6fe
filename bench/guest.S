/* Benchmark guest: COUNT port writes to 0x80, one byte to COM1 first, then ACPI S5. */
.code16
.org 0
start:
  mov $0x3f8, %dx
  mov $'!', %al
  out %al, %dx
  mov $0x80, %dx
  mov $(COUNT & 0xffff), %cx
  mov $(COUNT >> 16), %bx
1: out %al, %dx
  dec %cx
  jnz 1b
  dec %bx
  jns 1b
  mov $0x404, %dx
  mov $0x3400, %ax
  out %ax, %dx
  mov $0x501, %dx      /* QEMU's isa-debug-exit, for the reference run */
  out %al, %dx
  cli
  hlt
.org 0xfff0
  ljmp $0xf000, $start
.org 0x10000
