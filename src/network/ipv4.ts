import { TunstackError } from '../core/errors.js';
import { BROADCAST_MAC, formatIPv4, ipv4ToU32 } from '../core/address.js';
import { pseudoHeaderSumV4, sum } from '../headers/checksum.js';
import { ETHERTYPE_IPV4 } from '../headers/ethernet.js';
import {
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_HEADER_LENGTH,
  ICMPV4_HOST_UNREACHABLE,
  ICMPV4_PARAMETER_PROBLEM,
  ICMPV4_PARAM_POINTER,
  ICMPV4_PORT_UNREACHABLE,
  ICMPV4_PROTOCOL_UNREACHABLE,
  ICMPV4_REASSEMBLY_TIMEOUT,
  ICMPV4_TIME_EXCEEDED,
} from '../headers/icmpv4.js';
import {
  IPv4Header,
  IPv4OptionWalker,
  IP_PROTO_ICMP,
  IP_PROTO_IGMP,
  IPV4_MIN_HEADER,
  IPV4_OPT_ROUTER_ALERT,
  IPV4_OPTIONS_OK,
  IPV4_OPTIONS_SOURCE_ROUTE,
  checkReceivedIPv4Options,
  encodeIPv4,
} from '../headers/ipv4.js';
import { gsoWireLength } from '../link/endpoint.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer, PacketType } from '../core/packet.js';
import type { NetworkInfo, NetworkProtocol, NicEvent, WriteParams } from '../stack/protocol.js';
import { TransportResult } from '../stack/protocol.js';
import { Route } from '../stack/route.js';
import type { NetStack } from '../stack/stack.js';
import { buildEchoRequest, checkPingArgs, Pinger, type PingOptions, type PingResult } from './echo.js';
import { Reassembler, type ReassemblyConfig } from './reassembly.js';
import type { ArpProtocol } from './arp.js';
import { Icmpv4 } from './icmpv4.js';
import { Ipv4Forwarder } from './ipv4-forward.js';
import { Igmp, type IgmpOptions } from './igmp.js';

export interface IPv4Stats {
  packetsReceived: number;
  /** Dropped: shorter than a header, bad version/IHL/total length. */
  malformedReceived: number;
  /** Dropped for malformed options (a Parameter Problem answers those sent to us by unicast). */
  badOptions: number;
  /** Dropped: a loose or strict source route option while `acceptSourceRoute` is off. */
  sourceRouted: number;
  invalidChecksum: number;
  /** Dropped: source is broadcast/multicast (martian). */
  invalidSource: number;
  /** Dropped: not addressed to us and not forwarded. */
  notForUs: number;
  /** Dropped: to a multicast group the NIC has not joined (or a source its filter excludes). */
  multicastNotJoined: number;
  unknownProtocol: number;
  delivered: number;
  packetsSent: number;
  /** Send failures: no route / link refused. */
  outgoingDropped: number;
  fragmentsCreated: number;
  fragmentationFailed: number;
  forwarded: number;
  /** Forwarding refused: not link-layer unicast, martian or link-local address, directed broadcast, no route. */
  forwardDropped: number;
  ttlExceeded: number;
  icmp: IcmpV4Stats;
}

export interface IcmpV4Stats {
  received: number;
  sent: number;
  malformed: number;
  invalidChecksum: number;
  echoRequestsReceived: number;
  echoRepliesSent: number;
  echoRepliesReceived: number;
  errorsReceived: number;
  destUnreachableSent: number;
  timeExceededSent: number;
  rateLimited: number;
}

export interface IPv4Options {
  reassembly?: Partial<ReassemblyConfig>;
  /** ICMP error messages per second and burst (Linux icmp_msgs_per_sec / icmp_msgs_burst). */
  icmpRate?: number;
  icmpBurst?: number;
  /** Answer echo requests sent to a broadcast address (Linux default: ignore). */
  echoReplyToBroadcast?: boolean;
  /**
   * Accept datagrams carrying a loose or strict source route option (LSRR/SSRR). Off by default,
   * as Linux's `net.ipv4.conf.all.accept_source_route = 0`: such datagrams are dropped, whether
   * for this host or to be forwarded. When on, the option is accepted but not acted upon.
   */
  acceptSourceRoute?: boolean;
  igmp?: IgmpOptions;
}

export type { PingOptions, PingResult } from './echo.js';

/** The Router Alert option (RFC 2113) that IGMP messages carry. */
const ROUTER_ALERT_OPTION = Uint8Array.of(IPV4_OPT_ROUTER_ALERT, 4, 0, 0);

/** 01:00:5e + the low 23 bits of an IPv4 multicast address (RFC 1112 6.4). */
function ipv4MulticastMac(dst: Uint8Array): Uint8Array {
  return Uint8Array.of(0x01, 0x00, 0x5e, dst[1]! & 0x7f, dst[2]!, dst[3]!);
}

function isLocalMulticastAt(b: Uint8Array, o: number): boolean {
  return b[o] === 224 && b[o + 1] === 0 && b[o + 2] === 0;
}

/** IPv4 (RFC 791/1122/1812) with ICMPv4 (RFC 792) handled inside. */
export class IPv4Protocol implements NetworkProtocol {
  readonly number = ETHERTYPE_IPV4;
  readonly addressLength = 4;
  readonly stats: IPv4Stats = {
    packetsReceived: 0,
    malformedReceived: 0,
    badOptions: 0,
    sourceRouted: 0,
    invalidChecksum: 0,
    invalidSource: 0,
    notForUs: 0,
    multicastNotJoined: 0,
    unknownProtocol: 0,
    delivered: 0,
    packetsSent: 0,
    outgoingDropped: 0,
    fragmentsCreated: 0,
    fragmentationFailed: 0,
    forwarded: 0,
    forwardDropped: 0,
    ttlExceeded: 0,
    icmp: {
      received: 0,
      sent: 0,
      malformed: 0,
      invalidChecksum: 0,
      echoRequestsReceived: 0,
      echoRepliesSent: 0,
      echoRepliesReceived: 0,
      errorsReceived: 0,
      destUnreachableSent: 0,
      timeExceededSent: 0,
      rateLimited: 0,
    },
  };
  readonly reassembler: Reassembler;
  /** IGMP host side: the multicast groups each NIC accepts, reported to routers. */
  readonly igmp: Igmp;
  echoReplyToBroadcast: boolean;
  /**
   * Path MTU learned from ICMP fragmentation-needed, per destination (u32), once the transport
   * that owns the quoted flow confirmed it. `locked`: the report was below IPV4_MIN_PMTU and was
   * clamped to it, so packets to that destination go without DF (Linux's locked route MTU).
   */
  private readonly pmtu = new Map<number, PathMtuEntry>();
  private readonly hdr = new IPv4Header(new Uint8Array(0));
  private readonly forwarder = new Ipv4Forwarder(this);
  /** @internal The reusable NetworkInfo handed to transports. */
  readonly info: Ipv4NetworkInfo;
  /** @internal ICMP: echo, errors received and sent. */
  readonly icmp: Icmpv4;
  private readonly acceptSourceRoute: boolean;
  private ident: number;
  /** @internal Echo requests in flight (`ping`). */
  readonly pinger: Pinger;

  constructor(
    readonly stack: NetStack,
    options: IPv4Options = {},
  ) {
    this.info = new Ipv4NetworkInfo();
    this.igmp = new Igmp(this, options.igmp);
    this.ident = stack.random.below(0x10000);
    this.pinger = new Pinger(stack.clock, stack.random.below(0x10000), (d) => formatIPv4(d));
    this.echoReplyToBroadcast = options.echoReplyToBroadcast ?? false;
    this.acceptSourceRoute = options.acceptSourceRoute ?? false;
    this.icmp = new Icmpv4(this, options.icmpRate ?? 1000, options.icmpBurst ?? 50);
    this.reassembler = new Reassembler(
      stack.clock,
      { maxBytes: 4 << 20, maxDatagrams: 1024, maxFragments: 128, timeoutMs: 30_000, ...options.reassembly },
      (first) => this.reassemblyTimedOut(first),
    );
  }

  /** @internal */
  get arp(): ArpProtocol | undefined {
    return this.stack.networkProtocol(0x0806) as ArpProtocol | undefined;
  }

  onNicEvent(nic: NIC, ev: NicEvent): void {
    if (ev.type === 'removed') this.igmp.nicRemoved(nic);
    else if (ev.type === 'enabled') this.igmp.nicEnabled(nic);
    else if (ev.type === 'disabled') this.igmp.nicDisabled(nic);
  }

  close(): void {
    this.igmp.close();
    this.reassembler.clear();
    this.pinger.close();
  }

  // ---------------------------------------------------------------- receive

  handlePacket(nic: NIC, pkt: PacketBuffer): void {
    const stats = this.stats;
    stats.packetsReceived++;
    const h = this.hdr.reset(pkt.data, pkt.start, pkt.end - pkt.start);
    if (!h.isValid()) {
      stats.malformedReceived++;
      return;
    }
    const hl = h.headerLength;
    if (!h.checksumValid()) {
      stats.invalidChecksum++;
      return;
    }
    // Drop link-layer padding beyond the total length.
    pkt.truncate(h.totalLength);
    const data = pkt.data;
    const srcOff = pkt.start + 12;
    const dstOff = pkt.start + 16;
    const s0 = data[srcOff]!;
    if (s0 >= 224 || (s0 === 0 && h.protocol !== 17 && h.protocol !== IP_PROTO_IGMP && !isLocalMulticastAt(data, dstOff))) {
      // Multicast/broadcast/class-E sources are martians; 0.0.0.0 only for DHCP (UDP), IGMP
      // (a snooping switch queries from it) and 224.0.0.0/24, as Linux's ip_route_input_mc.
      stats.invalidSource++;
      return;
    }
    pkt.networkHeaderStart = pkt.start;
    pkt.networkHeaderLength = hl;

    const d0 = data[dstOff]!;
    const limitedBroadcast = d0 === 255 && data[dstOff + 1] === 255 && data[dstOff + 2] === 255 && data[dstOff + 3] === 255;
    const multicast = (d0 & 0xf0) === 0xe0;
    let local = nic.hasAddress(data, dstOff, 4);
    let broadcast = limitedBroadcast || (!local && nic.isSubnetBroadcast(data, dstOff));
    if (!local && !broadcast && !multicast) {
      // Addresses of our other NICs are local (weak host), not forwarded.
      if (this.stack.forwarding && pkt.packetType !== PacketType.OtherHost && this.stack.nicForAddress(data, dstOff, 4) === null) {
        if (hl > IPV4_MIN_HEADER && !this.optionsAcceptable(nic, pkt, false)) return;
        this.forwarder.forward(nic, pkt);
        return;
      }
      // Weak host model (Linux): an address of another NIC of this stack is local too.
      if (this.stack.nicForAddress(data, dstOff, 4) !== null || nic.promiscuous) local = true;
      else {
        stats.notForUs++;
        return;
      }
    }
    // Multicast only for groups the NIC joined, through its source filter (IGMP itself always).
    if (multicast && h.protocol !== IP_PROTO_IGMP && !this.igmp.accepts(nic, data, dstOff, data, srcOff)) {
      stats.multicastNotJoined++;
      return;
    }
    // Options are checked once the datagram is known to be ours, before reassembly (Linux's
    // ip_rcv_options, per fragment).
    if (hl > IPV4_MIN_HEADER && !this.optionsAcceptable(nic, pkt, broadcast || multicast)) return;
    if (h.isFragment) {
      const key = `${ipv4ToU32(data, srcOff)}/${ipv4ToU32(data, dstOff)}/${h.protocol}/${h.id}`;
      const done = this.reassembler.add(
        key,
        data.subarray(pkt.start, pkt.start + hl),
        data.subarray(pkt.start + hl, pkt.end),
        h.fragmentOffset,
        h.moreFragments,
        data.subarray(pkt.start, pkt.end),
      );
      if (!done) return;
      const whole = new Uint8Array(done.header.length + done.payload.length);
      whole.set(done.header, 0);
      whole.set(done.payload, done.header.length);
      const rh = new IPv4Header(whole);
      rh.totalLength = whole.length;
      rh.flags = rh.flags & ~1; // clear MF
      rh.fragmentOffsetRaw = 0;
      rh.setChecksum();
      const np = new PacketBuffer(whole, 0, whole.length);
      np.nicId = pkt.nicId;
      np.packetType = pkt.packetType;
      np.networkProtocol = pkt.networkProtocol;
      np.networkHeaderStart = 0;
      np.networkHeaderLength = done.header.length;
      this.deliver(nic, np, broadcast || multicast);
      return;
    }
    broadcast ||= false;
    this.deliver(nic, pkt, broadcast || multicast);
  }

  /**
   * Received options as Linux checks them: malformed ones get a Parameter Problem pointing at the
   * offending octet (not for broadcast or multicast datagrams), source routes are dropped unless
   * accepted. False when the datagram was dropped.
   */
  private optionsAcceptable(nic: NIC, pkt: PacketBuffer, mcastOrBcast: boolean): boolean {
    const r = checkReceivedIPv4Options(pkt.data, pkt.networkHeaderStart, pkt.networkHeaderLength);
    if (r === IPV4_OPTIONS_OK) return true;
    if (r === IPV4_OPTIONS_SOURCE_ROUTE) {
      if (this.acceptSourceRoute) return true;
      this.stats.sourceRouted++;
      return false;
    }
    this.stats.badOptions++;
    if (!mcastOrBcast) this.sendIcmpError(nic, pkt, ICMPV4_PARAMETER_PROBLEM, ICMPV4_PARAM_POINTER, r);
    return false;
  }

  private deliver(nic: NIC, pkt: PacketBuffer, mcastOrBcast: boolean): void {
    const data = pkt.data;
    const ipStart = pkt.networkHeaderStart;
    const hl = pkt.networkHeaderLength;
    const protocol = data[ipStart + 9]!;
    pkt.transportProtocol = protocol;
    pkt.transportHeaderStart = ipStart + hl;
    pkt.start = ipStart + hl;
    const raw = this.stack.rawInput;
    if (raw !== null) raw(4, protocol, nic, data, ipStart, pkt.end);
    if (protocol === IP_PROTO_ICMP) {
      this.icmp.handle(nic, pkt, mcastOrBcast);
      return;
    }
    if (protocol === IP_PROTO_IGMP) {
      this.stats.delivered++;
      this.igmp.handle(nic, pkt);
      return;
    }
    const tp = this.stack.transportProtocol(protocol);
    const info = this.info.set(nic, data, ipStart, mcastOrBcast);
    if (!tp) {
      this.stats.unknownProtocol++;
      if (!mcastOrBcast) this.sendIcmpError(nic, pkt, ICMPV4_DEST_UNREACHABLE, ICMPV4_PROTOCOL_UNREACHABLE, 0);
      return;
    }
    this.stats.delivered++;
    const r = tp.handlePacket(info, pkt);
    if (r === TransportResult.PortUnreachable && !mcastOrBcast) {
      this.sendIcmpError(nic, pkt, ICMPV4_DEST_UNREACHABLE, ICMPV4_PORT_UNREACHABLE, 0);
    }
  }

  /**
   * @internal Send a finished datagram (IP header at pkt.start, checksum set) along a route
   * without fragmenting it: raw sockets with IP_HDRINCL.
   */
  sendDatagram(route: Route, pkt: PacketBuffer): void {
    this.stats.packetsSent++;
    this.transmitTo(route, pkt);
  }

  /** The header of the fragments after the first: options without the copied flag become NOPs (RFC 791). */
  private laterFragmentHeader(data: Uint8Array, ipStart: number, hl: number): Uint8Array {
    const h = data.slice(ipStart, ipStart + hl);
    if (hl === IPV4_MIN_HEADER) return h;
    const w = this.optWalker.reset(h, IPV4_MIN_HEADER, hl - IPV4_MIN_HEADER);
    while (w.next()) {
      if ((w.type & 0x80) === 0 && w.type !== 1) h.fill(1, w.offset, w.offset + w.length);
    }
    return h;
  }

  private readonly optWalker = new IPv4OptionWalker();

  // ---------------------------------------------------------------- send

  /** Prepend an IPv4 header to the transport packet at pkt.start and send it along the route. */
  writePacket(route: Route, pkt: PacketBuffer, params: WriteParams): void {
    const payloadLength = pkt.length;
    const total = payloadLength + IPV4_MIN_HEADER;
    // A GSO super-packet (TSO) leaves as segments of gsoSize payload: those must fit.
    const wire = pkt.gsoSize > 0 ? gsoWireLength(pkt, route.nic.endpoint.capabilities, IPV4_MIN_HEADER, total) : total;
    // The path MTU learned from fragmentation-needed (RFC 1191), as Linux applies it to every
    // local sender: DF sends beyond it fail, others are fragmented to it.
    let mtu = route.nic.mtu;
    let df = params.dontFragment === true;
    if (this.pmtu.size !== 0) {
      const e = this.pathMtuEntry(route.remoteAddress);
      if (e !== undefined) {
        if (e.mtu < mtu) mtu = e.mtu;
        // A clamped (locked) path MTU: the real path is smaller still, so let routers fragment.
        if (e.locked) df = false;
      }
    }
    if (total > 65535) throw new TunstackError('EMSGSIZE', `datagram of ${total} bytes exceeds 65535`);
    if (wire > mtu && params.dontFragment) {
      throw new TunstackError('EMSGSIZE', `packet of ${wire} bytes exceeds MTU ${mtu}`);
    }
    const start = pkt.prepend(IPV4_MIN_HEADER);
    const b = pkt.data;
    const id = this.nextIdent();
    b[start] = 0x45;
    b[start + 1] = params.tos;
    b[start + 2] = total >>> 8;
    b[start + 3] = total & 0xff;
    b[start + 4] = id >>> 8;
    b[start + 5] = id & 0xff;
    b[start + 6] = df ? 0x40 : 0;
    b[start + 7] = 0;
    b[start + 8] = params.ttl;
    b[start + 9] = params.protocol;
    b[start + 10] = 0;
    b[start + 11] = 0;
    const src = route.localAddress;
    const dst = route.remoteAddress;
    b[start + 12] = src[0]!;
    b[start + 13] = src[1]!;
    b[start + 14] = src[2]!;
    b[start + 15] = src[3]!;
    b[start + 16] = dst[0]!;
    b[start + 17] = dst[1]!;
    b[start + 18] = dst[2]!;
    b[start + 19] = dst[3]!;
    const c = ~sum(b, start, IPV4_MIN_HEADER) & 0xffff;
    b[start + 10] = c >>> 8;
    b[start + 11] = c & 0xff;
    pkt.networkHeaderStart = start;
    pkt.networkHeaderLength = IPV4_MIN_HEADER;
    pkt.networkProtocol = ETHERTYPE_IPV4;
    pkt.transportProtocol = params.protocol;
    this.stats.packetsSent++;
    if (route.multicast && params.multicastLoop === true && this.igmp.accepts(route.nic, dst, 0, src, 0)) {
      // IP_MULTICAST_LOOP: members on this host get a copy, before any fragmentation (Linux).
      const copy = PacketBuffer.copyOf(pkt.toBytes());
      copy.networkProtocol = ETHERTYPE_IPV4;
      this.loopback(route.nic, copy);
    }
    if (wire > mtu) {
      pkt.linearize();
      this.fragmentAndSend(route, pkt, start, IPV4_MIN_HEADER, mtu);
      return;
    }
    this.transmitTo(route, pkt);
  }

  /** Split the datagram at `ipStart` into fragments that fit the route's MTU (RFC 791). */
  /** @internal */
  fragmentAndSend(route: Route, pkt: PacketBuffer, ipStart: number, hl: number, mtu = route.nic.mtu): void {
    const data = pkt.data;
    const chunk = (mtu - hl) & ~7;
    if (chunk < 8) {
      this.stats.fragmentationFailed++;
      return;
    }
    const payloadStart = ipStart + hl;
    const payloadLength = pkt.end - payloadStart;
    const origOffsetUnits = ((data[ipStart + 6]! & 0x1f) << 8) | data[ipStart + 7]!;
    const origMF = (data[ipStart + 6]! & 0x20) !== 0;
    const later = hl > IPV4_MIN_HEADER ? this.laterFragmentHeader(data, ipStart, hl) : null;
    for (let off = 0; off < payloadLength; off += chunk) {
      const len = Math.min(chunk, payloadLength - off);
      const last = off + len >= payloadLength;
      const frag = PacketBuffer.alloc(hl + len);
      const fs = frag.start;
      const fb = frag.data;
      if (off > 0 && later !== null) fb.set(later, fs);
      else fb.set(data.subarray(ipStart, ipStart + hl), fs);
      fb.set(data.subarray(payloadStart + off, payloadStart + off + len), fs + hl);
      const tl = hl + len;
      fb[fs + 2] = tl >>> 8;
      fb[fs + 3] = tl & 0xff;
      const units = origOffsetUnits + (off >>> 3);
      const mf = !last || origMF;
      fb[fs + 6] = (data[ipStart + 6]! & 0x40) | (mf ? 0x20 : 0) | ((units >>> 8) & 0x1f);
      fb[fs + 7] = units & 0xff;
      fb[fs + 10] = 0;
      fb[fs + 11] = 0;
      const c = ~sum(fb, fs, hl) & 0xffff;
      fb[fs + 10] = c >>> 8;
      fb[fs + 11] = c & 0xff;
      frag.networkProtocol = ETHERTYPE_IPV4;
      frag.networkHeaderStart = fs;
      frag.networkHeaderLength = hl;
      this.stats.fragmentsCreated++;
      this.transmitTo(route, frag);
    }
  }

  /** Hand a finished IPv4 packet to the link: loopback, broadcast, multicast or resolved unicast. */
  private transmitTo(route: Route, pkt: PacketBuffer): void {
    const nic = route.nic;
    const dst = route.remoteAddress;
    if (route.localDelivery !== null) {
      // Destination is this stack: loop back without touching a link.
      pkt.linearize();
      this.loopback(route.localDelivery, pkt);
      return;
    }
    if (!nic.needsResolution) {
      nic.transmit(pkt);
      return;
    }
    if (route.broadcast) {
      pkt.remoteLinkAddress = BROADCAST_MAC;
      nic.transmit(pkt);
      return;
    }
    if (route.multicast) {
      pkt.remoteLinkAddress = ipv4MulticastMac(dst);
      nic.transmit(pkt);
      return;
    }
    const arp = this.arp;
    if (!arp) {
      this.stats.outgoingDropped++;
      return;
    }
    arp.resolveAndSend(nic, route.nextHop, pkt);
  }


  /**
   * Send an IGMP message (at pkt.start) from `nic` to the multicast address `dst`: TTL 1, TOS
   * 0xc0, DF and the Router Alert option (RFC 2113), from the NIC's primary address or 0.0.0.0.
   */
  sendIgmp(nic: NIC, dst: Uint8Array, pkt: PacketBuffer): void {
    const payloadLength = pkt.length;
    const hl = IPV4_MIN_HEADER + ROUTER_ALERT_OPTION.length;
    const start = pkt.prepend(hl);
    const src = nic.primaryAddress(4) ?? new Uint8Array(4);
    encodeIPv4(pkt.data, start, {
      src, dst, protocol: IP_PROTO_IGMP, ttl: 1, tos: 0xc0, id: this.nextIdent(), dontFragment: true,
      payloadLength, options: ROUTER_ALERT_OPTION,
    });
    pkt.networkHeaderStart = start;
    pkt.networkHeaderLength = hl;
    pkt.networkProtocol = ETHERTYPE_IPV4;
    pkt.transportProtocol = IP_PROTO_IGMP;
    this.stats.packetsSent++;
    if (nic.needsResolution) pkt.remoteLinkAddress = ipv4MulticastMac(dst);
    nic.transmit(pkt);
  }

  /** Deliver a packet to ourselves (the stack's shared, trampolined local loop). */
  private loopback(nic: NIC, pkt: PacketBuffer): void {
    if (!this.stack.deliverLocal(nic, ETHERTYPE_IPV4, pkt)) this.stats.outgoingDropped++;
  }

  /** Called by ARP when resolution failed for queued packets: report EHOSTUNREACH to senders. */
  resolutionFailed(nic: NIC, dropped: PacketBuffer[]): void {
    for (const p of dropped) {
      this.stats.outgoingDropped++;
      if (p.networkHeaderStart < 0) continue;
      if (this.stack.nicForAddress(p.data, p.networkHeaderStart + 12, 4) === null) {
        // A forwarded datagram: tell its source (RFC 1812 4.3.3.1).
        this.sendIcmpError(nic, p, ICMPV4_DEST_UNREACHABLE, ICMPV4_HOST_UNREACHABLE, 0);
        continue;
      }
      this.icmp.localError(nic, p, { kind: 'host-unreachable', mtu: 0, from: new Uint8Array(4) });
    }
  }

  private nextIdent(): number {
    this.ident = (this.ident + 1) & 0xffff;
    return this.ident;
  }

  /** The path MTU towards `dst` (from ICMP frag-needed), or the NIC MTU. */
  pathMtu(dst: Uint8Array, nicMtu: number): number {
    const e = this.pmtu.size === 0 ? undefined : this.pathMtuEntry(dst);
    return e === undefined ? nicMtu : Math.min(e.mtu, nicMtu);
  }

  /** The unexpired path MTU entry towards `dst`. */
  private pathMtuEntry(dst: Uint8Array): PathMtuEntry | undefined {
    const key = ipv4ToU32(dst);
    const e = this.pmtu.get(key);
    if (e !== undefined && e.expires <= this.stack.clock.now()) {
      this.pmtu.delete(key);
      return undefined;
    }
    return e;
  }

  /**
   * Learn a path MTU towards `dst` (u32) for PMTU_EXPIRES_MS; only ever lowers a live entry
   * (Linux __ip_rt_update_pmtu). Bounded: a full table starts over.
   */
  /** @internal */
  learnPathMtu(dst: number, mtu: number, locked: boolean): void {
    const now = this.stack.clock.now();
    const e = this.pmtu.get(dst);
    if (e !== undefined && e.expires > now && e.mtu <= mtu) return;
    if (e === undefined && this.pmtu.size >= PMTU_MAX_ENTRIES) this.pmtu.clear();
    this.pmtu.set(dst, { mtu, expires: now + PMTU_EXPIRES_MS, locked });
  }

  // ---------------------------------------------------------------- ICMP (icmpv4.ts)

  /**
   * Send an ICMP error about `pkt` (whose IP header is at pkt.networkHeaderStart) to its source.
   * Never about ICMP errors, fragments other than the first, or broadcast/multicast (RFC 1122).
   */
  sendIcmpError(nic: NIC, pkt: PacketBuffer, type: number, code: number, rest: number): void {
    this.icmp.sendError(nic, pkt, type, code, rest);
  }

  private reassemblyTimedOut(first: Uint8Array | null): void {
    if (!first) return;
    const p = PacketBuffer.wrap(first);
    p.networkHeaderStart = 0;
    const nic = this.stack.nicForAddress(first.subarray(16, 20));
    if (!nic) return;
    this.sendIcmpError(nic, p, ICMPV4_TIME_EXCEEDED, ICMPV4_REASSEMBLY_TIMEOUT, 0);
  }

  /**
   * Send an ICMP echo request and resolve with the reply (rejects ETIMEDOUT, or the send error).
   */
  ping(host: string | Uint8Array, options: PingOptions = {}): Promise<PingResult> {
    let dst: Uint8Array;
    try {
      ({ dst, options } = checkPingArgs(host, options, 4));
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const o = options;
    return this.pinger.ping(dst, o, (id, seq, size) => {
      const route = this.stack.findRoute(dst, o.nic !== undefined ? { nic: o.nic } : {});
      const pkt = buildEchoRequest(ICMPV4_ECHO_REQUEST, id, seq, size);
      const b = pkt.data;
      const s = pkt.start;
      const c = ~sum(b, s, ICMPV4_HEADER_LENGTH + size) & 0xffff;
      b[s + 2] = c >>> 8;
      b[s + 3] = c & 0xff;
      return () => {
        this.stats.icmp.sent++;
        this.writePacket(route, pkt, { protocol: IP_PROTO_ICMP, ttl: o.ttl ?? this.stack.defaultTtl, tos: 0, dontFragment: o.dontFragment ?? false });
      };
    });
  }

  /** @internal An echo reply (IP header at `ipStart`) arrived: settle the matching `ping`. */
  pingReplied(id: number, seq: number, data: Uint8Array, ipStart: number, bytes: number): void {
    if (this.pinger.has(id, seq)) this.pinger.replied(id, seq, formatIPv4(data, ipStart + 12), data[ipStart + 8]!, bytes);
  }

  /** @internal For error reports on a pending ping (host unreachable). */
  failPing(id: number, seq: number, err: Error): boolean {
    return this.pinger.failed(id, seq, err);
  }
}

interface PathMtuEntry {
  mtu: number;
  expires: number;
  locked: boolean;
}

/** Path MTU entries expire after this long (Linux net.ipv4.route.mtu_expires, 600 s). */
const PMTU_EXPIRES_MS = 600_000;
/** Destinations with a learned path MTU, at most (a full table is cleared). */
const PMTU_MAX_ENTRIES = 4096;


/** The reusable per-packet NetworkInfo for IPv4. */
export class Ipv4NetworkInfo implements NetworkInfo {
  readonly family = 4 as const;
  nic!: NIC;
  data: Uint8Array = new Uint8Array(0);
  srcOffset = 0;
  dstOffset = 0;
  ttl = 0;
  tos = 0;
  multicastOrBroadcast = false;

  set(nic: NIC, data: Uint8Array, ipStart: number, mcast: boolean): this {
    this.nic = nic;
    this.data = data;
    this.srcOffset = ipStart + 12;
    this.dstOffset = ipStart + 16;
    this.ttl = data[ipStart + 8]!;
    this.tos = data[ipStart + 1]!;
    this.multicastOrBroadcast = mcast;
    return this;
  }

  pseudoHeaderSum(protocol: number, length: number): number {
    return pseudoHeaderSumV4(this.data, this.srcOffset, this.data, this.dstOffset, protocol, length);
  }
}

export function ipv4Factory(options: IPv4Options = {}): (stack: NetStack) => IPv4Protocol {
  return (stack) => new IPv4Protocol(stack, options);
}

