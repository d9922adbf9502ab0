/**
 * The guest-network options `tunstack sandbox` and `tunstack vm` share: one parseArgs spec
 * (GUEST_NETWORK_OPTIONS), its help text (GUEST_NETWORK_HELP) and the translation of the parsed
 * values into SandboxNetwork options, published ports and a log level (guestNetworkFromValues).
 * Names follow slirp4netns (--cidr, --disable-dns, --outbound-addr, --disable-host-loopback)
 * and pasta (-a -n -g -D, -4/-6, -o, --outbound-if4/6, -t/-u with ranges and `auto`).
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { sandboxAddresses } from '../sandbox/addresses.js';
import type { PortForward, SandboxLimits, SandboxNetworkOptions } from '../sandbox/network.js';
import type { OptionSpec } from './args.js';

export const GUEST_NETWORK_OPTIONS = {
  mtu: { type: 'string', short: 'm' },
  cidr: { type: 'string' },
  address: { type: 'string', short: 'a', multiple: true },
  netmask: { type: 'string', short: 'n' },
  gateway: { type: 'string', short: 'g', multiple: true },
  dns: { type: 'string', short: 'D', multiple: true },
  'dns-forward': { type: 'string', multiple: true },
  'dns-upstream': { type: 'string', multiple: true },
  'disable-dns': { type: 'boolean' },
  'ipv4-only': { type: 'boolean', short: '4' },
  'ipv6-only': { type: 'boolean', short: '6' },
  'disable-ipv6': { type: 'boolean' },
  'disable-host-loopback': { type: 'boolean' },
  'disable-host-addresses': { type: 'boolean' },
  publish: { type: 'string', short: 'p', multiple: true },
  'tcp-ports': { type: 'string', short: 't', multiple: true },
  'udp-ports': { type: 'string', short: 'u', multiple: true },
  outbound: { type: 'string', short: 'o', multiple: true },
  'outbound-addr': { type: 'string' },
  'outbound-addr6': { type: 'string' },
  'outbound-if4': { type: 'string' },
  'outbound-if6': { type: 'string' },
  pcap: { type: 'string' },
  icmp: { type: 'string' },
  'max-tcp-flows': { type: 'string' },
  'max-udp-flows': { type: 'string' },
  'udp-idle-timeout': { type: 'string' },
  'tcp-mem': { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  debug: { type: 'boolean', short: 'd' },
  quiet: { type: 'boolean', short: 'q' },
  'log-level': { type: 'string' },
} as const satisfies OptionSpec;

export const GUEST_NETWORK_HELP = `Guest network (as slirp4netns and pasta name them):
  -m, --mtu N                link MTU, 1280..65520 (default 1500)
  --cidr A.B.C.D/N           the guest's IPv4 network (default 10.0.2.0/24): guest .100,
                             gateway .2, DNS .3 in it (as slirp4netns); /25 or shorter
  -a, --address ADDR[/N]     the guest's IPv4 or IPv6 address (once per family, as pasta);
                             the gateway and DNS addresses move into its network (.2, .3;
                             for IPv6 PREFIX::2, PREFIX::3 in its /64)
  -n, --netmask MASK         IPv4 prefix length, bits or dotted (default 24)
  -g, --gateway ADDR         the gateway address, IPv4 or IPv6 (the host's loopback)
  -D, --dns ADDR             the DNS address tunstack answers on and tells the guest
      --dns-forward ADDR     the same (pasta's name)
  --dns-upstream IP[#PORT]   send every DNS query (A/AAAA too) to this resolver instead of
                             answering A/AAAA with the host's getaddrinfo
  --disable-dns              no DNS server for the guest (slirp4netns)
  -4, --ipv4-only            IPv4 only (same as --disable-ipv6)
  -6, --ipv6-only            IPv6 only: no IPv4 address, route, DHCP or DNS for the guest
                             (pasta's meaning; slirp4netns's -6 enables IPv6, on by default here)
  --disable-host-loopback    refuse connections to the gateway (no access to host loopback)
  --disable-host-addresses   also refuse the host's own interface addresses (the guest reaches
                             no service of this host; implies --disable-host-loopback)
  -o, --outbound ADDR        host sockets for guest traffic leave from ADDR (once per family)
  --outbound-addr IPv4, --outbound-addr6 IPv6
                             the same, slirp4netns's names
  --outbound-if4 NAME, --outbound-if6 NAME
                             leave from interface NAME's first address of that family (its
                             address is bound, not the device: Node has no SO_BINDTODEVICE)
Ports into the guest (host connections to them reach the guest from the gateway address):
  -p, --publish [IP:]HOSTPORT[-END]:GUESTPORT[-END][/tcp|/udp]
                             podman's form (IP default 127.0.0.1); repeatable
  -t, --tcp-ports SPEC       pasta's form: none, auto (follow the guest's listening TCP
                             ports, checked every second, host side 127.0.0.1), or a list
                             such as 22,8000-8010,8080:80,192.0.2.1/5,~8005 (ranges,
                             targets after ":", a host address before "/", "~" excludes;
                             exclusions alone mean auto except those); repeatable
  -u, --udp-ports SPEC       the same for UDP (auto follows bound UDP ports)
Limits and diagnostics:
  --pcap FILE                write the guest link's packets to FILE (pcap, Ethernet)
  --icmp auto|relay|gateway  how ICMP echo to other addresses is handled (default auto)
  --max-tcp-flows N          TCP flows at once (default 65536)
  --max-udp-flows N          UDP flows at once (default 4096; least recently used closed first)
  --udp-idle-timeout SEC     close UDP flows idle this long (default 60)
  --tcp-mem BYTES[K|M|G]     RSS growth allowed for TCP data: TCP buffers get this minus what
                             the flows and runtime measurably take (tcp_mem's hard limit,
                             pressure at 2/3, low at 1/2; default 1/64 of RAM, 16M..512M)
  -q, --quiet                errors only
  -v, --verbose              progress and a readable summary of the relays at the end
  -d, --debug                also every relay counter (one JSON line, for scripts)
  --log-level LEVEL          error, warn (default), info (= -v) or debug (= -d)
`;

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

/** What a port option asks for: fixed forwards, and whether (and which) bound ports follow. */
export interface PortRequest {
  forwards: PortForward[];
  /** Follow the guest's bound ports of these protocols (pasta's `auto`), minus `exclude`. */
  auto: { tcp: boolean; udp: boolean; exclude: { tcp: Set<number>; udp: Set<number> } };
}

export interface GuestNetwork {
  network: Omit<SandboxNetworkOptions, 'link'>;
  ports: PortRequest;
  logLevel: LogLevel;
}

export type GuestValues = { [K in keyof typeof GUEST_NETWORK_OPTIONS]?: (typeof GUEST_NETWORK_OPTIONS)[K] extends { type: 'boolean' } ? boolean : (typeof GUEST_NETWORK_OPTIONS)[K] extends { multiple: true } ? string[] : string };

function int(name: string, v: string | undefined, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} wants an integer in ${lo}..${hi} (got "${v}")`);
  return n;
}

/** A byte count with an optional binary suffix (K, M, G), at least 1 MiB. */
export function bytesArg(name: string, v: string | undefined): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(v ?? '');
  const n = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 << 20) throw new Error(`${name} wants a byte count of at least 1M (suffix K, M or G)`);
  return n;
}

/** A port range "N" or "N-M" (1..65535, N <= M). */
function portRange(text: string, spec: string, what: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || lo < 1 || hi > 65535 || lo > hi) throw new Error(`bad ${what} "${spec}" (port or range ${text} outside 1..65535)`);
  return [lo, hi];
}

/** Expand host range [a, b] onto guest range [c, d] (same length, or one guest port for all). */
function expand(protocol: 'tcp' | 'udp', host: [number, number], guest: [number, number], hostAddress: string | undefined, spec: string, what: string): PortForward[] {
  const n = host[1] - host[0];
  if (guest[1] - guest[0] !== n) throw new Error(`bad ${what} "${spec}" (the host and guest ranges differ in length)`);
  const out: PortForward[] = [];
  for (let i = 0; i <= n; i++) out.push({ protocol, hostPort: host[0] + i, guestPort: guest[0] + i, ...(hostAddress !== undefined ? { hostAddress } : {}) });
  return out;
}

/** Parse `-p [IP:]HOSTPORT[-END]:GUESTPORT[-END][/tcp|/udp]`. Throws on bad input. */
export function parsePublishRange(spec: string): PortForward[] {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d+(?:-\d+)?):(\d+(?:-\d+)?)(?:\/(tcp|udp))?$/.exec(spec);
  if (!m) throw new Error(`bad --publish "${spec}" (want [IP:]HOSTPORT[-END]:GUESTPORT[-END][/tcp|/udp])`);
  const hostAddress = m[1]?.replace(/^\[|\]$/g, '');
  if (hostAddress !== undefined && isIP(hostAddress) === 0) throw new Error(`bad address in --publish "${spec}"`);
  const what = '--publish';
  return expand((m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp', portRange(m[2]!, spec, what), portRange(m[3]!, spec, what), hostAddress, spec, what);
}

/**
 * Parse pasta's port SPEC for `protocol` into `into`: none, auto, or a comma list of
 * `[ADDR/]PORT[-END][:TARGET[-END]]` and `~PORT[-END]` exclusions. Throws on bad input.
 */
export function parsePortSpec(protocol: 'tcp' | 'udp', spec: string, into: PortRequest): void {
  const what = protocol === 'tcp' ? '-t' : '-u';
  if (spec === 'none') return;
  if (spec === 'auto') {
    into.auto[protocol] = true;
    return;
  }
  const excluded = new Set<number>();
  const items: Array<{ host: [number, number]; guest: [number, number]; address?: string }> = [];
  for (const item of spec.split(',')) {
    if (item.startsWith('~')) {
      const [lo, hi] = portRange(item.slice(1), spec, what);
      for (let p = lo; p <= hi; p++) excluded.add(p);
      continue;
    }
    const slash = item.lastIndexOf('/');
    const address = slash >= 0 ? item.slice(0, slash) : undefined;
    if (address !== undefined && isIP(address) === 0) throw new Error(`bad ${what} "${spec}" ("${address}" is not an IP address; interfaces (%) are not supported)`);
    const ports = slash >= 0 ? item.slice(slash + 1) : item;
    const [h, g] = ports.split(':');
    if (h === undefined || ports.split(':').length > 2) throw new Error(`bad ${what} "${spec}"`);
    const host = portRange(h, spec, what);
    items.push({ host, guest: g !== undefined ? portRange(g, spec, what) : host, ...(address !== undefined ? { address } : {}) });
  }
  if (items.length === 0) {
    into.auto[protocol] = true;
    for (const p of excluded) into.auto.exclude[protocol].add(p);
    return;
  }
  for (const it of items) {
    for (const f of expand(protocol, it.host, it.guest, it.address, spec, what)) if (!excluded.has(f.hostPort)) into.forwards.push(f);
  }
}

/** The first address of `family` on interface `name` (throws when it has none). */
export function interfaceAddress(name: string, family: 4 | 6, interfaces = networkInterfaces()): string {
  const list = interfaces[name];
  if (list === undefined) throw new Error(`--outbound-if${family}: no interface ${name}`);
  const a = list.find((x) => (family === 4 ? x.family === 'IPv4' : x.family === 'IPv6' && !x.address.startsWith('fe80')));
  if (a === undefined) throw new Error(`--outbound-if${family}: ${name} has no ${family === 4 ? 'IPv4' : 'global IPv6'} address`);
  return a.address;
}

/** Translate parsed option values. Throws Error with a message on bad input. */
export function guestNetworkFromValues(v: GuestValues): GuestNetwork {
  const mtu = int('mtu', v.mtu, 1280, 65520);
  const icmp = v.icmp ?? 'auto';
  if (icmp !== 'auto' && icmp !== 'relay' && icmp !== 'gateway') throw new Error('--icmp wants auto, relay or gateway');
  if (v['ipv4-only'] === true && v['ipv6-only'] === true) throw new Error('-4 and -6 exclude each other');
  const addresses = sandboxAddresses({
    ...(v.cidr !== undefined ? { cidr: v.cidr } : {}),
    ...(v.address !== undefined ? { address: v.address } : {}),
    ...(v.netmask !== undefined ? { netmask: v.netmask } : {}),
    ...(v.gateway !== undefined ? { gateway: v.gateway } : {}),
    ...(v.dns !== undefined || v['dns-forward'] !== undefined ? { dns: [...(v.dns ?? []), ...(v['dns-forward'] ?? [])] } : {}),
  });
  const outbound: { v4?: string; v6?: string } = {};
  const setOut = (a: string, from: string): void => {
    const fam = isIP(a);
    if (fam === 0) throw new Error(`${from} wants an IP address (got "${a}")`);
    const key = fam === 4 ? 'v4' : 'v6';
    if (outbound[key] !== undefined && outbound[key] !== a) throw new Error(`two IPv${fam} outbound addresses (${outbound[key]}, ${a})`);
    outbound[key] = a;
  };
  for (const a of v.outbound ?? []) setOut(a, '-o');
  if (v['outbound-addr'] !== undefined) {
    if (isIP(v['outbound-addr']) !== 4) throw new Error(`--outbound-addr wants an IPv4 address (got "${v['outbound-addr']}")`);
    setOut(v['outbound-addr'], '--outbound-addr');
  }
  if (v['outbound-addr6'] !== undefined) {
    if (isIP(v['outbound-addr6']) !== 6) throw new Error(`--outbound-addr6 wants an IPv6 address (got "${v['outbound-addr6']}")`);
    setOut(v['outbound-addr6'], '--outbound-addr6');
  }
  if (v['outbound-if4'] !== undefined) setOut(interfaceAddress(v['outbound-if4'], 4), '--outbound-if4');
  if (v['outbound-if6'] !== undefined) setOut(interfaceAddress(v['outbound-if6'], 6), '--outbound-if6');
  const upstream = (v['dns-upstream'] ?? []).map((u) => {
    const [host, port] = u.split('#');
    if (isIP(host!) === 0) throw new Error(`--dns-upstream wants IP[#PORT] (got "${u}")`);
    return { host: host!, ...(port !== undefined ? { port: int('dns-upstream', port, 1, 65535)! } : {}) };
  });
  const maxTcpFlows = int('max-tcp-flows', v['max-tcp-flows'], 1, 1 << 20);
  const maxUdpFlows = int('max-udp-flows', v['max-udp-flows'], 1, 1 << 20);
  const udpIdle = int('udp-idle-timeout', v['udp-idle-timeout'], 1, 86400);
  const tcpMemory = v['tcp-mem'] !== undefined ? bytesArg('--tcp-mem', v['tcp-mem']) : undefined;
  const limits: SandboxLimits = {
    ...(maxTcpFlows !== undefined ? { maxTcpFlows } : {}),
    ...(maxUdpFlows !== undefined ? { maxUdpFlows } : {}),
    ...(udpIdle !== undefined ? { udpIdleMs: udpIdle * 1000 } : {}),
    ...(tcpMemory !== undefined ? { tcpMemory } : {}),
  };
  const ports: PortRequest = { forwards: [], auto: { tcp: false, udp: false, exclude: { tcp: new Set(), udp: new Set() } } };
  for (const p of v.publish ?? []) ports.forwards.push(...parsePublishRange(p));
  for (const s of v['tcp-ports'] ?? []) parsePortSpec('tcp', s, ports);
  for (const s of v['udp-ports'] ?? []) parsePortSpec('udp', s, ports);
  let logLevel: LogLevel = v.debug === true ? 'debug' : v.verbose === true ? 'info' : v.quiet === true ? 'error' : 'warn';
  if (v['log-level'] !== undefined) {
    if (!(LEVELS as readonly string[]).includes(v['log-level'])) throw new Error(`--log-level wants one of ${LEVELS.join(', ')}`);
    logLevel = v['log-level'] as LogLevel;
  }
  const hostAddresses = v['disable-host-addresses'] !== true;
  const ipv6Only = v['ipv6-only'] === true;
  return {
    network: {
      mtu: mtu ?? 1500,
      ipv4: !ipv6Only,
      ipv6: v['disable-ipv6'] !== true && v['ipv4-only'] !== true,
      addresses,
      dns: v['disable-dns'] !== true,
      hostLoopback: v['disable-host-loopback'] !== true && hostAddresses,
      hostAddresses,
      icmp,
      ...(v.pcap !== undefined ? { pcap: v.pcap } : {}),
      ...(Object.keys(outbound).length > 0 ? { outbound } : {}),
      ...(upstream.length > 0 ? { dnsUpstream: upstream, dnsForwardAll: true } : {}),
      limits,
    },
    ports,
    logLevel,
  };
}
