import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRNO, TunstackError, type ErrnoCode } from '../core/errors.js';

/**
 * Loading the optional native shim (native/tunstack.c, built by `npm install` into
 * native/build/Release/tunstack.node) and turning its -errno results into TunstackErrors.
 *
 * The addon is optional: when it is missing (not built, not Linux) or disabled
 * (TUNSTACK_NATIVE=0 in the environment, or `setNativeBinding(null)` in tests), `requireNative()`
 * throws ENOSYS naming the reason, and nothing else in tunstack is affected.
 */

/** What the addon exports. Every call returns >= 0 (or a value) on success, -errno on failure. */
export interface NativeBinding {
  readonly version: number;
  open(path: string): number;
  close(fd: number): number;
  /** TUNSETIFF: [name chosen by the kernel, flags] or -errno. */
  setIff(fd: number, name: string, flags: number): [string, number] | number;
  /** TUNGETIFF: [name, flags] or -errno. */
  getIff(fd: number): [string, number] | number;
  /** The tun ioctls with one integer argument or result; other requests -ENOTTY. */
  tunIoctl(fd: number, request: number, arg: number): number;
  read(fd: number, buf: Uint8Array, off: number, len: number): number;
  write(fd: number, buf: Uint8Array, off: number, len: number): number;
  /**
   * One writev per packet: header i (hdrLen bytes of hdr at i * hdrLen) then
   * views[i][starts[i], ends[i]), then frags[i]'s views whole when frags[i] is an array.
   * result: [written, failed, last errno]. Returns packets handled (stops at EAGAIN), or -errno
   * when the first write failed with EAGAIN/EBADF.
   */
  writeBatch(
    fd: number,
    hdr: Uint8Array | null,
    hdrLen: number,
    views: readonly Uint8Array[],
    starts: Uint32Array,
    ends: Uint32Array,
    count: number,
    result: Int32Array,
    frags?: readonly (readonly Uint8Array[] | null)[] | null,
  ): number;
  /** poll(2) with a zero timeout: revents, or -errno. */
  poll(fd: number, events: number): number;
  /**
   * A uv_poll on fd. mode 0: cb(-1, revents) on readiness. mode 1: cb(count, errno) with packet i
   * at buf[meta[2i], meta[2i] + meta[2i+1]). cb(-2, errno) on a poll error. Returns a handle or -errno.
   * With `own` (mode 1): a packet longer than `ownMin` bytes is not copied into buf but handed
   * over whole as own[i] (its own memory, meta[2i] = -1, meta[2i+1] its length).
   */
  pollerCreate(
    fd: number,
    mode: number,
    cb: (a: number, b: number) => void,
    buf: Uint8Array | null,
    meta: Int32Array | null,
    maxPacket: number,
    maxPackets: number,
    own?: ArrayBuffer[] | null,
    ownMin?: number,
  ): PollerHandle | number;
  pollerStart(h: PollerHandle, events: number): number;
  /**
   * The hand-over memory: [chunks taken from arenas, taken from malloc, given back, freed, idle
   * now, arenas mapped now, arenas mapped ever, arenas unmapped ever].
   */
  handOverStats(): number[];
  /**
   * One batch read now into a mode-1 poller's buf/meta/own, as on readiness, returned instead of
   * passed to its callback: the packet count (0: none waiting), or -errno when the first read
   * failed.
   */
  pollerRead(h: PollerHandle): number;
  pollerStop(h: PollerHandle): number;
  pollerRef(h: PollerHandle, on: boolean): number;
  pollerClose(h: PollerHandle): number;
  /** what: 0 mtu, 1 flags, 2 txqueuelen, 3 ifindex. */
  ifGet(name: string, what: number): number;
  ifSet(name: string, what: number, value: number): number;
  /** Writes the 6-byte hardware address into out; returns its ARPHRD type or -errno. */
  ifGetMac(name: string, out: Uint8Array): number;
  ifSetMac(name: string, mac: Uint8Array): number;
  ifRename(from: string, to: string): number;
  addrChange(ifindex: number, add: boolean, addr: Uint8Array, prefixLength: number, flags: number): number;
  addrList(ifindex: number): Array<[Uint8Array, number, number]> | number;
  /** An AF_UNIX SOCK_DGRAM socket bound to path (non-blocking): fd or -errno. Newer addons only. */
  unixDgram?(path: string): number;
  /** One datagram: [its real length, the sender's path ('' when unbound)] or -errno. */
  recvFrom?(fd: number, buf: Uint8Array, off: number, len: number): [number, string] | number;
  /** One datagram to the unix socket at path: bytes sent or -errno. */
  sendTo?(fd: number, buf: Uint8Array, off: number, len: number, path: string): number;
  /**
   * A TUN/TAP opened inside network namespace file `netns` (after entering user namespace file
   * `userns` when not ''), its MTU set there when > 0, its fd passed back over
   * a socketpair (SCM_RIGHTS) by a forked child: [fd, name, flags, 0], or [-errno, '', 0, stage]
   * when step `stage` (TAPNS_STAGES) failed, or -errno. Newer addons only.
   */
  tapInNamespace?(userns: string, netns: string, tunPath: string, name: string, flags: number, mtu: number): [number, string, number, number] | number;
  /**
   * A seccomp deny-list filter on every thread of the process (seccomp.ts): [0, the system calls
   * denied] or [-errno, []]. Newer addons only.
   */
  seccompDeny?(): [number, string[]];
  /**
   * A non-blocking TCP socket (TCP_NODELAY) connecting to addr (4 or 16 bytes):port, bound to
   * src first when not null: its fd, with out[0] = 1 when already connected (a local address
   * answers inside connect(2)) or 0 when in progress (poll for writable, then
   * tcpConnectResult); or -errno, the socket closed, when it failed at once (refused by a local
   * port). Newer addons only.
   */
  tcpConnect?(addr: Uint8Array, port: number, src: Uint8Array | null, out: Int32Array): number;
  /** 0 when the connect in progress on fd succeeded, -EINPROGRESS while it is still going, else -errno (SO_ERROR). */
  tcpConnectResult?(fd: number): number;
  /** 1 when the next thing to read on stream socket fd is the peer's FIN, 0 when data or nothing is waiting, -errno. */
  peekEnd?(fd: number): number;
  /** An epoll set (close-on-exec): its fd or -errno. Newer addons only (these six: the relay's host streams). */
  epollCreate?(): number;
  /** epoll_ctl: op 1 add, 2 delete, 3 modify; events 1 readable, 4 writable (level-triggered); 0 or -errno. */
  epollCtl?(ep: number, op: number, fd: number, events: number): number;
  /** The events waiting now (no wait): out gets [fd, events] pairs; their count or -errno. */
  epollWait?(ep: number, out: Int32Array): number;
  /** One writev(2) of views[0, count) (at most 64): bytes written or -errno. */
  writev?(fd: number, views: readonly Uint8Array[], count: number): number;
  /** shutdown(2): how 0 read, 1 write, 2 both; 0 or -errno. */
  shutdown?(fd: number, how: number): number;
  /** SO_LINGER {1, 0} and close(2): the peer of a connected TCP socket gets a RST. 0 or -errno. */
  abortClose?(fd: number): number;
}

/** Opaque uv_poll handle. */
export type PollerHandle = { readonly __poller: unique symbol };

let binding: NativeBinding | null | undefined;
let reason = '';

function packageRoot(): string {
  // src/host/native.ts and dist/host/native.js are both two levels below the package root.
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Where an addon built from source is looked for (first). */
export function nativeAddonPath(): string {
  return join(packageRoot(), 'native', 'build', 'Release', 'tunstack.node');
}

/** Where the prebuilt addon for this platform and CPU is looked for (when none was built). */
export function prebuiltAddonPath(): string {
  return join(packageRoot(), 'prebuilds', `${process.platform}-${process.arch}`, 'tunstack.node');
}

function load(): void {
  binding = null;
  if (process.env.TUNSTACK_NATIVE === '0') {
    reason = 'the native host bridge is disabled (TUNSTACK_NATIVE=0)';
    return;
  }
  if (process.platform !== 'linux') {
    reason = `the native host bridge needs Linux (this is ${process.platform})`;
    return;
  }
  const built = nativeAddonPath();
  const prebuilt = prebuiltAddonPath();
  const path = existsSync(built) ? built : prebuilt;
  if (!existsSync(path)) {
    reason =
      `the native host bridge is not available: no prebuilt one for ${process.platform}-${process.arch} and none built ` +
      '(in a project that uses tunstack: `npm rebuild tunstack --foreground-scripts`; in a tunstack checkout: `node native/build.mjs`)';
    return;
  }
  try {
    const req = createRequire(import.meta.url);
    binding = req(path) as NativeBinding;
  } catch (e) {
    reason = `the native host bridge failed to load: ${(e as Error).message}`;
    binding = null;
  }
}

/** The addon, or null when it is not available (see `nativeUnavailableReason`). */
export function nativeBinding(): NativeBinding | null {
  if (binding === undefined) load();
  return binding ?? null;
}

/** Why the addon is unavailable ('' when it is loaded). */
export function nativeUnavailableReason(): string {
  if (binding === undefined) load();
  return binding === null ? reason : '';
}

/** The addon; ENOSYS (with the reason) when it is unavailable. */
export function requireNative(syscall?: string): NativeBinding {
  const b = nativeBinding();
  if (b === null) throw new TunstackError('ENOSYS', reason, syscall);
  return b;
}

/**
 * Replace the binding (tests): null simulates a missing addon, an object a fake one; undefined
 * goes back to loading the real one.
 */
export function setNativeBinding(b: NativeBinding | null | undefined, why = 'the native host bridge is disabled (test)'): void {
  binding = b;
  reason = b === null ? why : '';
}

const errnoNames = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.errno)) if (!errnoNames.has(n)) errnoNames.set(n, name);
// Linux aliases: EWOULDBLOCK is EAGAIN, ENOTSUP is EOPNOTSUPP; prefer the names tunstack uses.
for (const [name, n] of Object.entries(ERRNO)) errnoNames.set(n, name);

/** The errno name for a (positive or negative) errno number ('EUNKNOWN' when unknown). */
export function errnoName(n: number): string {
  return errnoNames.get(Math.abs(n)) ?? 'EUNKNOWN';
}

/**
 * A TunstackError for a -errno result. Errnos outside tunstack's ErrnoCode set are reported as
 * EIO with the real name in the message.
 */
export function errnoToError(negErrno: number, message: string, syscall?: string): TunstackError {
  const name = errnoName(negErrno);
  if (name in ERRNO) return new TunstackError(name as ErrnoCode, message, syscall);
  return new TunstackError('EIO', `${message} (${name}, errno ${Math.abs(negErrno)})`, syscall);
}

/** Throw for a negative result; return it otherwise. */
export function check(r: number, message: string, syscall?: string): number {
  if (r < 0) throw errnoToError(r, message, syscall);
  return r;
}
