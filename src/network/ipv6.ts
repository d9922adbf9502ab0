import { EventEmitter } from 'eventemitter3';
import { buildEchoRequest, checkPingArgs, Pinger, type PingOptions, type PingResult } from './echo.js';
import { TunstackError } from '../core/errors.js';
import { formatIPv6 } from '../core/address.js';
import { pseudoHeaderSumV6 } from '../headers/checksum.js';
import { ETHERTYPE_IPV6 } from '../headers/ethernet.js';
import {
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_HEADER_LENGTH,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_PORT_UNREACHABLE,
  ICMPV6_UNRECOGNIZED_NEXT_HEADER,
  ICMPV6_UNRECOGNIZED_OPTION,
  setIcmpV6Checksum,
} from '../headers/icmpv6.js';
import {
  IPV6_HEADER_LENGTH,
  IPV6_MIN_MTU,
  IPV6_NEXT_HEADER_HOP_BY_HOP,
  IPV6_NEXT_HEADER_ICMPV6,
  IPV6_NEXT_HEADER_NONE,
  IPV6_OPTION_PADN,
  IPV6_OPTION_ROUTER_ALERT,
} from '../headers/ipv6.js';
import {
  IPV6_WALK_BAD_FRAGMENT,
  IPV6_WALK_INCOMPLETE_CHAIN,
  IPV6_WALK_OK,
  IPV6_WALK_ROUTING,
  IPV6_WALK_UNKNOWN_OPTION,
  IPV6_WALK_HOP_BY_HOP_NOT_FIRST,
  IPv6Walk,
  walkIPv6,
} from '../headers/ipv6-walk.js';
import { gsoWireLength } from '../link/endpoint.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer, PacketType } from '../core/packet.js';
import type { LinkAddressResolver, NetworkInfo, NetworkProtocol, NicEvent, WriteParams } from '../stack/protocol.js';
import { TransportResult } from '../stack/protocol.js';
import type { NeighborCache } from '../stack/neighbor.js';
import type { Route } from '../stack/route.js';
import type { NetStack } from '../stack/stack.js';
import { Icmpv6, type Icmpv6Options, type Icmpv6Stats } from './icmpv6.js';
import { Mld, type MldOptions, type MldStats } from './mld.js';
import { Ndp, type NdpOptions, type NdpStats } from './ndp.js';
import { Reassembler, type ReassemblyConfig } from './reassembly.js';
import { Ipv6Forwarder } from './ipv6-forward.js';
import { Ipv6Fragments } from './ipv6-fragment.js';
import { ALL_NODES, addrKey, isLoopbackAddr, isV4Mapped, multicastMac } from './ipv6-address.js';

// The address helpers moved to ipv6-address.ts; this path keeps exporting them.
export {
  ALL_MLDV2_ROUTERS,
  ALL_NODES,
  ALL_ROUTERS,
  UNSPECIFIED,
  addrKey,
  eui64,
  isLinkLocal,
  isLoopbackAddr,
  isUnspecifiedAt,
  isV4Mapped,
  linkLocalFromMac,
  multicastMac,
  solicitedNode,
} from './ipv6-address.js';

/**
 * IPv6 (RFC 8200) with ICMPv6 (RFC 4443, src/network/icmpv6.ts), Neighbor Discovery and address
 * autoconfiguration (RFC 4861/4862, src/network/ndp.ts, router-discovery.ts, slaac.ts), MLDv2
 * (RFC 3810, src/network/mld.ts), forwarding (src/network/ipv6-forward.ts) and fragmentation and
 * reassembly (src/network/ipv6-fragment.ts); address helpers are in src/network/ipv6-address.ts.
 *
 * Receive: the fixed header is checked, the destination classified (ours, a joined multicast
 * group, or to be forwarded), then the extension-header chain is walked (src/headers/ipv6.ts):
 * unknown options by their action bits, routing headers with Segments Left > 0 rejected with a
 * Parameter Problem, fragments reassembled (60 s, bounded memory, overlaps drop the datagram).
 * Send: the fixed header with an automatic flow label (a seeded hash of the flow, as Linux's
 * auto_flowlabels), fragmentation at the source only, to the path MTU learned from Packet Too
 * Big. Forwarding (stack.forwarding): hop limit, Packet Too Big, scope checks, no redirects.
 */

export interface IPv6Stats {
  packetsReceived: number;
  /** Shorter than 40 bytes or not version 6. */
  malformedReceived: number;
  /** Payload length beyond the bytes received. */
  truncatedReceived: number;
  /** Multicast, IPv4-mapped or loopback source (or loopback destination) from a link. */
  invalidAddress: number;
  /** Not addressed to us (nor to a joined group) and not forwarded; tentative destinations too. */
  notForUs: number;
  /** Dropped while walking the extension headers (bad options, routing, fragments, too many). */
  extensionHeaderErrors: number;
  /** No transport protocol for the Next Header (Parameter Problem sent). */
  unknownProtocol: number;
  /** Next Header 59. */
  noNextHeader: number;
  delivered: number;
  packetsSent: number;
  /** Send failures: no route, no neighbour, link refused. */
  outgoingDropped: number;
  fragmentsCreated: number;
  fragmentationFailed: number;
  forwarded: number;
  /** Forwarding refused: not link-layer unicast, scope (link-local/loopback/multicast), no route. */
  forwardDropped: number;
  hopLimitExceeded: number;
  /** Forwarding refused: bigger than the next hop's MTU (Packet Too Big sent). */
  tooBigForwarded: number;
  icmp: Icmpv6Stats;
  ndp: NdpStats;
  mld: MldStats;
}

export interface IPv6Options {
  reassembly?: Partial<ReassemblyConfig>;
  icmp?: Icmpv6Options;
  ndp?: NdpOptions;
  mld?: MldOptions;
  /** Flow labels from a seeded hash of each flow (Linux auto_flowlabels); default true. */
  autoFlowLabels?: boolean;
  /** Path MTU entries expire after this long (Linux mtu_expires: 600 s). */
  pmtuExpiresMs?: number;
}

interface IPv6Events {
  /** A Router Advertisement was accepted on a NIC (host mode). */
  'router-advertisement': [NIC, { router: string; lifetimeSec: number }];
  /** The recursive DNS servers learned on a NIC changed (RFC 8106). */
  'dns-servers': [NIC, string[]];
}

/** @internal Per-NIC IPv6 state kept by the protocol. */
export class Ipv6Interface {
  /** Joined multicast groups and their reference counts. */
  readonly groups: Uint8Array[] = [];
  readonly groupRefs: number[] = [];
  /** IPv6 MTU learned from a Router Advertisement, 0 for the NIC's MTU. */
  mtu = 0;
  /** Hop limit of our own packets (RA Cur Hop Limit); 0 for the stack default. */
  hopLimit = 0;
  constructor(readonly nic: NIC) {}
}

export class IPv6Protocol extends EventEmitter<IPv6Events> implements NetworkProtocol, LinkAddressResolver {
  readonly number = ETHERTYPE_IPV6;
  readonly addressLength = 16;
  readonly resolver = this;
  readonly icmp: Icmpv6;
  readonly ndp: Ndp;
  readonly mld: Mld;
  readonly reassembler: Reassembler;
  readonly stats: IPv6Stats;
  autoFlowLabels: boolean;
  private readonly ifaces = new Map<number, Ipv6Interface>();
  private readonly walk = new IPv6Walk();
  private readonly info = new Ipv6NetworkInfo();
  private readonly pmtu = new Map<string, { mtu: number; expires: number }>();
  private readonly pmtuExpiresMs: number;
  private readonly flowKey: number;
  /** @internal Echo requests in flight (`ping`). */
  readonly pinger: Pinger;
  private readonly forwarder = new Ipv6Forwarder(this);
  private readonly fragments = new Ipv6Fragments(this);

  constructor(
    readonly stack: NetStack,
    options: IPv6Options = {},
  ) {
    super();
    this.autoFlowLabels = options.autoFlowLabels ?? true;
    this.pmtuExpiresMs = options.pmtuExpiresMs ?? 600_000;
    this.flowKey = stack.random.u32();
    this.pinger = new Pinger(stack.clock, stack.random.below(0x10000), (d) => formatIPv6(d));
    this.reassembler = new Reassembler(
      stack.clock,
      { maxBytes: 4 << 20, maxDatagrams: 1024, maxFragments: 128, timeoutMs: 60_000, ...options.reassembly },
      (first) => this.fragments.reassemblyTimedOut(first),
    );
    this.icmp = new Icmpv6(this, options.icmp ?? {});
    this.mld = new Mld(this, options.mld ?? {});
    this.ndp = new Ndp(this, options.ndp ?? {});
    this.stats = {
      packetsReceived: 0,
      malformedReceived: 0,
      truncatedReceived: 0,
      invalidAddress: 0,
      notForUs: 0,
      extensionHeaderErrors: 0,
      unknownProtocol: 0,
      noNextHeader: 0,
      delivered: 0,
      packetsSent: 0,
      outgoingDropped: 0,
      fragmentsCreated: 0,
      fragmentationFailed: 0,
      forwarded: 0,
      forwardDropped: 0,
      hopLimitExceeded: 0,
      tooBigForwarded: 0,
      icmp: this.icmp.stats,
      ndp: this.ndp.stats,
      mld: this.mld.stats,
    };
  }

  close(): void {
    this.reassembler.clear();
    this.ndp.close();
    this.mld.close();
    this.pinger.close();
  }

  /** @internal The per-NIC state (created on first use). */
  iface(nic: NIC): Ipv6Interface {
    let s = this.ifaces.get(nic.id);
    if (s === undefined) {
      s = new Ipv6Interface(nic);
      this.ifaces.set(nic.id, s);
    }
    return s;
  }

  /** The IPv6 MTU of a NIC: its MTU, lowered by a Router Advertisement's MTU option. */
  linkMtu(nic: NIC): number {
    const s = this.ifaces.get(nic.id);
    return s !== undefined && s.mtu > 0 && s.mtu < nic.mtu ? s.mtu : nic.mtu;
  }

  /** Hop limit for packets this layer originates (ICMPv6 replies and errors). */
  hopLimit(nic: NIC): number {
    const s = this.ifaces.get(nic.id);
    return s !== undefined && s.hopLimit > 0 ? s.hopLimit : this.stack.defaultTtl;
  }

  /** The IPv6 neighbour cache of a NIC. */
  cache(nic: NIC): NeighborCache {
    return nic.neighborCache(ETHERTYPE_IPV6, () => this.ndp.prober(nic));
  }

  resolveAndSend(nic: NIC, nextHop: Uint8Array, pkt: PacketBuffer): void {
    this.cache(nic).send(nextHop, pkt);
  }

  onNicEvent(nic: NIC, ev: NicEvent): void {
    if (ev.type === 'removed') {
      this.ndp.nicRemoved(nic);
      this.mld.nicRemoved(nic);
      this.ifaces.delete(nic.id);
      return;
    }
    if (ev.type === 'enabled') {
      if (!this.isMember(nic, ALL_NODES, 0)) this.joinGroup(nic, ALL_NODES);
      // Memberships kept while the link was down are announced again (as Linux on NETDEV_UP).
      for (const g of this.groups(nic)) this.mld.joined(nic, g);
      this.ndp.nicEnabled(nic);
      return;
    }
    if (ev.type === 'disabled') {
      this.ndp.nicDisabled(nic);
      this.mld.nicDisabled(nic);
      return;
    }
    if (ev.address.length !== 16) return;
    if (ev.type === 'address-added') this.ndp.addressAdded(nic, ev.address);
    else this.ndp.addressRemoved(nic, ev.address);
  }

  // ---------------------------------------------------------------- multicast groups

  /** Join a multicast group on a NIC (reference counted; the first join sends an MLD report). */
  joinGroup(nic: NIC, group: Uint8Array): void {
    const s = this.iface(nic);
    const i = groupIndex(s, group, 0);
    if (i >= 0) {
      s.groupRefs[i]!++;
      return;
    }
    s.groups.push(group.slice(0, 16));
    s.groupRefs.push(1);
    this.mld.joined(nic, group);
  }

  /** Leave a multicast group (when the last reference goes, an MLD report says so). */
  leaveGroup(nic: NIC, group: Uint8Array): void {
    const s = this.ifaces.get(nic.id);
    if (s === undefined) return;
    const i = groupIndex(s, group, 0);
    if (i < 0) return;
    if (--s.groupRefs[i]! > 0) return;
    s.groups.splice(i, 1);
    s.groupRefs.splice(i, 1);
    this.mld.left(nic, group);
  }

  /** True if the NIC has joined the group at `off` in `buf`. */
  isMember(nic: NIC, buf: Uint8Array, off = 0): boolean {
    const s = this.ifaces.get(nic.id);
    return s !== undefined && groupIndex(s, buf, off) >= 0;
  }

  /** The groups joined on a NIC. */
  groups(nic: NIC): Uint8Array[] {
    return (this.ifaces.get(nic.id)?.groups ?? []).map((g) => g.slice());
  }

  // ---------------------------------------------------------------- receive

  handlePacket(nic: NIC, pkt: PacketBuffer): void {
    const st = this.stats;
    st.packetsReceived++;
    const data = pkt.data;
    const ip = pkt.start;
    const avail = pkt.end - ip;
    if (avail < IPV6_HEADER_LENGTH || data[ip]! >>> 4 !== 6) {
      st.malformedReceived++;
      return;
    }
    const plen = (data[ip + 4]! << 8) | data[ip + 5]!;
    if (plen > avail - IPV6_HEADER_LENGTH) {
      st.truncatedReceived++;
      return;
    }
    pkt.truncate(IPV6_HEADER_LENGTH + plen);
    const srcOff = ip + 8;
    const dstOff = ip + 24;
    const viaLoopback = nic.endpoint.capabilities & 8; // LinkCapability.Loopback
    if (
      data[srcOff] === 0xff ||
      isV4Mapped(data, srcOff) ||
      isV4Mapped(data, dstOff) ||
      (viaLoopback === 0 && (isLoopbackAddr(data, srcOff) || isLoopbackAddr(data, dstOff)))
    ) {
      st.invalidAddress++;
      return;
    }
    pkt.networkHeaderStart = ip;
    pkt.networkHeaderLength = IPV6_HEADER_LENGTH;
    const mcast = data[dstOff] === 0xff;
    if (mcast) {
      // Reserved and interface-local scopes never come from a link (RFC 4291 2.7).
      const scope = data[dstOff + 1]! & 0x0f;
      if (scope <= 1 || (!this.isMember(nic, data, dstOff) && !nic.promiscuous)) {
        st.notForUs++;
        return;
      }
    } else {
      const a = nic.addressInfo(data, dstOff, 16);
      if (a === undefined) {
        const linkLocal = data[dstOff] === 0xfe && (data[dstOff + 1]! & 0xc0) === 0x80;
        // Weak host model for global addresses (as Linux): another NIC's address is ours too.
        if (linkLocal || this.stack.nicForAddress(data, dstOff, 16) === null) {
          if (this.stack.forwarding && pkt.packetType !== PacketType.OtherHost) {
            this.forwarder.forward(nic, pkt);
            return;
          }
          if (!nic.promiscuous) {
            st.notForUs++;
            return;
          }
        }
      } else if (a.state === 'tentative' || a.state === 'dadfailed') {
        // RFC 4862 5.4: packets to a tentative address are silently discarded.
        st.notForUs++;
        return;
      }
    }
    this.receiveLocal(nic, pkt, mcast, false);
  }

  /** @internal */
  receiveLocal(nic: NIC, pkt: PacketBuffer, mcast: boolean, reassembled: boolean): void {
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    const w = this.walk;
    if (walkIPv6(data, ip, pkt.end - ip, w) !== IPV6_WALK_OK) {
      this.walkFailed(nic, pkt);
      return;
    }
    if (w.isFragment) {
      if (reassembled) {
        // A fragment header inside a reassembled datagram: not supported (nor sane).
        this.stats.extensionHeaderErrors++;
        return;
      }
      this.fragments.reassemble(nic, pkt, mcast, this.walk);
      return;
    }
    this.deliver(nic, pkt, w.protocol, w.offset, w.nextHeaderFieldOffset, mcast);
  }

  private walkFailed(nic: NIC, pkt: PacketBuffer): void {
    const w = this.walk;
    const st = this.stats;
    st.extensionHeaderErrors++;
    if (w.icmpCode < 0) return;
    switch (w.status) {
      case IPV6_WALK_UNKNOWN_OPTION:
      case IPV6_WALK_ROUTING:
      case IPV6_WALK_HOP_BY_HOP_NOT_FIRST:
      case IPV6_WALK_BAD_FRAGMENT:
      case IPV6_WALK_INCOMPLETE_CHAIN:
        // RFC 4443 2.4 (e.3): a multicast destination gets an error only for an unrecognised
        // option whose action bits say so (the walker decided: code 2).
        this.icmp.sendError(nic, pkt, ICMPV6_PARAMETER_PROBLEM, w.icmpCode, w.pointer, w.icmpCode === ICMPV6_UNRECOGNIZED_OPTION);
        return;
      default:
        return;
    }
  }

  private deliver(nic: NIC, pkt: PacketBuffer, protocol: number, offset: number, nhField: number, mcast: boolean): void {
    const st = this.stats;
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    pkt.networkHeaderLength = offset - ip;
    pkt.transportProtocol = protocol;
    pkt.transportHeaderStart = offset;
    pkt.start = offset;
    const raw = this.stack.rawInput;
    const rawTook = raw !== null && raw(6, protocol, nic, data, ip, pkt.end);
    if (protocol === IPV6_NEXT_HEADER_ICMPV6) {
      st.delivered++;
      this.icmp.handle(nic, pkt, mcast);
      return;
    }
    if (protocol === IPV6_NEXT_HEADER_NONE) {
      st.noNextHeader++;
      return;
    }
    const tp = this.stack.transportProtocol(protocol);
    if (tp === undefined) {
      if (rawTook) {
        st.delivered++;
        return;
      }
      st.unknownProtocol++;
      if (!mcast) this.icmp.sendError(nic, pkt, ICMPV6_PARAMETER_PROBLEM, ICMPV6_UNRECOGNIZED_NEXT_HEADER, nhField - ip, false);
      return;
    }
    st.delivered++;
    const r = tp.handlePacket(this.info.set(nic, data, ip, mcast), pkt);
    if (r === TransportResult.PortUnreachable && !mcast) {
      this.icmp.sendError(nic, pkt, ICMPV6_DEST_UNREACHABLE, ICMPV6_PORT_UNREACHABLE, 0, false);
    }
  }

  /** @internal The reusable NetworkInfo, set for the datagram whose IPv6 header is at `ip`. */
  networkInfo(nic: NIC, data: Uint8Array, ip: number, mcast: boolean): NetworkInfo {
    return this.info.set(nic, data, ip, mcast);
  }

  // ---------------------------------------------------------------- send

  /** Prepend an IPv6 header to the transport packet at pkt.start and send it along the route. */
  writePacket(route: Route, pkt: PacketBuffer, params: WriteParams): void {
    const payloadLength = pkt.length;
    if (payloadLength > 0xffff) throw new TunstackError('EMSGSIZE', `IPv6 payload of ${payloadLength} bytes exceeds 65535`);
    const nic = route.nic;
    const dst = route.remoteAddress;
    const mtu = this.pathMtu(dst, this.linkMtu(nic));
    let total = payloadLength + IPV6_HEADER_LENGTH;
    // A GSO super-packet (TSO on a link that takes them) leaves as segments of gsoSize payload:
    // those must fit the path, not the whole.
    if (pkt.gsoSize > 0) total = gsoWireLength(pkt, nic.endpoint.capabilities, IPV6_HEADER_LENGTH, total);
    if (total > mtu && params.dontFragment) {
      throw new TunstackError('EMSGSIZE', `packet of ${total} bytes exceeds MTU ${mtu}`);
    }
    const transport = pkt.start;
    const start = pkt.prepend(IPV6_HEADER_LENGTH);
    const b = pkt.data;
    const src = route.localAddress;
    const fl = this.autoFlowLabels ? this.flowLabel(src, dst, params.protocol, b, start + IPV6_HEADER_LENGTH, pkt.end) : 0;
    const tc = params.tos & 0xff;
    b[start] = 0x60 | (tc >>> 4);
    b[start + 1] = ((tc & 0x0f) << 4) | ((fl >>> 16) & 0x0f);
    b[start + 2] = (fl >>> 8) & 0xff;
    b[start + 3] = fl & 0xff;
    b[start + 4] = payloadLength >>> 8;
    b[start + 5] = payloadLength & 0xff;
    b[start + 6] = params.protocol;
    b[start + 7] = params.ttl;
    for (let i = 0; i < 16; i++) {
      b[start + 8 + i] = src[i]!;
      b[start + 24 + i] = dst[i]!;
    }
    pkt.networkHeaderStart = start;
    pkt.networkHeaderLength = IPV6_HEADER_LENGTH;
    pkt.networkProtocol = ETHERTYPE_IPV6;
    pkt.transportProtocol = params.protocol;
    if (pkt.transportHeaderStart < 0) pkt.transportHeaderStart = transport;
    this.stats.packetsSent++;
    if (route.multicast && params.multicastLoop === true && this.isMember(nic, dst, 0)) {
      // IPV6_MULTICAST_LOOP: members on this host get a copy (before fragmentation, as Linux).
      const copy = PacketBuffer.copyOf(pkt.toBytes());
      copy.networkProtocol = ETHERTYPE_IPV6;
      this.loopback(nic, copy);
    }
    if (total > mtu) {
      pkt.linearize();
      this.fragments.fragmentAndSend(nic, dst, route.nextHop, pkt, start, mtu, route.localDelivery);
      return;
    }
    this.transmitTo(nic, dst, route.nextHop, pkt, route.localDelivery);
  }

  /**
   * Hand a finished datagram to the link: back to ourselves (`local`: the NIC that owns the
   * destination, Route.localDelivery), to 33:33:xx:xx:xx:xx for multicast, after neighbour
   * resolution for unicast.
   */
  transmitTo(nic: NIC, dst: Uint8Array, nextHop: Uint8Array, pkt: PacketBuffer, local: NIC | null): void {
    if (local !== null) {
      pkt.linearize();
      this.loopback(local, pkt);
      return;
    }
    if (dst[0] === 0xff) {
      if (nic.needsResolution) pkt.remoteLinkAddress = multicastMac(dst);
      nic.transmit(pkt);
      return;
    }
    if (!nic.needsResolution) {
      nic.transmit(pkt);
      return;
    }
    this.cache(nic).send(nextHop, pkt);
  }

  /** @internal Send a datagram built by this layer (NDP, MLD): header at pkt.start, straight to a link address. */
  transmitDirect(nic: NIC, pkt: PacketBuffer, linkAddress: Uint8Array | null): void {
    if (nic.needsResolution) pkt.remoteLinkAddress = linkAddress;
    this.stats.packetsSent++;
    nic.transmit(pkt);
  }

  /** Deliver a packet to ourselves (the stack's shared, trampolined local loop). */
  private loopback(nic: NIC, pkt: PacketBuffer): void {
    if (!this.stack.deliverLocal(nic, ETHERTYPE_IPV6, pkt)) this.stats.outgoingDropped++;
  }

  /**
   * Build and send an ICMPv6 message this layer originates (NDP, MLD): the message is at
   * pkt.start; its checksum is computed here. `routerAlert` adds the Hop-by-Hop Router Alert
   * (MLD). `linkAddress`: where to send on the link (null: multicast mapping or resolution).
   */
  sendIcmpDirect(
    nic: NIC,
    src: Uint8Array,
    dst: Uint8Array,
    hopLimit: number,
    pkt: PacketBuffer,
    routerAlert: boolean,
    linkAddress: Uint8Array | null,
  ): void {
    const len = pkt.end - pkt.start;
    setIcmpV6Checksum(pkt.data, pkt.start, len, src, dst);
    let nh = IPV6_NEXT_HEADER_ICMPV6;
    if (routerAlert) {
      const h = pkt.prepend(8);
      const b = pkt.data;
      b[h] = IPV6_NEXT_HEADER_ICMPV6;
      b[h + 1] = 0;
      b[h + 2] = IPV6_OPTION_ROUTER_ALERT;
      b[h + 3] = 2;
      b[h + 4] = 0;
      b[h + 5] = 0;
      b[h + 6] = IPV6_OPTION_PADN;
      b[h + 7] = 0;
      nh = IPV6_NEXT_HEADER_HOP_BY_HOP;
    }
    const payload = pkt.end - pkt.start;
    const s = pkt.prepend(IPV6_HEADER_LENGTH);
    const b = pkt.data;
    b[s] = 0x60;
    b[s + 1] = 0;
    b[s + 2] = 0;
    b[s + 3] = 0;
    b[s + 4] = payload >>> 8;
    b[s + 5] = payload & 0xff;
    b[s + 6] = nh;
    b[s + 7] = hopLimit;
    b.set(src.subarray(0, 16), s + 8);
    b.set(dst.subarray(0, 16), s + 24);
    pkt.networkProtocol = ETHERTYPE_IPV6;
    pkt.networkHeaderStart = s;
    pkt.networkHeaderLength = IPV6_HEADER_LENGTH + (routerAlert ? 8 : 0);
    pkt.transportProtocol = IPV6_NEXT_HEADER_ICMPV6;
    if (linkAddress !== null || dst[0] === 0xff || !nic.needsResolution) {
      this.transmitDirect(nic, pkt, linkAddress ?? (dst[0] === 0xff ? multicastMac(dst) : null));
      return;
    }
    this.stats.packetsSent++;
    this.cache(nic).send(dst, pkt);
  }

  /** Called by NDP when resolution failed for queued packets. */
  resolutionFailed(nic: NIC, dropped: PacketBuffer[]): void {
    for (const p of dropped) {
      this.stats.outgoingDropped++;
      const ip = p.networkHeaderStart;
      if (ip < 0 || ip + IPV6_HEADER_LENGTH > p.end) continue;
      p.start = ip;
      if (this.stack.nicForAddress(p.data.subarray(ip + 8, ip + 24)) !== null) {
        this.icmp.localError(nic, p, 'host-unreachable');
      } else {
        // A forwarded datagram: tell its source (RFC 4861 7.2.2, code 3).
        this.icmp.sendError(nic, p, ICMPV6_DEST_UNREACHABLE, 3, 0, false);
      }
    }
  }

  /**
   * The flow label Linux's auto_flowlabels would set: a keyed hash of the addresses, the
   * protocol and the ports (ICMPv6: type, code and identifier), folded to 20 bits.
   */
  private flowLabel(src: Uint8Array, dst: Uint8Array, protocol: number, b: Uint8Array, t: number, end: number): number {
    let h = this.flowKey ^ protocol;
    for (let i = 0; i < 16; i += 4) {
      h = mix(h, (src[i]! << 24) | (src[i + 1]! << 16) | (src[i + 2]! << 8) | src[i + 3]!);
      h = mix(h, (dst[i]! << 24) | (dst[i + 1]! << 16) | (dst[i + 2]! << 8) | dst[i + 3]!);
    }
    if ((protocol === 6 || protocol === 17 || protocol === 132) && t + 4 <= end) {
      h = mix(h, (b[t]! << 24) | (b[t + 1]! << 16) | (b[t + 2]! << 8) | b[t + 3]!);
    } else if (protocol === IPV6_NEXT_HEADER_ICMPV6 && t + 6 <= end) {
      h = mix(h, (b[t]! << 24) | (b[t + 1]! << 16) | (b[t + 4]! << 8) | b[t + 5]!);
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x45d9f3b);
    h ^= h >>> 12;
    return h & 0xfffff;
  }

  // ---------------------------------------------------------------- path MTU

  /** The path MTU towards `dst` (from ICMPv6 Packet Too Big), or `linkMtu`. */
  pathMtu(dst: Uint8Array, linkMtu: number): number {
    if (this.pmtu.size === 0) return linkMtu;
    const key = addrKey(dst, 0);
    const e = this.pmtu.get(key);
    if (e === undefined) return linkMtu;
    if (e.expires <= this.stack.clock.now()) {
      this.pmtu.delete(key);
      return linkMtu;
    }
    return Math.min(e.mtu, linkMtu);
  }

  /** @internal Learn a path MTU (never below 1280, RFC 8201); true if it went down. */
  updatePathMtu(buf: Uint8Array, dstOff: number, mtu: number): boolean {
    const m = Math.max(IPV6_MIN_MTU, mtu);
    const key = addrKey(buf, dstOff);
    const e = this.pmtu.get(key);
    const now = this.stack.clock.now();
    if (e !== undefined && e.expires > now && e.mtu <= m) return false;
    if (this.pmtu.size >= 4096) this.pmtu.clear();
    this.pmtu.set(key, { mtu: m, expires: now + this.pmtuExpiresMs });
    return true;
  }

  // ---------------------------------------------------------------- ping

  /** Send an ICMPv6 echo request; resolves with the reply, rejects ETIMEDOUT or with the ICMPv6 error. */
  ping(host: string | Uint8Array, options: PingOptions = {}): Promise<PingResult> {
    let dst: Uint8Array;
    try {
      ({ dst, options } = checkPingArgs(host, options, 6));
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const o = options;
    return this.pinger.ping(dst, o, (id, seq, size) => {
      const route = this.stack.findRoute(dst, o.nic !== undefined ? { nic: o.nic } : {});
      const pkt = buildEchoRequest(ICMPV6_ECHO_REQUEST, id, seq, size);
      setIcmpV6Checksum(pkt.data, pkt.start, ICMPV6_HEADER_LENGTH + size, route.localAddress, route.remoteAddress);
      return () => {
        this.icmp.stats.sent++;
        this.icmp.stats.echoRequestsSent++;
        this.writePacket(route, pkt, { protocol: IPV6_NEXT_HEADER_ICMPV6, ttl: o.ttl ?? this.stack.defaultTtl, tos: 0, dontFragment: o.dontFragment ?? false });
      };
    });
  }

  /** @internal An echo reply arrived: settle the matching `ping`. True if one matched. */
  pingReplied(id: number, seq: number, from: string, hopLimit: number, bytes: number): boolean {
    return this.pinger.replied(id, seq, from, hopLimit, bytes);
  }

  /** @internal An ICMPv6 error quoted one of our echo requests: fail the matching `ping`. */
  pingFailed(id: number, seq: number, err: Error): boolean {
    return this.pinger.failed(id, seq, err);
  }
}

/** The reusable per-packet NetworkInfo for IPv6. */
class Ipv6NetworkInfo implements NetworkInfo {
  readonly family = 6 as const;
  nic!: NIC;
  data: Uint8Array = new Uint8Array(0);
  srcOffset = 0;
  dstOffset = 0;
  ttl = 0;
  tos = 0;
  multicastOrBroadcast = false;

  set(nic: NIC, data: Uint8Array, ip: number, mcast: boolean): this {
    this.nic = nic;
    this.data = data;
    this.srcOffset = ip + 8;
    this.dstOffset = ip + 24;
    this.ttl = data[ip + 7]!;
    this.tos = ((data[ip]! & 0x0f) << 4) | (data[ip + 1]! >>> 4);
    this.multicastOrBroadcast = mcast;
    return this;
  }

  pseudoHeaderSum(protocol: number, length: number): number {
    return pseudoHeaderSumV6(this.data, this.srcOffset, this.data, this.dstOffset, protocol, length);
  }
}

function mix(h: number, v: number): number {
  h ^= Math.imul(v, 0xcc9e2d51);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function groupIndex(s: Ipv6Interface, buf: Uint8Array, off: number): number {
  const gs = s.groups;
  outer: for (let i = 0; i < gs.length; i++) {
    const g = gs[i]!;
    for (let k = 15; k >= 0; k--) if (g[k] !== buf[off + k]) continue outer;
    return i;
  }
  return -1;
}

export function ipv6Factory(options: IPv6Options = {}): (stack: NetStack) => IPv6Protocol {
  return (stack) => new IPv6Protocol(stack, options);
}

