/** `tunstack sandbox [options] -- COMMAND ...`: run a command with a network served by tunstack. */
import { isIP } from 'node:net';
import { stderr, stdout } from 'node:process';
import type { PortForward } from '../sandbox/network.js';
import { version } from './args.js';

export const SANDBOX_HELP = `Usage: tunstack sandbox [options] -- COMMAND [ARGS...]
       tunstack sandbox [options] --netns PID|PATH [--userns PID|PATH] [--ifname NAME]

Run COMMAND in a new network namespace whose only link (besides lo) is a TAP served by
tunstack in this process (as slirp4netns does), and exit with COMMAND's exit status.

The guest sees:
  eth0       10.0.2.100/24 and fd00::100/64 (router advertisements announce fd00::/64)
  gateway    10.0.2.2, fd00::2: connections to it reach the host's loopback
  DNS        10.0.2.3, fd00::3: answered with the host's resolver (/etc/hosts included)
  DHCP       answers for 10.0.2.100.. (router, DNS, MTU, lease) for guests that ask
Guest TCP and UDP to any other address are relayed through host sockets; ICMP echo is relayed
through the host's ping(8) where this process may ping, else only the gateway answers.
Traffic the guest addresses to the host itself is never relayed: 127.0.0.0/8, 0.0.0.0/8, ::1,
:: and their IPv4-mapped/compatible forms (::ffff:127.0.0.1, ::127.0.0.1); the gateway is the
only way to the host's loopback. The host's interface addresses stay reachable (as with
slirp4netns) unless --disable-host-addresses.
COMMAND runs in its own PID namespace and dies with tunstack, even when tunstack is killed
with SIGKILL (needs util-linux setpriv and unshare 2.32+); a later sandbox reports and
removes what such a tunstack left.

Options:
  --mtu N                    link MTU, 1280..65520 (default 1500)
  --disable-ipv6             no IPv6 on the guest link
  --disable-host-loopback    refuse connections to the gateway (no access to host loopback)
  --disable-host-addresses   also refuse the host's own interface addresses (the guest reaches
                             no service of this host; implies --disable-host-loopback)
  -p, --publish [IP:]HOSTPORT:GUESTPORT[/tcp|/udp]
                             forward a host port into the guest (IP default 127.0.0.1;
                             the guest sees connections from 10.0.2.2); repeatable
  --pcap FILE                write the guest link's packets to FILE (pcap, Ethernet)
  --no-configure             leave eth0 unconfigured (the guest runs DHCP itself)
  --icmp auto|relay|gateway  how ICMP echo to other addresses is handled (default auto)
  --max-tcp-flows N          TCP flows at once (default 65536)
  --max-udp-flows N          UDP flows at once (default 4096; least recently used closed first)
  --udp-idle-timeout SEC     close UDP flows idle this long (default 60)
  --tcp-mem BYTES[K|M|G]     memory all TCP buffers may take together (tcp_mem's hard limit;
                             pressure at 2/3, low at 1/2; default 1/64 of RAM, 16M..512M)
  -v, --verbose              progress and relay statistics on stderr
  -V, --version              print tunstack's version
  -h, --help                 this help

Serving a namespace someone else made (as slirp4netns PID tap0, pasta PID), no COMMAND:
  --netns PID|PATH           serve this network namespace: PID's, or a namespace file such as
                             /run/netns/NAME; a TAP named IFNAME is put in it and configured
                             (unless --no-configure). Exits when it is gone: PID has exited, or
                             PATH no longer names the same namespace (unmounted, deleted)
  --userns PID|PATH          the user namespace owning it, entered to configure it
  --ifname NAME              the interface's name in the namespace (default tap0)
  --pid-file FILE            write tunstack's pid to FILE (removed at exit)
  --ready-fd N               write "1" to fd N once the network is up, then close it
  --exit-fd N                exit when fd N becomes readable or its other end is closed
  --api-socket PATH          slirp4netns's JSON API on a Unix socket: add_hostfwd,
                             list_hostfwd, remove_hostfwd (one request per connection)
A second tunstack on the same namespace is refused (exit 1).

Options take their value as --mtu 9000 or --mtu=9000; the first word that is not an option
starts COMMAND ("--" before it is clearer). Exit status: COMMAND's, 127 when it cannot be run,
128 + N when a signal N ended it, 1 when the sandbox could not be made, 2 for usage errors;
with --netns: 0 when the namespace is gone or tunstack was told to stop, 1 when it could not
serve it.

Runs as root, or rootless as any user (then /dev/net/tun must be mode 0666 and the kernel
must allow unprivileged user namespaces); needs iproute2, util-linux and tunstack's native shim.
Example: tunstack sandbox -p 8080:80 -- sh -c 'python3 -m http.server 80'
`;

export interface SandboxArgs {
  command: string[];
  mtu: number;
  ipv6: boolean;
  hostLoopback: boolean;
  hostAddresses: boolean;
  publish: PortForward[];
  pcap?: string;
  configure: boolean;
  icmp: 'auto' | 'relay' | 'gateway';
  maxTcpFlows?: number;
  maxUdpFlows?: number;
  udpIdleMs?: number;
  tcpMemory?: number;
  verbose: boolean;
  help: boolean;
  version?: boolean;
  netns?: string;
  userns?: string;
  ifname?: string;
  pidFile?: string;
  readyFd?: number;
  exitFd?: number;
  apiSocket?: string;
}

/** The options that take a non-empty string, and the field each fills. */
const STRING_OPTIONS = {
  '--pcap': 'pcap',
  '--netns': 'netns',
  '--userns': 'userns',
  '--ifname': 'ifname',
  '--pid-file': 'pidFile',
  '--api-socket': 'apiSocket',
} as const satisfies Record<string, keyof SandboxArgs>;

/** Parse `-p [IP:]HOSTPORT:GUESTPORT[/proto]`. Throws on bad input. */
export function parsePublish(spec: string): PortForward {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(spec);
  if (!m) throw new Error(`bad --publish "${spec}" (want [IP:]HOSTPORT:GUESTPORT[/tcp|/udp])`);
  const hostAddress = m[1]?.replace(/^\[|\]$/g, '');
  if (hostAddress !== undefined && isIP(hostAddress) === 0) throw new Error(`bad address in --publish "${spec}"`);
  const hostPort = Number(m[2]);
  const guestPort = Number(m[3]);
  for (const p of [hostPort, guestPort]) if (p < 1 || p > 65535) throw new Error(`port out of range in --publish "${spec}"`);
  return { protocol: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp', hostPort, guestPort, ...(hostAddress !== undefined ? { hostAddress } : {}) };
}

function intArg(name: string, v: string | undefined, lo: number, hi: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < lo || n > hi) throw new Error(`${name} wants an integer in ${lo}..${hi}`);
  return n;
}

/** A byte count with an optional binary suffix (K, M, G), at least 1 MiB. */
export function bytesArg(name: string, v: string | undefined): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(v ?? '');
  const n = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 << 20) throw new Error(`${name} wants a byte count of at least 1M (suffix K, M or G)`);
  return n;
}

/** Parse the command line (everything after "sandbox"). Throws Error with a message on bad input. */
export function parseSandboxArgs(args: string[]): SandboxArgs {
  const out: SandboxArgs = { command: [], mtu: 1500, ipv6: true, hostLoopback: true, hostAddresses: true, publish: [], configure: true, icmp: 'auto', verbose: false, help: false };
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string | undefined => (eq > 0 ? a.slice(eq + 1) : args[++i]);
    if (a === '--') {
      i++;
      break;
    }
    switch (name) {
      case '-h':
      case '--help':
        out.help = true;
        break;
      case '-V':
      case '--version':
        out.version = true;
        break;
      case '--mtu':
        out.mtu = intArg('--mtu', value(), 1280, 65520);
        break;
      case '--disable-ipv6':
      case '--no-ipv6':
        out.ipv6 = false;
        break;
      case '--ipv6':
        out.ipv6 = true;
        break;
      case '--disable-host-loopback':
        out.hostLoopback = false;
        break;
      case '--disable-host-addresses':
        out.hostAddresses = false;
        out.hostLoopback = false;
        break;
      case '-p':
      case '--publish':
        out.publish.push(parsePublish(value() ?? ''));
        break;
      case '--pcap':
      case '--netns':
      case '--userns':
      case '--ifname':
      case '--pid-file':
      case '--api-socket': {
        const v = value();
        if (!v) throw new Error(`${name} wants a ${name === '--ifname' ? 'name' : name === '--pcap' || name === '--pid-file' ? 'file name' : 'value'}`);
        out[STRING_OPTIONS[name]] = v;
        break;
      }
      case '--ready-fd':
        out.readyFd = intArg(name, value(), 0, 1 << 20);
        break;
      case '--exit-fd':
        out.exitFd = intArg(name, value(), 0, 1 << 20);
        break;
      case '--no-configure':
        out.configure = false;
        break;
      case '--icmp': {
        const v = value();
        if (v !== 'auto' && v !== 'relay' && v !== 'gateway') throw new Error('--icmp wants auto, relay or gateway');
        out.icmp = v;
        break;
      }
      case '--max-tcp-flows':
        out.maxTcpFlows = intArg(name, value(), 1, 1 << 20);
        break;
      case '--max-udp-flows':
        out.maxUdpFlows = intArg(name, value(), 1, 1 << 20);
        break;
      case '--udp-idle-timeout':
        out.udpIdleMs = intArg(name, value(), 1, 86400) * 1000;
        break;
      case '--tcp-mem':
        out.tcpMemory = bytesArg(name, value());
        break;
      case '-v':
      case '--verbose':
        out.verbose = true;
        break;
      default:
        if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
        // The command starts at the first non-option (the "--" is recommended).
        out.command = args.slice(i);
        return out;
    }
  }
  out.command = args.slice(i);
  return out;
}

export async function runSandboxCommand(args: string[]): Promise<number> {
  let parsed: SandboxArgs;
  try {
    parsed = parseSandboxArgs(args);
  } catch (e) {
    stderr.write(`tunstack sandbox: ${(e as Error).message}\n\n${SANDBOX_HELP}`);
    return 2;
  }
  if (parsed.help) {
    stdout.write(SANDBOX_HELP);
    return 0;
  }
  if (parsed.version === true) {
    stdout.write(`tunstack ${version()}\n`);
    return 0;
  }
  const attachOnly = (['userns', 'ifname', 'pidFile', 'readyFd', 'exitFd', 'apiSocket'] as const).filter((k) => parsed[k] !== undefined);
  if (parsed.netns === undefined && attachOnly.length > 0) {
    stderr.write(`tunstack sandbox: --${attachOnly[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --netns\n\n${SANDBOX_HELP}`);
    return 2;
  }
  if (parsed.netns !== undefined && parsed.command.length > 0) {
    stderr.write(`tunstack sandbox: --netns serves an existing namespace and runs no COMMAND (got ${parsed.command[0]!})\n\n${SANDBOX_HELP}`);
    return 2;
  }
  if (parsed.netns === undefined && parsed.command.length === 0) {
    stderr.write(`tunstack sandbox: no command given\n\n${SANDBOX_HELP}`);
    return 2;
  }
  const common = {
    mtu: parsed.mtu,
    ipv6: parsed.ipv6,
    hostLoopback: parsed.hostLoopback,
    hostAddresses: parsed.hostAddresses,
    publish: parsed.publish,
    configure: parsed.configure,
    icmp: parsed.icmp,
    verbose: parsed.verbose,
    ...(parsed.pcap !== undefined ? { pcap: parsed.pcap } : {}),
    limits: {
      ...(parsed.maxTcpFlows !== undefined ? { maxTcpFlows: parsed.maxTcpFlows } : {}),
      ...(parsed.maxUdpFlows !== undefined ? { maxUdpFlows: parsed.maxUdpFlows } : {}),
      ...(parsed.udpIdleMs !== undefined ? { udpIdleMs: parsed.udpIdleMs } : {}),
      ...(parsed.tcpMemory !== undefined ? { tcpMemory: parsed.tcpMemory } : {}),
    },
  };
  if (parsed.netns !== undefined) {
    const { attachSandbox } = await import('../sandbox/attach.js');
    try {
      return await attachSandbox({
        ...common,
        netns: parsed.netns,
        ...(parsed.userns !== undefined ? { userns: parsed.userns } : {}),
        ...(parsed.ifname !== undefined ? { ifname: parsed.ifname } : {}),
        ...(parsed.pidFile !== undefined ? { pidFile: parsed.pidFile } : {}),
        ...(parsed.readyFd !== undefined ? { readyFd: parsed.readyFd } : {}),
        ...(parsed.exitFd !== undefined ? { exitFd: parsed.exitFd } : {}),
        ...(parsed.apiSocket !== undefined ? { apiSocket: parsed.apiSocket } : {}),
      });
    } catch (e) {
      stderr.write(`tunstack sandbox: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const { runSandbox } = await import('../sandbox/run.js');
  try {
    return await runSandbox({ command: parsed.command, ...common });
  } catch (e) {
    stderr.write(`tunstack sandbox: ${(e as Error).message}\n`);
    return 125;
  }
}
