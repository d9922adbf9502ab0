/**
 * Running a command in a sandbox: a new network namespace whose only link (besides lo) is a TAP
 * served by tunstack (SandboxNetwork), the way slirp4netns gives a rootless container its
 * network.
 *
 *   1. `ip netns add` a namespace; /etc/netns/<name>/resolv.conf names 10.0.2.3 (ip netns exec
 *      bind-mounts it over /etc/resolv.conf for the command).
 *   2. Open a TAP here (HostTap, IFF_VNET_HDR with the kernel's offloads), then move its kernel
 *      side into the namespace as eth0: the fd stays with this process.
 *   3. Configure eth0 inside: 10.0.2.100/24, fd00::100/64, MTU, up, default routes via the
 *      gateway (unless `configure: false`, when the guest must ask DHCP / listen for RAs).
 *   4. Run the command with `ip netns exec`, stdio inherited, in its own PID namespace whose init
 *      dies with this process (guest-process.ts), so the command and everything it started end
 *      with tunstack even when tunstack is killed with SIGKILL; SIGINT/SIGTERM/SIGHUP/SIGQUIT are
 *      passed on to the command (a second one kills it).
 *   5. When it exits (or crashes, or this process is told to stop), clean up: processes left in
 *      the namespace are killed, the relays closed, the TAP closed (the kernel removes it), the
 *      namespace deleted, /etc/netns/<name> removed. The command's exit status is returned
 *      (128 + signal number when a signal ended it). A tunstack killed with SIGKILL cannot clean
 *      up: its TAP goes with its fd, its guest dies with it (PID namespace), and the next sandbox
 *      reports and removes the namespace it left, killing anything still running there.
 *
 * As an unprivileged user the namespaces are made by a user namespace instead, and the TAP opened
 * inside and handed over (rootless.ts); the rest is the same.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { TunstackError } from '../core/errors.js';
import { HostTap } from '../host/tap.js';
import { nativeUnavailableReason } from '../host/native.js';
import { FdEndpoint } from '../host/fd.js';
import { sendBlocksInUse, sendBlocksPooled } from '../transport/tcp/buffers.js';
import { IFF_NO_PI, IFF_TAP, IFF_VNET_HDR } from '../tundev/constants.js';
import { AutoPorts, type AutoPortsOptions } from './auto-ports.js';
import { reportStats } from './report.js';
import { guestCommandPids, guestLauncher, killNamespaceProcesses } from './guest-process.js';
import { isRootless, openTapInNamespace, rootlessUnavailableReason, startRootlessGuest, type RootlessGuest } from './rootless.js';
import { DEFAULT_ADDRESSES } from './addresses.js';
import { installSeccompFilter } from '../host/seccomp.js';
import { SANDBOX_DEFAULTS, SandboxNetwork, type PortForward, type SandboxNetworkOptions } from './network.js';

/** The sandbox TAP's transmit queue (packets from the guest waiting for tunstack), Linux default 1000. */
export const SANDBOX_TAP_QUEUE = 4096;

export interface SandboxRunOptions extends Omit<SandboxNetworkOptions, 'link'> {
  /** The command and its arguments. */
  command: string[];
  /** Published ports. */
  publish?: PortForward[];
  /** Configure the guest's addresses and routes (default true); false leaves eth0 up and bare. */
  configure?: boolean;
  /** Namespace name (default tunstack-<pid>-<n>). */
  name?: string;
  /** The guest interface's name (default eth0). */
  ifname?: string;
  /** The guest interface's MAC address (default the kernel's random one). */
  mac?: string;
  /** Progress and a readable summary of the relays on stderr. */
  verbose?: boolean;
  /** Also every relay counter (one JSON line), and implies verbose. */
  debug?: boolean;
  /** Errors only: no notice about sandboxes a killed tunstack left. */
  quiet?: boolean;
  /** Follow the guest's bound ports (pasta's -t auto / -u auto). */
  autoPorts?: AutoPortsOptions;
  /**
   * Install tunstack's seccomp filter (host/seccomp.ts) on this process once the command has been
   * spawned (the command itself is not filtered). Note that it stays for the process's lifetime.
   */
  seccomp?: boolean;
  /** Called once the network is up, before the command starts (tests, benchmarks). */
  onReady?: (info: { namespace: string; network: SandboxNetwork; tap: string }) => void;
  /** Child stdio (default 'inherit'). */
  stdio?: 'inherit' | 'ignore' | 'pipe';
  /** Called with the child when started (stdio 'pipe'). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Why a sandbox cannot run here ('' when it can). */
export function sandboxUnavailableReason(): string {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  const why = nativeUnavailableReason();
  if (why !== '') return why;
  if (spawnSync('ip', ['-V']).status !== 0) return 'iproute2 (`ip`) missing';
  return isRootless() ? rootlessUnavailableReason() : '';
}

let counter = 0;

/** Whether process `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

export interface StaleSandbox {
  /** The namespace name, `tunstack-<pid>-<n>`. */
  name: string;
  /** Processes that were still running in it (killed). */
  processes: number;
}

/**
 * Sandboxes whose tunstack process is gone (killed with SIGKILL, so it could not clean up):
 * namespaces `tunstack-<pid>-<n>` with no process <pid>. Processes still running in them are
 * killed, the namespaces and their /etc/netns entries removed (also /etc/netns entries whose
 * namespace is already gone). Returns what was found.
 */
export function removeStaleSandboxes(): StaleSandbox[] {
  const out = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const removed: StaleSandbox[] = [];
  for (const line of out.split('\n')) {
    const m = /^(tunstack-(\d+)-\d+)\b/.exec(line);
    if (!m || alive(Number(m[2]))) continue;
    const processes = killNamespaceProcesses(m[1]!);
    spawnSync('ip', ['netns', 'del', m[1]!]);
    rmSync(`/etc/netns/${m[1]!}`, { recursive: true, force: true });
    removed.push({ name: m[1]!, processes });
  }
  let entries: string[] = [];
  try {
    entries = readdirSync('/etc/netns');
  } catch {
    /* none */
  }
  for (const e of entries) {
    const m = /^tunstack-(\d+)-\d+$/.exec(e);
    if (m && !alive(Number(m[1])) && !existsSync(`/run/netns/${e}`)) rmSync(`/etc/netns/${e}`, { recursive: true, force: true });
  }
  return removed;
}

/**
 * A TAP for a sandbox, opened here (IFF_VNET_HDR with the kernel's offloads) with its queue
 * length and MTU set, and the FdEndpoint serving it; the caller moves it into the guest's namespace.
 */
export function openSandboxTap(mtu: number): { tap: HostTap; ep: FdEndpoint; dev: string } {
  const tap = HostTap.open({ name: `tsb${(process.pid % 1_000_000).toString(36)}${(counter++).toString(36)}`.slice(0, 15), flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR });
  try {
    tap.mtu = mtu;
    // The guest's packets wait in this queue while tunstack's event loop is busy: 1000 (the
    // default) overflows under bursts of small datagrams on a loaded machine; TCP is bounded by
    // tunstack's windows whatever the length.
    tap.txQueueLength = SANDBOX_TAP_QUEUE;
    // The relay terminates every guest connection: TSO super-packets are taken whole. The queue
    // is the sandbox's own (above), not FdEndpoint's default.
    return { tap, ep: new FdEndpoint(tap, { mtu, keepTcpGso: true, txQueueLength: null }), dev: tap.name };
  } catch (e) {
    tap.close();
    throw e;
  }
}

/**
 * Configure the guest's link `dev` inside its namespace, through `ipIn` (runs `ip ARGS` there,
 * throwing on failure) and `runIn` (runs any command there): its MAC address when one is given,
 * IPv6 off when the network has none; with `configure`, the guest addresses, link up and default
 * routes via the gateway; without, the link only goes up (the guest asks DHCP / listens for
 * router advertisements).
 */
export function configureGuestLink(ipIn: (args: string[]) => void, dev: string, network: SandboxNetwork, configure: boolean, runIn: (argv: string[]) => unknown, mac?: string): void {
  const d = network.addresses;
  if (mac !== undefined) ipIn(['link', 'set', 'dev', dev, 'address', mac]);
  if (!network.ipv6) runIn(['sysctl', '-q', '-w', `net.ipv6.conf.${dev}.disable_ipv6=1`]);
  if (configure) {
    if (network.ipv4) ipIn(['addr', 'add', `${d.guest4}/${d.prefix4}`, 'dev', dev]);
    if (network.ipv6) ipIn(['addr', 'add', `${d.guest6}/64`, 'dev', dev, 'nodad']);
  }
  ipIn(['link', 'set', dev, 'up']);
  if (configure) {
    if (network.ipv4) ipIn(['route', 'add', 'default', 'via', d.gateway4, 'dev', dev]);
    if (network.ipv6) ipIn(['-6', 'route', 'add', 'default', 'via', d.gateway6, 'dev', dev]);
  }
}

/** The guest's /etc/resolv.conf: the DNS addresses the network answers on (none with DNS off). */
export function guestResolvConf(network: SandboxNetwork): string {
  const d = network.addresses;
  return `${network.dns !== null ? `nameserver ${d.dns4}\n` : ''}${network.dns6 !== null ? `nameserver ${d.dns6}\n` : ''}`;
}

export function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new TunstackError('EIO', `ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

/**
 * A diagnostic for memory benchmarks (env TUNSTACK_DEBUG_MEMORY set): each SIGUSR2 writes one JSON
 * line to stderr with the process's memory figures, the TCP budget's charge, its current hard limit
 * (set by the memory guard) and the guard's last "rest" and RSS growth, and the send blocks.
 */
function debugMemoryOnSignal(current: () => SandboxNetwork | null): () => void {
  const onSignal = (): void => {
    const network = current();
    if (network === null) {
      process.stderr.write('tunstack memory {"starting":true}\n');
      return;
    }
    const m = process.memoryUsage();
    const mib = (n: number): number => Math.round((n / 1048576) * 10) / 10;
    const line = {
      rss: mib(m.rss),
      heapTotal: mib(m.heapTotal),
      heapUsed: mib(m.heapUsed),
      external: mib(m.external),
      arrayBuffers: mib(m.arrayBuffers),
      tcpCharged: mib(network.stats.tcpMemory.memoryAllocated),
      tcpQueued: mib(network.tcp.queuedToGuest),
      blocksInUse: sendBlocksInUse(),
      blocksPooled: sendBlocksPooled(),
      flows: network.stats.tcp.active,
      tcpBudget: mib(network.stats.tcpMemory.limit),
      guardRest: network.memoryGuard === null ? null : mib(network.memoryGuard.rest),
      guardGrowth: network.memoryGuard === null ? null : mib(network.memoryGuard.growth),
    };
    process.stderr.write(`tunstack memory ${JSON.stringify(line)}\n`);
  };
  process.on('SIGUSR2', onSignal);
  return () => process.removeListener('SIGUSR2', onSignal);
}

/** Run `options.command` in a sandbox; resolves with its exit status. */
export async function runSandbox(options: SandboxRunOptions): Promise<number> {
  const why = sandboxUnavailableReason();
  if (why !== '') throw new TunstackError('EPERM', `cannot make a sandbox: ${why}`);
  if (options.command.length === 0) throw new TunstackError('EINVAL', 'no command to run');
  const d = SANDBOX_DEFAULTS;
  const mtu = options.mtu ?? d.mtu;
  const ns = options.name ?? `tunstack-${process.pid}-${counter++}`;
  const etcDir = `/etc/netns/${ns}`;
  const log = (m: string): void => {
    if (options.verbose === true || options.debug === true) process.stderr.write(`tunstack sandbox: ${m}\n`);
  };

  const rootless = isRootless();
  // Reported unless quiet: a killed tunstack left these, and what ran in them is killed now.
  for (const st of rootless ? [] : removeStaleSandboxes()) {
    if (options.quiet !== true) process.stderr.write(`tunstack sandbox: removed ${st.name}, left by a tunstack that was killed${st.processes > 0 ? `; killed ${st.processes} process(es) still running in it` : ''}\n`);
  }

  let network: SandboxNetwork | null = null;
  let auto: AutoPorts | null = null;
  let tap: HostTap | null = null;
  let nsMade = false;
  let child: ChildProcess | null = null;
  let guest: RootlessGuest | null = null;
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    stopDebug?.();
    auto?.stop();
    if (child !== null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // Whatever the command left running in the namespace goes with it.
    if (nsMade) killNamespaceProcesses(ns);
    try {
      network?.close();
    } catch {
      /* best effort */
    }
    if (tap !== null && !tap.closed) tap.close();
    guest?.dispose();
    if (nsMade) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(etcDir, { recursive: true, force: true });
    log(`cleaned up ${ns}`);
  };
  // Also when this process dies of an uncaught error.
  process.once('exit', cleanup);
  const stopDebug = process.env.TUNSTACK_DEBUG_MEMORY ? debugMemoryOnSignal(() => network) : null;

  try {
    // What the guest's resolv.conf says, before the network exists (a rootless guest mounts it first).
    const addrs = options.addresses ?? DEFAULT_ADDRESSES;
    const serveDns = options.dns !== false;
    const resolvConf = `${serveDns && options.ipv4 !== false ? `nameserver ${addrs.dns4}\n` : ''}${serveDns && options.ipv6 !== false ? `nameserver ${addrs.dns6}\n` : ''}`;
    const ifname = options.ifname ?? 'eth0';
    let opened: ReturnType<typeof openSandboxTap>;
    let ipIn: (args: string[]) => void;
    let runIn: (argv: string[]) => unknown;
    let nsenter: string[];
    let where: string;
    if (rootless) {
      guest = await startRootlessGuest({ command: options.command, stdio: options.stdio, resolvConf });
      child = guest.child;
      opened = openTapInNamespace({ userns: guest.userns, netns: guest.netns, name: ifname, mtu });
      tap = opened.tap;
      ({ ipIn, runIn } = guest);
      ipIn(['link', 'set', ifname, 'txqueuelen', String(SANDBOX_TAP_QUEUE)]);
      nsenter = ['nsenter', `--user=${guest.userns}`, `--net=${guest.netns}`];
      where = `rootless: user+network namespaces of pid ${child.pid}`;
    } else {
      ip(['netns', 'add', ns]);
      nsMade = true;
      mkdirSync(etcDir, { recursive: true });
      writeFileSync(`${etcDir}/resolv.conf`, resolvConf);
      opened = openSandboxTap(mtu);
      tap = opened.tap;
      ip(['link', 'set', opened.dev, 'netns', ns]);
      ip(['-n', ns, 'link', 'set', opened.dev, 'name', ifname]);
      ipIn = (args) => ip(['-n', ns, ...args]);
      runIn = (args) => spawnSync('ip', ['netns', 'exec', ns, ...args]);
      nsenter = ['nsenter', `--net=/run/netns/${ns}`];
      where = `namespace ${ns}`;
    }
    const { ep, dev } = opened;
    network = new SandboxNetwork({ ...options, link: ep, mtu, memoryGuard: options.memoryGuard ?? true });
    ipIn(['link', 'set', 'lo', 'up']);
    configureGuestLink(ipIn, ifname, network, options.configure ?? true, runIn, options.mac);
    for (const f of options.publish ?? []) await network.publish(f);
    if (options.autoPorts !== undefined && (options.autoPorts.tcp || options.autoPorts.udp)) {
      auto = new AutoPorts(network, nsenter, options.autoPorts, log, (m) => process.stderr.write(`tunstack sandbox: ${m}\n`), options.publish);
      await auto.start();
    }
    log(`${where}, ${ifname} (${dev}) MTU ${mtu}, offloads 0x${ep.offloadFlags.toString(16)}; ICMP ${network.icmpNote === '' ? 'relayed' : `gateway only (${network.icmpNote})`}`);
    options.onReady?.({ namespace: guest?.netns ?? ns, network, tap: dev });
  } catch (e) {
    cleanup();
    process.removeListener('exit', cleanup);
    throw e;
  }

  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  const handlers = new Map<NodeJS.Signals, () => void>();
  let told = 0;
  let seccompFailed = false;
  try {
    // A rootless guest's holder execs the same launcher.
    const launcher = guest !== null ? { prefix: ['(rootless)'], note: '' } : guestLauncher();
    if (launcher.note !== '') log(launcher.note);
    const status = await new Promise<number>((resolve) => {
      const c = guest !== null ? guest.start() : spawn('ip', ['netns', 'exec', ns, ...launcher.prefix, ...options.command], { stdio: options.stdio ?? 'inherit' });
      child = c;
      options.onSpawn?.(c);
      if (options.seccomp === true) {
        try {
          const denied = installSeccompFilter();
          log(`seccomp: ${denied.length} system calls denied (${denied.join(', ')})`);
        } catch (e) {
          process.stderr.write(`tunstack sandbox: --enable-seccomp: ${(e as Error).message}; stopping the command\n`);
          seccompFailed = true;
          c.kill('SIGKILL');
        }
      }
      for (const sig of signals) {
        const h = (): void => {
          told++;
          log(`${sig}: passing it on${told > 1 ? ' (again: SIGKILL)' : ''}`);
          if (c.exitCode !== null || c.signalCode !== null) return;
          // Under the launcher the command is its init's child; before it has started (or on a
          // second signal) the launcher is killed, which takes the whole PID namespace.
          const targets = launcher.prefix.length > 0 && told === 1 && c.pid !== undefined ? guestCommandPids(c.pid) : [];
          if (targets.length === 0) {
            c.kill(told > 1 || launcher.prefix.length > 0 ? 'SIGKILL' : sig);
            return;
          }
          for (const pid of targets) {
            try {
              process.kill(pid, sig);
            } catch {
              /* gone meanwhile */
            }
          }
        };
        handlers.set(sig, h);
        process.on(sig, h);
      }
      c.once('error', (err) => {
        process.stderr.write(`tunstack sandbox: cannot run ${options.command[0]}: ${err.message}\n`);
        resolve(127);
      });
      c.once('exit', (code, signal) => {
        if (seccompFailed) resolve(125);
        else if (signal !== null) resolve(128 + (osConstants.signals[signal] ?? 0));
        else resolve(code ?? 1);
      });
    });
    if (network !== null) reportStats(network.stats, options, log);
    return status;
  } finally {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
    cleanup();
    process.removeListener('exit', cleanup);
  }
}
