/**
 * A plain summary of one captured frame (addresses, protocol, ports, TCP flags and numbers, ICMP
 * type), for the flow diagram and the replay engine. This is offline analysis, not the stack's
 * receive path: one small object per frame is fine here. Bytes that do not parse give a summary
 * with `proto: 'other'` (or `l3: 'other'`), never an exception.
 */
import { formatIPv4, formatIPv6, formatMAC } from '../core/address.js';
import { IPv6Walk, walkIPv6 } from '../headers/ipv6-walk.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, LinkInfo, decapsulate } from './linktype.js';

export type L3 = 'ipv4' | 'ipv6' | 'arp' | 'other';
export type L4 = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'arp' | 'other';

export interface TcpSummary {
  flags: number;
  seq: number;
  ack: number;
  window: number;
  /** Offset of the TCP header in the frame, and its length. */
  headerOffset: number;
  headerLength: number;
}

export interface FrameSummary {
  /** 1-based frame number in the capture. */
  frame: number;
  l3: L3;
  proto: L4;
  etherType: number;
  srcMac: string;
  dstMac: string;
  /** Network addresses (ARP: sender and target protocol addresses). '' when unknown. */
  src: string;
  dst: string;
  /** IP protocol number (-1 when not IP). */
  ipProto: number;
  /** Offset of the network header in the frame, and the datagram's end. */
  l3Offset: number;
  l3End: number;
  /** A fragment other than the first (no transport header). */
  fragment: boolean;
  srcPort: number;
  dstPort: number;
  /** Offset and length of the transport payload (0 / 0 when none). */
  payloadOffset: number;
  payloadLength: number;
  tcp: TcpSummary | null;
  /** ICMP / ICMPv6 type and code, echo id and sequence; ARP: op in `icmpType`. */
  icmpType: number;
  icmpCode: number;
  icmpId: number;
  icmpSeq: number;
  /** Why the frame did not decode (empty when it did). */
  error: string;
}

const info = new LinkInfo();
const walk = new IPv6Walk();

function u16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

function u32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

function empty(frame: number): FrameSummary {
  return {
    frame,
    l3: 'other',
    proto: 'other',
    etherType: 0,
    srcMac: '',
    dstMac: '',
    src: '',
    dst: '',
    ipProto: -1,
    l3Offset: 0,
    l3End: 0,
    fragment: false,
    srcPort: 0,
    dstPort: 0,
    payloadOffset: 0,
    payloadLength: 0,
    tcp: null,
    icmpType: -1,
    icmpCode: -1,
    icmpId: -1,
    icmpSeq: -1,
    error: '',
  };
}

/** Summarize one frame of a capture of `linkType`. */
export function decodeFrame(linkType: number, b: Uint8Array, frame = 0): FrameSummary {
  const s = empty(frame);
  if (!decapsulate(linkType, b, info)) {
    s.error = info.error;
    return s;
  }
  s.etherType = info.etherType;
  if (info.dstMacOffset >= 0) s.dstMac = formatMAC(b, info.dstMacOffset);
  if (info.srcMacOffset >= 0 && info.srcMacOffset + 6 <= b.length) s.srcMac = formatMAC(b, info.srcMacOffset);
  const off = info.offset;
  s.l3Offset = off;
  s.l3End = b.length;
  if (info.etherType === ETHERTYPE_ARP) {
    s.l3 = 'arp';
    s.proto = 'arp';
    if (off + 28 > b.length || u16(b, off) !== 1 || u16(b, off + 2) !== 0x0800 || b[off + 4] !== 6 || b[off + 5] !== 4) {
      s.error = 'ARP packet is not Ethernet/IPv4 or truncated';
      return s;
    }
    s.icmpType = u16(b, off + 6);
    s.src = formatIPv4(b, off + 14);
    s.dst = formatIPv4(b, off + 24);
    s.l3End = off + 28;
    return s;
  }
  let l4 = -1;
  let proto = -1;
  let end = b.length;
  if (info.etherType === ETHERTYPE_IPV4) {
    if (off + 20 > b.length || b[off]! >>> 4 !== 4) {
      s.error = 'truncated or bad IPv4 header';
      return s;
    }
    const hl = (b[off]! & 0x0f) * 4;
    const tl = u16(b, off + 2);
    if (hl < 20 || tl < hl || off + hl > b.length) {
      s.error = 'bad IPv4 header length';
      return s;
    }
    s.l3 = 'ipv4';
    s.src = formatIPv4(b, off + 12);
    s.dst = formatIPv4(b, off + 16);
    proto = b[off + 9]!;
    s.ipProto = proto;
    // A frame may be padded (Ethernet minimum) or cut by the snap length.
    end = Math.min(b.length, off + tl);
    s.l3End = end;
    const fragOff = u16(b, off + 6) & 0x1fff;
    if (fragOff !== 0) {
      s.fragment = true;
      return s;
    }
    l4 = off + hl;
  } else if (info.etherType === ETHERTYPE_IPV6) {
    if (off + 40 > b.length || b[off]! >>> 4 !== 6) {
      s.error = 'truncated or bad IPv6 header';
      return s;
    }
    s.l3 = 'ipv6';
    s.src = formatIPv6(b, off + 8);
    s.dst = formatIPv6(b, off + 24);
    end = Math.min(b.length, off + 40 + u16(b, off + 4));
    s.l3End = end;
    walkIPv6(b, off, end - off, walk);
    if (!walk.ok) {
      s.ipProto = b[off + 6]!;
      s.error = 'IPv6 extension headers do not parse';
      return s;
    }
    proto = walk.protocol;
    s.ipProto = proto;
    if (walk.isFragment) {
      s.fragment = walk.fragmentOffset !== 0;
      if (s.fragment) return s;
    }
    l4 = walk.offset;
  } else {
    s.error = `EtherType 0x${info.etherType.toString(16).padStart(4, '0')}`;
    return s;
  }
  const avail = end - l4;
  if (proto === 6) {
    if (avail < 20) return truncated(s, 'TCP');
    const hl = (b[l4 + 12]! >>> 4) * 4;
    if (hl < 20 || hl > avail) return truncated(s, 'TCP');
    s.proto = 'tcp';
    s.srcPort = u16(b, l4);
    s.dstPort = u16(b, l4 + 2);
    s.tcp = { flags: b[l4 + 13]! | ((b[l4 + 12]! & 1) << 8), seq: u32(b, l4 + 4), ack: u32(b, l4 + 8), window: u16(b, l4 + 14), headerOffset: l4, headerLength: hl };
    s.payloadOffset = l4 + hl;
    s.payloadLength = end - (l4 + hl);
  } else if (proto === 17) {
    if (avail < 8) return truncated(s, 'UDP');
    s.proto = 'udp';
    s.srcPort = u16(b, l4);
    s.dstPort = u16(b, l4 + 2);
    s.payloadOffset = l4 + 8;
    s.payloadLength = Math.max(0, Math.min(end, l4 + u16(b, l4 + 4)) - (l4 + 8));
  } else if (proto === 1 || proto === 58) {
    if (avail < 4) return truncated(s, 'ICMP');
    s.proto = proto === 1 ? 'icmp' : 'icmpv6';
    s.icmpType = b[l4]!;
    s.icmpCode = b[l4 + 1]!;
    const echo = proto === 1 ? s.icmpType === 0 || s.icmpType === 8 : s.icmpType === 128 || s.icmpType === 129;
    if (echo && avail >= 8) {
      s.icmpId = u16(b, l4 + 4);
      s.icmpSeq = u16(b, l4 + 6);
    }
    s.payloadOffset = l4 + Math.min(8, avail);
    s.payloadLength = end - s.payloadOffset;
  }
  return s;
}

function truncated(s: FrameSummary, what: string): FrameSummary {
  s.error = `truncated ${what} header`;
  return s;
}

/** TCP flag names in Wireshark's order, lowest bit first ("SYN, ACK", "FIN, PSH, ACK"). */
export function tcpFlagNames(flags: number): string {
  const names: string[] = [];
  const all = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'];
  for (let i = 0; i < all.length; i++) if (flags & (1 << i)) names.push(all[i]!);
  return names.length > 0 ? names.join(', ') : '<none>';
}

/** A key naming a TCP/UDP conversation irrespective of direction. */
export function conversationKey(s: FrameSummary): string {
  const a = `${s.src}|${s.srcPort}`;
  const b = `${s.dst}|${s.dstPort}`;
  return a < b ? `${s.proto} ${a} ${b}` : `${s.proto} ${b} ${a}`;
}
