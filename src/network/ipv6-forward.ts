/**
 * IPv6 forwarding (stack.forwarding): datagrams that are not ours go out another (or the same)
 * NIC with the checks of RFC 8200 and RFC 4443 as Linux's ip6_forward makes them.
 */
import {
  ICMPV6_BEYOND_SCOPE,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_HOP_LIMIT_EXCEEDED,
  ICMPV6_NO_ROUTE,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_TIME_EXCEEDED,
  ICMPV6_UNRECOGNIZED_OPTION,
} from '../headers/icmpv6.js';
import {
  IPV6_HEADER_LENGTH,
  IPV6_MIN_MTU,
  IPV6_NEXT_HEADER_HOP_BY_HOP,
  IPV6_OPTION_ACTION_DISCARD,
  IPV6_OPTION_ACTION_DISCARD_ICMP_UNLESS_MULTICAST,
  IPV6_OPTION_ACTION_SKIP,
  IPV6_OPTION_PAD1,
  IPV6_OPTION_PADN,
  IPV6_OPTION_ROUTER_ALERT,
} from '../headers/ipv6.js';
import { completePacketChecksum } from '../headers/partial-checksum.js';
import { IPV6_OPTIONS_END, IPv6OptionIterator } from '../headers/ipv6-extensions.js';
import type { NIC } from '../stack/nic.js';
import { PacketType, type PacketBuffer } from '../core/packet.js';
import type { IPv6Protocol } from './ipv6.js';
import { isUnspecifiedAt } from './ipv6-address.js';

/** @internal The forwarding half of one IPv6Protocol. */
export class Ipv6Forwarder {
  private readonly opts = new IPv6OptionIterator();
  private readonly scratch = new Uint8Array(16);
  private readonly nicUsable = (id: number): boolean => this.ip.stack.nic(id)?.enabled === true;

  constructor(private readonly ip: IPv6Protocol) {}

  /**
   * Route a datagram that is not ours to another (or the same) NIC, as Linux's ip6_forward:
   * only link-layer unicast; never link-local, loopback or multicast destinations; a link-local
   * source gets Destination Unreachable (beyond scope); no route: Destination Unreachable (no
   * route); hop limit 1: Time Exceeded; bigger than the next hop's MTU: Packet Too Big (IPv6
   * routers never fragment). Hop-by-Hop options are processed on the way.
   */
  forward(inNic: NIC, pkt: PacketBuffer): void {
    const st = this.ip.stats;
    const data = pkt.data;
    const ip = pkt.start;
    const srcOff = ip + 8;
    const dstOff = ip + 24;
    if (pkt.packetType !== PacketType.Host) {
      st.forwardDropped++;
      return;
    }
    if (
      isUnspecifiedAt(data, srcOff) ||
      isUnspecifiedAt(data, dstOff) ||
      (data[dstOff] === 0xfe && (data[dstOff + 1]! & 0xc0) === 0x80)
    ) {
      st.forwardDropped++;
      return;
    }
    if (data[srcOff] === 0xfe && (data[srcOff + 1]! & 0xc0) === 0x80) {
      st.forwardDropped++;
      this.ip.icmp.sendError(inNic, pkt, ICMPV6_DEST_UNREACHABLE, ICMPV6_BEYOND_SCOPE, 0, false);
      return;
    }
    if (data[ip + 6] === IPV6_NEXT_HEADER_HOP_BY_HOP && !this.hopByHop(inNic, pkt)) return;
    const dst = this.scratch;
    for (let i = 0; i < 16; i++) dst[i] = data[dstOff + i]!;
    const entry = this.ip.stack.routes.lookup(dst, 0, this.nicUsable);
    if (entry === null) {
      st.forwardDropped++;
      this.ip.icmp.sendError(inNic, pkt, ICMPV6_DEST_UNREACHABLE, ICMPV6_NO_ROUTE, 0, false);
      return;
    }
    const out = this.ip.stack.nic(entry.nicId)!;
    if (data[ip + 7]! <= 1) {
      st.hopLimitExceeded++;
      this.ip.icmp.sendError(inNic, pkt, ICMPV6_TIME_EXCEEDED, ICMPV6_HOP_LIMIT_EXCEEDED, 0, false);
      return;
    }
    const mtu = Math.max(IPV6_MIN_MTU, this.ip.linkMtu(out));
    if (pkt.end - ip > mtu) {
      st.tooBigForwarded++;
      this.ip.icmp.sendError(inNic, pkt, ICMPV6_PACKET_TOO_BIG, 0, mtu, false);
      return;
    }
    // A local kernel's partial checksum is completed here: the next hop needs a whole one.
    if (pkt.csumStart >= 0 && !completePacketChecksum(pkt)) {
      st.forwardDropped++;
      return;
    }
    data[ip + 7] = data[ip + 7]! - 1;
    st.forwarded++;
    pkt.linkHeaderStart = -1;
    pkt.remoteLinkAddress = null;
    this.ip.transmitTo(out, dst, entry.gateway ?? dst, pkt, null);
  }

  /** Hop-by-Hop options of a datagram being forwarded: false when it must be dropped. */
  private hopByHop(inNic: NIC, pkt: PacketBuffer): boolean {
    const data = pkt.data;
    const ip = pkt.start;
    const p = ip + IPV6_HEADER_LENGTH;
    if (p + 8 > pkt.end || p + ((data[p + 1]! + 1) << 3) > pkt.end) {
      this.ip.stats.extensionHeaderErrors++;
      return false;
    }
    const it = this.opts.reset(data, p + 2, p + ((data[p + 1]! + 1) << 3));
    while (it.next()) {
      const t = it.type;
      if (t === IPV6_OPTION_PAD1 || t === IPV6_OPTION_PADN || t === IPV6_OPTION_ROUTER_ALERT) continue;
      const action = t >>> 6;
      if (action === IPV6_OPTION_ACTION_SKIP) continue;
      this.ip.stats.extensionHeaderErrors++;
      if (action !== IPV6_OPTION_ACTION_DISCARD && !(action === IPV6_OPTION_ACTION_DISCARD_ICMP_UNLESS_MULTICAST && data[ip + 24] === 0xff)) {
        this.ip.icmp.sendError(inNic, pkt, ICMPV6_PARAMETER_PROBLEM, ICMPV6_UNRECOGNIZED_OPTION, it.optionOffset - ip, true);
      }
      return false;
    }
    if (it.status !== IPV6_OPTIONS_END) {
      this.ip.stats.extensionHeaderErrors++;
      return false;
    }
    return true;
  }
}
