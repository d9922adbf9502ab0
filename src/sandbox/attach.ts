/**
 * Serving a network namespace someone else made (`tunstack sandbox --netns PID|PATH`), as
 * `slirp4netns PID tap0` and `pasta PID` do for container engines:
 *
 *   1. The namespace is `/proc/PID/ns/net` for a PID, else the PATH given (a bind mount such as
 *      /run/netns/NAME, or any nsfs file). Its identity (device and inode) keys a lock (an
 *      abstract Unix socket, see lockNamespace) and /run/tunstack/netns-DEV-INO.lock naming its
 *      holder: a second tunstack on the same namespace is refused while the first runs.
 *   2. A TAP is opened here (as for a namespace of our own) and moved into the namespace with
 *      `ip link set DEV netns PATH`, renamed IFNAME (default tap0, as slirp4netns), configured with
 *      `nsenter --net=PATH [--user=USERNS] ip ...` unless `configure: false`.
 *   3. `--pid-file` is written, '1' is written to `--ready-fd` (then closed), port forwards and
 *      the `--api-socket` start.
 *   4. It serves until the namespace is gone: for a PID, until that process has exited (a zombie
 *      counts as exited); for a PATH, until the path no longer names the same namespace (unmounted,
 *      removed with `ip netns del`, or a /proc/PID/ns/net whose process exited). Also until
 *      `--exit-fd` becomes readable or is closed (its writer exited: slirp4netns's rule), or
 *      SIGINT/SIGTERM/SIGHUP. Then the API socket, the pid file and the lock are removed and the
 *      TAP closed (the kernel deletes its device from the namespace, if the namespace still exists).
 *
 * As an unprivileged user (rootless.ts) it works when the user owns the namespace's user
 * namespace (as rootless container engines make them): the TAP is made inside, entering that user
 * namespace (`--userns`, else the PID's own), and its fd handed back; the lock file is kept in the
 * user's runtime directory.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { resolve } from 'node:path';
import { TunstackError } from '../core/errors.js';
import { installSeccompFilter } from '../host/seccomp.js';
import type { HostTap } from '../host/tap.js';
import { HostFwdApi, listenApiSocket } from './api-socket.js';
import { AutoPorts, type AutoPortsOptions } from './auto-ports.js';
import { reportStats } from './report.js';
import { SANDBOX_DEFAULTS, SandboxNetwork, type PortForward, type SandboxNetworkOptions } from './network.js';
import { isRootless, nsenterArgv, openTapInNamespace, userRuntimeDir } from './rootless.js';
import { configureGuestLink, ip, openSandboxTap, SANDBOX_TAP_QUEUE, sandboxUnavailableReason } from './run.js';

/** Where the per-namespace locks live. */
export const ATTACH_LOCK_DIR = '/run/tunstack';
/** How often the namespace's liveness is checked. */
const POLL_MS = 100;

export interface SandboxAttachOptions extends Omit<SandboxNetworkOptions, 'link'> {
  /** The namespace: a PID (its network namespace) or the path of a namespace file. */
  netns: string;
  /** The user namespace that owns it (PID or path), entered to configure it. */
  userns?: string;
  /** The guest interface's name (default tap0). */
  ifname?: string;
  /** The guest interface's MAC address (slirp4netns --macaddress; default the kernel's random one). */
  mac?: string;
  publish?: PortForward[];
  configure?: boolean;
  /** Write this process's pid here once serving (removed at exit). */
  pidFile?: string;
  /** Write '1' to this fd once serving, then close it. */
  readyFd?: number;
  /** Exit once this fd becomes readable or is closed at the other end. */
  exitFd?: number;
  /** slirp4netns's JSON API on a Unix socket at this path. */
  apiSocket?: string;
  verbose?: boolean;
  /** Also every relay counter at the end (one JSON line). */
  debug?: boolean;
  /** Follow the guest's bound ports (pasta's -t auto / -u auto). */
  autoPorts?: AutoPortsOptions;
  /** Install tunstack's seccomp filter (host/seccomp.ts) on this process once serving. */
  seccomp?: boolean;
}

/** Whether process `pid` runs (a zombie does not). */
export function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The identity of namespace file `path` ("DEV-INO"), or null when it is gone. */
function nsIdentity(path: string): string | null {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}-${st.ino}`;
  } catch {
    return null;
  }
}

/** A namespace argument as a PID (when all digits) and a path. */
function nsPath(arg: string, kind: 'net' | 'user'): { pid: number | null; path: string } {
  if (/^\d+$/.test(arg)) {
    const pid = Number(arg);
    if (!Number.isSafeInteger(pid) || pid < 1) throw new TunstackError('EINVAL', `bad PID ${arg}`);
    return { pid, path: `/proc/${pid}/ns/${kind}` };
  }
  if (arg === '') throw new TunstackError('EINVAL', `empty ${kind} namespace path`);
  return { pid: null, path: resolve(arg) };
}

/** "PID STARTTIME" for process `pid` (start time in clock ticks since boot), or null when it is gone: a pid reused later has another start time. */
function processStamp(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields from the state (3rd of stat(5)) on: the start time is the 22nd.
    return fields[0] === 'Z' ? null : `${pid} ${fields[22 - 3]}`;
  } catch {
    return null;
  }
}

/**
 * Take the lock on the namespace with identity `id` for this process; throws EBUSY naming the
 * tunstack that holds it. The lock itself is an abstract Unix socket `tunstack-netns-ID` bound in
 * tunstack's own (the host's) network namespace: only one process can bind it, and the kernel
 * releases it when that process dies however it dies, so there is no stale lock and no race.
 * The file DIR/netns-ID.lock says who holds it ("PID STARTTIME"), for people and for the message.
 */
export async function lockNamespace(id: string, dir = ATTACH_LOCK_DIR): Promise<{ file: string; release: () => void }> {
  const file = `${dir}/netns-${id}.lock`;
  const server = createServer();
  server.unref();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(`\0tunstack-netns-${id}`, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    let holder = '';
    try {
      holder = readFileSync(file, 'utf8').trim().split(' ')[0] ?? '';
    } catch {
      /* not written yet */
    }
    throw new TunstackError('EBUSY', `this network namespace is already served by tunstack (${/^\d+$/.test(holder) ? `pid ${holder}, ` : ''}lock ${file})`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileSync(file, `${processStamp(process.pid) ?? process.pid}\n`, { mode: 0o644 });
  // Files of tunstacks that were killed (their holder gone) are removed.
  for (const f of readdirSync(dir)) {
    if (!/^netns-\d+-\d+\.lock$/.test(f) || `${dir}/${f}` === file) continue;
    try {
      const stamp = readFileSync(`${dir}/${f}`, 'utf8').trim();
      if (processStamp(Number(stamp.split(' ')[0])) !== stamp) rmSync(`${dir}/${f}`, { force: true });
    } catch {
      /* removed meanwhile */
    }
  }
  return {
    file,
    release: () => {
      rmSync(file, { force: true });
      server.close();
    },
  };
}

/** Serve an existing namespace until it is gone (or told to stop); resolves with the exit status. */
export async function attachSandbox(options: SandboxAttachOptions): Promise<number> {
  const why = sandboxUnavailableReason();
  if (why !== '') throw new TunstackError('EPERM', `cannot serve a namespace: ${why}`);
  const mtu = options.mtu ?? SANDBOX_DEFAULTS.mtu;
  const ifname = options.ifname ?? 'tap0';
  if (!/^[^\s/:]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..') throw new TunstackError('EINVAL', `bad interface name "${ifname}"`);
  const log = (m: string): void => {
    if (options.verbose === true || options.debug === true) process.stderr.write(`tunstack sandbox: ${m}\n`);
  };
  const target = nsPath(options.netns, 'net');
  const id = nsIdentity(target.path);
  if (id === null && target.pid !== null && processRunning(target.pid) && isRootless()) {
    throw new TunstackError('EACCES', `cannot open ${target.path}: process ${target.pid} is another user's (an unprivileged tunstack serves only its own user's namespaces)`);
  }
  if (id === null || (target.pid !== null && !processRunning(target.pid))) throw new TunstackError('ENOENT', `no network namespace at ${target.path}`);
  const rootless = isRootless();
  // Rootless, the user namespace owning the target is entered: a PID's own unless told.
  const userns = options.userns !== undefined ? nsPath(options.userns, 'user').path : rootless && target.pid !== null ? `/proc/${target.pid}/ns/user` : undefined;
  const enter = nsenterArgv(target.path, userns);
  const probe = spawnSync(enter[0]!, [...enter.slice(1), 'true'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.status !== 0) throw new TunstackError('EINVAL', `cannot enter ${target.path}${userns !== undefined ? ` (user namespace ${userns})` : ''}: ${(probe.stderr || probe.error?.message || '').trim()}`);
  const ipIn = (args: string[]): void => {
    const r = spawnSync(enter[0]!, [...enter.slice(1), 'ip', ...args], { encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new TunstackError('EIO', `ip ${args.join(' ')} in ${target.path}: ${(r.stderr || r.error?.message || '').trim()}`);
  };

  const lock = await lockNamespace(id, rootless ? userRuntimeDir() : ATTACH_LOCK_DIR);
  let network: SandboxNetwork | null = null;
  let tap: HostTap | null = null;
  let api: HostFwdApi | null = null;
  let auto: AutoPorts | null = null;
  let apiClose: (() => void) | null = null;
  let pidFileWritten = false;
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    apiClose?.();
    api?.close();
    auto?.stop();
    try {
      network?.close();
    } catch {
      /* best effort */
    }
    if (tap !== null && !tap.closed) tap.close();
    if (pidFileWritten && options.pidFile !== undefined) rmSync(options.pidFile, { force: true });
    lock.release();
    log(`stopped serving ${target.path}`);
  };
  process.once('exit', cleanup);

  let stop: (why: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (sig: NodeJS.Signals): void => stop(sig);
  let watch: NodeJS.Timeout | null = null;
  let exitSock: Socket | null = null;
  try {
    // Another program's interface of that name (or a tunstack that is not ours) is not replaced.
    const exists = spawnSync(enter[0]!, [...enter.slice(1), 'ip', 'link', 'show', 'dev', ifname], { stdio: 'ignore', timeout: 10_000 });
    if (exists.status === 0) throw new TunstackError('EEXIST', `${target.path} already has an interface ${ifname}`);
    const opened = rootless ? openTapInNamespace({ userns: userns ?? '', netns: target.path, name: ifname, mtu }) : openSandboxTap(mtu);
    tap = opened.tap;
    network = new SandboxNetwork({ ...options, link: opened.ep, mtu, memoryGuard: options.memoryGuard ?? true });
    if (rootless) {
      ipIn(['link', 'set', ifname, 'txqueuelen', String(SANDBOX_TAP_QUEUE)]);
    } else {
      ip(['link', 'set', opened.dev, 'netns', target.path]);
      ipIn(['link', 'set', opened.dev, 'name', ifname]);
    }
    const configure = options.configure ?? true;
    if (configure) ipIn(['link', 'set', 'lo', 'up']);
    configureGuestLink(ipIn, ifname, network, configure, (argv) => spawnSync(enter[0]!, [...enter.slice(1), ...argv], { stdio: 'ignore', timeout: 10_000 }), options.mac);
    for (const f of options.publish ?? []) await network.publish(f);
    if (options.autoPorts !== undefined && (options.autoPorts.tcp || options.autoPorts.udp)) {
      auto = new AutoPorts(network, enter, options.autoPorts, log, (m) => process.stderr.write(`tunstack sandbox: ${m}\n`), options.publish);
      await auto.start();
    }
    if (options.apiSocket !== undefined) {
      api = new HostFwdApi(network);
      apiClose = (await listenApiSocket(options.apiSocket, api)).close;
    }
    if (options.pidFile !== undefined) {
      writeFileSync(options.pidFile, `${process.pid}\n`);
      pidFileWritten = true;
    }
    for (const sig of signals) process.on(sig, onSignal);
    watch = setInterval(() => {
      if (target.pid !== null && !processRunning(target.pid)) stop(`process ${target.pid} exited`);
      else if (nsIdentity(target.path) !== id) stop(`${target.path} no longer names the namespace`);
    }, POLL_MS);
    if (options.exitFd !== undefined) {
      const s = new Socket({ fd: options.exitFd, readable: true, writable: false });
      exitSock = s;
      s.on('data', () => stop('exit-fd readable'));
      s.on('end', () => stop('exit-fd closed'));
      s.on('error', (e) => stop(`exit-fd: ${e.message}`));
    }
    if (options.seccomp === true) {
      const denied = installSeccompFilter();
      log(`seccomp: ${denied.length} system calls denied (${denied.join(', ')})`);
    }
    log(`serving ${target.path} as ${ifname} (${opened.dev}) MTU ${mtu}, offloads 0x${opened.ep.offloadFlags.toString(16)}`);
    if (options.readyFd !== undefined) {
      try {
        writeSync(options.readyFd, '1');
        closeSync(options.readyFd);
      } catch (e) {
        process.stderr.write(`tunstack sandbox: --ready-fd ${options.readyFd}: ${(e as Error).message}\n`);
      }
    }
    const reason = await stopped;
    log(`stopping: ${reason}`);
    reportStats(network.stats, options, log);
    return 0;
  } finally {
    if (watch !== null) clearInterval(watch);
    exitSock?.destroy();
    for (const sig of signals) process.removeListener(sig, onSignal);
    cleanup();
    process.removeListener('exit', cleanup);
  }
}
