/**
 * IPv6 fragmentation at the source and reassembly (RFC 8200 4.5) for IPv6Protocol: fragments
 * with one random identification sized to the path MTU; received fragments put together by the
 * protocol's Reassembler (bounded memory, RFC 5722 overlap drops), Time Exceeded when the first
 * fragment came but the datagram did not complete.
 */
import { ICMPV6_REASSEMBLY_TIMEOUT, ICMPV6_TIME_EXCEEDED } from '../headers/icmpv6.js';
import { IPV6_FRAGMENT_HEADER_LENGTH, IPV6_HEADER_LENGTH, IPV6_NEXT_HEADER_FRAGMENT } from '../headers/ipv6.js';
import type { IPv6Walk } from '../headers/ipv6-walk.js';
import { ETHERTYPE_IPV6 } from '../headers/ethernet.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer } from '../core/packet.js';
import type { IPv6Protocol } from './ipv6.js';
import { addrKey } from './ipv6-address.js';

/** @internal The fragmentation half of one IPv6Protocol. */
export class Ipv6Fragments {
  constructor(private readonly ip: IPv6Protocol) {}

  /** @internal A fragment for us (`w`: its walk): add it, and receive the datagram once whole. */
  reassemble(nic: NIC, pkt: PacketBuffer, mcast: boolean, w: IPv6Walk): void {
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    const fh = w.fragmentHeaderOffset;
    const key = fragmentKey(data, ip, w.fragmentId);
    const done = this.ip.reassembler.add(
      key,
      data.subarray(ip, fh + IPV6_FRAGMENT_HEADER_LENGTH),
      data.subarray(w.offset, pkt.end),
      w.fragmentOffset << 3,
      w.moreFragments,
      data.subarray(ip, pkt.end),
    );
    if (done === null) return;
    const hdr = done.header;
    const hl = hdr.length - IPV6_FRAGMENT_HEADER_LENGTH;
    const total = hl + done.payload.length;
    if (total - IPV6_HEADER_LENGTH > 0xffff) {
      this.ip.stats.extensionHeaderErrors++;
      return;
    }
    const whole = new Uint8Array(total);
    whole.set(hdr.subarray(0, hl), 0);
    whole.set(done.payload, hl);
    // The Next Header field that named the Fragment header now names what followed it.
    let nhField = 6;
    for (let p = IPV6_HEADER_LENGTH; p + 2 <= hl; p += (whole[p + 1]! + 1) << 3) nhField = p;
    whole[nhField] = hdr[hl]!;
    whole[4] = (total - IPV6_HEADER_LENGTH) >>> 8;
    whole[5] = (total - IPV6_HEADER_LENGTH) & 0xff;
    const np = new PacketBuffer(whole, 0, total);
    np.nicId = pkt.nicId;
    np.packetType = pkt.packetType;
    np.networkProtocol = ETHERTYPE_IPV6;
    np.networkHeaderStart = 0;
    np.networkHeaderLength = IPV6_HEADER_LENGTH;
    this.ip.receiveLocal(nic, np, mcast, true);
  }

  /**
   * Source fragmentation (RFC 8200 4.5): the fixed header is the unfragmentable part; each
   * fragment carries a Fragment header with one random identification, and data in multiples
   * of 8 bytes sized to the path MTU.
   * @internal
   */
  fragmentAndSend(nic: NIC, dst: Uint8Array, nextHop: Uint8Array, pkt: PacketBuffer, ip: number, mtu: number, local: NIC | null): void {
    const data = pkt.data;
    const chunk = (mtu - IPV6_HEADER_LENGTH - IPV6_FRAGMENT_HEADER_LENGTH) & ~7;
    if (chunk < 8) {
      this.ip.stats.fragmentationFailed++;
      return;
    }
    const payloadStart = ip + IPV6_HEADER_LENGTH;
    const payloadLength = pkt.end - payloadStart;
    const nh = data[ip + 6]!;
    const id = this.nextFragmentId();
    for (let off = 0; off < payloadLength; off += chunk) {
      const len = Math.min(chunk, payloadLength - off);
      const more = off + len < payloadLength;
      const frag = PacketBuffer.alloc(IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH + len);
      const fb = frag.data;
      const fs = frag.start;
      fb.set(data.subarray(ip, ip + IPV6_HEADER_LENGTH), fs);
      const pl = IPV6_FRAGMENT_HEADER_LENGTH + len;
      fb[fs + 4] = pl >>> 8;
      fb[fs + 5] = pl & 0xff;
      fb[fs + 6] = IPV6_NEXT_HEADER_FRAGMENT;
      const f = fs + IPV6_HEADER_LENGTH;
      fb[f] = nh;
      fb[f + 1] = 0;
      const word = (off & 0xfff8) | (more ? 1 : 0);
      fb[f + 2] = word >>> 8;
      fb[f + 3] = word & 0xff;
      fb[f + 4] = id >>> 24;
      fb[f + 5] = (id >>> 16) & 0xff;
      fb[f + 6] = (id >>> 8) & 0xff;
      fb[f + 7] = id & 0xff;
      fb.set(data.subarray(payloadStart + off, payloadStart + off + len), f + IPV6_FRAGMENT_HEADER_LENGTH);
      frag.networkProtocol = ETHERTYPE_IPV6;
      frag.networkHeaderStart = fs;
      frag.networkHeaderLength = IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH;
      this.ip.stats.fragmentsCreated++;
      this.ip.transmitTo(nic, dst, nextHop, frag, local);
    }
  }

  /** @internal */
  reassemblyTimedOut(first: Uint8Array | null): void {
    // RFC 8200 4.5: Time Exceeded only if the first fragment arrived, and not to multicast.
    if (first === null || first.length < IPV6_HEADER_LENGTH || first[24] === 0xff) return;
    const nic = this.ip.stack.nicForAddress(first.subarray(24, 40));
    if (nic === null) return;
    const p = PacketBuffer.wrap(first);
    p.networkHeaderStart = 0;
    this.ip.icmp.sendError(nic, p, ICMPV6_TIME_EXCEEDED, ICMPV6_REASSEMBLY_TIMEOUT, 0, false);
  }

  private nextFragmentId(): number {
    let id = 0;
    while (id === 0) id = this.ip.stack.random.u32();
    return id;
  }
}

function fragmentKey(data: Uint8Array, ip: number, id: number): string {
  return addrKey(data, ip + 8) + addrKey(data, ip + 24) + id.toString(36);
}
