import { TunstackError } from '../core/errors.js';
import { formatIPv4, ipv4ToU32 } from '../core/address.js';
import { sum, updateChecksum16 } from '../headers/checksum.js';
import {
  ICMPV4_ADMIN_PROHIBITED,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REPLY,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_FRAG_NEEDED,
  ICMPV4_HEADER_LENGTH,
  ICMPV4_HOST_PROHIBITED,
  ICMPV4_HOST_UNREACHABLE,
  ICMPV4_NET_PROHIBITED,
  ICMPV4_NET_UNREACHABLE,
  ICMPV4_PARAMETER_PROBLEM,
  ICMPV4_PORT_UNREACHABLE,
  ICMPV4_PROTOCOL_UNREACHABLE,
  ICMPV4_REASSEMBLY_TIMEOUT,
  ICMPV4_TIME_EXCEEDED,
  IcmpV4Header,
} from '../headers/icmpv4.js';
import { IP_PROTO_ICMP, IPV4_MIN_HEADER } from '../headers/ipv4.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer, PacketType } from '../core/packet.js';
import type { TransportError } from '../stack/protocol.js';
import { TokenBucket } from '../core/ratelimit.js';
import type { Route } from '../stack/route.js';
import type { IPv4Protocol } from './ipv4.js';

/**
 * ICMP for IPv4 (RFC 792, host requirements of RFC 1122): echo answered in place, errors
 * received mapped to transport errors (frag-needed feeding the path MTU, RFC 1191), errors sent
 * about our own and forwarded datagrams, rate limited as Linux's icmp_msgs_per_sec. Counters are
 * IPv4Protocol.stats.icmp; pings themselves are IPv4Protocol.ping.
 */

/** Smallest path MTU learned from frag-needed (Linux net.ipv4.route.min_pmtu, 512 + 20 + 20). */
const IPV4_MIN_PMTU = 552;

/** RFC 1191 section 7 plateau table. */
const PLATEAUS = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];
function plateauBelow(len: number): number {
  for (const p of PLATEAUS) if (p < len) return p;
  return 68;
}

/** @internal The ICMP half of one IPv4Protocol. */
export class Icmpv4 {
  private readonly hdr = new IcmpV4Header(new Uint8Array(0));
  private readonly bucket: TokenBucket;

  constructor(
    private readonly ip: IPv4Protocol,
    rate: number,
    burst: number,
  ) {
    this.bucket = new TokenBucket(ip.stack.clock, rate, burst);
  }

  /** @internal An ICMP message for this host (IP header at pkt.networkHeaderStart). */
  handle(nic: NIC, pkt: PacketBuffer, mcastOrBcast: boolean): void {
    const st = this.ip.stats.icmp;
    st.received++;
    const data = pkt.data;
    const icmp = this.hdr.reset(data, pkt.start, pkt.end - pkt.start);
    if (!icmp.isValid()) {
      st.malformed++;
      return;
    }
    if (!pkt.checksumOffload && !icmp.checksumValid()) {
      st.invalidChecksum++;
      return;
    }
    const ipStart = pkt.networkHeaderStart;
    switch (icmp.type) {
      case ICMPV4_ECHO_REQUEST: {
        st.echoRequestsReceived++;
        if (mcastOrBcast && !this.ip.echoReplyToBroadcast) return;
        this.replyToEcho(nic, pkt, ipStart);
        return;
      }
      case ICMPV4_ECHO_REPLY: {
        st.echoRepliesReceived++;
        const id = icmp.ident;
        const seq = icmp.sequence;
        this.ip.pingReplied(id, seq, data, ipStart, pkt.end - pkt.start);
        this.ip.stack.transportProtocol(IP_PROTO_ICMP)?.handlePacket(this.ip.info.set(nic, data, ipStart, mcastOrBcast), pkt);
        return;
      }
      case ICMPV4_DEST_UNREACHABLE:
      case ICMPV4_TIME_EXCEEDED:
      case ICMPV4_PARAMETER_PROBLEM:
        st.errorsReceived++;
        this.handleError(nic, pkt, icmp.type, icmp.code, icmp.mtu, ipStart);
        return;
      default:
        return;
    }
  }

  /**
   * Answer an echo request in place: the request's buffer becomes the reply (the stack owns
   * received packets; taps and raw sockets took copies), so no allocation or copy of the data.
   */
  private replyToEcho(nic: NIC, pkt: PacketBuffer, ipStart: number): void {
    const data = pkt.data;
    const rs = pkt.start;
    const tos = data[ipStart + 1]!;
    // Only the type changes (8 -> 0): update the checksum incrementally (RFC 1624).
    data[rs] = ICMPV4_ECHO_REPLY;
    const c = updateChecksum16((data[rs + 2]! << 8) | data[rs + 3]!, ICMPV4_ECHO_REQUEST << 8, ICMPV4_ECHO_REPLY << 8);
    data[rs + 2] = c >>> 8;
    data[rs + 3] = c & 0xff;
    const remote = data.subarray(ipStart + 12, ipStart + 16);
    const ourDst = data.subarray(ipStart + 16, ipStart + 20);
    let route: Route;
    try {
      // (findRoute copies what it keeps: the old header is overwritten below.)
      route = this.ip.stack.findRoute(remote, { local: nic.hasAddress(ourDst) ? ourDst : null, nic: nic.id });
    } catch {
      this.ip.stats.outgoingDropped++;
      return;
    }
    // From here on the buffer is an outbound packet: drop what described it as received.
    pkt.linkHeaderStart = -1;
    pkt.networkHeaderStart = -1;
    pkt.transportHeaderStart = -1;
    pkt.packetType = PacketType.Host;
    pkt.remoteLinkAddress = null;
    pkt.checksumOffload = false;
    pkt.gsoSize = 0;
    this.ip.stats.icmp.echoRepliesSent++;
    this.ip.stats.icmp.sent++;
    this.ip.writePacket(route, pkt, { protocol: IP_PROTO_ICMP, ttl: this.ip.stack.defaultTtl, tos });
  }

  private handleError(nic: NIC, pkt: PacketBuffer, type: number, code: number, mtu: number, ipStart: number): void {
    const data = pkt.data;
    const innerStart = pkt.start + ICMPV4_HEADER_LENGTH;
    // The quoted header must be at least complete, with 8 bytes of the transport after it.
    if (pkt.end - innerStart < IPV4_MIN_HEADER || (data[innerStart]! >>> 4) !== 4) return;
    const ihl = (data[innerStart]! & 0x0f) * 4;
    if (ihl < IPV4_MIN_HEADER || innerStart + ihl + 8 > pkt.end) return;
    let kind: TransportError['kind'];
    if (type === ICMPV4_DEST_UNREACHABLE) {
      switch (code) {
        case ICMPV4_NET_UNREACHABLE:
          kind = 'net-unreachable';
          break;
        case ICMPV4_HOST_UNREACHABLE:
          kind = 'host-unreachable';
          break;
        case ICMPV4_PROTOCOL_UNREACHABLE:
          kind = 'proto-unreachable';
          break;
        case ICMPV4_PORT_UNREACHABLE:
          kind = 'port-unreachable';
          break;
        case ICMPV4_FRAG_NEEDED:
          kind = 'frag-needed';
          break;
        case ICMPV4_NET_PROHIBITED:
        case ICMPV4_HOST_PROHIBITED:
        case ICMPV4_ADMIN_PROHIBITED:
          kind = 'admin-prohibited';
          break;
        default:
          kind = 'host-unreachable';
      }
    } else if (type === ICMPV4_TIME_EXCEEDED) {
      kind = code === ICMPV4_REASSEMBLY_TIMEOUT ? 'reassembly-timeout' : 'ttl-exceeded';
    } else {
      kind = 'param-problem';
    }
    let confirmPathMtu: (() => void) | undefined;
    if (kind === 'frag-needed') {
      // RFC 1191: a zero MTU field (old routers) means use the next lower plateau. Below
      // IPV4_MIN_PMTU the path MTU is clamped to it and locked (DF off), as Linux's min_pmtu.
      const quotedLen = (data[innerStart + 2]! << 8) | data[innerStart + 3]!;
      const reported = mtu >= 68 ? mtu : plateauBelow(quotedLen);
      const locked = reported < IPV4_MIN_PMTU;
      const learned = locked ? IPV4_MIN_PMTU : reported;
      mtu = learned;
      const dst = ipv4ToU32(data, innerStart + 16);
      // Applied only when the owner of the quoted flow vouches for it (RFC 5927).
      confirmPathMtu = () => this.ip.learnPathMtu(dst, learned, locked);
    }
    const protocol = data[innerStart + 9]!;
    if (protocol === IP_PROTO_ICMP && data[innerStart + ihl] === ICMPV4_ECHO_REQUEST) {
      // An error about one of our echo requests: fail that ping, as ping(8) reports it.
      const q = innerStart + ihl;
      const from = formatIPv4(data, ipStart + 12);
      const what = kind === 'ttl-exceeded' ? 'time to live exceeded' : kind.replace(/-/g, ' ');
      const code = kind === 'net-unreachable' ? 'ENETUNREACH' : kind === 'frag-needed' ? 'EMSGSIZE' : 'EHOSTUNREACH';
      const mine = this.ip.failPing((data[q + 4]! << 8) | data[q + 5]!, (data[q + 6]! << 8) | data[q + 7]!, new TunstackError(code, `${what} (from ${from})`, 'ping'));
      if (mine) confirmPathMtu?.();
    }
    const tp = this.ip.stack.transportProtocol(protocol);
    if (!tp?.handleError) return;
    // Present the quoted packet's addresses as the network info (src = us, dst = remote).
    const info = this.ip.info.set(nic, data, innerStart, false);
    tp.handleError(info, { kind, mtu, from: data.slice(ipStart + 12, ipStart + 16), confirmPathMtu }, data, innerStart + ihl);
  }

  /** Report an error for a packet we failed to send (no ICMP on the wire). */
  /** @internal */
  localError(nic: NIC, pkt: PacketBuffer, err: TransportError): void {
    const data = pkt.data;
    const ipStart = pkt.networkHeaderStart;
    const ihl = (data[ipStart]! & 0x0f) * 4;
    if (ipStart + ihl + 8 > pkt.end) return;
    const q = ipStart + ihl;
    if (data[ipStart + 9] === IP_PROTO_ICMP && data[q] === ICMPV4_ECHO_REQUEST) {
      const to = formatIPv4(data, ipStart + 16);
      this.ip.failPing((data[q + 4]! << 8) | data[q + 5]!, (data[q + 6]! << 8) | data[q + 7]!, new TunstackError('EHOSTUNREACH', `destination host ${to} unreachable`, 'ping'));
    }
    const tp = this.ip.stack.transportProtocol(data[ipStart + 9]!);
    if (!tp?.handleError) return;
    const info = this.ip.info.set(nic, data, ipStart, false);
    tp.handleError(info, err, data, ipStart + ihl);
  }

  /**
   * Send an ICMP error about `pkt` (whose IP header is at pkt.networkHeaderStart) to its source.
   * Never about ICMP errors, fragments other than the first, or broadcast/multicast (RFC 1122).
   */
  sendError(nic: NIC, pkt: PacketBuffer, type: number, code: number, rest: number): void {
    const data = pkt.data;
    const ipStart = pkt.networkHeaderStart >= 0 ? pkt.networkHeaderStart : pkt.start;
    const ihl = (data[ipStart]! & 0x0f) * 4;
    const fragOff = ((data[ipStart + 6]! & 0x1f) << 8) | data[ipStart + 7]!;
    if (fragOff !== 0) return;
    if (data[ipStart + 9] === IP_PROTO_ICMP) {
      const t = data[ipStart + ihl];
      if (t !== ICMPV4_ECHO_REQUEST && t !== ICMPV4_ECHO_REPLY && t !== 13 && t !== 14) return;
    }
    const s0 = data[ipStart + 12]!;
    if (s0 === 0 || s0 >= 224 || s0 === 127) return;
    if (pkt.packetType === PacketType.Broadcast || pkt.packetType === PacketType.Multicast) return;
    if (!this.bucket.take()) {
      this.ip.stats.icmp.rateLimited++;
      return;
    }
    const ipEnd = Math.min(pkt.end, ipStart + ((data[ipStart + 2]! << 8) | data[ipStart + 3]!));
    const quote = Math.min(ipEnd - ipStart, 576 - IPV4_MIN_HEADER - ICMPV4_HEADER_LENGTH);
    const msg = PacketBuffer.alloc(ICMPV4_HEADER_LENGTH + quote);
    const mb = msg.data;
    const ms = msg.start;
    mb[ms] = type;
    mb[ms + 1] = code;
    mb[ms + 4] = type === ICMPV4_PARAMETER_PROBLEM ? rest : 0;
    mb[ms + 6] = type === ICMPV4_DEST_UNREACHABLE ? (rest >>> 8) & 0xff : 0;
    mb[ms + 7] = type === ICMPV4_DEST_UNREACHABLE ? rest & 0xff : 0;
    mb.set(data.subarray(ipStart, ipStart + quote), ms + ICMPV4_HEADER_LENGTH);
    const c = ~sum(mb, ms, ICMPV4_HEADER_LENGTH + quote) & 0xffff;
    mb[ms + 2] = c >>> 8;
    mb[ms + 3] = c & 0xff;
    const remote = data.slice(ipStart + 12, ipStart + 16);
    const origDst = data.subarray(ipStart + 16, ipStart + 20);
    let route: Route;
    try {
      // Answer from the address the packet was sent to when it is ours, or when the NIC may
      // speak for any address (a sandbox NIC relaying for the whole network).
      const fromDst = nic.hasAddress(origDst) || (nic.spoofing && origDst[0]! < 224);
      route = this.ip.stack.findRoute(remote, { local: fromDst ? origDst.slice() : null });
    } catch {
      return;
    }
    if (type === ICMPV4_DEST_UNREACHABLE) this.ip.stats.icmp.destUnreachableSent++;
    if (type === ICMPV4_TIME_EXCEEDED) this.ip.stats.icmp.timeExceededSent++;
    this.ip.stats.icmp.sent++;
    this.ip.writePacket(route, msg, { protocol: IP_PROTO_ICMP, ttl: this.ip.stack.defaultTtl, tos: 0xc0 });
  }
}
