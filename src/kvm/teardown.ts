/**
 * Asynchronous teardown: the kernel's destruction of a VM handed to a
 * process of its own, so that the VMM's exit does not wait for it.
 *
 * When the last reference to a VM goes, KVM destroys it in the context of
 * whoever dropped it: for a VMM that exits, in its exit path, before its
 * parent sees it end. With the in-kernel PIT that takes ~20 ms on this
 * machine class (the PIT's teardown waits for SRCU grace periods of the
 * VM: its I/O devices and its interrupt-ack and mask notifiers), far more
 * than a tiny guest's whole run. So at the end the VMM starts a holder,
 * `/bin/sh` running HOLDER_SCRIPT, with a duplicate of the VM fd as its
 * fd 3 and the read end of a pipe as its standard input; the write end
 * stays with the VMM (close-on-exec, never written). The VMM exits at once.
 * The holder waits for end-of-file, then until the kernel has handed it to
 * another parent, which happens only once the VMM's last thread has exited
 * and released its fds (the VM's and vCPUs' among them); then it exits, and
 * its exit drops the VM's last reference, so the VM is destroyed there.
 * End-of-file alone comes too early: the VMM's exit closes the pipe in the
 * same pass as its vCPU fds, and a holder (`cat`) that left at once let the
 * VM be destroyed in the VMM's exit after all (~17 ms). QEMU's
 * `-run-with async-teardown=on` does the same for the address space.
 *
 * Everything else goes with the VMM as before: guest memory is the VMM's
 * own mapping and is freed by its exit; the vCPU fds close with it. The
 * holder has /dev/null for its output, nothing else of the VMM's, a
 * session of its own (a terminal's ^C is not for it) and an empty signal
 * mask. The shell may move its fds about (dash does, around redirections),
 * and its short-lived children inherit the VM fd: whichever of them closes
 * it last, that is outside the VMM. If the holder cannot be started,
 * teardown happens in the VMM's exit as before.
 */
import { close, koffi, O_CLOEXEC } from './libc.js';

/** The libc calls, declared on first use: bhyve loads this module at start-up but calls it once, at exit. */
function spawnApi() {
  const libc = koffi.load('libc.so.6');
  return {
    pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
    faInit: libc.func('int posix_spawn_file_actions_init(void *fa)'),
    faDestroy: libc.func('int posix_spawn_file_actions_destroy(void *fa)'),
    faDup2: libc.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
    faOpen: libc.func('int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, int mode)'),
    faCloseFrom: libc.func('int posix_spawn_file_actions_addclosefrom_np(void *fa, int from)'),
    attrInit: libc.func('int posix_spawnattr_init(void *attr)'),
    attrDestroy: libc.func('int posix_spawnattr_destroy(void *attr)'),
    attrSetFlags: libc.func('int posix_spawnattr_setflags(void *attr, short flags)'),
    attrSetSigmask: libc.func('int posix_spawnattr_setsigmask(void *attr, void *sigmask)'),
    spawn: libc.func('int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)'),
  };
}

const HOLDER = '/bin/sh';
/**
 * Wait for end-of-file, then poll (every 2 ms) until the parent is no longer
 * the VMM ($1). Field 4 of /proc/$$/stat (the shell's own) is its parent's id (the
 * holder's name, `sh`, has no space to shift the fields).
 */
const HOLDER_SCRIPT = [
  'cat',
  'while read -r _ _ _ parent _ </proc/$$/stat && [ "$parent" = "$1" ]; do sleep 0.002; done',
].join('\n');
const O_WRONLY = 1;
const POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;
/** glibc's posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336 on x86-64; room to spare. */
const FA_SIZE = 256, ATTR_SIZE = 512, SIGSET_SIZE = 128;
const HOLDER_VM_FD = 3;

/**
 * Start the holder of `vmFd` (see above). Returns its pid, or 0 when it
 * could not be started (the VM is then destroyed by the VMM's exit).
 * Call it once, just before the process exits.
 */
export function handOffTeardown(vmFd: number): number {
  const c = spawnApi();
  const fds = [0, 0];
  if (c.pipe2(fds, O_CLOEXEC) !== 0) return 0;
  const [readEnd] = fds;
  const fa = Buffer.alloc(FA_SIZE);
  const attr = Buffer.alloc(ATTR_SIZE);
  const pid = [0];
  let rc = -1;
  const faReady = c.faInit(fa) === 0;
  const attrReady = faReady && c.attrInit(attr) === 0;
  if (attrReady
    && c.faDup2(fa, readEnd, 0) === 0
    && c.faOpen(fa, 1, '/dev/null', O_WRONLY, 0) === 0
    && c.faDup2(fa, 1, 2) === 0
    && c.faDup2(fa, vmFd, HOLDER_VM_FD) === 0
    && c.faCloseFrom(fa, HOLDER_VM_FD + 1) === 0
    && c.attrSetFlags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK) === 0
    && c.attrSetSigmask(attr, Buffer.alloc(SIGSET_SIZE)) === 0) {
    rc = c.spawn(pid, HOLDER, fa, attr, ['sh', '-c', HOLDER_SCRIPT, 'bhyve-teardown', String(process.pid), null], ['PATH=/usr/bin:/bin', null]);
  }
  if (attrReady) c.attrDestroy(attr);
  if (faReady) c.faDestroy(fa);
  close(readEnd);
  // The write end (fds[1]) stays open until this process exits: that is the holder's signal.
  return rc === 0 ? pid[0] : 0;
}
