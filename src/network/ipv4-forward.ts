/**
 * IPv4 forwarding (stack.forwarding): datagrams that are not ours go to the next hop with the
 * checks of RFC 1812 as Linux's ip_forward makes them.
 */
import { ICMPV4_DEST_UNREACHABLE, ICMPV4_FRAG_NEEDED, ICMPV4_NET_UNREACHABLE, ICMPV4_TIME_EXCEEDED, ICMPV4_TTL_EXCEEDED } from '../headers/icmpv4.js';
import { completePacketChecksum } from '../headers/partial-checksum.js';
import { IPv4Header } from '../headers/ipv4.js';
import type { NIC } from '../stack/nic.js';
import { PacketType, type PacketBuffer } from '../core/packet.js';
import { Route } from '../stack/route.js';
import type { IPv4Protocol } from './ipv4.js';

/** @internal The forwarding half of one IPv4Protocol. */
export class Ipv4Forwarder {
  private readonly hdr = new IPv4Header(new Uint8Array(0));
  private readonly fwdDst = new Uint8Array(4);
  private readonly nicUsable = (id: number): boolean => this.ip.stack.nic(id)?.enabled === true;

  constructor(private readonly ip: IPv4Protocol) {}

  /**
   * Route a datagram that is not ours to the next hop, as Linux's ip_forward (RFC 1812): only
   * datagrams received as link-layer unicast; never from or to 0/8, loopback, link-local
   * (169.254/16, RFC 3927) or our own addresses, nor to a subnet broadcast address; no route:
   * Destination Unreachable (network); TTL 1: Time Exceeded; bigger than the next hop's MTU:
   * Fragmentation Needed with the MTU when DF is set, else fragmented (options without the
   * copied flag become NOPs after the first fragment). TTL is decremented with an incremental
   * checksum update. No redirects are sent.
   */
  forward(inNic: NIC, pkt: PacketBuffer): void {
    const st = this.ip.stats;
    const data = pkt.data;
    const ipStart = pkt.start;
    const srcOff = ipStart + 12;
    const dstOff = ipStart + 16;
    if (pkt.packetType !== PacketType.Host) {
      st.forwardDropped++;
      return;
    }
    const s0 = data[srcOff]!;
    const d0 = data[dstOff]!;
    if (
      s0 === 0 || s0 === 127 || d0 === 0 || d0 === 127 ||
      (s0 === 169 && data[srcOff + 1] === 254) ||
      (d0 === 169 && data[dstOff + 1] === 254) ||
      this.ip.stack.nicForAddress(data, srcOff, 4) !== null
    ) {
      st.forwardDropped++;
      return;
    }
    const dst = this.fwdDst;
    dst[0] = d0;
    dst[1] = data[dstOff + 1]!;
    dst[2] = data[dstOff + 2]!;
    dst[3] = data[dstOff + 3]!;
    const entry = this.ip.stack.routes.lookup(dst, 0, this.nicUsable);
    if (entry === null) {
      st.forwardDropped++;
      this.ip.sendIcmpError(inNic, pkt, ICMPV4_DEST_UNREACHABLE, ICMPV4_NET_UNREACHABLE, 0);
      return;
    }
    const out = this.ip.stack.nic(entry.nicId)!;
    if (entry.gateway === null && out.isSubnetBroadcast(dst)) {
      // Directed broadcasts are not forwarded (Linux bc_forwarding=0).
      st.forwardDropped++;
      return;
    }
    if (data[ipStart + 8]! <= 1) {
      this.ip.stats.ttlExceeded++;
      this.ip.sendIcmpError(inNic, pkt, ICMPV4_TIME_EXCEEDED, ICMPV4_TTL_EXCEEDED, 0);
      return;
    }
    const h = this.hdr.reset(data, ipStart, pkt.end - ipStart);
    const hl = h.headerLength;
    const mtu = out.mtu;
    const tooBig = pkt.end - ipStart > mtu;
    if (tooBig && h.dontFragment) {
      // The error quotes the datagram as received (before the TTL decrement), as Linux does.
      st.fragmentationFailed++;
      this.ip.sendIcmpError(inNic, pkt, ICMPV4_DEST_UNREACHABLE, ICMPV4_FRAG_NEEDED, mtu);
      return;
    }
    // A local kernel's partial checksum is completed here: the next hop needs a whole one.
    if (pkt.csumStart >= 0 && !completePacketChecksum(pkt)) {
      st.forwardDropped++;
      return;
    }
    h.decrementTtl();
    st.forwarded++;
    pkt.linkHeaderStart = -1;
    pkt.remoteLinkAddress = null;
    const nextHop = entry.gateway ?? dst;
    if (tooBig) {
      const route = new Route(out, this.ip, data.slice(srcOff, srcOff + 4), dst.slice(), nextHop.slice(), false, false, null);
      this.ip.fragmentAndSend(route, pkt, ipStart, hl);
      return;
    }
    if (!out.needsResolution) {
      out.transmit(pkt);
      return;
    }
    const arp = this.ip.arp;
    if (!arp) {
      st.outgoingDropped++;
      return;
    }
    arp.resolveAndSend(out, nextHop, pkt);
  }
}
