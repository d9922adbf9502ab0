import { TunstackError } from '../core/errors.js';
import { formatIP, formatMAC, maskAddress, parseCIDR, prefixMatch } from '../core/address.js';
import type { LinkEndpoint } from '../link/endpoint.js';
import { EthernetEndpoint } from '../link/ethernet.js';
import { FaultEndpoint, type FaultConfig, type FaultStats, type GilbertElliottConfig } from '../link/fault.js';
import { Trampoline } from '../core/queue.js';
import { Wire } from '../link/wire.js';
import { arpFactory } from '../network/arp.js';
import { ipv4Factory } from '../network/ipv4.js';
import type { PingOptions, PingResult } from '../network/echo.js';
import { LinkType, PcapWriter } from '../pcap/writer.js';
import { ManualClock } from '../core/clock.js';
import type { NIC } from '../stack/nic.js';
import { Random } from '../core/random.js';
import { PortableStack, type StackOptions } from '../portable/stack.js';
import { TapPoint } from './capture.js';
import { VirtualPump } from './pump.js';
import { expectNumber, expectObject, expectString, optionalBoolean, optionalInteger, optionalString, optionsObject } from '../core/validate.js';

/**
 * Network: a whole virtual network in one process, built in a few lines, on one ManualClock.
 *
 * ```ts
 * const net = new Network({ seed: 1 });
 * const a = net.host('a'), b = net.host('b'), r = net.router('r');
 * net.link(a, r, { latencyMs: 5 });
 * net.link(r, b, { latencyMs: 5, loss: 0.01, rateBps: 10e6 });
 * net.capture(a, 'a.pcap');
 * const reply = await net.runUntil(a.ping(b));
 * ```
 *
 * - Hosts are Stacks (routers are stacks with forwarding on); links are point-to-point Ethernet
 *   cables between two hosts. Each link end is NIC -> EthernetEndpoint -> capture tap ->
 *   FaultEndpoint (the direction's latency, jitter, loss, burst loss, duplication, reordering,
 *   corruption, rate and queue) -> Wire, with every wire of the network sharing one delivery loop.
 * - Addresses: a link without addresses gets the next /24 of `subnetBase` (10.0.1.0/24,
 *   10.0.2.0/24, ...), .1 for its first host and .2 for its second. MACs are 02:00:00:HH:HH:NN
 *   (host and interface numbers). When the stack has IPv6, each link also gets fd00::<link>:0/64
 *   (::1 and ::2, no DAD) unless `ipv6: false`.
 * - Routes: as links are added, every host gets a route to every subnet it can reach through
 *   routers, via the first hop of a shortest path, unless `autoRoutes: false` (routes added by
 *   hand are kept; an automatic one for the same destination is skipped).
 * - Time: `run`, `runFor`, `runUntil` and `runUntilIdle` advance the ManualClock from timer to
 *   timer only, and between steps let promise callbacks, process.nextTick and setImmediate work
 *   run until it goes quiet, so async code (dgram, net.Socket, Node's http over a tunstack
 *   socket) runs on top. A minute of TCP takes milliseconds. `runSync` skips the async draining.
 * - Determinism: every random number comes from `seed` (one fork per host and per link, in the
 *   order they were created), so the same program and seed write byte-identical captures.
 */

export interface LinkProperties {
  /** One-way delay in ms (default 0: delivery in the same step). */
  latencyMs?: number;
  /** Uniform jitter in ms around the latency; order is kept (default 0). */
  jitterMs?: number;
  /** Independent loss probability (default 0). */
  loss?: number;
  /** Gilbert-Elliott burst loss (default none); see FaultEndpoint. */
  burstLoss?: GilbertElliottConfig | null;
  /** Duplication probability (default 0). */
  duplicate?: number;
  /** Probability that a packet is held back `reorderDelayMs` and overtaken (default 0). */
  reorder?: number;
  reorderDelayMs?: number;
  /** Single-bit corruption probability (default 0). */
  corrupt?: number;
  /** Bit rate in bits per second; 0 = unlimited (default). */
  rateBps?: number;
  /** Packets waiting in one direction (delay or serialization) at most; default 1000. */
  queueLimit?: number;
}

export interface LinkOptions extends LinkProperties {
  /** Name (default "<a>-<b>"). */
  name?: string;
  /** Largest IP packet on the link (default 1500). */
  mtu?: number;
  /** IPv4 subnet of the link ("10.9.0.0/24"); ends get .1 and .2. Default: the next free /24. */
  subnet?: string;
  /** Explicit address of the first / second end ("192.168.1.10/24"); overrides `subnet`. */
  a?: string;
  b?: string;
  /** IPv6 subnet (a /64 or longer) or false for none; default fd00::<n>:0/64 when IPv6 is present. */
  ipv6?: string | false;
  /** Per-direction overrides of the properties above. */
  aToB?: LinkProperties;
  bToA?: LinkProperties;
}

export interface HostOptions {
  /** Forward packets between interfaces (a router). Default false for hosts. */
  forwarding?: boolean;
  /** Seed of this host's stack (default: drawn from the network's seed). */
  seed?: number;
  /** Further stack options (clock and seed are the network's). */
  stack?: Omit<StackOptions, 'clock' | 'seed' | 'forwarding'>;
}

export interface NetworkOptions {
  /** Master seed (default 1). */
  seed?: number;
  /** The clock (default a new ManualClock starting at 0). */
  clock?: ManualClock;
  /** Where automatic subnets are carved from: its first two bytes, then /24s (default 10.0.0.0). */
  subnetBase?: string;
  /** Install routes automatically (default true). */
  autoRoutes?: boolean;
  /**
   * IPv6 (default true): stacks speak it and links get fd00::/64 addresses. false: IPv4-only
   * stacks (no IPv6 protocol, so no MLD/NDP chatter in captures).
   */
  ipv6?: boolean;
}

/** One interface of a simulated host: the NIC and what is below it. */
export class SimInterface {
  /** IPv4 address ("10.0.1.1") and its CIDR ("10.0.1.1/24"). */
  address = '';
  cidr = '';
  /** IPv6 address, when assigned. */
  address6 = '';
  cidr6 = '';
  /** @internal */ faultEndpoint!: FaultEndpoint;
  /** @internal */ tap!: TapPoint;

  constructor(
    readonly host: SimHost,
    readonly link: SimLink,
    readonly nic: NIC,
  ) {}

  get name(): string {
    return this.nic.name;
  }

  get mac(): string {
    return formatMAC(this.nic.linkAddress);
  }

  /** The FaultEndpoint impairing what this interface sends. */
  get fault(): FaultEndpoint {
    return this.faultEndpoint;
  }

  /** The interface at the other end of the link (null for a port to the outside, see Network.port). */
  get peer(): SimInterface | null {
    return this.link.a === this ? this.link.b : this.link.a;
  }
}

/** What a member of the host's stack is, when its stack has it (Node's `Stack`: net, dgram). */
export type StackMember<S, K extends string> = S extends { readonly [P in K]: infer M } ? M : unknown;

/**
 * A host (or router) of the network: a stack and its interfaces. `S` is the kind of stack the
 * network makes: the package's `Stack` (with Node's net and dgram) from `tunstack/sim`, a
 * PortableStack in the browser build.
 */
export class SimHost<S extends PortableStack = PortableStack> {
  readonly interfaces: SimInterface[] = [];

  constructor(
    readonly network: Network,
    readonly name: string,
    readonly index: number,
    readonly stack: S,
  ) {}

  get isRouter(): boolean {
    return this.stack.forwarding;
  }

  /** The first IPv4 address (empty before the host has a link). */
  get address(): string {
    return this.interfaces[0]?.address ?? '';
  }

  /** The first IPv6 address, if any. */
  get address6(): string {
    return this.interfaces.find((i) => i.address6 !== '')?.address6 ?? '';
  }

  /** Node's `net` and `dgram` bound to this host's stack (ENOSYS on a stack without them, as in a browser). */
  get net(): StackMember<S, 'net'> {
    return this.member('net');
  }
  get dgram(): StackMember<S, 'dgram'> {
    return this.member('dgram');
  }

  private member<K extends 'net' | 'dgram'>(key: K): StackMember<S, K> {
    const m = (this.stack as unknown as Partial<Record<K, unknown>>)[key];
    if (m === undefined) throw new TunstackError('ENOSYS', `${this.name}: this stack has no ${key} (Node's surfaces come with tunstack's Stack)`);
    return m as StackMember<S, K>;
  }

  /** The interface on a link, or towards a neighbour host. */
  interfaceTo(other: SimHost | SimLink): SimInterface {
    const i = this.interfaces.find((x) => (other instanceof SimLink ? x.link === other : x.peer?.host === other));
    if (i === undefined) throw new TunstackError('ENOENT', `${this.name} has no interface ${other instanceof SimLink ? `on ${other.name}` : `to ${other.name}`}`);
    return i;
  }

  /** Ping a host (its first IPv4 address) or an address; routes are settled first. */
  ping(to: SimHost | string, options: PingOptions = {}): Promise<PingResult> {
    this.network.prepare();
    return this.stack.ping(to instanceof SimHost ? to.address : to, options);
  }

  /** Ping a host's first IPv6 address (ICMPv6 echo). */
  ping6(to: SimHost, options: PingOptions = {}): Promise<PingResult> {
    this.network.prepare();
    if (to.address6 === '') return Promise.reject(new TunstackError('EADDRNOTAVAIL', `${to.name} has no IPv6 address`));
    return this.stack.ping(to.address6, options);
  }
}

/** A cable between two hosts (or from a host to the outside: `b` is null, see Network.port). */
export class SimLink {
  /** @internal */ a!: SimInterface;
  /** @internal */ b: SimInterface | null = null;
  /** @internal The impairment of each direction (a's outbound, b's outbound). */
  faultA!: FaultEndpoint;
  /** @internal */ faultB!: FaultEndpoint;
  readonly wire: Wire;

  constructor(
    readonly name: string,
    readonly index: number,
    readonly mtu: number,
    readonly subnet: string,
    readonly subnet6: string,
    clock: ManualClock,
    trampoline: Trampoline,
  ) {
    this.wire = new Wire({ clock, mtu, trampoline, queueLength: 65536 });
  }

  /** Impairment counters per direction (offered, lost, burstLost, duplicated, delivered, ...). */
  get stats(): { aToB: FaultStats; bToA: FaultStats } {
    return { aToB: this.faultA.outbound.stats, bToA: this.faultB.outbound.stats };
  }

  /** Change the link's properties (both directions, or one). Packets in flight keep their timing. */
  configure(props: LinkProperties, direction: 'both' | 'aToB' | 'bToA' = 'both'): void {
    if (direction !== 'bToA') this.faultA.outbound.configure(faultConfig(props));
    if (direction !== 'aToB') this.faultB.outbound.configure(faultConfig(props));
  }
}

function faultConfig(p: LinkProperties): FaultConfig {
  const c: FaultConfig = {
    loss: p.loss ?? 0,
    gilbertElliott: p.burstLoss ?? null,
    duplicate: p.duplicate ?? 0,
    corrupt: p.corrupt ?? 0,
    delayMs: p.latencyMs ?? 0,
    jitterMs: p.jitterMs ?? 0,
    reorder: p.reorder ?? 0,
    rateBps: p.rateBps ?? 0,
    limit: p.queueLimit ?? 1000,
  };
  if (p.reorderDelayMs !== undefined) c.reorderDelayMs = p.reorderDelayMs;
  return c;
}

const PROPERTY_KEYS: readonly (keyof LinkProperties)[] = [
  'latencyMs',
  'jitterMs',
  'loss',
  'burstLoss',
  'duplicate',
  'reorder',
  'reorderDelayMs',
  'corrupt',
  'rateBps',
  'queueLimit',
];

function pickProperties(o: LinkOptions): LinkProperties {
  const out: Record<string, unknown> = {};
  for (const k of PROPERTY_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out as LinkProperties;
}

/** A cable from a host to the outside (Network.port). */
export interface ExternalPort {
  link: SimLink;
  /** The host's interface on the cable. */
  iface: SimInterface;
  /** The far end: Ethernet frames in and out. */
  end: LinkEndpoint;
  /** Address for the device on the far end ("10.0.3.2/24", and without the prefix). */
  cidr: string;
  address: string;
  /** IPv6 address for it ('' without IPv6). */
  cidr6: string;
  address6: string;
  /** The host's addresses on the cable: the far side's gateways. */
  gateway: string;
  gateway6: string;
}

/** Counters of one host for summaries. */
export interface HostCounters {
  host: string;
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

export class Network<S extends PortableStack = PortableStack> {
  readonly clock: ManualClock;
  readonly seed: number;
  readonly hosts: SimHost<S>[] = [];
  readonly links: SimLink[] = [];
  private readonly random: Random;
  private readonly trampoline = new Trampoline(65536);
  private readonly autoRoutes: boolean;
  private readonly ipv6: boolean;
  private readonly base: [number, number];
  private nextSubnet = 1;
  private routesDirty = false;
  private readonly autoRouteKeys = new Set<string>();
  private readonly writers: PcapWriter[] = [];
  private activity = 0;
  private closed = false;
  private readonly pumper: VirtualPump;
  private readonly createStack: (options: StackOptions) => S;
  private readonly openCapture: (path: string) => PcapWriter;

  /**
   * `createStack` makes each host's stack (default a PortableStack: the usual protocols, no Node
   * surfaces); `openCapture` opens an Ethernet pcap file for `capture(host, path)`, creating its
   * directory (default: none, ENOSYS, as in a browser page). `tunstack/sim`'s Network passes the
   * package's Stack and node:fs files.
   */
  constructor(options: NetworkOptions = {}, createStack?: (options: StackOptions) => S, openCapture?: (path: string) => PcapWriter) {
    const where = 'new Network';
    options = optionsObject<NetworkOptions>(options, where);
    optionalInteger(options.seed, where, 'options.seed', -0x80000000, 0xffffffff);
    if (options.clock !== undefined && !(options.clock instanceof ManualClock)) {
      throw new TunstackError('EINVAL', `${where}: "options.clock" must be a ManualClock`);
    }
    optionalString(options.subnetBase, where, 'options.subnetBase');
    optionalBoolean(options.autoRoutes, where, 'options.autoRoutes');
    optionalBoolean(options.ipv6, where, 'options.ipv6');
    this.createStack = createStack ?? ((o) => new PortableStack(o) as S);
    this.openCapture =
      openCapture ??
      ((path) => {
        throw new TunstackError('ENOSYS', `capture: no files here for ${JSON.stringify(path)} (pass a PcapWriter, e.g. PcapWriter.inMemory())`);
      });
    this.seed = options.seed ?? 1;
    this.random = new Random(this.seed);
    this.clock = options.clock ?? new ManualClock();
    this.autoRoutes = options.autoRoutes ?? true;
    this.ipv6 = options.ipv6 ?? true;
    const base = parseCIDR(options.subnetBase ?? '10.0.0.0').address;
    if (base.length !== 4) throw new TunstackError('EINVAL', 'subnetBase must be an IPv4 address');
    this.base = [base[0]!, base[1]!];
    this.pumper = new VirtualPump(this.clock, () => this.activity);
  }

  // ---- building ----

  /** A host of this network, EINVAL naming the argument otherwise. */
  private checkHost(h: unknown, where: string, name: string): void {
    if (!(h instanceof SimHost) || !this.hosts.includes(h)) throw new TunstackError('EINVAL', `${where}: "${name}" must be a host of this network`);
  }

  /** Add a host (no forwarding). */
  host(name: string, options: HostOptions = {}): SimHost<S> {
    if (expectString(name, 'host', 'name') === '') throw new TunstackError('EINVAL', 'host: "name" must not be empty');
    options = optionsObject<HostOptions>(options, 'host');
    optionalBoolean(options.forwarding, 'host', 'options.forwarding');
    optionalInteger(options.seed, 'host', 'options.seed', -0x80000000, 0xffffffff);
    if (options.stack !== undefined) expectObject(options.stack, 'host', 'options.stack');
    if (this.hosts.some((h) => h.name === name)) throw new TunstackError('EEXIST', `host ${name} exists`);
    const seed = options.seed ?? this.random.u32();
    const stackOptions: StackOptions = { ...(options.stack ?? {}), clock: this.clock, seed, forwarding: options.forwarding ?? false };
    if (!this.ipv6 && stackOptions.networkProtocols === undefined) stackOptions.networkProtocols = [ipv4Factory(), arpFactory()];
    const stack = this.createStack(stackOptions);
    const h = new SimHost<S>(this, name, this.hosts.length + 1, stack);
    this.hosts.push(h);
    return h;
  }

  /** Add a router: a host that forwards between its interfaces. */
  router(name: string, options: Omit<HostOptions, 'forwarding'> = {}): SimHost<S> {
    return this.host(name, { ...options, forwarding: true });
  }

  /** Look a host up by name. */
  get(name: string): SimHost<S> {
    expectString(name, 'get', 'name');
    const h = this.hosts.find((x) => x.name === name);
    if (h === undefined) throw new TunstackError('ENOENT', `no host ${name}`);
    return h;
  }

  /** Join two hosts with a cable. */
  link(a: SimHost, b: SimHost, options: LinkOptions = {}): SimLink {
    this.checkHost(a, 'link', 'a');
    this.checkHost(b, 'link', 'b');
    options = optionsObject<LinkOptions>(options, 'link');
    if (a === b) throw new TunstackError('EINVAL', 'a link joins two different hosts');
    return this.makeLink(a, b, options).link;
  }

  /**
   * A cable from `host` to something outside the network: a virtual TAP device driven like a VM
   * monitor drives one, a bridge to a real interface, a test harness. `end` is the far end of the
   * cable, an Ethernet LinkEndpoint: attach a dispatcher to receive what the host sends, write
   * frames to send them to the host (with the `bToA` impairments). The addresses the far side
   * should use (`cidr`, `cidr6`) and its gateways (the host's addresses on the link) come with it;
   * the rest of the network gets routes to the link's subnet through `host` when it is a router.
   */
  port(host: SimHost, options: LinkOptions = {}): ExternalPort {
    this.checkHost(host, 'port', 'host');
    options = optionsObject<LinkOptions>(options, 'port');
    const { link, cidrB, cidr6B } = this.makeLink(host, null, options);
    return {
      link,
      iface: link.a,
      end: link.faultB,
      cidr: cidrB,
      address: cidrB.slice(0, cidrB.indexOf('/')),
      cidr6: cidr6B,
      address6: cidr6B === '' ? '' : cidr6B.slice(0, cidr6B.indexOf('/')),
      gateway: link.a.address,
      gateway6: link.a.address6,
    };
  }

  private makeLink(a: SimHost, b: SimHost | null, options: LinkOptions): { link: SimLink; cidrB: string; cidr6B: string } {
    const index = this.links.length + 1;
    const mtu = options.mtu ?? 1500;
    let cidrA: string;
    let cidrB: string;
    let subnet: string;
    if (options.a !== undefined || options.b !== undefined) {
      if (options.a === undefined || options.b === undefined) throw new TunstackError('EINVAL', 'give both ends an address, or neither');
      cidrA = options.a;
      cidrB = options.b;
      const p = parseCIDR(cidrA);
      subnet = `${formatIP(maskAddress(p.address, p.prefixLength))}/${p.prefixLength}`;
    } else if (options.subnet !== undefined) {
      const p = parseCIDR(options.subnet);
      if (p.address.length !== 4 || p.prefixLength > 30) throw new TunstackError('EINVAL', `subnet ${options.subnet} is not an IPv4 /30 or larger`);
      const net = maskAddress(p.address, p.prefixLength);
      subnet = `${formatIP(net)}/${p.prefixLength}`;
      cidrA = `${formatIP(addToIPv4(net, 1))}/${p.prefixLength}`;
      cidrB = `${formatIP(addToIPv4(net, 2))}/${p.prefixLength}`;
    } else {
      const n = this.nextSubnet++;
      if (n > 255) throw new TunstackError('ENOSPC', 'no automatic /24 left: give the link a subnet');
      subnet = `${this.base[0]}.${this.base[1]}.${n}.0/24`;
      cidrA = `${this.base[0]}.${this.base[1]}.${n}.1/24`;
      cidrB = `${this.base[0]}.${this.base[1]}.${n}.2/24`;
    }
    let subnet6 = '';
    const v6 = (h: SimHost | null): boolean => h === null || h.stack.networkProtocol(0x86dd) !== undefined;
    const want6 = options.ipv6 !== false && this.ipv6 && v6(a) && v6(b);
    if (want6) subnet6 = typeof options.ipv6 === 'string' ? options.ipv6 : `fd00:0:0:${index.toString(16)}::/64`;

    const link = new SimLink(options.name ?? `${a.name}-${b?.name ?? 'port'}`, index, mtu, subnet, subnet6, this.clock, this.trampoline);
    const common = pickProperties(options);
    const seedA = this.random.u32();
    const seedB = this.random.u32();
    link.faultA = new FaultEndpoint(link.wire.a, { clock: this.clock, seed: seedA, ...faultConfig({ ...common, ...(options.aToB ?? {}) }) });
    link.faultB = new FaultEndpoint(link.wire.b, { clock: this.clock, seed: seedB, ...faultConfig({ ...common, ...(options.bToA ?? {}) }) });
    link.a = this.attach(a, link, link.faultA, cidrA, subnet6, 1);
    if (b !== null) link.b = this.attach(b, link, link.faultB, cidrB, subnet6, 2);
    this.links.push(link);
    this.routesDirty = true;
    // Routes now, so that code may send before time first moves.
    this.prepare();
    let cidr6B = '';
    if (subnet6 !== '') {
      const p = parseCIDR(subnet6);
      const addr = maskAddress(p.address, p.prefixLength);
      addr[15] = 2;
      cidr6B = `${formatIP(addr)}/${p.prefixLength}`;
    }
    return { link, cidrB, cidr6B };
  }

  private attach(host: SimHost, link: SimLink, fault: FaultEndpoint, cidr: string, subnet6: string, hostPart: number): SimInterface {
    const tap = new TapPoint(fault, this.clock);
    tap.onPacket = this.bump;
    const ifIndex = host.interfaces.length;
    const mac = Uint8Array.of(0x02, 0, 0, (host.index >> 8) & 0xff, host.index & 0xff, ifIndex & 0xff);
    const nic = host.stack.createNIC({ name: `eth${ifIndex}`, endpoint: new EthernetEndpoint(tap, { linkAddress: mac }) });
    const iface = new SimInterface(host, link, nic);
    iface.faultEndpoint = fault;
    iface.tap = tap;
    const info = nic.addAddress(cidr);
    iface.cidr = cidr;
    iface.address = formatIP(info.address);
    if (subnet6 !== '') {
      const p = parseCIDR(subnet6);
      const addr = maskAddress(p.address, p.prefixLength);
      addr[15] = hostPart;
      iface.address6 = formatIP(addr);
      iface.cidr6 = `${iface.address6}/${p.prefixLength}`;
      nic.addAddress(iface.cidr6, { nodad: true });
    }
    host.interfaces.push(iface);
    return iface;
  }

  private readonly bump = (): void => {
    this.activity++;
  };

  // ---- routes ----

  /**
   * Install automatic routes now (done before time first moves and after topology changes).
   * Every host gets, for every subnet it is not on, a route via the first hop of a shortest path
   * through routers.
   */
  prepare(): void {
    if (!this.routesDirty) return;
    this.routesDirty = false;
    if (!this.autoRoutes) return;
    for (const h of this.hosts) this.routeHost(h);
  }

  private routeHost(h: SimHost): void {
    // Breadth-first over hosts, expanding only routers (and h itself).
    const first = new Map<SimHost, SimInterface>(); // host -> h's interface of the first hop
    const dist = new Map<SimHost, number>([[h, 0]]);
    const queue: SimHost[] = [h];
    while (queue.length > 0) {
      const n = queue.shift()!;
      if (n !== h && !n.isRouter) continue;
      for (const i of n.interfaces) {
        const m = i.peer?.host;
        if (m === undefined) continue;
        if (dist.has(m)) continue;
        dist.set(m, dist.get(n)! + 1);
        first.set(m, n === h ? i : first.get(n)!);
        queue.push(m);
      }
    }
    for (const link of this.links) {
      if (h.interfaces.some((i) => i.link === link)) continue;
      let best: SimHost | null = null;
      for (const end of [link.a.host, link.b?.host]) {
        if (end === undefined || !end.isRouter || !dist.has(end)) continue;
        if (best === null || dist.get(end)! < dist.get(best)!) best = end;
      }
      if (best === null) continue;
      const via = first.get(best)!;
      const gw = via.peer!;
      this.addAutoRoute(h, link.subnet, gw.address, via.name);
      if (link.subnet6 !== '' && gw.address6 !== '') this.addAutoRoute(h, link.subnet6, gw.address6, via.name);
    }
  }

  private addAutoRoute(h: SimHost, destination: string, gateway: string, nic: string): void {
    const key = `${h.name} ${destination}`;
    if (this.autoRouteKeys.has(key)) return;
    const dst = parseCIDR(destination);
    // A route the user installed for this destination wins.
    const exists = h.stack.routes.all.some(
      (e) => e.prefixLength === dst.prefixLength && e.destination.length === dst.address.length && prefixMatch(e.destination, dst.address, dst.prefixLength),
    );
    if (exists) return;
    h.stack.addRoute({ destination, gateway, nic });
    this.autoRouteKeys.add(key);
  }

  // ---- captures ----

  /**
   * Record everything a host sends and receives (all its interfaces) to a pcap file (Ethernet,
   * microsecond timestamps from the virtual clock), or into a PcapWriter you give. `iface` limits
   * the capture to one interface (a name such as "eth1", or the interface towards a host).
   * Returns the writer; files are closed by `close()`.
   */
  capture(host: SimHost, target: string | PcapWriter, options: { iface?: string | SimHost } = {}): PcapWriter {
    this.checkHost(host, 'capture', 'host');
    if (typeof target !== 'string' && !(target instanceof PcapWriter)) {
      throw new TunstackError('EINVAL', 'capture: "target" must be a file path or a PcapWriter');
    }
    options = optionsObject(options, 'capture');
    let writer: PcapWriter;
    if (typeof target === 'string') {
      writer = this.openCapture(target);
      this.writers.push(writer);
    } else {
      if (target.linkType !== LinkType.ETHERNET) throw new TunstackError('EINVAL', 'a network capture needs an Ethernet pcap writer');
      writer = target;
    }
    const ifaces =
      options.iface === undefined
        ? host.interfaces
        : options.iface instanceof SimHost
          ? [host.interfaceTo(options.iface)]
          : host.interfaces.filter((i) => i.name === options.iface);
    if (ifaces.length === 0) throw new TunstackError('ENOENT', `${host.name} has no interface to capture`);
    for (const i of ifaces) i.tap.addWriter(writer);
    return writer;
  }

  // ---- time ----

  /** Virtual time now (ms). */
  get now(): number {
    return this.clock.now();
  }

  /** Run until virtual time `untilMs` (absolute), letting async work run between timer steps. */
  async run(untilMs: number): Promise<void> {
    await this.pump(() => false, untilMs, true);
  }

  /** Run for `ms` of virtual time. */
  async runFor(ms: number): Promise<void> {
    await this.run(this.clock.now() + ms);
  }

  /**
   * Run until no timer is pending and async work has gone quiet, or until `limitMs` of virtual
   * time has passed (default 1 hour: periodic timers such as keepalives never go idle).
   */
  async runUntilIdle(limitMs = 3_600_000): Promise<void> {
    await this.pump(() => false, this.clock.now() + limitMs, false);
  }

  /**
   * Run until `p` settles and return its value (or throw its error); rejects with ETIMEDOUT when
   * `limitMs` of virtual time pass first (default 1 hour).
   */
  async runUntil<T>(p: Promise<T>, limitMs = 3_600_000): Promise<T> {
    let settled = false;
    const tracked = p.then(
      (v) => {
        settled = true;
        return v;
      },
      (e: unknown) => {
        settled = true;
        throw e;
      },
    );
    // Keep an early rejection from being reported as unhandled while we pump.
    tracked.catch(() => {});
    await this.pump(() => settled, this.clock.now() + limitMs, false);
    if (!settled) {
      const why = this.clock.nextDeadline() === Infinity ? 'the network went idle (nothing left to happen)' : `${limitMs} ms of virtual time passed`;
      throw new TunstackError('ETIMEDOUT', `promise not settled: ${why}`);
    }
    return tracked;
  }

  /** Advance to `untilMs` synchronously (timers only, no async draining): for pure packet loops. */
  runSync(untilMs: number): void {
    expectNumber(untilMs, 'runSync', 'untilMs', 0, Number.MAX_SAFE_INTEGER);
    this.prepare();
    this.clock.advanceTo(Math.max(untilMs, this.clock.now()));
  }

  private async pump(done: () => boolean, limit: number, toLimit: boolean): Promise<boolean> {
    this.prepare();
    return this.pumper.run(done, limit, toLimit, this.prepareStep);
  }

  private readonly prepareStep = (): void => this.prepare();

  /** Let async work run at the current virtual time until it goes quiet. */
  settle(): Promise<void> {
    return this.pumper.settle();
  }

  // ---- reporting ----

  /** Packet and byte counters per host (summed over its NICs). */
  counters(): HostCounters[] {
    return this.hosts.map((h) => {
      const c: HostCounters = { host: h.name, rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0 };
      for (const i of h.interfaces) {
        const s = i.nic.stats;
        c.rxPackets += s.rxPackets;
        c.txPackets += s.txPackets;
        c.rxBytes += s.rxBytes;
        c.txBytes += s.txBytes;
      }
      return c;
    });
  }

  /** Close every stack, link and capture file this network opened. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.hosts) h.stack.close();
    for (const l of this.links) l.wire.close();
    for (const w of this.writers) w.close();
  }
}

function addToIPv4(a: Uint8Array, n: number): Uint8Array {
  const v = (((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0) + n;
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}
