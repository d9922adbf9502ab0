import { pseudoHeaderSumV4, pseudoHeaderSumV6, sum } from '../headers/checksum.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../headers/ethernet.js';
import { TCP_CWR, TCP_FIN, TCP_PSH, finishTcpChecksum } from '../headers/tcp.js';
import {
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP_L4,
} from '../headers/virtio.js';
import { PacketBuffer } from '../core/packet.js';
import { TUN_MAX_GSO_SEGMENTS } from './constants.js';

/**
 * The offload work a virtio_net_hdr asks of the device on write (what a NIC's hardware does for
 * Linux's virtio/tun): filling in a partial checksum (NEEDS_CSUM) and splitting a TCP or UDP
 * super-packet into segments (GSO). Pure functions over bytes: they never throw on bad input,
 * they return false/0 and the caller answers EINVAL.
 */

const TCP = 6;
const UDP = 17;

/**
 * Where the network packet ends: for IPv4/IPv6 at `ipOff`, the end given by the IP length field
 * (so link-layer padding is not checksummed), else `end`. Never beyond `end`.
 */
function networkEnd(buf: Uint8Array, ipOff: number, end: number): number {
  if (ipOff >= end) return end;
  const v = buf[ipOff]! >>> 4;
  if (v === 4 && end - ipOff >= 20) {
    const tl = (buf[ipOff + 2]! << 8) | buf[ipOff + 3]!;
    if (tl >= 20 && ipOff + tl < end) return ipOff + tl;
  } else if (v === 6 && end - ipOff >= 40) {
    const pl = (buf[ipOff + 4]! << 8) | buf[ipOff + 5]!;
    if (pl > 0 && ipOff + 40 + pl < end) return ipOff + 40 + pl;
  }
  return end;
}

/**
 * NEEDS_CSUM: the checksum field at `csumStart + csumOffset` holds the (uncomplemented)
 * pseudo-header sum; replace it by the complemented sum of everything from `csumStart` to the
 * end of the packet (virtio 1.x 5.1.6.2, Linux skb_checksum_help). A result of 0 is stored as
 * 0xffff. `off`/`end` bound the frame; `ipOff` is where the IP header starts (to ignore padding).
 * False when the offsets do not fit.
 */
export function completePartialChecksum(
  buf: Uint8Array,
  off: number,
  end: number,
  ipOff: number,
  csumStart: number,
  csumOffset: number,
): boolean {
  const start = off + csumStart;
  const field = start + csumOffset;
  if (field + 2 > end) return false;
  const stop = Math.max(networkEnd(buf, ipOff, end), field + 2);
  const c = ~sum(buf, start, stop - start) & 0xffff;
  const v = c === 0 ? 0xffff : c;
  buf[field] = v >>> 8;
  buf[field + 1] = v & 0xff;
  return true;
}

/** Full TCP/UDP checksum of the segment at `l4`..`end`, IP header at `ip`, written in place. */
function setTransportChecksum(buf: Uint8Array, ip: number, v6: boolean, l4: number, end: number, proto: number): void {
  const field = l4 + (proto === TCP ? 16 : 6);
  buf[field] = 0;
  buf[field + 1] = 0;
  const len = end - l4;
  const ph = v6 ? pseudoHeaderSumV6(buf, ip + 8, buf, ip + 24, proto, len) : pseudoHeaderSumV4(buf, ip + 12, buf, ip + 16, proto, len);
  if (proto === TCP) {
    finishTcpChecksum(buf, l4, len, ph, false);
    return;
  }
  let c = ~sum(buf, l4, len, ph) & 0xffff;
  if (c === 0) c = 0xffff;
  buf[field] = c >>> 8;
  buf[field + 1] = c & 0xff;
}

function setIPv4HeaderChecksum(buf: Uint8Array, ip: number, ihl: number): void {
  buf[ip + 10] = 0;
  buf[ip + 11] = 0;
  const c = ~sum(buf, ip, ihl) & 0xffff;
  buf[ip + 10] = c >>> 8;
  buf[ip + 11] = c & 0xff;
}

/**
 * Split a GSO super-packet (`buf[off, end)`: `l2` bytes of link header, then IPv4/IPv6 and TCP or
 * UDP) into segments of at most `gsoSize` payload bytes, appended to `out` as new packets. As a
 * NIC doing TSO/USO: IPv4 total length, ID (+1 per segment) and header checksum are rewritten;
 * IPv6 payload length; TCP sequence numbers advance, FIN and PSH stay on the last segment only
 * and CWR on the first only; UDP length; every TCP/UDP checksum is computed in full.
 *
 * `gsoType` is VIRTIO_NET_HDR_GSO_TCPV4, _TCPV6 or _UDP_L4 (ECN bit removed); `etherType` is the
 * link header's type when `l2 > 0`. Returns the number of segments, or 0 when the packet does not
 * match the type or is malformed (truncated headers, IPv4 fragment, IPv6 extension headers,
 * gsoSize 0, more than TUN_MAX_GSO_SEGMENTS segments).
 */
export function segmentGso(
  buf: Uint8Array,
  off: number,
  end: number,
  l2: number,
  etherType: number,
  gsoType: number,
  gsoSize: number,
  out: PacketBuffer[],
): number {
  if (gsoSize <= 0) return 0;
  const ip = off + l2;
  if (ip + 20 > end) return 0;
  const version = buf[ip]! >>> 4;
  const v6 = version === 6;
  if (gsoType === VIRTIO_NET_HDR_GSO_TCPV4 && version !== 4) return 0;
  if (gsoType === VIRTIO_NET_HDR_GSO_TCPV6 && !v6) return 0;
  if (gsoType === VIRTIO_NET_HDR_GSO_UDP_L4 && version !== 4 && !v6) return 0;
  if (gsoType !== VIRTIO_NET_HDR_GSO_TCPV4 && gsoType !== VIRTIO_NET_HDR_GSO_TCPV6 && gsoType !== VIRTIO_NET_HDR_GSO_UDP_L4) {
    return 0;
  }
  if (l2 > 0 && etherType !== (v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4)) return 0;
  const wantProto = gsoType === VIRTIO_NET_HDR_GSO_UDP_L4 ? UDP : TCP;
  let ipHl: number;
  let pktEnd: number;
  let proto: number;
  if (v6) {
    if (ip + 40 > end) return 0;
    const pl = (buf[ip + 4]! << 8) | buf[ip + 5]!;
    if (pl === 0 || ip + 40 + pl > end) return 0;
    ipHl = 40;
    pktEnd = ip + 40 + pl;
    proto = buf[ip + 6]!;
  } else {
    ipHl = (buf[ip]! & 0x0f) << 2;
    const tl = (buf[ip + 2]! << 8) | buf[ip + 3]!;
    if (ipHl < 20 || tl < ipHl || ip + tl > end) return 0;
    // A fragment (MF set or offset > 0) cannot be segmented.
    if ((buf[ip + 6]! & 0x3f) !== 0 || buf[ip + 7] !== 0) return 0;
    pktEnd = ip + tl;
    proto = buf[ip + 9]!;
  }
  if (proto !== wantProto) return 0;
  const l4 = ip + ipHl;
  let l4Hl: number;
  if (proto === TCP) {
    if (l4 + 20 > pktEnd) return 0;
    l4Hl = (buf[l4 + 12]! >>> 4) << 2;
    if (l4Hl < 20 || l4 + l4Hl > pktEnd) return 0;
  } else {
    l4Hl = 8;
    if (l4 + 8 > pktEnd) return 0;
  }
  const payload = l4 + l4Hl;
  const payloadLen = pktEnd - payload;
  const count = payloadLen === 0 ? 1 : Math.ceil(payloadLen / gsoSize);
  if (count > TUN_MAX_GSO_SEGMENTS) return 0;
  const hdrLen = payload - off;
  const id0 = v6 ? 0 : (buf[ip + 4]! << 8) | buf[ip + 5]!;
  const seq0 = proto === TCP ? ((buf[l4 + 4]! << 24) | (buf[l4 + 5]! << 16) | (buf[l4 + 6]! << 8) | buf[l4 + 7]!) >>> 0 : 0;
  const flags0 = proto === TCP ? buf[l4 + 13]! : 0;
  const sIp = l2;
  const sL4 = l2 + ipHl;
  for (let i = 0; i < count; i++) {
    const pOff = i * gsoSize;
    const segLen = Math.min(gsoSize, payloadLen - pOff);
    const seg = new Uint8Array(hdrLen + segLen);
    seg.set(buf.subarray(off, payload), 0);
    seg.set(buf.subarray(payload + pOff, payload + pOff + segLen), hdrLen);
    const l3Len = ipHl + l4Hl + segLen;
    if (v6) {
      const pl = l3Len - 40;
      seg[sIp + 4] = pl >>> 8;
      seg[sIp + 5] = pl & 0xff;
    } else {
      seg[sIp + 2] = l3Len >>> 8;
      seg[sIp + 3] = l3Len & 0xff;
      const id = (id0 + i) & 0xffff;
      seg[sIp + 4] = id >>> 8;
      seg[sIp + 5] = id & 0xff;
      setIPv4HeaderChecksum(seg, sIp, ipHl);
    }
    if (proto === TCP) {
      const seq = (seq0 + pOff) >>> 0;
      seg[sL4 + 4] = seq >>> 24;
      seg[sL4 + 5] = (seq >>> 16) & 0xff;
      seg[sL4 + 6] = (seq >>> 8) & 0xff;
      seg[sL4 + 7] = seq & 0xff;
      let fl = flags0;
      if (i < count - 1) fl &= ~(TCP_FIN | TCP_PSH);
      if (i > 0) fl &= ~TCP_CWR;
      seg[sL4 + 13] = fl;
    } else {
      const ul = 8 + segLen;
      seg[sL4 + 4] = ul >>> 8;
      seg[sL4 + 5] = ul & 0xff;
    }
    setTransportChecksum(seg, sIp, v6, sL4, seg.length, proto);
    out.push(PacketBuffer.wrap(seg));
  }
  return count;
}
