import { TunstackError } from '../core/errors.js';
import { formatIPv6 } from '../core/address.js';
import {
  ICMPV6_ADMIN_PROHIBITED,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_ERROR_MAX_MESSAGE,
  ICMPV6_HEADER_LENGTH,
  ICMPV6_MLD_DONE,
  ICMPV6_MLD_QUERY,
  ICMPV6_MLD_REPORT,
  ICMPV6_MLDV2_REPORT,
  ICMPV6_NEIGHBOR_ADVERTISEMENT,
  ICMPV6_NEIGHBOR_SOLICITATION,
  ICMPV6_NO_ROUTE,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_PORT_UNREACHABLE,
  ICMPV6_REASSEMBLY_TIMEOUT,
  ICMPV6_REDIRECT,
  ICMPV6_REJECT_ROUTE,
  ICMPV6_ROUTER_ADVERTISEMENT,
  ICMPV6_ROUTER_SOLICITATION,
  ICMPV6_SOURCE_POLICY_FAILED,
  ICMPV6_TIME_EXCEEDED,
  IcmpV6Header,
  encodeIcmpV6Error,
  setIcmpV6Checksum,
} from '../headers/icmpv6.js';
import { IPV6_HEADER_LENGTH, IPV6_MIN_MTU, IPV6_NEXT_HEADER_ICMPV6 } from '../headers/ipv6.js';
import { IPV6_WALK_OK, IPv6Walk, walkIPv6Extensions } from '../headers/ipv6-walk.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer, PacketType } from '../core/packet.js';
import { icmpErrno } from '../stack/errno.js';
import type { TransportError } from '../stack/protocol.js';
import { TokenBucket } from '../core/ratelimit.js';
import type { Route } from '../stack/route.js';
import type { IPv6Protocol } from './ipv6.js';
import { isLinkLocal, isUnspecifiedAt, UNSPECIFIED } from './ipv6-address.js';

/**
 * ICMPv6 (RFC 4443) inside the IPv6 layer: echo, the four error messages (sent and received),
 * and dispatch of NDP and MLD messages to src/network/ndp.ts and src/network/mld.ts.
 *
 * Errors are never sent about an ICMPv6 error or redirect, to an unspecified or multicast source,
 * or about a datagram sent to a multicast address or as link-layer multicast/broadcast, except
 * Packet Too Big and Parameter Problem for an unrecognised option (RFC 4443 2.4 e). They are rate
 * limited by a token bucket, except Packet Too Big (Linux's default icmp/ratemask "0-1,3-127").
 * Received errors reach the transport that sent the quoted datagram through
 * TransportProtocol.handleError; a quoted echo request fails `ping`. A Packet Too Big lowers the
 * path MTU (never below 1280) only when that transport confirms the quoted flow is its own
 * (TransportError.confirmPathMtu, RFC 5927).
 */

export interface Icmpv6Stats {
  received: number;
  sent: number;
  /** Shorter than its type's fixed part. */
  malformed: number;
  invalidChecksum: number;
  echoRequestsReceived: number;
  echoRequestsSent: number;
  echoRepliesSent: number;
  echoRepliesReceived: number;
  errorsReceived: number;
  packetTooBigReceived: number;
  destUnreachableSent: number;
  packetTooBigSent: number;
  timeExceededSent: number;
  paramProblemSent: number;
  /** Errors not sent: the token bucket was empty. */
  rateLimited: number;
}

export interface Icmpv6Options {
  /** Error messages per second and burst (Linux icmp_msgs_per_sec / icmp_msgs_burst). */
  rate?: number;
  burst?: number;
  /** Ignore echo requests sent to multicast addresses (Linux icmp/echo_ignore_multicast; default false). */
  echoIgnoreMulticast?: boolean;
  /** Ignore every echo request (icmp/echo_ignore_all; default false). */
  echoIgnoreAll?: boolean;
}

export class Icmpv6 {
  readonly stats: Icmpv6Stats = {
    received: 0,
    sent: 0,
    malformed: 0,
    invalidChecksum: 0,
    echoRequestsReceived: 0,
    echoRequestsSent: 0,
    echoRepliesSent: 0,
    echoRepliesReceived: 0,
    errorsReceived: 0,
    packetTooBigReceived: 0,
    destUnreachableSent: 0,
    packetTooBigSent: 0,
    timeExceededSent: 0,
    paramProblemSent: 0,
    rateLimited: 0,
  };
  echoIgnoreMulticast: boolean;
  echoIgnoreAll: boolean;
  private readonly bucket: TokenBucket;
  private readonly hdr = new IcmpV6Header(new Uint8Array(0));
  private readonly qwalk = new IPv6Walk();

  constructor(
    private readonly ip: IPv6Protocol,
    options: Icmpv6Options,
  ) {
    this.bucket = new TokenBucket(ip.stack.clock, options.rate ?? 1000, options.burst ?? 50);
    this.echoIgnoreMulticast = options.echoIgnoreMulticast ?? false;
    this.echoIgnoreAll = options.echoIgnoreAll ?? false;
  }

  /** An ICMPv6 message delivered to us: pkt.start at the message, the IPv6 header at networkHeaderStart. */
  handle(nic: NIC, pkt: PacketBuffer, mcast: boolean): void {
    const st = this.stats;
    st.received++;
    const data = pkt.data;
    const h = this.hdr.reset(data, pkt.start, pkt.end - pkt.start);
    if (!h.isValid()) {
      st.malformed++;
      return;
    }
    const ip = pkt.networkHeaderStart;
    if (!pkt.checksumOffload && !h.checksumValid(data, data, ip + 8, ip + 24)) {
      st.invalidChecksum++;
      return;
    }
    const type = h.type;
    switch (type) {
      case ICMPV6_ECHO_REQUEST:
        st.echoRequestsReceived++;
        if (this.echoIgnoreAll || (mcast && this.echoIgnoreMulticast)) return;
        this.replyToEcho(nic, pkt, mcast);
        return;
      case ICMPV6_ECHO_REPLY: {
        st.echoRepliesReceived++;
        const id = h.identifier;
        const seq = h.sequence;
        this.ip.pingReplied(id, seq, formatIPv6(data, ip + 8), data[ip + 7]!, pkt.end - pkt.start);
        this.ip.stack.transportProtocol(IPV6_NEXT_HEADER_ICMPV6)?.handlePacket(this.ip.networkInfo(nic, data, ip, mcast), pkt);
        return;
      }
      case ICMPV6_DEST_UNREACHABLE:
      case ICMPV6_PACKET_TOO_BIG:
      case ICMPV6_TIME_EXCEEDED:
      case ICMPV6_PARAMETER_PROBLEM:
        st.errorsReceived++;
        this.handleError(nic, pkt, type, h.code, h.restOfHeader);
        return;
      case ICMPV6_ROUTER_SOLICITATION:
      case ICMPV6_ROUTER_ADVERTISEMENT:
      case ICMPV6_NEIGHBOR_SOLICITATION:
      case ICMPV6_NEIGHBOR_ADVERTISEMENT:
      case ICMPV6_REDIRECT:
        this.ip.ndp.handle(nic, pkt, h);
        return;
      case ICMPV6_MLD_QUERY:
      case ICMPV6_MLD_REPORT:
      case ICMPV6_MLD_DONE:
      case ICMPV6_MLDV2_REPORT:
        this.ip.mld.handle(nic, pkt, h);
        return;
      default:
        // Unknown informational messages are discarded; unknown errors have no one to go to.
        if (type < 128) st.errorsReceived++;
        return;
    }
  }

  private replyToEcho(nic: NIC, pkt: PacketBuffer, mcast: boolean): void {
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    const remote = data.slice(ip + 8, ip + 24);
    // Reply from the address the request was sent to, unless that was a multicast group.
    const local = mcast ? null : data.slice(ip + 24, ip + 40);
    let route: Route;
    try {
      route = this.ip.stack.findRoute(remote, { local, nic: nic.id });
    } catch {
      this.ip.stats.outgoingDropped++;
      return;
    }
    const len = pkt.end - pkt.start;
    const reply = PacketBuffer.alloc(len);
    const rb = reply.data;
    rb.set(data.subarray(pkt.start, pkt.end), reply.start);
    rb[reply.start] = ICMPV6_ECHO_REPLY;
    setIcmpV6Checksum(rb, reply.start, len, route.localAddress, route.remoteAddress);
    const tclass = ((data[ip]! & 0x0f) << 4) | (data[ip + 1]! >>> 4);
    this.stats.echoRepliesSent++;
    this.stats.sent++;
    try {
      this.ip.writePacket(route, reply, { protocol: IPV6_NEXT_HEADER_ICMPV6, ttl: this.ip.hopLimit(route.nic), tos: tclass });
    } catch {
      this.ip.stats.outgoingDropped++;
    }
  }

  private handleError(nic: NIC, pkt: PacketBuffer, type: number, code: number, rest: number): void {
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    const inner = pkt.start + ICMPV6_HEADER_LENGTH;
    const end = pkt.end;
    if (end - inner < IPV6_HEADER_LENGTH || data[inner]! >>> 4 !== 6) return;
    let kind: TransportError['kind'];
    let mtu = 0;
    let confirmPathMtu: (() => void) | undefined;
    switch (type) {
      case ICMPV6_DEST_UNREACHABLE:
        kind = code === ICMPV6_NO_ROUTE
          ? 'net-unreachable'
          : code === ICMPV6_PORT_UNREACHABLE
            ? 'port-unreachable'
            : code === ICMPV6_ADMIN_PROHIBITED || code === ICMPV6_SOURCE_POLICY_FAILED || code === ICMPV6_REJECT_ROUTE
              ? 'admin-prohibited'
              : 'host-unreachable';
        break;
      case ICMPV6_PACKET_TOO_BIG:
        this.stats.packetTooBigReceived++;
        kind = 'packet-too-big';
        mtu = Math.max(IPV6_MIN_MTU, rest >>> 0);
        // Only for datagrams we sent (the quoted source is ours), RFC 8201 5, and only once the
        // transport owning the quoted flow confirmed it (RFC 5927).
        if (this.ip.stack.nicForAddress(data.subarray(inner + 8, inner + 24)) !== null) {
          const dst = data.slice(inner + 24, inner + 40);
          const learned = mtu;
          confirmPathMtu = () => {
            this.ip.updatePathMtu(dst, 0, learned);
          };
        }
        break;
      case ICMPV6_TIME_EXCEEDED:
        kind = code === ICMPV6_REASSEMBLY_TIMEOUT ? 'reassembly-timeout' : 'ttl-exceeded';
        break;
      default:
        kind = 'param-problem';
    }
    const w = this.qwalk;
    if (walkIPv6Extensions(data, inner, inner + IPV6_HEADER_LENGTH, end, data[inner + 6]!, inner + 6, w) !== IPV6_WALK_OK) return;
    if (w.isFragment && w.fragmentOffset !== 0) return;
    const proto = w.protocol;
    const t = w.offset;
    if (t + 8 > end) return;
    const err: TransportError = { kind, mtu, from: data.slice(ip + 8, ip + 24), confirmPathMtu };
    if (proto === IPV6_NEXT_HEADER_ICMPV6 && data[t] === ICMPV6_ECHO_REQUEST) {
      const id = (data[t + 4]! << 8) | data[t + 5]!;
      const seq = (data[t + 6]! << 8) | data[t + 7]!;
      if (this.ip.pingFailed(id, seq, icmpv6Errno(err))) confirmPathMtu?.();
    }
    const tp = this.ip.stack.transportProtocol(proto);
    tp?.handleError?.(this.ip.networkInfo(nic, data, inner, false), err, data, t);
  }

  /** Report a send failure of our own datagram (neighbour unreachable) to its transport. */
  localError(nic: NIC, pkt: PacketBuffer, kind: TransportError['kind']): void {
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    const w = this.qwalk;
    if (walkIPv6Extensions(data, ip, ip + IPV6_HEADER_LENGTH, pkt.end, data[ip + 6]!, ip + 6, w) !== IPV6_WALK_OK) return;
    if (w.isFragment && w.fragmentOffset !== 0) return;
    const t = w.offset;
    if (t + 8 > pkt.end) return;
    const err: TransportError = { kind, mtu: 0, from: UNSPECIFIED.slice() };
    if (w.protocol === IPV6_NEXT_HEADER_ICMPV6 && data[t] === ICMPV6_ECHO_REQUEST) {
      this.ip.pingFailed((data[t + 4]! << 8) | data[t + 5]!, (data[t + 6]! << 8) | data[t + 7]!, icmpv6Errno(err));
    }
    this.ip.stack.transportProtocol(w.protocol)?.handleError?.(this.ip.networkInfo(nic, data, ip, false), err, data, t);
  }

  /**
   * Send an ICMPv6 error about the datagram whose IPv6 header is at pkt.networkHeaderStart (or
   * pkt.start) to its source, quoting as much of it as fits in 1280 bytes. `allowMulticast`:
   * the exception of RFC 4443 2.4 (e.3) for an unrecognised option (Packet Too Big always has it).
   */
  sendError(nic: NIC, pkt: PacketBuffer, type: number, code: number, param: number, allowMulticast: boolean): void {
    const data = pkt.data;
    const ip = pkt.networkHeaderStart >= 0 ? pkt.networkHeaderStart : pkt.start;
    if (ip < 0 || ip + IPV6_HEADER_LENGTH > pkt.end) return;
    const end = Math.min(pkt.end, ip + IPV6_HEADER_LENGTH + ((data[ip + 4]! << 8) | data[ip + 5]!));
    const srcOff = ip + 8;
    const dstOff = ip + 24;
    if (isUnspecifiedAt(data, srcOff) || data[srcOff] === 0xff) return;
    const dstMcast = data[dstOff] === 0xff;
    const mcastOk = allowMulticast || type === ICMPV6_PACKET_TOO_BIG;
    if (!mcastOk && (dstMcast || pkt.packetType === PacketType.Multicast || pkt.packetType === PacketType.Broadcast)) return;
    if (quotesErrorOrRedirect(data, ip, end)) return;
    if (type !== ICMPV6_PACKET_TOO_BIG && !this.bucket.take()) {
      this.stats.rateLimited++;
      return;
    }
    const stack = this.ip.stack;
    const remote = data.slice(srcOff, srcOff + 16);
    let local: Uint8Array | null = null;
    if (!dstMcast && stack.nicForAddress(data.subarray(dstOff, dstOff + 16)) !== null) local = data.slice(dstOff, dstOff + 16);
    let route: Route;
    try {
      const pin = isLinkLocal(remote) || (local !== null && isLinkLocal(local));
      route = stack.findRoute(remote, pin ? { local, nic: nic.id } : { local });
    } catch {
      return;
    }
    const quote = Math.min(end - ip, ICMPV6_ERROR_MAX_MESSAGE - ICMPV6_HEADER_LENGTH);
    const len = ICMPV6_HEADER_LENGTH + quote;
    const msg = PacketBuffer.alloc(len);
    const mb = msg.data;
    encodeIcmpV6Error(mb, msg.start, { type, code, parameter: param >>> 0 });
    mb.set(data.subarray(ip, ip + quote), msg.start + ICMPV6_HEADER_LENGTH);
    setIcmpV6Checksum(mb, msg.start, len, route.localAddress, route.remoteAddress);
    const st = this.stats;
    if (type === ICMPV6_DEST_UNREACHABLE) st.destUnreachableSent++;
    else if (type === ICMPV6_PACKET_TOO_BIG) st.packetTooBigSent++;
    else if (type === ICMPV6_TIME_EXCEEDED) st.timeExceededSent++;
    else if (type === ICMPV6_PARAMETER_PROBLEM) st.paramProblemSent++;
    st.sent++;
    try {
      this.ip.writePacket(route, msg, { protocol: IPV6_NEXT_HEADER_ICMPV6, ttl: this.ip.hopLimit(route.nic), tos: 0 });
    } catch {
      this.ip.stats.outgoingDropped++;
    }
  }
}

/**
 * True when the datagram's upper layer is an ICMPv6 error or redirect, found by skipping the
 * extension headers by their lengths (as Linux's is_ineligible). A chain that cannot be followed
 * is eligible; an ICMPv6 header too short to show its type is not.
 */
function quotesErrorOrRedirect(b: Uint8Array, ip: number, end: number): boolean {
  let nh = b[ip + 6]!;
  let p = ip + IPV6_HEADER_LENGTH;
  for (let n = 0; n < 16; n++) {
    if (nh === 0 || nh === 43 || nh === 60) {
      if (p + 8 > end) return false;
      const next = b[p]!;
      p += (b[p + 1]! + 1) << 3;
      nh = next;
      continue;
    }
    if (nh === 51) {
      if (p + 8 > end) return false;
      const next = b[p]!;
      p += (b[p + 1]! + 2) << 2;
      nh = next;
      continue;
    }
    if (nh === 44) {
      if (p + 8 > end) return false;
      if ((((b[p + 2]! << 8) | b[p + 3]!) & 0xfff8) !== 0) return false;
      nh = b[p]!;
      p += 8;
      continue;
    }
    break;
  }
  if (nh !== IPV6_NEXT_HEADER_ICMPV6) return false;
  if (p >= end) return true;
  const t = b[p]!;
  return t < 128 || t === ICMPV6_REDIRECT;
}

/** The errno for an ICMPv6 error (Linux icmpv6_err_convert). */
export function icmpv6Errno(e: TransportError): TunstackError {
  return icmpErrno(e, { from: true });
}

