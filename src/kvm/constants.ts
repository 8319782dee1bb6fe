/** KVM ioctl numbers, exit reasons and structure offsets (linux/kvm.h, x86-64). */

// System ioctls
export const KVM_GET_API_VERSION = 0xae00;
export const KVM_CREATE_VM = 0xae01;
export const KVM_CHECK_EXTENSION = 0xae03;
export const KVM_GET_VCPU_MMAP_SIZE = 0xae04;
export const KVM_GET_SUPPORTED_CPUID = 0xc008ae05;
export const KVM_GET_MSR_INDEX_LIST = 0xc004ae02;

// VM ioctls
export const KVM_CREATE_VCPU = 0xae41;
export const KVM_SET_USER_MEMORY_REGION = 0x4020ae46;
export const KVM_SET_TSS_ADDR = 0xae47;
export const KVM_SET_IDENTITY_MAP_ADDR = 0x4008ae48;
export const KVM_CREATE_IRQCHIP = 0xae60;
export const KVM_IRQ_LINE = 0x4008ae61;
export const KVM_SET_GSI_ROUTING = 0x4008ae6a;
export const KVM_IRQFD = 0x4020ae76;
export const KVM_CREATE_PIT2 = 0x4040ae77;
export const KVM_IOEVENTFD = 0x4040ae79;
export const KVM_ENABLE_CAP = 0x4068aea3;
export const KVM_SIGNAL_MSI = 0x4020aea5;

// vCPU ioctls
export const KVM_RUN = 0xae80;
export const KVM_GET_REGS = 0x8090ae81;
export const KVM_SET_REGS = 0x4090ae82;
export const KVM_GET_SREGS = 0x8138ae83;
export const KVM_SET_SREGS = 0x4138ae84;
export const KVM_TRANSLATE = 0xc018ae85;
export const KVM_GET_MSRS = 0xc008ae88;
export const KVM_SET_MSRS = 0x4008ae89;
export const KVM_SET_CPUID2 = 0x4008ae90;
export const KVM_GET_LAPIC = 0x8400ae8e;
export const KVM_SET_LAPIC = 0x4400ae8f;
export const KVM_GET_MP_STATE = 0x8004ae98;
export const KVM_SET_MP_STATE = 0x4004ae99;
export const KVM_GET_VCPU_EVENTS = 0x8040ae9f;
export const KVM_SET_VCPU_EVENTS = 0x4040aea0;
export const KVM_GET_FPU = 0x81a0ae8c;
export const KVM_SET_FPU = 0x41a0ae8d;
export const KVM_GET_CPUID2 = 0xc008ae91;
export const KVM_GET_XSAVE = 0x9000aea4;
export const KVM_SET_XSAVE = 0x5000aea5;
export const KVM_GET_XCRS = 0x8188aea6;
export const KVM_SET_XCRS = 0x4188aea7;

// struct kvm_vcpu_events (64 bytes)
export const VCPU_EVENTS_SIZE = 64;
export const EV_EXC_INJECTED = 0, EV_EXC_NR = 1, EV_EXC_HAS_ERROR = 2, EV_EXC_PENDING = 3, EV_EXC_ERROR = 4;
export const EV_INT_INJECTED = 8, EV_INT_NR = 9, EV_INT_SOFT = 10, EV_INT_SHADOW = 11;
export const EV_NMI_INJECTED = 12, EV_NMI_PENDING = 13, EV_NMI_MASKED = 14;
export const EV_FLAGS = 20;
// struct kvm_xsave (4096 bytes), struct kvm_xcrs (392 bytes), struct kvm_translation (24 bytes)
export const XSAVE_SIZE = 4096;
export const XCRS_SIZE = 392;
export const TRANSLATION_SIZE = 24;

// Capabilities
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_IOEVENTFD_ANY_LENGTH = 122;
export const KVM_CAP_SIGNAL_MSI = 77;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_X86_DISABLE_EXITS = 143;
export const KVM_CAP_EXIT_ON_EMULATION_FAILURE = 204;

// Memory region flags
export const KVM_MEM_READONLY = 1 << 1;

// Exit reasons
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_X86_RDMSR = 29;
export const KVM_EXIT_X86_WRMSR = 30;

export const EXIT_NAMES: Record<number, string> = {
  0: 'UNKNOWN', 1: 'EXCEPTION', 2: 'IO', 3: 'HYPERCALL', 4: 'DEBUG', 5: 'HLT', 6: 'MMIO',
  7: 'IRQ_WINDOW_OPEN', 8: 'SHUTDOWN', 9: 'FAIL_ENTRY', 10: 'INTR', 17: 'INTERNAL_ERROR',
  24: 'SYSTEM_EVENT', 29: 'X86_RDMSR', 30: 'X86_WRMSR',
};

export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;

export const KVM_INTERNAL_ERROR_EMULATION = 1;

export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;

// struct kvm_run
export const RUN_IMMEDIATE_EXIT = 1;
export const RUN_EXIT_REASON = 8;
export const RUN_IF_FLAG = 13;
export const RUN_UNION = 32;
export const RUN_IO_DIRECTION = 32; // u8: 0 in, 1 out
export const RUN_IO_SIZE = 33;
export const RUN_IO_PORT = 34;
export const RUN_IO_COUNT = 36;
export const RUN_IO_DATA_OFFSET = 40;
export const RUN_MMIO_ADDR = 32;
export const RUN_MMIO_DATA = 40;
export const RUN_MMIO_LEN = 48;
export const RUN_MMIO_IS_WRITE = 52;
export const RUN_INTERNAL_SUBERROR = 32;
export const RUN_INTERNAL_NDATA = 36;
export const RUN_INTERNAL_DATA = 40;
export const RUN_EMUL_INSN_SIZE = 48;
export const RUN_EMUL_INSN_BYTES = 49;
export const RUN_SYSTEM_EVENT_TYPE = 32;
export const RUN_FAIL_ENTRY_REASON = 32;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

// struct kvm_regs: 18 x u64
export const REG_NAMES = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const;
export const REGS_SIZE = 144;
// struct kvm_sregs
export const SREGS_SIZE = 312;
export const SEG_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export const SEG_SIZE = 24;
export const SREGS_GDT = 192;
export const SREGS_IDT = 208;
export const SREGS_CR0 = 224;
export const SREGS_CR2 = 232;
export const SREGS_CR3 = 240;
export const SREGS_CR4 = 248;
export const SREGS_CR8 = 256;
export const SREGS_EFER = 264;
export const SREGS_APIC_BASE = 272;

export const CPUID_ENTRY_SIZE = 40;
