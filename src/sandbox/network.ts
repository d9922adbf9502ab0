/**
 * SandboxNetwork: the network a sandbox guest sees, served by tunstack over one Ethernet link
 * (a TAP in the guest's namespace, or any Ethernet-framed LinkEndpoint), as slirp4netns does:
 *
 *   guest 10.0.2.100/24, fd00::100/64      gateway 10.0.2.2, fd00::2 (-> the host's loopback)
 *                                          DNS     10.0.2.3, fd00::3 (-> the host's resolver)
 *
 * - The NIC is promiscuous and spoofing: a guest connection to any address is terminated here and
 *   relayed to a host socket (TcpRelay, UdpRelay); answers leave from the address the guest used.
 * - The gateway address stands for the host's loopback (127.0.0.1 / ::1) unless
 *   `hostLoopback: false` (slirp4netns --disable-host-loopback), when it refuses. Guest traffic
 *   addressed to the host itself (loopback and unspecified addresses in any form; with
 *   `hostAddresses: false` also the host's interface addresses) is never relayed (HostPolicy).
 * - DHCP (DhcpServer) hands out the guest address, router, DNS, MTU and a lease; IPv6 router
 *   advertisements (tunstack's router mode) announce fd00::/64, the MTU and the DNS server.
 * - ICMP echo to foreign addresses is relayed through the host's ping(8) where it may ping, else
 *   only the gateway and DNS addresses answer.
 * - Published ports (`publish`) carry host connections and datagrams into the guest.
 */
import { createServer, isIP, type Server } from 'node:net';
import { totalmem } from 'node:os';
import { TunstackError } from '../core/errors.js';
import { parseIP, prefixMatch, tryParseIPv4, tryParseIPv6 } from '../core/address.js';
import { EthernetEndpoint } from '../link/ethernet.js';
import type { LinkEndpoint } from '../link/endpoint.js';
import { SnifferEndpoint } from '../link/sniffer.js';
import type { IPv6Protocol } from '../network/ipv6.js';
import type { Clock } from '../core/clock.js';
import type { NIC } from '../stack/nic.js';
import { FileSink } from '../pcap/file.js';
import { Stack } from '../adapters/stack.js';
import { tcpMemoryFromHigh } from '../transport/tcp/memory.js';
import type { TcpProtocol } from '../transport/tcp/protocol.js';
import type { TcpStats } from '../transport/tcp/types.js';
import type { UdpProtocol } from '../transport/udp.js';
import { DEFAULT_ADDRESSES, dhcpPool, type SandboxAddresses } from './addresses.js';
import { DhcpServer } from '../portable/dhcp.js';
import { DnsRelay, type Lookup } from './dns-relay.js';
import { HostPolicy, embeddedIPv4, type HostPolicyOptions } from './host-policy.js';
import { EchoInterceptEndpoint, PingRelay, pingRelayUnavailableReason } from './icmp-relay.js';
import { MemoryGuard } from './memory-guard.js';
import { TcpRelay, type Outbound } from './tcp-relay.js';
import { UdpRelay } from './udp-relay.js';

export const SANDBOX_DEFAULTS = { ...DEFAULT_ADDRESSES, mtu: 1500 } as const;

export interface PortForward {
  protocol: 'tcp' | 'udp';
  /** Host address to listen on (default 127.0.0.1). */
  hostAddress?: string;
  hostPort: number;
  guestPort: number;
  /** The guest address to reach (default 10.0.2.100, or fd00::100 for an IPv6 host address). */
  guestAddress?: string;
}

/** A published port: `close()` stops listening (TCP connections already made carry on). */
export interface PublishedPort {
  readonly forward: PortForward;
  close(): void;
}

export interface SandboxLimits {
  /** TCP flows open at once (default 65536). */
  maxTcpFlows?: number;
  /** Host connects in flight (default 1024). */
  maxConnecting?: number;
  connectTimeoutMs?: number;
  /** UDP flows (default 4096) and their idle timeout (default 60 s). */
  maxUdpFlows?: number;
  udpIdleMs?: number;
  /** ping(8) processes at once (default 16). */
  maxPings?: number;
  /**
   * Bytes every TCP connection's buffers may take together: the hard limit of the stack's
   * `tcp.memory` (pressure at two thirds, low at half). Default `sandboxTcpMemory(os.totalmem())`.
   */
  tcpMemory?: number;
}

function tcpMemoryStats(tcp: TcpProtocol): SandboxStats['tcpMemory'] {
  const s = tcp.stats;
  return {
    limit: tcp.memory.high,
    memoryAllocated: s.memoryAllocated,
    memoryPressure: s.memoryPressure,
    memoryPressures: s.memoryPressures,
    rcvMemDrops: s.rcvMemDrops,
    sndMemRefusals: s.sndMemRefusals,
    ofoPruned: s.ofoPruned,
  };
}

/** The sandbox's TCP memory default: 1/64 of the machine's memory, within 16 MiB..512 MiB. */
export function sandboxTcpMemory(totalBytes: number): number {
  return Math.min(512 * 1024 * 1024, Math.max(16 * 1024 * 1024, Math.floor(totalBytes / 64)));
}

export interface SandboxNetworkOptions {
  /** The guest's link: Ethernet frames (e.g. an FdEndpoint over a TAP). */
  link: LinkEndpoint;
  /** Link MTU (default 1500, at most 65520). */
  mtu?: number;
  /** IPv6 (default true). */
  ipv6?: boolean;
  /** IPv4 (default true; false for an IPv6-only guest, pasta -6). */
  ipv4?: boolean;
  /** The guest's, gateway's and DNS addresses (default SANDBOX_DEFAULTS; see sandboxAddresses). */
  addresses?: SandboxAddresses;
  /** Answer DNS on the DNS addresses (default true; false: slirp4netns --disable-dns). */
  dns?: boolean;
  /** Host sockets for guest traffic leave from these source addresses (--outbound-addr, -o). */
  outbound?: Outbound;
  /** Connections to the gateway reach the host's loopback (default true). */
  hostLoopback?: boolean;
  /**
   * Guest traffic to the host's own interface addresses is relayed (default true, as
   * slirp4netns). False refuses them too (and implies hostLoopback false): the guest reaches no
   * service of this host. See HostPolicy.
   */
  hostAddresses?: boolean;
  /** The host's interfaces for that check (default os.networkInterfaces; tests pass their own). */
  hostInterfaces?: HostPolicyOptions['interfaces'];
  /** Write the guest link's packets to this pcap file. */
  pcap?: string;
  /** 'relay' through ping(8), 'gateway' only, or 'auto' (default: relay where allowed). */
  icmp?: 'auto' | 'relay' | 'gateway';
  /** ping(8) for the relay (default 'ping'). */
  pingCommand?: string;
  /** A/AAAA resolution for the DNS relay (default the host's getaddrinfo). */
  dnsLookup?: Lookup;
  /** Upstream resolvers for other query types (default /etc/resolv.conf). */
  dnsUpstream?: Array<{ host: string; port?: number }>;
  /** Send every DNS query (A and AAAA too) to dnsUpstream instead of the host's getaddrinfo. */
  dnsForwardAll?: boolean;
  limits?: SandboxLimits;
  /** Host connects through the native shim where it has them (default true; TcpRelayOptions.nativeConnect). */
  nativeConnect?: boolean;
  /** Native connects relayed on their fds, no Node socket each (default true; TcpRelayOptions.fdStreams). */
  fdStreams?: boolean;
  /** Default a real clock. */
  clock?: Clock;
  seed?: number;
  /**
   * Make `limits.tcpMemory` a bound on the process's RSS growth, not only on TCP's buffers (see
   * MemoryGuard): true, or a fake RSS source for tests. Default false here; `tunstack sandbox`
   * (runSandbox, attachSandbox) turns it on.
   */
  memoryGuard?: boolean | { rss: () => number; baseline?: number };
}

export interface SandboxStats {
  tcp: TcpRelay['stats'];
  tcpForwarder: TcpRelay['forwarder']['stats'];
  udp: UdpRelay['stats'];
  dns: DnsRelay['stats'] | null;
  dhcp: DhcpServer['stats'] | null;
  ping: PingRelay['stats'] | null;
  echoIntercepted: number;
  /** The stack's TCP memory budget: bytes charged, pressure, drops and refusals (TcpStats). */
  tcpMemory: Pick<TcpStats, 'memoryAllocated' | 'memoryPressure' | 'memoryPressures' | 'rcvMemDrops' | 'sndMemRefusals' | 'ofoPruned'> & { limit: number };
  /** The guest-facing NIC's neighbour caches (gc evictions, queue drops by reason). */
  neighbor: ReturnType<NIC['neighborStats']>;
}

export class SandboxNetwork {
  readonly stack: Stack;
  readonly nic: NIC;
  readonly tcp: TcpRelay;
  /** The resident-memory guard, when on (options.memoryGuard). */
  readonly memoryGuard: MemoryGuard | null;
  readonly udp: UdpRelay;
  readonly dhcp: DhcpServer | null;
  readonly dns: DnsRelay | null;
  readonly dns6: DnsRelay | null;
  readonly ipv4: boolean;
  /** The addresses the guest gets and tunstack answers on. */
  readonly addresses: SandboxAddresses;
  readonly ping: PingRelay | null;
  readonly ipv6: boolean;
  readonly mtu: number;
  /** Why ICMP echo to foreign addresses is not relayed ('' when it is). */
  readonly icmpNote: string;
  private readonly intercept: EchoInterceptEndpoint;
  private readonly servers = new Set<Server>();
  private readonly hostLoopback: boolean;
  /** Decides what is the host for every relay. */
  readonly hostPolicy: HostPolicy;
  private readonly decided = new Map<string, string | null>();
  private readonly subnet4: Uint8Array;
  private readonly subnet6: Uint8Array;
  private decidedVersion = -1;
  private closed = false;

  constructor(options: SandboxNetworkOptions) {
    const d = options.addresses ?? DEFAULT_ADDRESSES;
    this.addresses = { ...d };
    this.subnet4 = parseIP(d.guest4);
    this.subnet6 = parseIP(d.guest6);
    const mtu = options.mtu ?? SANDBOX_DEFAULTS.mtu;
    if (!Number.isInteger(mtu) || mtu < 1280 || mtu > 65520) throw new TunstackError('EINVAL', `MTU ${mtu} outside 1280..65520`);
    this.mtu = mtu;
    const hostAddresses = options.hostAddresses ?? true;
    this.hostLoopback = (options.hostLoopback ?? true) && hostAddresses;
    const limits = options.limits ?? {};
    this.stack = new Stack({ ...(options.clock ? { clock: options.clock } : {}), ...(options.seed !== undefined ? { seed: options.seed } : {}) });
    const tcpLimit = limits.tcpMemory ?? sandboxTcpMemory(totalmem());
    this.stack.requireTransport<TcpProtocol>(6).memory.setLimits(tcpMemoryFromHigh(tcpLimit));
    const clock = this.stack.clock;
    this.hostPolicy = new HostPolicy({ hostAddresses, now: () => clock.now(), ...(options.hostInterfaces ? { interfaces: options.hostInterfaces } : {}) });
    let link: LinkEndpoint = options.link;
    if (options.pcap !== undefined) link = new SnifferEndpoint(link, { sink: new FileSink(options.pcap), clock: this.stack.clock });
    const icmpMode = options.icmp ?? 'auto';
    const why = icmpMode === 'gateway' ? 'gateway-only mode' : pingRelayUnavailableReason(options.pingCommand);
    this.icmpNote = icmpMode === 'relay' ? '' : why;
    this.ping =
      this.icmpNote === ''
        ? new PingRelay(this.stack, {
            map: (family, address) => this.mapDestination(family, address),
            ...(limits.maxPings !== undefined ? { maxInFlight: limits.maxPings } : {}),
            ...(options.pingCommand !== undefined ? { command: options.pingCommand } : {}),
          })
        : null;
    const ping = this.ping;
    this.intercept = new EchoInterceptEndpoint(new EthernetEndpoint(link), (req) => ping?.handle(req));
    this.nic = this.stack.createNIC({ name: 'sandbox0', endpoint: this.intercept, promiscuous: true, spoofing: true, mtu });
    this.intercept.nic = this.nic;
    this.ipv4 = options.ipv4 ?? true;
    if (this.ipv4) {
      this.nic.addAddress(`${d.gateway4}/${d.prefix4}`);
      this.nic.addAddress(`${d.dns4}/${d.prefix4}`);
    }
    this.ipv6 = (options.ipv6 ?? true) && this.stack.networkProtocol(0x86dd) !== undefined;
    if (!this.ipv4 && !this.ipv6) throw new TunstackError('EINVAL', 'neither IPv4 nor IPv6: the guest would have no network');
    if (this.ipv6) {
      const plen = Number(d.prefix6.split('/')[1]);
      this.nic.addAddress({ address: parseIP(d.gateway6), prefixLength: plen, nodad: true });
      this.nic.addAddress({ address: parseIP(d.dns6), prefixLength: plen, nodad: true });
      this.stack.requireNetwork<IPv6Protocol>(0x86dd).ndp.startRouter(this.nic, {
        prefixes: [d.prefix6],
        dnsServers: (options.dns ?? true) ? [d.dns6] : [],
        mtu,
        minIntervalMs: 30_000,
        maxIntervalMs: 60_000,
      });
    }
    const map = (family: 4 | 6, address: string): string | null => this.mapDestination(family, address);
    this.tcp = new TcpRelay(this.stack.requireTransport<TcpProtocol>(6), {
      map,
      nic: this.nic.id,
      ...(limits.maxTcpFlows !== undefined ? { maxFlows: limits.maxTcpFlows } : {}),
      ...(limits.maxConnecting !== undefined ? { maxConnecting: limits.maxConnecting } : {}),
      ...(limits.connectTimeoutMs !== undefined ? { connectTimeoutMs: limits.connectTimeoutMs } : {}),
      ...(options.outbound ? { outbound: options.outbound } : {}),
      ...(options.nativeConnect === false ? { nativeConnect: false } : {}),
      ...(options.fdStreams === false ? { fdStreams: false } : {}),
    });
    const g = options.memoryGuard ?? false;
    this.memoryGuard =
      g === false
        ? null
        : new MemoryGuard({
            limit: tcpLimit,
            memory: this.stack.requireTransport<TcpProtocol>(6).memory,
            clock,
            flows: () => this.tcp.flowCount,
            ...(g === true ? {} : { rss: g.rss, ...(g.baseline !== undefined ? { baseline: g.baseline } : {}) }),
          });
    const guard = this.memoryGuard;
    if (guard !== null) this.tcp.onFlow = () => guard.update();
    this.udp = new UdpRelay(this.stack, this.stack.requireTransport<UdpProtocol>(17), {
      map,
      nicId: this.nic.id,
      ...(limits.maxUdpFlows !== undefined ? { maxFlows: limits.maxUdpFlows } : {}),
      ...(limits.udpIdleMs !== undefined ? { idleMs: limits.udpIdleMs } : {}),
      ...(options.outbound ? { outbound: options.outbound } : {}),
    });
    const serveDns = options.dns ?? true;
    const pool = dhcpPool(d);
    this.dhcp = this.ipv4
      ? new DhcpServer(this.stack, {
          nic: this.nic.id,
          poolStart: pool.start,
          poolEnd: pool.end,
          prefixLength: d.prefix4,
          router: d.gateway4,
          dns: serveDns ? [d.dns4] : [],
          mtu,
        })
      : null;
    const dnsOptions = {
      ...(options.dnsLookup ? { lookup: options.dnsLookup } : {}),
      ...(options.dnsUpstream ? { upstream: options.dnsUpstream } : {}),
      ...(options.dnsForwardAll === true ? { forwardAll: true } : {}),
    };
    this.dns = serveDns && this.ipv4 ? new DnsRelay(this.stack, { address: d.dns4, ...dnsOptions }) : null;
    this.dns6 = serveDns && this.ipv6 ? new DnsRelay(this.stack, { address: d.dns6, ...dnsOptions }) : null;
  }

  /**
   * Where traffic the guest sends to `address` goes on the host, or null when it is not relayed.
   * The TCP, UDP and ICMP relays all ask this. The gateway is the host's loopback (unless
   * hostLoopback is off); the host itself (HostPolicy: loopback and unspecified addresses in
   * every IPv4/IPv6/mapped/compatible form, and the host's interface addresses when
   * hostAddresses is off) is never relayed; nor are the DNS address, the rest of the guest's
   * subnet, IPv4 multicast and broadcast, IPv6 link-local, multicast and fd00::/16, and IPv6
   * addresses standing for IPv4 ones (mapped or compatible, never valid on the wire). Anything
   * else goes where it was sent.
   */
  mapDestination(family: 4 | 6, address: string): string | null {
    // Asked per UDP datagram: decisions are remembered (at most 4096, under the interface list
    // they were made with when the host's addresses count).
    const policy = this.hostPolicy;
    if (!policy.hostAddresses) {
      policy.ownAddresses();
      if (policy.version !== this.decidedVersion) {
        this.decided.clear();
        this.decidedVersion = policy.version;
      }
    }
    let r = this.decided.get(address);
    if (r === undefined) {
      r = this.decide(family, address);
      if (this.decided.size >= 4096) this.decided.clear();
      this.decided.set(address, r);
    }
    return r;
  }

  private decide(family: 4 | 6, address: string): string | null {
    const d = this.addresses;
    if (family === 4 ? !this.ipv4 : !this.ipv6) return null;
    if (address === d.gateway4) return this.hostLoopback ? '127.0.0.1' : null;
    if (address === d.gateway6) return this.hostLoopback ? '::1' : null;
    const a = family === 4 ? tryParseIPv4(address) : tryParseIPv6(address);
    if (a === null || this.hostPolicy.isHost(a)) return null;
    if (family === 4) {
      if (prefixMatch(a, this.subnet4, d.prefix4) || a[0]! >= 224) return null;
      return address;
    }
    if (embeddedIPv4(a) !== null) return null;
    if ((a[0] === 0xfe && (a[1]! & 0xc0) === 0x80) || a[0] === 0xff || (a[0] === 0xfd && a[1] === 0) || prefixMatch(a, this.subnet6, 64)) return null;
    return address;
  }

  /**
   * Start forwarding a host port into the guest. Resolves once the host socket listens, with a
   * handle whose `close()` stops the forward (unpublishing).
   */
  async publish(f: PortForward): Promise<PublishedPort> {
    const d = this.addresses;
    const hostAddress = f.hostAddress ?? (this.ipv4 ? '127.0.0.1' : '::1');
    const v6 = isIP(hostAddress) === 6;
    const guest = f.guestAddress ?? ((v6 && this.ipv6) || !this.ipv4 ? d.guest6 : d.guest4);
    const gateway = isIP(guest) === 6 ? d.gateway6 : d.gateway4;
    if (this.closed) throw new TunstackError('EBADF', 'the sandbox network is closed');
    if (f.protocol === 'udp') {
      const s = await this.udp.publish(hostAddress, f.hostPort, guest, f.guestPort, gateway);
      return { forward: f, close: () => this.udp.unpublish(s) };
    }
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => {
      sock.on('error', () => {});
      const ep = this.stack.tcp({ family: isIP(guest) === 6 ? 6 : 4 });
      ep.setNoDelay(true);
      ep.once('connect', () => this.tcp.adopt(ep, sock));
      ep.once('error', () => sock.destroy());
      try {
        ep.bind(gateway, 0);
        ep.connect(guest, f.guestPort);
      } catch {
        sock.destroy();
        ep.abort();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(f.hostPort, hostAddress, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', () => {});
    this.servers.add(server);
    return {
      forward: f,
      close: () => {
        if (this.servers.delete(server)) server.close();
      },
    };
  }

  get stats(): SandboxStats {
    return {
      tcp: this.tcp.stats,
      tcpForwarder: this.tcp.forwarder.stats,
      udp: this.udp.stats,
      dns: this.dns?.stats ?? this.dns6?.stats ?? null,
      dhcp: this.dhcp?.stats ?? null,
      ping: this.ping?.stats ?? null,
      echoIntercepted: this.intercept.intercepted,
      tcpMemory: tcpMemoryStats(this.stack.requireTransport<TcpProtocol>(6)),
      neighbor: this.nic.neighborStats(),
    };
  }

  /** Stop serving: relays, servers, the stack and the link (which closes the TAP). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.servers) s.close();
    this.memoryGuard?.close();
    this.tcp.close();
    this.udp.close();
    this.dns?.close();
    this.dns6?.close();
    this.dhcp?.close();
    this.ping?.close();
    this.stack.close();
    this.intercept.close();
  }
}
