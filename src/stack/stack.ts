import { EventEmitter } from 'eventemitter3';
import { TunstackError } from '../core/errors.js';
import { addrEqual, formatIP, ipv4ToU32, maskAddress, parseIP } from '../core/address.js';
import { Trampoline } from '../core/queue.js';
import { RealClock, type Clock } from '../core/clock.js';
import { PacketBuffer } from '../core/packet.js';
import { NIC, type AddressInfo, type NICOptions } from './nic.js';
import { PortManager } from './ports.js';
import type {
  NetworkProtocol,
  NetworkProtocolFactory,
  NicEvent,
  TransportProtocol,
  TransportProtocolFactory,
} from './protocol.js';
import { Random } from '../core/random.js';
import { Route, RouteTable, parseRouteSpec, type RouteEntry, type RouteSpec } from './route.js';
import {
  expectAddress,
  expectCidr,
  expectMethods,
  expectNicRef,
  expectObject,
  optionalBoolean,
  optionalInteger,
  optionalString,
  optionsObject,
} from '../core/validate.js';
import type { LinkEndpoint } from '../link/endpoint.js';

export interface NetStackOptions {
  /** Default: a RealClock. Tests pass a ManualClock. */
  clock?: Clock;
  /** Seed for every random number the stack uses; default: random. */
  seed?: number;
  /**
   * Network protocols, each made once for this stack (default none: a NetStack knows no protocol
   * by itself; the package's `Stack` passes IPv4 + ARP + IPv6).
   */
  networkProtocols?: NetworkProtocolFactory[];
  /** Transport protocols (default none; the package's `Stack` passes UDP, TCP and ping). */
  transportProtocols?: TransportProtocolFactory[];
  /** Route packets between NICs (default false). */
  forwarding?: boolean;
  /** Default IPv4 TTL / IPv6 hop limit (default 64, as Linux). */
  defaultTtl?: number;
}

interface StackEvents {
  'nic-added': [NIC];
  'nic-removed': [NIC];
  /** A protocol threw on input: a bug, counted in stats.internalErrors. */
  'internal-error': [unknown];
}

/**
 * Raw sockets' input: every IP datagram delivered locally (after reassembly) is offered here, its
 * network header at `ipStart`; true if a raw socket took a copy. Attached by src/transport/raw.ts
 * while raw sockets are open (attachRawInput / detachRawInput).
 */
export type RawInputHook = (family: 4 | 6, protocol: number, nic: NIC, data: Uint8Array, ipStart: number, end: number) => boolean;

/**
 * The network stack's core: NICs, routing, ports, clock and random source, and the protocols it
 * was given (as gVisor's stack.Stack with its stack.Options). It names no protocol: IPv4, ARP,
 * IPv6, UDP, TCP and the rest come in as factories (`networkProtocols`, `transportProtocols`).
 * The package's `Stack` (src/adapters/stack.ts) is a NetStack with the usual protocols, the typed
 * conveniences (udp, tcp, ping, raw, openTun) and the Node surfaces.
 */
export class NetStack extends EventEmitter<StackEvents> {
  readonly clock: Clock;
  readonly random: Random;
  readonly ports: PortManager;
  readonly routes = new RouteTable();
  forwarding: boolean;
  defaultTtl: number;
  readonly stats = { internalErrors: 0 };
  private readonly nicsById = new Map<number, NIC>();
  private readonly nicsByName = new Map<string, NIC>();
  private readonly netProtos = new Map<number, NetworkProtocol>();
  private readonly transProtos = new Map<number, TransportProtocol>();
  private nextNicId = 1;
  private closed = false;
  /** Bumped on every NIC, address or route change; cached routes from older generations are stale. */
  private generation = 0;
  private routeCacheGeneration = 0;
  /** Packets this stack sends to itself, delivered from one loop so replies never recurse. */
  private readonly localLoop = new Trampoline(1024);
  /** IPv4 route cache (as Linux's dst cache): destination -> routes computed for it, per pinning. */
  private readonly routeCache = new Map<number, CachedRoute[]>();

  constructor(options: NetStackOptions = {}) {
    super();
    options = optionsObject<NetStackOptions>(options, 'new Stack');
    if (options.clock !== undefined) expectMethods(options.clock, 'new Stack', 'options.clock', ['now', 'wallNow', 'timer', 'setTimeout']);
    optionalInteger(options.seed, 'new Stack', 'options.seed', -0x80000000, 0xffffffff);
    optionalBoolean(options.forwarding, 'new Stack', 'options.forwarding');
    optionalInteger(options.defaultTtl, 'new Stack', 'options.defaultTtl', 1, 255);
    this.clock = options.clock ?? new RealClock();
    this.random = new Random(options.seed);
    this.ports = new PortManager(this.random.fork());
    this.forwarding = options.forwarding ?? false;
    this.defaultTtl = options.defaultTtl ?? 64;
    for (const f of options.networkProtocols ?? []) {
      const p = f(this);
      this.netProtos.set(p.number, p);
    }
    for (const f of options.transportProtocols ?? []) {
      const p = f(this);
      this.transProtos.set(p.number, p);
    }
  }

  networkProtocol(number: number): NetworkProtocol | undefined {
    return this.netProtos.get(number);
  }

  transportProtocol(number: number): TransportProtocol | undefined {
    return this.transProtos.get(number);
  }

  /** Typed access to a protocol implementation, EPROTONOSUPPORT when absent. */
  requireTransport<T extends TransportProtocol>(number: number): T {
    const p = this.transProtos.get(number);
    if (!p) throw new TunstackError('EPROTONOSUPPORT', `transport protocol ${number} not registered`);
    return p as T;
  }

  requireNetwork<T extends NetworkProtocol>(number: number): T {
    const p = this.netProtos.get(number);
    if (!p) throw new TunstackError('EAFNOSUPPORT', `network protocol 0x${number.toString(16)} not registered`);
    return p as T;
  }

  // ---- NICs ----

  createNIC(options: NICOptions): NIC {
    this.assertOpen();
    checkNicOptions(options);
    if (options.name !== undefined) validateName(options.name);
    if (options.name !== undefined && this.nicsByName.has(options.name)) {
      throw new TunstackError('EEXIST', `a NIC named "${options.name}" exists`);
    }
    const id = this.nextNicId++;
    const nic = new NIC(this, id, options);
    if (this.nicsByName.has(nic.name)) {
      throw new TunstackError('EEXIST', `a NIC named "${nic.name}" exists`);
    }
    this.nicsById.set(id, nic);
    this.nicsByName.set(nic.name, nic);
    claimEndpoint(nic.endpoint, nic);
    this.generation++;
    if (options.enabled !== false) nic.enable();
    this.emit('nic-added', nic);
    return nic;
  }

  removeNIC(idOrName: number | string): void {
    const nic = this.getNIC(expectNicRef(idOrName, 'removeNIC', 'idOrName'));
    this.routes.remove((e) => e.nicId === nic.id);
    nic.destroy();
    releaseEndpoint(nic.endpoint, nic);
    this.nicsById.delete(nic.id);
    this.nicsByName.delete(nic.name);
    this.generation++;
    this.emit('nic-removed', nic);
  }

  /** The NIC with this id or name, or undefined. */
  nic(idOrName: number | string): NIC | undefined {
    expectNicRef(idOrName, 'nic', 'idOrName');
    return typeof idOrName === 'number' ? this.nicsById.get(idOrName) : this.nicsByName.get(idOrName);
  }

  /** The NIC with this id or name; ENODEV when there is none. */
  getNIC(idOrName: number | string): NIC {
    const nic = this.nic(idOrName);
    if (!nic) throw new TunstackError('ENODEV', `no NIC ${JSON.stringify(idOrName)}`);
    return nic;
  }

  get nics(): NIC[] {
    return [...this.nicsById.values()];
  }

  /** The NIC that has `addr` assigned, or null. */
  nicForAddress(addr: Uint8Array, off = 0, len = addr.length - off): NIC | null {
    for (const nic of this.nicsById.values()) if (nic.hasAddress(addr, off, len)) return nic;
    return null;
  }

  // ---- routes ----

  addRoute(spec: RouteSpec): void {
    checkRouteSpec(spec, 'addRoute');
    const nic = this.getNIC(spec.nic);
    const { destination, prefixLength, gateway } = parseRouteSpec(spec);
    this.routes.add({ destination, prefixLength, gateway, nicId: nic.id, metric: spec.metric ?? 0, connected: false });
    this.generation++;
  }

  removeRoute(spec: RouteSpec): void {
    checkRouteSpec(spec, 'removeRoute');
    const nic = this.getNIC(spec.nic);
    const { destination, prefixLength, gateway } = parseRouteSpec(spec);
    const dest = maskAddress(destination, prefixLength);
    const n = this.routes.remove(
      (e) =>
        e.nicId === nic.id &&
        e.prefixLength === prefixLength &&
        e.destination.length === dest.length &&
        addrEqual(e.destination, dest) &&
        (gateway === null || (e.gateway !== null && addrEqual(e.gateway, gateway))),
    );
    if (n === 0) throw new TunstackError('ENOENT', `no route ${spec.destination}`);
    this.generation++;
  }

  /** @internal */
  addConnectedRoute(nic: NIC, info: AddressInfo): void {
    const entry: RouteEntry = {
      destination: maskAddress(info.address, info.prefixLength),
      prefixLength: info.prefixLength,
      gateway: null,
      nicId: nic.id,
      metric: 0,
      connected: true,
    };
    try {
      this.routes.add(entry);
    } catch {
      // Two addresses in one subnet share the connected route.
    }
  }

  /** @internal */
  removeConnectedRoute(nic: NIC, info: AddressInfo): void {
    const dest = maskAddress(info.address, info.prefixLength);
    const stillCovered = nic.addresses.some(
      (a) => a.address.length === dest.length && a.prefixLength === info.prefixLength && addrEqual(maskAddress(a.address, a.prefixLength), dest),
    );
    if (stillCovered) return;
    this.routes.remove(
      (e) => e.connected && e.nicId === nic.id && e.prefixLength === info.prefixLength && e.destination.length === dest.length && addrEqual(e.destination, dest),
    );
  }

  /**
   * Find how to reach `remote`. `local` pins the source address (EADDRNOTAVAIL if not ours and
   * the NIC does not allow spoofing); `nic` pins the interface. Throws ENETUNREACH when no route
   * matches and EADDRNOTAVAIL when the chosen NIC has no address of the family.
   */
  findRoute(remote: Uint8Array | string, options: { local?: Uint8Array | null; nic?: number | string } = {}): Route {
    const dst = typeof remote === 'string' ? parseIP(remote) : remote;
    const local = options.local ?? null;
    if (dst.length !== 4 || (local !== null && local.length !== 4) || typeof options.nic === 'string') {
      return this.computeRoute(dst, options);
    }
    if (this.routeCacheGeneration !== this.generation) {
      this.routeCache.clear();
      this.routeCacheGeneration = this.generation;
    }
    const key = ipv4ToU32(dst);
    const nicPin = options.nic ?? 0;
    const localKey = local === null ? -1 : ipv4ToU32(local);
    const list = this.routeCache.get(key);
    if (list !== undefined) {
      for (const c of list) if (c.nic === nicPin && c.local === localKey) return c.route;
    }
    const route = this.computeRoute(dst, options);
    if (this.routeCache.size >= 4096) this.routeCache.clear();
    const entry: CachedRoute = { nic: nicPin, local: localKey, route };
    if (list !== undefined) list.push(entry);
    else this.routeCache.set(key, [entry]);
    return route;
  }

  private computeRoute(remote: Uint8Array, options: { local?: Uint8Array | null; nic?: number | string }): Route {
    // Copies: callers may pass views into packets.
    const dst = remote.slice();
    const family = dst.length === 4 ? 4 : 6;
    const netProto = this.netProtos.get(family === 4 ? 0x0800 : 0x86dd);
    if (!netProto) throw new TunstackError('EAFNOSUPPORT', `IPv${family} is not enabled on this stack`);
    let pinned = options.nic !== undefined ? this.getNIC(options.nic) : null;
    const local = options.local ?? null;
    if (local && isUnspecified(local)) {
      return this.computeRoute(dst, { ...(options.nic !== undefined ? { nic: options.nic } : {}) });
    }
    if (local && !pinned) {
      const owner = this.nicForAddress(local);
      if (owner) pinned = owner;
    }
    const limitedBroadcast = family === 4 && dst[0] === 255 && dst[1] === 255 && dst[2] === 255 && dst[3] === 255;
    const multicast = family === 4 ? (dst[0]! & 0xf0) === 0xe0 : dst[0] === 0xff;
    let nic: NIC;
    let nextHop: Uint8Array = dst;
    if ((limitedBroadcast || multicast) && pinned) {
      nic = pinned;
    } else {
      const entry = this.routes.lookup(dst, pinned?.id ?? 0, (id) => this.nicsById.get(id)?.enabled === true);
      if (!entry) {
        if (limitedBroadcast || multicast) {
          const any = [...this.nicsById.values()].find((n) => n.enabled && n.primaryAddress(family) !== null);
          if (!any) throw new TunstackError('ENETUNREACH', `no route to ${formatIP(dst)}`, 'connect');
          nic = any;
        } else {
          throw new TunstackError('ENETUNREACH', `no route to ${formatIP(dst)}`, 'connect');
        }
      } else {
        nic = this.nicsById.get(entry.nicId)!;
        if (entry.gateway) nextHop = entry.gateway;
      }
    }
    let src: Uint8Array | null;
    if (local) {
      if (!nic.hasAddress(local) && !nic.spoofing && !this.nicForAddress(local)) {
        throw new TunstackError('EADDRNOTAVAIL', `${formatIP(local)} is not a local address`, 'bind');
      }
      src = local.slice();
    } else {
      // IPv6 source selection looks at the destination's scope (RFC 6724), not the next hop's.
      src = nic.primaryAddress(family, family === 6 ? dst : nextHop);
    }
    if (!src) throw new TunstackError('EADDRNOTAVAIL', `${nic.name} has no IPv${family} address`, 'connect');
    const broadcast = limitedBroadcast || (family === 4 && nic.isSubnetBroadcast(dst));
    const localDelivery = broadcast || multicast ? null : this.nicForAddress(dst);
    return new Route(nic, netProto, src, dst, nextHop, broadcast, multicast, localDelivery);
  }

  // ---- raw input ----

  private rawHook: RawInputHook | null = null;

  /** @internal The raw sockets' input hook, if attached (read by the IP layers per datagram). */
  get rawInput(): RawInputHook | null {
    return this.rawHook;
  }

  /** @internal Offer every locally delivered datagram to `hook` (one hook per stack; EBUSY if another is attached). */
  attachRawInput(hook: RawInputHook): void {
    if (this.rawHook !== null && this.rawHook !== hook) throw new TunstackError('EBUSY', 'another raw input hook is attached');
    this.rawHook = hook;
  }

  /** @internal Stop offering datagrams to `hook` (nothing if it is not the one attached). */
  detachRawInput(hook: RawInputHook): void {
    if (this.rawHook === hook) this.rawHook = null;
  }

  /** @internal Throws EBADF once the stack is closed (for the conveniences of subclasses). */
  protected assertOpen(): void {
    if (this.closed) throw new TunstackError('EBADF', 'stack is closed');
  }

  // ---- protocol plumbing ----

  /**
   * @internal Deliver a packet addressed to this stack (its network header at pkt.start) to
   * `nic` as if it had arrived there: a copy goes through one trampolined loop shared by every
   * protocol, bounded at 1024 waiting. False when the loop is full (the caller counts the drop).
   */
  deliverLocal(nic: NIC, protocol: number, pkt: PacketBuffer): boolean {
    const copy = PacketBuffer.copyOf(pkt.view());
    copy.networkProtocol = protocol;
    if (!this.localLoop.enqueue(nic, protocol, copy)) return false;
    this.localLoop.run();
    return true;
  }

  /** @internal */
  notifyProtocols(nic: NIC, ev: NicEvent): void {
    this.generation++;
    for (const p of this.netProtos.values()) p.onNicEvent?.(nic, ev);
  }

  /** @internal A protocol threw on input; the packet is dropped and the error counted. */
  reportInternalError(err: unknown): void {
    this.stats.internalErrors++;
    if (this.listenerCount('internal-error') > 0) this.emit('internal-error', err);
  }

  /** Remove every NIC and stop every protocol timer. */
  close(): void {
    if (this.closed) return;
    for (const p of this.transProtos.values()) p.close?.();
    for (const p of this.netProtos.values()) p.close?.();
    for (const nic of [...this.nicsById.values()]) this.removeNIC(nic.id);
    this.closed = true;
  }

}

interface CachedRoute {
  nic: number;
  local: number;
  route: Route;
}

function isUnspecified(a: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

const utf8 = new TextEncoder();

function utf8Length(text: string): number {
  return utf8.encode(text).length;
}

/** Linux interface names: 1..15 bytes, no '/', ':' or whitespace. */
export function validateName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || utf8Length(name) > 15 || /[\s/:]/.test(name) || name === '.' || name === '..') {
    throw new TunstackError('EINVAL', `invalid interface name ${JSON.stringify(name)}`);
  }
}

/**
 * Which NIC holds each link endpoint (across stacks): a second NIC on the same endpoint would
 * silently take its inbound packets over, so createNIC refuses it with EBUSY.
 */
const endpointOwners = new WeakMap<LinkEndpoint, NIC>();

/** The NIC removed: its endpoint may be used again. */
function releaseEndpoint(endpoint: LinkEndpoint, nic: NIC): void {
  if (endpointOwners.get(endpoint) === nic) endpointOwners.delete(endpoint);
}

function claimEndpoint(endpoint: LinkEndpoint, nic: NIC): void {
  endpointOwners.set(endpoint, nic);
}

function checkNicOptions(options: NICOptions): void {
  const where = 'createNIC';
  expectObject(options, where, 'options');
  const ep = expectMethods<LinkEndpoint>(options.endpoint, where, 'options.endpoint', ['attach', 'writePackets', 'close']);
  const owner = endpointOwners.get(ep);
  if (owner !== undefined) {
    throw new TunstackError('EBUSY', `${where}: "options.endpoint" is already attached to NIC ${owner.name}`);
  }
  if (ep.isAttached === true) throw new TunstackError('EBUSY', `${where}: "options.endpoint" is already attached to a dispatcher`);
  optionalString(options.name, where, 'options.name');
  optionalBoolean(options.enabled, where, 'options.enabled');
  optionalBoolean(options.promiscuous, where, 'options.promiscuous');
  optionalBoolean(options.spoofing, where, 'options.spoofing');
  optionalInteger(options.mtu, where, 'options.mtu', 68, 0x7fffffff);
  optionalString(options.kind, where, 'options.kind');
  if (options.neighbor !== undefined) expectObject(options.neighbor, where, 'options.neighbor');
}

function checkRouteSpec(spec: RouteSpec, where: string): void {
  expectObject(spec, where, 'spec');
  expectCidr(spec.destination, where, 'spec.destination');
  if (spec.gateway !== undefined) expectAddress(spec.gateway, where, 'spec.gateway');
  expectNicRef(spec.nic, where, 'spec.nic');
  optionalInteger(spec.metric, where, 'spec.metric', 0, 0xffffffff);
}
