/**
 * A seccomp filter for the tunstack process itself (`tunstack sandbox --enable-seccomp`, as
 * slirp4netns's `--enable-seccomp` and pasta's default): after it is installed, every thread of
 * the process gets EPERM from the system calls a network relay never needs and an attacker who
 * took it over would want (ptrace and process_vm_*, kernel modules and kexec, bpf, keyrings,
 * userfaultfd, perf_event_open, the clock, reboot and swap, chroot/pivot_root, handle-based
 * opens, ...). System calls of another ABI (i386 or x32 on x86_64) are refused whole.
 *
 * It is a deny list, not slirp4netns's allow list: the process is Node (V8 and libuv use a wide
 * and version-dependent set of calls) and the sandbox spawns helpers after setup (`ip netns del`,
 * `ping`, the auto-port poller), which inherit the filter and need execve, mount, setns and
 * unshare. Installed after the guest command has been spawned, so the guest is not filtered.
 * Without CAP_SYS_ADMIN (rootless) the kernel demands no_new_privs first, which then also holds
 * for those helpers (a setuid or file-capability helper runs without its privilege).
 */
import { TunstackError } from '../core/errors.js';
import { errnoToError, requireNative } from './native.js';

/** Install the filter on every thread; returns the names of the system calls it denies. */
export function installSeccompFilter(): string[] {
  const b = requireNative('seccomp');
  if (b.seccompDeny === undefined) throw new TunstackError('ENOSYS', 'the native addon predates seccomp support: rebuild it (npm rebuild tunstack)', 'seccomp');
  const [rc, names] = b.seccompDeny();
  if (rc < 0) throw errnoToError(rc, rc === -38 ? 'seccomp filters are not supported on this architecture or kernel' : 'cannot install the seccomp filter', 'seccomp');
  return names;
}
