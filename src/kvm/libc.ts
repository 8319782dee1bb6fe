/** The few libc calls the VMM needs, through koffi. */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const open = libc.func('int open(const char *path, int flags, int mode)');
export const close = libc.func('int close(int fd)');
/** ioctl with a pointer (Buffer) argument. */
export const ioctlPtr = libc.func('int ioctl(int fd, unsigned long req, void *arg)');
/** ioctl with an integer argument. Declared twice: x86-64 passes both in the same register. */
export const ioctlInt = libc.func('int ioctl(int fd, unsigned long req, uint64_t arg)');
export const mmap = libc.func('uintptr_t mmap(uintptr_t addr, size_t len, int prot, int flags, int fd, int64_t off)');
export const munmap = libc.func('int munmap(uintptr_t addr, size_t len)');
export const mlock = libc.func('int mlock(uintptr_t addr, size_t len)');
export const madvise = libc.func('int madvise(uintptr_t addr, size_t len, int advice)');
export const mprotect = libc.func('int mprotect(uintptr_t addr, size_t len, int prot)');
export const gettid = libc.func('int gettid()');
export const getpid = libc.func('int getpid()');
export const tgkill = libc.func('int tgkill(int tgid, int tid, int sig)');
export const sched_setaffinity = libc.func('int sched_setaffinity(int pid, size_t len, void *mask)');
export const eventfd = libc.func('int eventfd(unsigned int initval, int flags)');
export const read = libc.func('long read(int fd, void *buf, size_t len)');
export const write = libc.func('long write(int fd, const void *buf, size_t len)');
export const epoll_create1 = libc.func('int epoll_create1(int flags)');
export const epoll_ctl = libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)');
export const epoll_wait = libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)');
/** POSIX timers: `timer` is a Buffer holding the timer_t (8 bytes). */
export const timer_create = libc.func('int timer_create(int clockid, void *sevp, void *timer)');
export const timer_settime = libc.func('int timer_settime(uint64_t timer, int flags, void *spec, void *old)');
export const timer_delete = libc.func('int timer_delete(uint64_t timer)');
const strerrorFn = libc.func('const char *strerror(int errnum)');

export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2;
export const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000;
export const MAP_FAILED = 0xffffffffffffffffn;
export const MADV_DONTNEED = 4, MADV_DONTFORK = 10, MADV_HUGEPAGE = 14;
export const EINTR = 4, EAGAIN = 11;
export const EFD_CLOEXEC = 0o2000000, EFD_NONBLOCK = 0o4000;
export const EPOLL_CLOEXEC = 0o2000000, EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLLIN = 0x001;
/** struct epoll_event is packed on x86-64: u32 events, u64 data. */
export const EPOLL_EVENT_SIZE = 12;
export const SIGUSR2 = 12;
export const CLOCK_MONOTONIC = 1;
/** struct sigevent (64 bytes): sigev_signo at 8, sigev_notify at 12, the target thread's id at 16. */
export const SIGEVENT_SIZE = 64, SIGEV_THREAD_ID = 4;

export function errno(): number {
  return koffi.errno();
}

export function strerror(e: number): string {
  return strerrorFn(e) as string;
}

export { koffi };
