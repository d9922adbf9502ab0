/**
 * `tunstack vm --socket PATH | --dgram PATH | --listen-tcp HOST:PORT | --listen-udp HOST:PORT | --ws HOST:PORT [options]
 * [-- COMMAND ...]`: serve the
 * sandbox's guest network (SandboxNetwork on a FramePort) to a virtual machine over QEMU's stream
 * framing, its datagram framing (unix or UDP) or v86's WebSocket relay, and with a COMMAND run the VM monitor as a child and exit with its status.
 */
import { spawn } from 'node:child_process';
import { isIP } from 'node:net';
import { constants as osConstants } from 'node:os';
import { stderr } from 'node:process';
import type { PortForward, SandboxLimits } from '../sandbox/network.js';
import { numberOption, parseCommand, usageError } from './args.js';
import { bytesArg, parsePublish } from './sandbox.js';

export const VM_HELP = `Usage: tunstack vm (--socket PATH | --dgram PATH | --listen-tcp HOST:PORT | --listen-udp HOST:PORT
                    | --ws HOST:PORT)
                   [options]
                   [-- COMMAND [ARGS...]]

Serve a virtual machine the network "tunstack sandbox" gives a namespace (guest 10.0.2.100 by
DHCP, gateway 10.0.2.2 = the host's loopback, DNS 10.0.2.3, relays of the guest's TCP, UDP
and ICMP echo through host sockets, the same host-policy rules), over a socket carrying its
Ethernet frames in QEMU's stream framing (a 32-bit big-endian length, then the frame), or
one frame per datagram (unix or UDP), or one WebSocket message per frame (v86). One guest at a
time (with --ws, see below); a guest that disconnects may connect again.

  --socket PATH              listen on a unix socket; QEMU 7.2+:
                               -netdev stream,id=n0,server=off,addr.type=unix,addr.path=PATH
                               -device e1000,netdev=n0
  --dgram PATH               bind a unix datagram socket, one frame per datagram; the first
                             sender is the guest (needs the native shim); QEMU 7.2+:
                               -netdev dgram,id=n0,local.type=unix,local.path=QPATH,
                                 remote.type=unix,remote.path=PATH
  --listen-tcp HOST:PORT     listen on TCP (keep HOST a loopback address); older QEMU:
                               -netdev socket,id=n0,connect=HOST:PORT -device e1000,netdev=n0
  --listen-udp HOST:PORT     one frame per datagram; the first sender is the guest (others are
                             dropped); QEMU 7.2+ (pick any free QPORT):
                               -netdev dgram,id=n0,local.type=inet,local.host=HOST,
                                 local.port=QPORT,remote.type=inet,remote.host=HOST,remote.port=PORT
  --ws HOST:PORT             a WebSocket relay, one binary message per frame (v86's relay):
                               net_device: { type: 'ne2k', relay_url: 'ws://HOST:PORT/' }
                             (a Linux guest on v86's ne2k needs README's ELCR line: v86's PIC
                             can lose the NIC's interrupts for good without it)
                             each connection gets its own guest network unless --ws-shared
  --ws-origin ORIGIN         let browser pages from ORIGIN connect (e.g. http://localhost:8080;
                             '*' any); repeatable. Requests with another Origin are refused (403);
                             clients sending no Origin (Node, not a browser) are allowed
  --ws-shared                one guest network for all connections, a learning switch between
                             them (guests see each other; DHCP leases .100, .101, ...)
  --ws-max-guests N          connections at once (default 8; more are refused with 503)

With "-- COMMAND ...", COMMAND (the VM monitor, e.g. qemu-system-x86_64 ...) runs once the
socket listens, and tunstack exits with its status (128 + N when signal N ended it, 127 when
it could not be run). Without it tunstack serves until SIGINT or SIGTERM.

Options:
  --mtu N                    link MTU, 1280..65520 (default 1500); frames up to MTU + 18
  --disable-ipv6             no IPv6 on the guest link
  --disable-host-loopback    refuse connections to the gateway (no access to host loopback)
  --disable-host-addresses   also refuse the host's own interface addresses
  -p, --publish [IP:]HOSTPORT:GUESTPORT[/tcp|/udp]
                             forward a host port into the guest (10.0.2.100); repeatable
  --pcap FILE                write the guest link's frames to FILE (pcap, Ethernet)
  --icmp auto|relay|gateway  how ICMP echo to other addresses is handled (default auto)
  --max-tcp-flows N          TCP flows at once (default 65536)
  --max-udp-flows N          UDP flows at once (default 4096)
  --udp-idle-timeout SEC     close UDP flows idle this long (default 60)
  --tcp-mem BYTES[K|M|G]     memory all TCP buffers may take together (default 1/64 of RAM)
  --queue N                  frames held for a guest that is not reading (default 1024;
                             more are dropped and counted)
  --idle-timeout SEC         close a connection whose frame stays incomplete this long (30)
  --stall-timeout SEC        close a connection that reads nothing this long while frames
                             wait for it (30)
  -v, --verbose              progress and statistics on stderr
  -V, --version              print tunstack's version
  -h, --help                 this help

Bad input (a length of 0 or above MTU + 18, a half-written frame, a guest that stops reading)
closes the connection with a line on stderr; over datagrams, datagrams of a bad size are dropped,
counted and logged once. Exit status: COMMAND's, else 0; 1 when the
socket could not be opened, 2 for usage errors.
`;

const OPTIONS = {
  socket: { type: 'string' },
  'listen-tcp': { type: 'string' },
  'listen-udp': { type: 'string' },
  dgram: { type: 'string' },
  ws: { type: 'string' },
  'ws-origin': { type: 'string', multiple: true },
  'ws-shared': { type: 'boolean' },
  'ws-max-guests': { type: 'string' },
  mtu: { type: 'string' },
  'disable-ipv6': { type: 'boolean' },
  'disable-host-loopback': { type: 'boolean' },
  'disable-host-addresses': { type: 'boolean' },
  publish: { type: 'string', short: 'p', multiple: true },
  pcap: { type: 'string' },
  icmp: { type: 'string' },
  'max-tcp-flows': { type: 'string' },
  'max-udp-flows': { type: 'string' },
  'udp-idle-timeout': { type: 'string' },
  'tcp-mem': { type: 'string' },
  queue: { type: 'string' },
  'idle-timeout': { type: 'string' },
  'stall-timeout': { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
} as const;

/** Parse `HOST:PORT` or `[V6]:PORT`; null when bad. */
function hostPort(spec: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(spec);
  if (!m) return null;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (isIP(host) === 0 || port > 65535) return null;
  return { host, port };
}

export async function runVmCommand(args: string[]): Promise<number> {
  const u = (why: string): number => usageError('vm', VM_HELP, why);
  const r = parseCommand('vm', VM_HELP, OPTIONS, args);
  if (typeof r === 'number') return r;
  const v = r.values;
  const given = [v.socket, v.dgram, v['listen-tcp'], v['listen-udp'], v.ws].filter((x) => x !== undefined).length;
  if (given !== 1) return u('give one of --socket PATH, --dgram PATH, --listen-tcp HOST:PORT, --listen-udp HOST:PORT or --ws HOST:PORT');
  const inetName = v['listen-tcp'] !== undefined ? 'listen-tcp' : v['listen-udp'] !== undefined ? 'listen-udp' : 'ws';
  const inetSpec = v[inetName];
  const inet = inetSpec !== undefined ? hostPort(inetSpec) : null;
  if (inetSpec !== undefined && inet === null) return u(`--${inetName} wants HOST:PORT with an IP address (got "${inetSpec}")`);
  const int = (name: keyof typeof OPTIONS, lo: number, hi: number): number | undefined | null =>
    numberOption('vm', VM_HELP, name, v[name] as string | undefined, (n) => Number.isInteger(n) && n >= lo && n <= hi, `an integer in ${lo}..${hi}`);
  const mtu = int('mtu', 1280, 65520);
  const maxTcpFlows = int('max-tcp-flows', 1, 1 << 20);
  const maxUdpFlows = int('max-udp-flows', 1, 1 << 20);
  const udpIdle = int('udp-idle-timeout', 1, 86400);
  const queue = int('queue', 1, 1 << 20);
  const idle = int('idle-timeout', 1, 86400);
  const stall = int('stall-timeout', 1, 86400);
  const wsGuests = int('ws-max-guests', 1, 1024);
  if ([mtu, maxTcpFlows, maxUdpFlows, udpIdle, queue, idle, stall, wsGuests].includes(null)) return 2;
  const wsPerConnection = v.ws !== undefined && v['ws-shared'] !== true;
  if (v.ws === undefined && (v['ws-origin'] !== undefined || v['ws-shared'] !== undefined || v['ws-max-guests'] !== undefined)) return u('--ws-origin, --ws-shared and --ws-max-guests go with --ws');
  if (wsPerConnection && (v.publish !== undefined || v.pcap !== undefined)) return u('-p and --pcap need one guest network: with --ws, add --ws-shared');
  const icmp = v.icmp ?? 'auto';
  if (icmp !== 'auto' && icmp !== 'relay' && icmp !== 'gateway') return u('--icmp wants auto, relay or gateway');
  let publish: PortForward[];
  let tcpMemory: number | undefined;
  try {
    publish = (v.publish ?? []).map(parsePublish);
    if (v['tcp-mem'] !== undefined) tcpMemory = bytesArg('--tcp-mem', v['tcp-mem']);
  } catch (e) {
    return u((e as Error).message);
  }
  const limits: SandboxLimits = {
    ...(maxTcpFlows != null ? { maxTcpFlows } : {}),
    ...(maxUdpFlows != null ? { maxUdpFlows } : {}),
    ...(udpIdle != null ? { udpIdleMs: udpIdle * 1000 } : {}),
    ...(tcpMemory !== undefined ? { tcpMemory } : {}),
  };
  const hostAddresses = v['disable-host-addresses'] !== true;
  const verbose = v.verbose === true;
  const log = (line: string): void => void stderr.write(`tunstack vm: ${line}\n`);

  const { FramePort } = await import('../link/frame-port.js');
  const { StreamFrameServer } = await import('../vm/stream.js');
  const { UdpFrameServer } = await import('../vm/udp.js');
  const { UnixgramFrameServer, unixgramUnavailableReason } = await import('../vm/unixgram.js');
  if (v.dgram !== undefined && unixgramUnavailableReason() !== '') {
    log(`--dgram: ${unixgramUnavailableReason()}`);
    return 1;
  }
  const { SandboxNetwork } = await import('../sandbox/network.js');
  const { WsFrameServer } = await import('../vm/ws.js');
  const makeNetwork = (pcap?: string): { port: InstanceType<typeof FramePort>; net: InstanceType<typeof SandboxNetwork>; close: () => void } => {
    const port = new FramePort({ ...(mtu != null ? { mtu } : {}), ...(queue != null ? { queueLength: queue } : {}) });
    const net = new SandboxNetwork({
      link: port,
      ...(mtu != null ? { mtu } : {}),
      ipv6: v['disable-ipv6'] !== true,
      hostLoopback: v['disable-host-loopback'] !== true && hostAddresses,
      hostAddresses,
      icmp,
      limits,
      ...(pcap !== undefined ? { pcap } : {}),
    });
    return { port, net, close: () => net.close() };
  };
  // With --ws and no --ws-shared each connection makes its own; this one serves every other case.
  const { port, net } = makeNetwork(v.pcap);
  const ws =
    v.ws !== undefined
      ? new WsFrameServer({
          network: wsPerConnection ? () => makeNetwork() : () => ({ port, close: () => {} }),
          mode: wsPerConnection ? 'per-connection' : 'shared',
          clock: net.stack.clock,
          allowOrigins: v['ws-origin'] ?? [],
          maxFrame: port.maxFrame,
          log,
          ...(wsGuests != null ? { maxConnections: wsGuests } : {}),
          ...(idle != null ? { idleTimeoutMs: idle * 1000 } : {}),
          ...(stall != null ? { stallTimeoutMs: stall * 1000 } : {}),
        })
      : null;
  const udp = v['listen-udp'] !== undefined ? new UdpFrameServer({ port, log }) : null;
  const unixgram = v.dgram !== undefined ? new UnixgramFrameServer({ port, log }) : null;
  const server = new StreamFrameServer({
    port,
    clock: net.stack.clock,
    log,
    ...(idle != null ? { idleTimeoutMs: idle * 1000 } : {}),
    ...(stall != null ? { stallTimeoutMs: stall * 1000 } : {}),
  });
  const stop = (): void => {
    server.close();
    udp?.close();
    unixgram?.close();
    ws?.close();
    net.close();
  };
  try {
    if (v.socket !== undefined) await server.listenUnix(v.socket);
    else if (unixgram !== null) unixgram.listen(v.dgram!);
    else if (udp !== null) await udp.listen(inet!.host, inet!.port);
    else if (ws !== null) await ws.listen(inet!.host, inet!.port);
    else await server.listenTcp(inet!.host, inet!.port);
    for (const f of publish) await net.publish(f);
  } catch (e) {
    stop();
    log((e as Error).message);
    return 1;
  }
  const hp = (p: number): string => (isIP(inet?.host ?? '') === 6 ? `[${inet!.host}]:${p}` : `${inet?.host}:${p}`);
  const where = v.socket ?? v.dgram ?? (ws !== null ? `ws://${hp(ws.tcpPort)}/ (${ws.mode} guest network)` : `${udp !== null ? 'udp' : 'tcp'} ${hp(udp?.localPort ?? server.tcpPort)}`);
  if (verbose) log(`listening on ${where}${net.icmpNote ? ` (ICMP: ${net.icmpNote})` : ''}`);
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const status = await new Promise<number>((resolve) => {
    const handlers = new Map<NodeJS.Signals, () => void>();
    const done = (code: number): void => {
      for (const [sig, h] of handlers) process.removeListener(sig, h);
      resolve(code);
    };
    if (r.positionals.length === 0) {
      for (const sig of signals) handlers.set(sig, () => done(0));
    } else {
      const [cmd, ...rest] = r.positionals as [string, ...string[]];
      const child = spawn(cmd, rest, { stdio: 'inherit' });
      child.once('error', (e) => {
        log(`cannot run ${cmd}: ${e.message}`);
        done(127);
      });
      child.once('exit', (code, signal) => done(signal !== null ? 128 + (osConstants.signals[signal] ?? 0) : (code ?? 1)));
      // Signals are passed on to the monitor, which then exits (and so do we).
      for (const sig of signals) handlers.set(sig, () => void child.kill(sig));
    }
    for (const [sig, h] of handlers) process.on(sig, h);
  });
  if (verbose) log(`stats ${JSON.stringify({ port: port.stats, server: udp?.stats ?? unixgram?.stats ?? ws?.stats ?? server.stats, tcp: net.stats.tcp, udp: net.stats.udp, dhcp: net.stats.dhcp })}`);
  stop();
  return status;
}
