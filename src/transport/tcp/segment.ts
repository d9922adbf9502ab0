/**
 * TCP segments on the wire, in and out: the one parser of inbound segments (into a reused
 * `Segment`) and the one finishing step of every outbound segment (checksum or its offload, the
 * packet's transport fields). Headers themselves are written by headers/tcp.ts writeTcpHeader.
 */
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../headers/checksum.js';
import { finishTcpChecksum, parseTcpOptions, TcpOptions } from '../../headers/tcp.js';
import type { NetworkInfo } from '../../stack/protocol.js';
import type { PacketBuffer } from '../../core/packet.js';
import type { Route } from '../../stack/route.js';

const IP_PROTO_TCP = 6;

/** One parsed inbound segment. A single instance per protocol is reused for every packet. */
export class Segment {
  data: Uint8Array = new Uint8Array(0);
  /** Offset of the TCP header in `data` and header length. */
  off = 0;
  hl = 0;
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  /** Window field as received (unscaled). */
  wnd = 0;
  /** Payload offset in `data` and length. */
  plOff = 0;
  plLen = 0;
  readonly opts = new TcpOptions();
  net!: NetworkInfo;
  pkt!: PacketBuffer;
}

/**
 * Fill `seg` from the `len`-byte segment at `off` of `data` with header length `hl` (the caller
 * checked 20 <= hl <= len). A malformed option list is ignored as Linux does (no options), the
 * segment itself is kept.
 */
export function parseSegment(seg: Segment, data: Uint8Array, off: number, len: number, hl: number, net: NetworkInfo, pkt: PacketBuffer): void {
  seg.data = data;
  seg.off = off;
  seg.hl = hl;
  seg.srcPort = (data[off]! << 8) | data[off + 1]!;
  seg.dstPort = (data[off + 2]! << 8) | data[off + 3]!;
  seg.seq = ((data[off + 4]! << 24) | (data[off + 5]! << 16) | (data[off + 6]! << 8) | data[off + 7]!) >>> 0;
  seg.ack = ((data[off + 8]! << 24) | (data[off + 9]! << 16) | (data[off + 10]! << 8) | data[off + 11]!) >>> 0;
  seg.flags = data[off + 13]!;
  seg.wnd = (data[off + 14]! << 8) | data[off + 15]!;
  seg.plOff = off + hl;
  seg.plLen = len - hl;
  seg.net = net;
  seg.pkt = pkt;
  const opts = seg.opts;
  if (hl === 32 && data[off + 20] === 1 && data[off + 21] === 1 && data[off + 22] === 8 && data[off + 23] === 10) {
    // The common layout: NOP, NOP, timestamps.
    opts.clear();
    opts.timestamp = true;
    opts.tsVal = ((data[off + 24]! << 24) | (data[off + 25]! << 16) | (data[off + 26]! << 8) | data[off + 27]!) >>> 0;
    opts.tsEcr = ((data[off + 28]! << 24) | (data[off + 29]! << 16) | (data[off + 30]! << 8) | data[off + 31]!) >>> 0;
  } else if (hl > 20) {
    if (!parseTcpOptions(data, off + 20, hl - 20, opts)) opts.clear();
  } else {
    opts.clear();
  }
}

/**
 * Finish an outbound segment written at `pkt.start`: `hl` header bytes, `total` bytes with the
 * payload. `pseudoBase` is the pseudo-header sum without the length (addresses and protocol);
 * with `offload` the link completes the checksum.
 */
export function finishSegment(pkt: PacketBuffer, hl: number, total: number, pseudoBase: number, offload: boolean): void {
  const o = pkt.start;
  if (offload) pkt.checksumOffload = true;
  finishTcpChecksum(pkt.data, o, total, pseudoBase + total, offload);
  pkt.transportHeaderStart = o;
  pkt.transportHeaderLength = hl;
  pkt.transportProtocol = IP_PROTO_TCP;
}

/** The pseudo-header sum of segments along `route` without the length (addresses and protocol). */
export function tcpPseudoBase(route: Route): number {
  const la = route.localAddress;
  const ra = route.remoteAddress;
  return route.family === 4 ? pseudoHeaderSumV4(la, 0, ra, 0, IP_PROTO_TCP, 0) : pseudoHeaderSumV6(la, 0, ra, 0, IP_PROTO_TCP, 0);
}
