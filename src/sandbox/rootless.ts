/**
 * `tunstack sandbox` as an unprivileged user, as rootless slirp4netns and pasta run:
 *
 *   1. The guest's namespaces come from a holder process started as
 *        setpriv --pdeathsig KILL -- unshare --user --map-root-user --net --mount -- sh -c HOLDER
 *      a new user namespace (the caller is root in it) that owns a new network namespace and a
 *      mount namespace. The holder bind-mounts the sandbox's resolv.conf over /etc/resolv.conf
 *      (in its own mount namespace only), says "ready" on fd 3 and waits there for "go".
 *   2. tunstack opens the TAP inside: the native shim forks a child that enters the holder's user
 *      and network namespaces (/proc/PID/ns/user, /proc/PID/ns/net), opens /dev/net/tun there as
 *      eth0, sets its MTU, and passes the fd back over a socketpair (SCM_RIGHTS).
 *      tunstack itself never leaves the host's namespaces, so its relays reach host sockets.
 *   3. eth0 is configured with `nsenter --user --net --preserve-credentials ip ...` (its queue
 *      length too: SIOCSIFTXQLEN wants CAP_NET_ADMIN in the initial namespace, rtnetlink does not).
 *   4. "go": the holder execs the same guest launcher as a root sandbox (guest-process.ts), so
 *      the command runs in a new PID namespace whose init dies with the holder, and the holder
 *      (SIGKILL on tunstack's death) dies with tunstack. Exit statuses pass through unchanged.
 *
 * Nothing is left on the host when it ends, however it ends: the namespaces go with their last
 * process and the TAP fd, and the resolv.conf copy is removed once the holder has mounted it.
 *
 * What it needs: /dev/net/tun readable and writable by the user (mode 0666, as distributions
 * ship it; some hardened hosts make it 0600) and unprivileged user namespaces allowed by the
 * kernel (sysctls kernel.unprivileged_userns_clone, user.max_user_namespaces, AppArmor's
 * kernel.apparmor_restrict_unprivileged_userns). Both are checked up front, with the cause and
 * the fix in the message.
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants as fsConstants, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { TunstackError } from '../core/errors.js';
import { errnoName, errnoToError, requireNative } from '../host/native.js';
import { HostTap } from '../host/tap.js';
import { FdEndpoint } from '../host/fd.js';
import { IFF_NO_PI, IFF_TAP, IFF_VNET_HDR } from '../tundev/constants.js';

/** The tun device's path. */
export const TUN_PATH = '/dev/net/tun';

/** The steps of the native tapInNamespace, by the number it reports when one fails. */
export const TAPNS_STAGES: Readonly<Record<number, string>> = {
  1: 'open the user namespace',
  2: 'enter the user namespace',
  3: 'open the network namespace',
  4: 'enter the network namespace',
  5: `open ${TUN_PATH}`,
  6: 'create the TAP (TUNSETIFF)',
  7: 'set its MTU',
};

/** Whether this process runs sandboxes rootless (it is not root). */
export function isRootless(): boolean {
  return typeof process.getuid === 'function' && process.getuid() !== 0;
}

/** The message for a tun device this user may not open (`mode`: its permission bits, or null). */
export function tunAccessMessage(path: string, mode: number | null): string {
  const m = mode === null ? '' : ` is mode 0${(mode & 0o777).toString(8)} and`;
  return (
    `${path}${m} cannot be opened by this user (uid ${process.getuid?.() ?? '?'}), so no TAP can be made without root. ` +
    `Distributions ship it mode 0666, which rootless slirp4netns and pasta rely on too (the kernel still checks ` +
    `CAP_NET_ADMIN in the namespace that gets the TAP); to allow it, as root: chmod 0666 ${path} ` +
    `(kept across reboots by a udev rule: KERNEL=="tun", MODE="0666"), or run tunstack sandbox as root`
  );
}

/** '' when this user may open the tun device, else why not (with the fix). */
export function tunAccessReason(path = TUN_PATH): string {
  try {
    accessSync(path, fsConstants.R_OK | fsConstants.W_OK);
    return '';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `no ${path} (the tun module is not loaded: modprobe tun)`;
    if (code !== 'EACCES' && code !== 'EPERM') return `${path}: ${(e as Error).message}`;
    return tunAccessMessage(path, tunMode(path));
  }
}

/** The tun device's mode bits, or null when it cannot be read. */
function tunMode(path = TUN_PATH): number | null {
  try {
    return statSync(path).mode;
  } catch {
    return null;
  }
}

/** Where userNamespaceReason looks (tests replace these). */
export interface UsernsProbe {
  /** A /proc/sys file's trimmed contents, or null when it does not exist. */
  sysctl(path: string): string | null;
  /** Try to make a user namespace owning a network namespace: '' or the error text. */
  tryUnshare(): string;
}

const realProbe: UsernsProbe = {
  sysctl(path) {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return null;
    }
  },
  tryUnshare() {
    const r = spawnSync('unshare', ['--user', '--map-root-user', '--net', 'true'], { encoding: 'utf8', timeout: 10_000 });
    return r.status === 0 ? '' : (r.stderr || r.error?.message || `exit status ${r.status}`).trim();
  },
};

/**
 * '' when this user can make a user namespace that owns a network namespace, else why not: the
 * setting that forbids it and how to change it, or the error when no known setting explains it.
 */
export function userNamespaceReason(given: Partial<UsernsProbe> = {}): string {
  const probe: UsernsProbe = { ...realProbe, ...given };
  const err = probe.tryUnshare();
  if (err === '') return '';
  const head = 'the kernel does not let unprivileged users make user namespaces';
  if (probe.sysctl('/proc/sys/kernel/unprivileged_userns_clone') === '0') {
    return `${head} (sysctl kernel.unprivileged_userns_clone = 0); as root: sysctl -w kernel.unprivileged_userns_clone=1, or run tunstack sandbox as root`;
  }
  if (probe.sysctl('/proc/sys/user/max_user_namespaces') === '0') {
    return `${head} (sysctl user.max_user_namespaces = 0); as root: sysctl -w user.max_user_namespaces=15000, or run tunstack sandbox as root`;
  }
  if (probe.sysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1') {
    return (
      `${head} with capabilities: AppArmor restricts them (sysctl kernel.apparmor_restrict_unprivileged_userns = 1); ` +
      'as root: an AppArmor profile allowing "userns," for node, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or run tunstack sandbox as root'
    );
  }
  return `cannot make a user namespace owning a network namespace (unshare --user --map-root-user --net: ${err})`;
}

let cachedReason: string | null = null;

/** Why a rootless sandbox cannot run here ('' when it can). Checked once per process. */
export function rootlessUnavailableReason(): string {
  if (cachedReason !== null) return cachedReason;
  let why = tunAccessReason();
  if (why === '' && requireNativeTapInNamespace() === null) why = 'the native host bridge is too old for rootless sandboxes (no tapInNamespace; rebuild it: node native/build.mjs)';
  if (why === '') why = userNamespaceReason();
  cachedReason = why;
  return why;
}

function requireNativeTapInNamespace(): NonNullable<ReturnType<typeof requireNative>['tapInNamespace']> | null {
  const n = requireNative('tapInNamespace');
  return n.tapInNamespace?.bind(n) ?? null;
}

export interface TapInNamespaceOptions {
  /** The network namespace file (/proc/PID/ns/net or a bind mount of one). */
  netns: string;
  /** The user namespace file to enter first (the one owning netns), or '' for none. */
  userns: string;
  /** The interface's name there. */
  name: string;
  mtu: number;
}

/**
 * A sandbox TAP (IFF_VNET_HDR, TSO super-packets kept whole) created inside another network
 * namespace, served from this one: the HostTap over the fd passed back, and its FdEndpoint.
 */
export function openTapInNamespace(o: TapInNamespaceOptions): { tap: HostTap; ep: FdEndpoint; dev: string } {
  const tapIn = requireNativeTapInNamespace();
  if (tapIn === null) throw new TunstackError('ENOSYS', rootlessUnavailableReason());
  const r = tapIn(o.userns, o.netns, TUN_PATH, o.name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, o.mtu);
  if (typeof r === 'number') throw errnoToError(r, `cannot make a TAP in ${o.netns}`, 'tapInNamespace');
  const [fd, dev, , stage] = r;
  if (fd < 0) {
    const errno = errnoName(fd);
    const denied = errno === 'EACCES' || errno === 'EPERM';
    if (stage === 5 && denied) throw new TunstackError('EACCES', tunAccessMessage(TUN_PATH, tunMode()), 'open');
    // Entering a namespace is refused to a user who does not own the user namespace that owns it.
    const hint = denied && (stage === 2 || stage === 4) && isRootless() ? '; an unprivileged user needs the user namespace that owns it to be its own (--userns)' : '';
    throw errnoToError(fd, `cannot ${TAPNS_STAGES[stage] ?? `do step ${stage}`} for a TAP in ${o.netns}${o.userns !== '' ? ` (user namespace ${o.userns})` : ''}${hint}`, 'tapInNamespace');
  }
  const tap = HostTap.fromFd(fd);
  try {
    return { tap, ep: new FdEndpoint(tap, { mtu: o.mtu, keepTcpGso: true }), dev };
  } catch (e) {
    tap.close();
    throw e;
  }
}

/** argv prefix running a command inside network namespace `netns` (entering `userns` first when given). */
export function nsenterArgv(netns: string, userns?: string): string[] {
  return ['nsenter', `--net=${netns}`, ...(userns !== undefined ? [`--user=${userns}`, '--preserve-credentials'] : [])];
}

/** Whether `path` is a directory owned by `uid`. */
function ownDir(path: string, uid: number): boolean {
  try {
    const st = statSync(path);
    return st.isDirectory() && st.uid === uid;
  } catch {
    return false;
  }
}

/**
 * A private directory of this user for runtime files: $XDG_RUNTIME_DIR/tunstack (when that is the
 * user's own, not one inherited from another user through su or setpriv), else
 * <tmpdir>/tunstack-<uid>; refused (EACCES) when it exists but is not this user's own directory.
 */
export function userRuntimeDir(): string {
  const uid = process.getuid?.() ?? -1;
  const xdg = process.env.XDG_RUNTIME_DIR;
  const dir = xdg !== undefined && xdg !== '' && ownDir(xdg, uid) ? join(xdg, 'tunstack') : join(tmpdir(), `tunstack-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) throw new TunstackError('EACCES', `${dir} is not a private directory of uid ${uid}`);
  return dir;
}

/** The guest's init, as guest-process.ts: the command is its child, its status the init's. */
const GUEST_INIT = '"$@"; exit $?';

/**
 * The holder (in the new user, network and mount namespaces): resolv.conf over /etc/resolv.conf,
 * "ready" on fd 3, then wait for "go" there (EOF: tunstack is gone, exit), then exec the guest
 * launcher. $1 is the resolv.conf copy ('' for none), the rest the command.
 */
const HOLDER = [
  'r=$1; shift',
  'if [ -n "$r" ] && [ -e /etc/resolv.conf ]; then mount --bind "$r" /etc/resolv.conf || exit 125; fi',
  'echo ready >&3',
  'read -r go <&3 || exit 125',
  '[ "$go" = go ] || exit 125',
  `exec unshare --pid --fork --kill-child --mount-proc -- sh -c '${GUEST_INIT}' tunstack-guest "$@" 3<&-`,
].join('\n');

/** The guest of a rootless sandbox, waiting for `start`. */
export interface RootlessGuest {
  /** The process that becomes the guest's PID namespace launcher (tunstack's child). */
  readonly child: ChildProcess;
  /** Its user and network namespace files. */
  readonly userns: string;
  readonly netns: string;
  /** Run `ip ARGS` inside (as root there); throws EIO on failure. */
  ipIn(args: string[]): void;
  /** Run any command inside (as root there). */
  runIn(argv: string[]): void;
  /** Let the command run. Throws EIO when the holder is gone. */
  start(): ChildProcess;
  /** Kill it (and so everything in its namespaces) if still running; remove the resolv.conf copy. */
  dispose(): void;
}

export interface RootlessGuestOptions {
  command: string[];
  stdio?: 'inherit' | 'ignore' | 'pipe';
  /** The guest's /etc/resolv.conf ('' keeps the host's). */
  resolvConf: string;
}

/** How long the holder may take to make its namespaces. */
const HOLDER_READY_MS = 20_000;

/** Start the holder of a rootless sandbox and wait until its namespaces exist. */
export async function startRootlessGuest(o: RootlessGuestOptions): Promise<RootlessGuest> {
  let dir = '';
  let resolv = '';
  if (o.resolvConf !== '') {
    dir = mkdtempSync(join(userRuntimeDir(), 'guest-'));
    resolv = join(dir, 'resolv.conf');
    writeFileSync(resolv, o.resolvConf, { mode: 0o644 });
  }
  const s = o.stdio ?? 'inherit';
  const stdio: StdioOptions = [s, s, s, 'pipe'];
  const argv = ['--pdeathsig', 'KILL', '--', 'unshare', '--user', '--map-root-user', '--net', '--mount', '--', 'sh', '-c', HOLDER, 'tunstack-holder', resolv, ...o.command];
  const child = spawn('setpriv', argv, { stdio });
  const ctl = child.stdio[3] as Socket;
  // EPIPE/ECONNRESET when the holder is gone: its exit says what happened.
  ctl.on('error', () => {});
  const dispose = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    ctl.destroy();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let got = '';
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        ctl.removeListener('data', onData);
        child.removeListener('exit', onExit);
        child.removeListener('error', onError);
        if (err === null) resolve();
        else reject(err);
      };
      const onData = (b: Buffer): void => {
        got += b.toString('latin1');
        if (got.includes('\n')) done(got === 'ready\n' ? null : new TunstackError('EIO', `the sandbox's namespace holder said ${JSON.stringify(got)}`));
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        const why = userNamespaceReason();
        done(new TunstackError('EPERM', `could not make the sandbox's user and network namespaces (unshare ${signal ?? `exit status ${code}`})${why !== '' ? `: ${why}` : ''}`));
      };
      const onError = (e: Error): void => done(new TunstackError('ENOENT', `cannot run setpriv/unshare (util-linux): ${e.message}`));
      const timer = setTimeout(() => done(new TunstackError('ETIMEDOUT', 'the sandbox namespace holder did not start')), HOLDER_READY_MS);
      ctl.on('data', onData);
      child.once('exit', onExit);
      child.once('error', onError);
    });
  } catch (e) {
    dispose();
    throw e;
  }
  // Mounted now: the holder's mount keeps the file, and a tunstack killed later leaves no copy.
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
  const pid = child.pid!;
  const userns = `/proc/${pid}/ns/user`;
  const netns = `/proc/${pid}/ns/net`;
  const enter = nsenterArgv(netns, userns);
  const runIn = (args: string[]): ReturnType<typeof spawnSync> => spawnSync(enter[0]!, [...enter.slice(1), ...args], { encoding: 'utf8', timeout: 20_000 });
  return {
    child,
    userns,
    netns,
    ipIn(args) {
      const r = runIn(['ip', ...args]);
      if (r.status !== 0) throw new TunstackError('EIO', `ip ${args.join(' ')} in the sandbox: ${String(r.stderr || r.error?.message || '').trim()}`);
    },
    runIn(args) {
      runIn(args);
    },
    start() {
      if (child.exitCode !== null || child.signalCode !== null) throw new TunstackError('EIO', "the sandbox's namespace holder exited before its command started");
      ctl.write('go\n');
      return child;
    },
    dispose,
  };
}
