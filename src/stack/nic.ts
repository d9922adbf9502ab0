import { EventEmitter } from 'eventemitter3';
import { TunstackError } from '../core/errors.js';
import { addrEqual, formatIP, prefixMatch } from '../core/address.js';
import { LinkCapability, type LinkEndpoint, type NetworkDispatcher } from '../link/endpoint.js';
import { NeighborCache, type NeighborConfig, type NeighborProber, type NeighborStats } from './neighbor.js';
import { PacketType, type PacketBuffer } from '../core/packet.js';
import type { NicEvent } from './protocol.js';
import { newNicStats, type NicStats } from './stats.js';
import type { NetStack } from './stack.js';
import { expectAddress, expectCidr, expectInteger, expectObject, optionalBoolean, optionsObject } from '../core/validate.js';

export interface NICOptions {
  /** Interface name (unique in the stack); default `nic<id>`. */
  name?: string;
  endpoint: LinkEndpoint;
  /** Start enabled (default true). */
  enabled?: boolean;
  /** Accept packets for any destination address (needed for a sandbox's NAT). */
  promiscuous?: boolean;
  /** Allow sending from any source address, not only assigned ones. */
  spoofing?: boolean;
  /** Override the endpoint's MTU (lower only). */
  mtu?: number;
  /** Tag for the subsystem that owns the NIC (the virtual tun device uses 'tun'). */
  kind?: string;
  /** Neighbour cache tuning. */
  neighbor?: Partial<NeighborConfig>;
}

/**
 * IPv6 address states (RFC 4862): a `tentative` address is undergoing duplicate address detection
 * and is not usable yet; `dadfailed` found a duplicate; `deprecated` is usable but not chosen as a
 * source for new traffic. IPv4 addresses are always `preferred`.
 */
export type AddressState = 'tentative' | 'preferred' | 'deprecated' | 'dadfailed';

export interface AddressInfo {
  address: Uint8Array;
  prefixLength: number;
  /** Absent means 'preferred'. Only preferred and deprecated addresses are usable. */
  state?: AddressState;
  /** Skip duplicate address detection for this address (Linux `ip addr add ... nodad`). */
  nodad?: boolean;
}

/** Sees every packet a NIC receives or transmits (packet taps, src/transport/raw.ts). */
export interface NicPacketObserver {
  /** @internal `pkt.start` is at the network header; do not keep or modify the packet. */
  observe(nic: NIC, outbound: boolean, pkt: PacketBuffer): void;
}

interface NicEvents {
  enabled: [];
  disabled: [];
  removed: [];
  'address-added': [AddressInfo];
  'address-removed': [AddressInfo];
  /** An address changed state (IPv6 DAD finished or failed, lifetime ran out). */
  'address-state': [AddressInfo];
}

/**
 * A network interface: a link endpoint plus addresses, state, statistics and a neighbour cache
 * per resolving network protocol. It is the endpoint's dispatcher for inbound packets.
 */
export class NIC extends EventEmitter<NicEvents> implements NetworkDispatcher {
  readonly id: number;
  readonly name: string;
  readonly endpoint: LinkEndpoint;
  readonly stack: NetStack;
  readonly kind: string;
  readonly stats: NicStats = newNicStats();
  promiscuous: boolean;
  spoofing: boolean;
  private _enabled = false;
  private _mtu: number | undefined;
  private readonly _addresses: AddressInfo[] = [];
  private readonly neighborCaches = new Map<number, NeighborCache>();
  private readonly neighborConfig: Partial<NeighborConfig>;
  private writing = 0;
  private readonly one: PacketBuffer[] = [];
  private observers: NicPacketObserver[] = [];

  constructor(stack: NetStack, id: number, options: NICOptions) {
    super();
    this.stack = stack;
    this.id = id;
    this.name = options.name ?? `nic${id}`;
    this.endpoint = options.endpoint;
    this.kind = options.kind ?? 'generic';
    this.promiscuous = options.promiscuous ?? false;
    this.spoofing = options.spoofing ?? false;
    this.neighborConfig = options.neighbor ?? {};
    if (options.mtu !== undefined) this.mtu = options.mtu;
  }

  get enabled(): boolean {
    return this._enabled;
  }

  get mtu(): number {
    return this._mtu ?? this.endpoint.mtu;
  }

  /** Set the MTU (68 ..= endpoint MTU); EINVAL outside that range. */
  set mtu(v: number) {
    expectInteger(v, 'NIC.mtu', 'mtu', 0, Number.MAX_SAFE_INTEGER);
    if (!Number.isInteger(v) || v < 68 || v > this.endpoint.mtu) {
      throw new TunstackError('EINVAL', `MTU ${v} outside 68..${this.endpoint.mtu}`);
    }
    this._mtu = v;
  }

  get linkAddress(): Uint8Array {
    return this.endpoint.linkAddress;
  }

  /** Whether next hops need link-address resolution (Ethernet) before sending. */
  get needsResolution(): boolean {
    return (this.endpoint.capabilities & LinkCapability.ResolutionRequired) !== 0;
  }

  get addresses(): readonly AddressInfo[] {
    return this._addresses;
  }

  enable(): void {
    if (this._enabled) return;
    this._enabled = true;
    this.endpoint.attach(this);
    this.notify({ type: 'enabled' });
    this.emit('enabled');
  }

  disable(): void {
    if (!this._enabled) return;
    this._enabled = false;
    for (const c of this.neighborCaches.values()) c.clear();
    this.notify({ type: 'disabled' });
    this.emit('disabled');
  }

  /**
   * Add "10.0.0.1/24" or an AddressInfo. A connected route for the prefix is added too.
   * `nodad`: an IPv6 address is usable at once, without duplicate address detection.
   */
  addAddress(addr: string | AddressInfo, options: { route?: boolean; nodad?: boolean } = {}): AddressInfo {
    const info = checkAddressArg(addr, 'addAddress');
    options = optionsObject(options, 'addAddress');
    optionalBoolean(options.route, 'addAddress', 'options.route');
    optionalBoolean(options.nodad, 'addAddress', 'options.nodad');
    if (options.nodad === true || (typeof addr !== 'string' && addr.nodad === true)) info.nodad = true;
    if (this.addressInfo(info.address) !== undefined) {
      throw new TunstackError('EEXIST', `${formatIP(info.address)} already on ${this.name}`);
    }
    this._addresses.push(info);
    if (options.route !== false && info.prefixLength < info.address.length * 8) {
      this.stack.addConnectedRoute(this, info);
    }
    this.notify({ type: 'address-added', address: info.address, prefixLength: info.prefixLength });
    this.emit('address-added', info);
    return info;
  }

  removeAddress(addr: string | Uint8Array): void {
    const bytes = typeof addr === 'string' ? expectCidr(addr, 'removeAddress', 'addr').address : expectAddress(addr, 'removeAddress', 'addr');
    const i = this._addresses.findIndex((a) => a.address.length === bytes.length && addrEqual(a.address, bytes));
    if (i < 0) throw new TunstackError('EADDRNOTAVAIL', `${formatIP(bytes)} is not on ${this.name}`);
    const [info] = this._addresses.splice(i, 1);
    this.stack.removeConnectedRoute(this, info!);
    this.notify({ type: 'address-removed', address: info!.address, prefixLength: info!.prefixLength });
    this.emit('address-removed', info!);
  }

  /** True if `addr` (at `off` in `buf`, `len` bytes) is assigned to this NIC and usable. */
  hasAddress(buf: Uint8Array, off = 0, len = buf.length - off): boolean {
    for (const a of this._addresses) {
      if (a.address.length === len && addrEqual(a.address, buf, off)) return usable(a);
    }
    return false;
  }

  /** The assigned address `addr` in any state (tentative and dadfailed included), or undefined. */
  addressInfo(buf: Uint8Array, off = 0, len = buf.length - off): AddressInfo | undefined {
    for (const a of this._addresses) {
      if (a.address.length === len && addrEqual(a.address, buf, off)) return a;
    }
    return undefined;
  }

  /** Change an address's state (used by IPv6 DAD and address lifetimes); emits 'address-state'. */
  setAddressState(addr: Uint8Array, state: AddressState): void {
    const a = this.addressInfo(addr);
    if (a === undefined || (a.state ?? 'preferred') === state) return;
    if (state === 'preferred') delete a.state;
    else a.state = state;
    this.emit('address-state', a);
  }

  /** Start passing every packet in and out to `o` (see NicPacketObserver). */
  addObserver(o: NicPacketObserver): void {
    if (!this.observers.includes(o)) this.observers = [...this.observers, o];
  }

  removeObserver(o: NicPacketObserver): void {
    this.observers = this.observers.filter((x) => x !== o);
  }

  /** True if `addr` is the directed broadcast address of one of this NIC's IPv4 subnets. */
  isSubnetBroadcast(buf: Uint8Array, off = 0): boolean {
    for (const a of this._addresses) {
      if (a.address.length !== 4 || a.prefixLength >= 31) continue;
      let match = true;
      for (let i = 0; i < 4 && match; i++) {
        const bits = Math.min(8, Math.max(0, a.prefixLength - i * 8));
        const mask = (0xff << (8 - bits)) & 0xff;
        if ((buf[off + i]! & mask) !== (a.address[i]! & mask)) match = false;
        else if ((buf[off + i]! | mask) !== 0xff) match = false;
      }
      if (match) return true;
    }
    return false;
  }

  /**
   * The source address to use towards `remote`: an address of the same family whose prefix
   * covers `remote` (or `nextHop`), else the first of the family; null when there is none.
   */
  primaryAddress(family: 4 | 6, remote?: Uint8Array): Uint8Array | null {
    if (family === 6) return this.selectSourceV6(remote);
    let first: Uint8Array | null = null;
    for (const a of this._addresses) {
      if (a.address.length !== 4) continue;
      if (remote && prefixMatch(a.address, remote, a.prefixLength)) return a.address;
      first ??= a.address;
    }
    return first;
  }

  /**
   * IPv6 source address selection (RFC 6724, the rules that apply to one interface): usable
   * addresses only; prefer the destination's scope (rule 2: link-local for link-local
   * destinations, global for global ones), then not deprecated (rule 3), then the longest
   * matching prefix (rule 8).
   */
  private selectSourceV6(remote: Uint8Array | undefined): Uint8Array | null {
    let best: AddressInfo | null = null;
    let bestScore = -1;
    const rscope = remote && remote.length === 16 ? scopeV6(remote) : 0xe;
    for (const a of this._addresses) {
      if (a.address.length !== 16 || !usable(a)) continue;
      const s = scopeV6(a.address);
      let score = s === rscope ? 1 << 12 : s > rscope ? 1 << 11 : 0;
      if (a.state !== 'deprecated') score += 1 << 10;
      if (remote && remote.length === 16) score += commonPrefixLength(a.address, remote);
      if (score > bestScore) {
        best = a;
        bestScore = score;
      }
    }
    return best ? best.address : null;
  }

  /** The neighbour cache for a resolving network protocol on this NIC (created on first use). */
  neighborCache(protocolNumber: number, prober: () => NeighborProber): NeighborCache {
    let c = this.neighborCaches.get(protocolNumber);
    if (!c) {
      c = new NeighborCache(this.stack.clock, this.stack.random, prober(), this.neighborConfig);
      this.neighborCaches.set(protocolNumber, c);
    }
    return c;
  }

  /**
   * A copy of the counters of this NIC's neighbour caches (ARP: ipv4, NDP: ipv6) with their
   * current entry counts; null for a cache not created yet.
   */
  neighborStats(): { ipv4: (NeighborStats & { entries: number }) | null; ipv6: (NeighborStats & { entries: number }) | null } {
    const of = (n: number): (NeighborStats & { entries: number }) | null => {
      const c = this.neighborCaches.get(n);
      return c ? { ...c.stats, entries: c.size } : null;
    };
    return { ipv4: of(0x0800), ipv6: of(0x86dd) };
  }

  /** Inbound from the link endpoint. Never throws. */
  /** TCP arriving here stays here unless the stack forwards (see NetworkDispatcher). */
  get terminatesTcp(): boolean {
    return !this.stack.forwarding;
  }

  deliverNetworkPacket(protocol: number, pkt: PacketBuffer): void {
    const stats = this.stats;
    stats.rxPackets++;
    stats.rxBytes += pkt.end - (pkt.linkHeaderStart >= 0 ? pkt.linkHeaderStart : pkt.start);
    if (!this._enabled) {
      stats.rxDroppedDisabled++;
      return;
    }
    if (protocol === 0) {
      const v = pkt.end > pkt.start ? pkt.data[pkt.start]! >>> 4 : 0;
      protocol = v === 4 ? 0x0800 : v === 6 ? 0x86dd : 0;
    }
    if (this.observers.length !== 0) this.notifyObservers(false, pkt, protocol);
    // Linux (ip_rcv, ipv6_rcv, arp_rcv): a frame for another host's MAC is not ours. Packet taps
    // above still saw it, as AF_PACKET does. A promiscuous NIC (a sandbox's NAT) takes it.
    if (pkt.packetType === PacketType.OtherHost && !this.promiscuous) {
      stats.rxDroppedOtherHost++;
      return;
    }
    const proto = this.stack.networkProtocol(protocol);
    if (proto === undefined) {
      stats.rxDroppedUnknownProtocol++;
      return;
    }
    pkt.nicId = this.id;
    pkt.networkProtocol = protocol;
    try {
      proto.handlePacket(this, pkt);
    } catch (err) {
      // A protocol bug must not take the stack down: count it and keep going.
      this.stack.reportInternalError(err);
    }
  }

  /** Delivery from a trampoline (the stack's local loop): the same as from the link. */
  deliverQueued(protocol: number, pkt: PacketBuffer): void {
    this.deliverNetworkPacket(protocol, pkt);
  }

  /** Hand a packet with its network header at pkt.start to the link (after resolution). */
  transmit(pkt: PacketBuffer): boolean {
    const stats = this.stats;
    if (!this._enabled) {
      stats.txDroppedDisabled++;
      return false;
    }
    pkt.nicId = this.id;
    if (this.observers.length !== 0) {
      pkt.linearize();
      this.notifyObservers(true, pkt, pkt.networkProtocol);
    }
    const bytes = pkt.length;
    let batch = this.one;
    if (this.writing > 0) batch = [pkt];
    else batch[0] = pkt;
    this.writing++;
    let n: number;
    try {
      n = this.endpoint.writePackets(batch);
    } finally {
      this.writing--;
      if (batch === this.one) this.one.length = 0;
    }
    if (n === 1) {
      stats.txPackets++;
      stats.txBytes += bytes;
      return true;
    }
    stats.txDropped++;
    return false;
  }

  /** @internal Called by the stack when the NIC is removed. */
  destroy(): void {
    this.disable();
    this.notify({ type: 'removed' });
    this.endpoint.attach(null);
    this.emit('removed');
    this.removeAllListeners();
  }

  private notify(ev: NicEvent): void {
    this.stack.notifyProtocols(this, ev);
  }

  private notifyObservers(outbound: boolean, pkt: PacketBuffer, protocol: number): void {
    if (protocol !== 0 && pkt.networkProtocol === 0) pkt.networkProtocol = protocol;
    for (const o of this.observers) {
      try {
        o.observe(this, outbound, pkt);
      } catch (err) {
        this.stack.reportInternalError(err);
      }
    }
  }
}

/** addAddress's first argument: "a.b.c.d/n" text or an AddressInfo; returns a fresh AddressInfo. */
function checkAddressArg(addr: unknown, where: string): AddressInfo {
  if (typeof addr === 'string') return expectCidr(addr, where, 'addr');
  const a = expectObject<AddressInfo>(addr, where, 'addr');
  const address = expectAddress(a.address, where, 'addr.address');
  if (typeof a.address === 'string') throw new TunstackError('EINVAL', `${where}: "addr.address" must be 4 or 16 bytes, got a string`);
  const prefixLength = expectInteger(a.prefixLength, where, 'addr.prefixLength', 0, address.length * 8);
  optionalBoolean(a.nodad, where, 'addr.nodad');
  return { address: address.slice(), prefixLength };
}

function usable(a: AddressInfo): boolean {
  return a.state === undefined || a.state === 'preferred' || a.state === 'deprecated';
}

/** The scope of an IPv6 address (RFC 4007 values): 1 interface, 2 link, 5 site, 0xe global. */
export function scopeV6(a: Uint8Array, off = 0): number {
  const b0 = a[off]!;
  if (b0 === 0xff) return a[off + 1]! & 0x0f;
  if (b0 === 0xfe && (a[off + 1]! & 0xc0) === 0x80) return 2;
  if (b0 === 0xfe && (a[off + 1]! & 0xc0) === 0xc0) return 5;
  let zero = true;
  for (let i = 0; i < 15 && zero; i++) if (a[off + i] !== 0) zero = false;
  if (zero && a[off + 15] === 1) return 1; // ::1
  return 0xe;
}

function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < 16; i++) {
    const x = a[i]! ^ b[i]!;
    if (x === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(x) - 24;
  }
  return n;
}
