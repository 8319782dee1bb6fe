/**
 * The VM: /dev/kvm, the VM fd, its memory slots and its interrupt
 * controllers (KVM's in-kernel PIC, IOAPIC and LAPICs, and the PIT).
 * The fds are plain numbers, valid on every thread of the process.
 */
import * as C from './constants.js';
import { check, KvmError } from './error.js';
import {
  ioctlInt, ioctlPtr, mmap, mlock, madvise, open, O_RDWR, O_CLOEXEC, PROT_READ, PROT_WRITE,
  MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE, MAP_FAILED, MADV_DONTFORK, MADV_HUGEPAGE, errno, EINTR,
} from './libc.js';
import type { Segment } from './memory.js';
import { existsSync } from 'node:fs';

const IRQCHIP_PIC_MASTER = 0, IRQCHIP_PIC_SLAVE = 1, IRQCHIP_IOAPIC = 2;
const IOAPIC_PINS = 24;
const ROUTING_IRQCHIP = 1;
const ROUTING_MSI = 2;
const ROUTING_HEADER_SIZE = 8;
const ROUTING_ENTRY_SIZE = 48;
/** The first GSI free for MSI routes (the IOAPIC has pins 0-23). */
export const FIRST_MSI_GSI = IOAPIC_PINS;
/** KVM_MAX_IRQ_ROUTES on x86. */
export const MAX_GSI = 4096;
const IOEVENTFD_FLAG_DATAMATCH = 1, IOEVENTFD_FLAG_PIO = 2, IOEVENTFD_FLAG_DEASSIGN = 4;
const IOEVENTFD_SIZE = 64;
const IRQFD_FLAG_DEASSIGN = 1;
const IRQFD_SIZE = 32;

/** kvm_pvm (PVM): KVM runs a guest's CPL-0 code through its instruction emulator, so several paths differ there. */
export function pvmHost(): boolean {
  return existsSync('/sys/module/kvm_pvm');
}

export interface VmHandles {
  kvmFd: number;
  vmFd: number;
  runSize: number;
}

export class Kvm {
  readonly fd: number;
  constructor(path = '/dev/kvm') {
    const fd = open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) throw new KvmError(`cannot open ${path}`, errno());
    this.fd = fd;
    const v = ioctlInt(fd, C.KVM_GET_API_VERSION, 0);
    if (v !== 12) throw new KvmError(`KVM API version ${v}, expected 12`);
  }
  extension(cap: number): number {
    return Math.max(0, ioctlInt(this.fd, C.KVM_CHECK_EXTENSION, cap));
  }
  get runSize(): number {
    return check(ioctlInt(this.fd, C.KVM_GET_VCPU_MMAP_SIZE, 0), 'KVM_GET_VCPU_MMAP_SIZE');
  }
}

/**
 * Allocate anonymous host memory for guest RAM; reserved only, not touched.
 * `hugepages`: ask for transparent huge pages (fewer TLB misses; see
 * buildLayout for when not).
 */
export function allocHost(size: number, wired: boolean, hugepages = true): bigint {
  const addr = BigInt(mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (addr === MAP_FAILED) throw new KvmError(`cannot reserve ${size} bytes of guest memory`, errno());
  madvise(addr, size, MADV_DONTFORK);
  if (hugepages) madvise(addr, size, MADV_HUGEPAGE);
  if (wired && mlock(addr, size) < 0) throw new KvmError(`cannot wire ${size} bytes of guest memory (-S)`, errno());
  return addr;
}

export class Vm {
  private nextSlot = 0;
  constructor(readonly kvm: Kvm, readonly fd: number) {}

  static create(kvm: Kvm): Vm {
    // A signal during VM creation (a profiler's, a child's SIGCHLD) makes it fail with EINTR: try again.
    let fd = ioctlInt(kvm.fd, C.KVM_CREATE_VM, 0);
    for (let i = 0; fd < 0 && errno() === EINTR && i < 10; i++) fd = ioctlInt(kvm.fd, C.KVM_CREATE_VM, 0);
    check(fd, 'KVM_CREATE_VM');
    return new Vm(kvm, fd);
  }

  /** Map a host range into the guest at `gpa`. */
  mapMemory(gpa: number, size: number, host: bigint, readonly: boolean): void {
    const b = Buffer.alloc(32);
    b.writeUInt32LE(this.nextSlot++, 0);
    b.writeUInt32LE(readonly ? C.KVM_MEM_READONLY : 0, 4);
    b.writeBigUInt64LE(BigInt(gpa), 8);
    b.writeBigUInt64LE(BigInt(size), 16);
    b.writeBigUInt64LE(host, 24);
    check(ioctlPtr(this.fd, C.KVM_SET_USER_MEMORY_REGION, b), `KVM_SET_USER_MEMORY_REGION at 0x${gpa.toString(16)}`);
  }

  mapSegment(s: Segment): void {
    this.mapMemory(s.gpa, s.size, s.host, s.readonly);
  }

  /** KVM's in-kernel interrupt controllers and PIT, as a PC has them. */
  createIrqchip(): void {
    // TSS and identity map must sit somewhere unused below 4 GiB (needed by VMX).
    check(ioctlInt(this.fd, C.KVM_SET_TSS_ADDR, 0xfffbd000), 'KVM_SET_TSS_ADDR');
    const idmap = Buffer.alloc(8);
    idmap.writeBigUInt64LE(0xfffbc000n);
    ioctlPtr(this.fd, C.KVM_SET_IDENTITY_MAP_ADDR, idmap);
    check(ioctlInt(this.fd, C.KVM_CREATE_IRQCHIP, 0), 'KVM_CREATE_IRQCHIP');
    const pit = Buffer.alloc(64);
    pit.writeUInt32LE(1, 0); // KVM_PIT_SPEAKER_DUMMY
    check(ioctlPtr(this.fd, C.KVM_CREATE_PIT2, pit), 'KVM_CREATE_PIT2');
  }

  /** PC interrupt routing only (see setGsiRouting); MSI routes are added later by whoever needs them. */
  setPcRouting(): void {
    setGsiRouting(this.fd, []);
  }

  enableCap(cap: number, args: bigint[] = []): number {
    const b = Buffer.alloc(104);
    b.writeUInt32LE(cap, 0);
    args.forEach((a, i) => b.writeBigUInt64LE(a, 8 + i * 8));
    return ioctlPtr(this.fd, C.KVM_ENABLE_CAP, b);
  }
}

/** Interrupt injection on a VM fd; the buffers are per instance, so keep one per thread. */
export class IrqInjector {
  private readonly lineBuf = Buffer.alloc(8);
  private readonly msiBuf = Buffer.alloc(32);
  constructor(private readonly vmFd: number) {}

  line(gsi: number, level: boolean): void {
    this.lineBuf.writeUInt32LE(gsi, 0);
    this.lineBuf.writeUInt32LE(level ? 1 : 0, 4);
    check(ioctlPtr(this.vmFd, C.KVM_IRQ_LINE, this.lineBuf), `KVM_IRQ_LINE ${gsi}`);
  }

  pulse(gsi: number): void {
    this.line(gsi, true);
    this.line(gsi, false);
  }

  msi(address: bigint, data: number): void {
    const b = this.msiBuf;
    b.writeUInt32LE(Number(address & 0xffffffffn), 0);
    b.writeUInt32LE(Number(address >> 32n), 4);
    b.writeUInt32LE(data >>> 0, 8);
    b.writeUInt32LE(0, 12);
    ioctlPtr(this.vmFd, C.KVM_SIGNAL_MSI, b);
  }
}

/** A GSI routed to an MSI message (KVM_IRQ_ROUTING_MSI). */
export interface MsiRoute { gsi: number; address: bigint; data: number }

/**
 * Submit the VM's whole GSI routing table: KVM replaces the table on every
 * KVM_SET_GSI_ROUTING, so the PC routes go in every time, followed by `msi`.
 * PC routes as QEMU sets them: ISA IRQs 0-15 on the PICs, GSIs 1-23 on the
 * IOAPIC pin of the same number, and IRQ 0 (the PIT) on IOAPIC pin 2, which
 * the MADT's interrupt source override announces.
 */
export function setGsiRouting(vmFd: number, msi: readonly MsiRoute[]): void {
  const pc: [gsi: number, chip: number, pin: number][] = [];
  for (let i = 0; i < 16; i++) if (i !== 2) pc.push([i, i < 8 ? IRQCHIP_PIC_MASTER : IRQCHIP_PIC_SLAVE, i % 8]);
  for (let i = 0; i < IOAPIC_PINS; i++) {
    if (i === 0) pc.push([0, IRQCHIP_IOAPIC, 2]);
    else if (i !== 2) pc.push([i, IRQCHIP_IOAPIC, i]);
  }
  const n = pc.length + msi.length;
  const b = Buffer.alloc(ROUTING_HEADER_SIZE + n * ROUTING_ENTRY_SIZE);
  b.writeUInt32LE(n, 0);
  pc.forEach(([gsi, chip, pin], i) => {
    const o = ROUTING_HEADER_SIZE + i * ROUTING_ENTRY_SIZE;
    b.writeUInt32LE(gsi, o);
    b.writeUInt32LE(ROUTING_IRQCHIP, o + 4);
    b.writeUInt32LE(chip, o + 16);
    b.writeUInt32LE(pin, o + 20);
  });
  msi.forEach((r, i) => {
    if (r.gsi < FIRST_MSI_GSI || r.gsi >= MAX_GSI) throw new KvmError(`GSI ${r.gsi} cannot carry an MSI route`);
    const o = ROUTING_HEADER_SIZE + (pc.length + i) * ROUTING_ENTRY_SIZE;
    b.writeUInt32LE(r.gsi, o);
    b.writeUInt32LE(ROUTING_MSI, o + 4);
    b.writeUInt32LE(Number(r.address & 0xffffffffn), o + 16);
    b.writeUInt32LE(Number((r.address >> 32n) & 0xffffffffn), o + 20);
    b.writeUInt32LE(r.data >>> 0, o + 24);
  });
  check(ioctlPtr(vmFd, C.KVM_SET_GSI_ROUTING, b), 'KVM_SET_GSI_ROUTING');
}

/**
 * Where a KVM ioeventfd listens: a guest write of `len` bytes (0: any length,
 * MMIO only) to `addr` in port (`pio`) or memory space, optionally only when
 * the value written equals `datamatch`.
 */
export interface IoEventSpec { pio: boolean; addr: number; len: 0 | 1 | 2 | 4 | 8; datamatch?: number }

/**
 * KVM_IOEVENTFD: make guest writes matching `spec` signal eventfd `fd` inside
 * the kernel, without an exit to user space (or undo it with `deassign`).
 * Returns 0 or the errno (EEXIST when another eventfd has the same match).
 */
export function ioeventfd(vmFd: number, fd: number, spec: IoEventSpec, deassign = false): number {
  const b = Buffer.alloc(IOEVENTFD_SIZE);
  let flags = spec.pio ? IOEVENTFD_FLAG_PIO : 0;
  if (spec.datamatch !== undefined) {
    flags |= IOEVENTFD_FLAG_DATAMATCH;
    b.writeBigUInt64LE(BigInt(spec.datamatch >>> 0), 0);
  }
  if (deassign) flags |= IOEVENTFD_FLAG_DEASSIGN;
  b.writeBigUInt64LE(BigInt(spec.addr), 8);
  b.writeUInt32LE(spec.len, 16);
  b.writeInt32LE(fd, 20);
  b.writeUInt32LE(flags, 24);
  return ioctlPtr(vmFd, C.KVM_IOEVENTFD, b) < 0 ? errno() : 0;
}

/** KVM_IRQFD: a write to eventfd `fd` injects GSI `gsi` (or undo it with `deassign`). Returns 0 or the errno. */
export function irqfd(vmFd: number, fd: number, gsi: number, deassign = false): number {
  const b = Buffer.alloc(IRQFD_SIZE);
  b.writeUInt32LE(fd, 0);
  b.writeUInt32LE(gsi, 4);
  b.writeUInt32LE(deassign ? IRQFD_FLAG_DEASSIGN : 0, 8);
  return ioctlPtr(vmFd, C.KVM_IRQFD, b) < 0 ? errno() : 0;
}
