import { pseudoHeaderSumV4, pseudoHeaderSumV6, sum } from '../headers/checksum.js';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, finishTcpChecksum } from '../headers/tcp.js';
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
} from '../headers/virtio.js';

/**
 * TCP coalescing for writes to a kernel TUN/TAP with IFF_VNET_HDR (generic receive offload done
 * on the sending side): consecutive segments of one flow that the stack sent in a burst are
 * merged into one super-packet with a virtio_net_hdr asking for GSO (TCPV4/TCPV6, gso_size = the
 * segment size) and NEEDS_CSUM, so the kernel takes 64 KiB in one write instead of ~45.
 *
 * Segments merge (as Linux's tcp_gro_receive would merge them) when: same link header, same IP
 * header apart from length/ID/checksum (IPv4 not fragmented, options none; IPv6 without extension
 * headers), same ports, ACK number, window, header length and options; sequence numbers follow
 * on; every segment but the last carries exactly the first's payload size; flags are ACK (PSH
 * allowed on the last one only); the result fits 64 KiB of IP.
 *
 * Pure functions over bytes; nothing here throws on malformed input (such packets are simply
 * not coalesced).
 */

const TCP = 6;

/** Where the parts of a TCP segment are (absolute offsets into `buf`). */
export class TcpSegment {
  buf: Uint8Array = new Uint8Array(0);
  start = 0;
  end = 0;
  ip = 0;
  ipHl = 0;
  v6 = false;
  tcp = 0;
  tcpHl = 0;
  payload = 0;
  payloadLen = 0;
  seq = 0;
  flags = 0;
  /** Scatter-gather fragments holding the rest of the payload after `end`, if any. */
  frags: readonly Uint8Array[] | null = null;

  /**
   * Parse `buf[start, end)` (`l2` bytes of link header first; `frags`, if any, hold more payload
   * after `end`) as an IPv4/IPv6 TCP segment that could take part in coalescing. False for
   * anything else.
   */
  parse(buf: Uint8Array, start: number, end: number, l2: number, frags: readonly Uint8Array[] | null = null, fragBytes = 0): boolean {
    const ip = start + l2;
    if (ip + 40 > end) return false;
    const v = buf[ip]! >>> 4;
    let ipHl: number;
    let l3End: number;
    if (v === 4) {
      ipHl = (buf[ip]! & 0x0f) << 2;
      if (ipHl !== 20 || buf[ip + 9] !== TCP) return false;
      // Not a fragment (MF clear, offset 0).
      if ((buf[ip + 6]! & 0x3f) !== 0 || buf[ip + 7] !== 0) return false;
      l3End = ip + ((buf[ip + 2]! << 8) | buf[ip + 3]!);
    } else if (v === 6) {
      ipHl = 40;
      if (buf[ip + 6] !== TCP || ip + 60 > end) return false;
      l3End = ip + 40 + ((buf[ip + 4]! << 8) | buf[ip + 5]!);
    } else {
      return false;
    }
    if (l3End !== end + fragBytes) return false;
    const tcp = ip + ipHl;
    const tcpHl = (buf[tcp + 12]! >>> 4) << 2;
    if (tcpHl < 20 || tcp + tcpHl > end) return false;
    this.buf = buf;
    this.start = start;
    this.end = end;
    this.ip = ip;
    this.ipHl = ipHl;
    this.v6 = v === 6;
    this.tcp = tcp;
    this.tcpHl = tcpHl;
    this.payload = tcp + tcpHl;
    this.payloadLen = end + fragBytes - this.payload;
    this.frags = frags;
    this.seq = ((buf[tcp + 4]! << 24) | (buf[tcp + 5]! << 16) | (buf[tcp + 6]! << 8) | buf[tcp + 7]!) >>> 0;
    this.flags = buf[tcp + 13]!;
    return true;
  }

  /** May start a run: carries data, flags exactly ACK (a PSH segment ends its run at once). */
  get canStart(): boolean {
    return this.payloadLen > 0 && (this.flags & ~TCP_PSH) === TCP_ACK;
  }
}

function sameBytes(a: Uint8Array, ao: number, b: Uint8Array, bo: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/**
 * Whether `b` can follow `a` (the run's last segment) in one super-packet whose first segment has
 * `segSize` payload bytes and `first` as its headers.
 */
export function canFollow(first: TcpSegment, a: TcpSegment, b: TcpSegment, l2: number, segSize: number): boolean {
  if (a.payloadLen !== segSize || (a.flags & TCP_PSH) !== 0) return false;
  if (b.payloadLen === 0 || b.payloadLen > segSize) return false;
  if ((b.flags & ~TCP_PSH) !== TCP_ACK) return false;
  if (b.seq !== ((a.seq + a.payloadLen) >>> 0)) return false;
  if (b.v6 !== first.v6 || b.tcpHl !== first.tcpHl) return false;
  const fb = first.buf;
  const bb = b.buf;
  if (l2 > 0 && !sameBytes(fb, first.start, bb, b.start, l2)) return false;
  if (first.v6) {
    // version/traffic class/flow label, next header, hop limit, addresses
    if (!sameBytes(fb, first.ip, bb, b.ip, 4) || !sameBytes(fb, first.ip + 6, bb, b.ip + 6, 34)) return false;
  } else {
    // version/IHL/TOS; flags (DF); TTL/protocol; addresses
    if (fb[first.ip] !== bb[b.ip] || fb[first.ip + 1] !== bb[b.ip + 1]) return false;
    if (fb[first.ip + 6] !== bb[b.ip + 6] || !sameBytes(fb, first.ip + 8, bb, b.ip + 8, 2)) return false;
    if (!sameBytes(fb, first.ip + 12, bb, b.ip + 12, 8)) return false;
  }
  // ports; ack; data offset; window and urgent pointer; options
  const ft = first.tcp;
  const bt = b.tcp;
  if (!sameBytes(fb, ft, bb, bt, 4) || !sameBytes(fb, ft + 8, bb, bt + 8, 5)) return false;
  if (!sameBytes(fb, ft + 14, bb, bt + 14, 2) || !sameBytes(fb, ft + 18, bb, bt + 18, 2)) return false;
  return first.tcpHl === 20 || sameBytes(fb, ft + 20, bb, bt + 20, first.tcpHl - 20);
}

/** The largest IP packet a super-packet may become. */
export const GRO_MAX_IP_LENGTH = 65535;

/**
 * Build the super-packet of segments `segs[0..count)` (already checked with canFollow) into
 * `into` (a view of its first bytes is returned; every byte is written) or a new buffer when
 * `into` is missing or too small, and its virtio_net_hdr into `hdr[hdrOff, hdrOff + 10)` (other bytes of the header
 * left as they are). The headers are the first segment's with the lengths, PSH (from the last
 * segment) and the IPv4 header checksum rewritten; the TCP checksum field holds the pseudo-header
 * sum for the whole length, as NEEDS_CSUM asks.
 */
export function buildSuperPacket(
  segs: readonly TcpSegment[],
  count: number,
  l2: number,
  hdr: Uint8Array,
  hdrOff: number,
  into: Uint8Array | null = null,
): Uint8Array {
  const first = segs[0]!;
  const last = segs[count - 1]!;
  const headLen = first.payload - first.start;
  let payloadTotal = 0;
  for (let i = 0; i < count; i++) payloadTotal += segs[i]!.payloadLen;
  const total = headLen + payloadTotal;
  const out = into !== null && into.length >= total ? into.subarray(0, total) : new Uint8Array(total);
  out.set(first.buf.subarray(first.start, first.payload), 0);
  let o = headLen;
  for (let i = 0; i < count; i++) {
    const s = segs[i]!;
    out.set(s.buf.subarray(s.payload, s.end), o);
    o += s.end - s.payload;
    const f = s.frags;
    if (f !== null) {
      for (let j = 0; j < f.length; j++) {
        out.set(f[j]!, o);
        o += f[j]!.length;
      }
    }
  }
  const ip = l2;
  const tcp = l2 + first.ipHl;
  const tcpLen = first.tcpHl + payloadTotal;
  out[tcp + 13] = (out[tcp + 13]! & ~TCP_PSH) | (last.flags & TCP_PSH);
  let ps: number;
  if (first.v6) {
    out[ip + 4] = tcpLen >>> 8;
    out[ip + 5] = tcpLen & 0xff;
    ps = pseudoHeaderSumV6(out, ip + 8, out, ip + 24, TCP, tcpLen);
  } else {
    const tl = 20 + tcpLen;
    out[ip + 2] = tl >>> 8;
    out[ip + 3] = tl & 0xff;
    out[ip + 10] = 0;
    out[ip + 11] = 0;
    const c = ~sum(out, ip, 20) & 0xffff;
    out[ip + 10] = c >>> 8;
    out[ip + 11] = c & 0xff;
    ps = pseudoHeaderSumV4(out, ip + 12, out, ip + 16, TCP, tcpLen);
  }
  finishTcpChecksum(out, tcp, tcpLen, ps, true);
  writeVnetHeader(hdr, hdrOff, VIRTIO_NET_HDR_F_NEEDS_CSUM, first.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4, headLen, first.payloadLen, tcp, 16);
  return out;
}

/** Fill the 10 bytes of a virtio_net_hdr (little-endian fields). */
export function writeVnetHeader(
  hdr: Uint8Array,
  off: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): void {
  hdr[off] = flags;
  hdr[off + 1] = gsoType;
  hdr[off + 2] = hdrLen & 0xff;
  hdr[off + 3] = hdrLen >>> 8;
  hdr[off + 4] = gsoSize & 0xff;
  hdr[off + 5] = gsoSize >>> 8;
  hdr[off + 6] = csumStart & 0xff;
  hdr[off + 7] = csumStart >>> 8;
  hdr[off + 8] = csumOffset & 0xff;
  hdr[off + 9] = csumOffset >>> 8;
}

/** Flags that keep a segment out of any run (besides a missing ACK). */
export const TCP_FLAGS_NEVER_COALESCED = TCP_FIN | TCP_SYN | TCP_RST | TCP_URG | TCP_ECE | TCP_CWR;

/** Most segments merged into one super-packet. */
export const GRO_MAX_SEGMENTS = 64;
/** Super-packet buffers a coalescer keeps for reuse (more in one batch are allocated fresh). */
const GRO_BUFFERS = 32;

/**
 * Finds runs of coalescible TCP segments in a list of outbound packets (each `data[start, end)`
 * a whole frame with `l2` bytes of link header) and builds their super-packets. Reusable; holds
 * no packet after `coalesce` returns except the last super-packet built.
 */
export class TcpCoalescer {
  /** The super-packet built by the last successful `coalesce`. */
  packet: Uint8Array | null = null;
  private readonly run: TcpSegment[] = [];
  /** Super-packet buffers, reused after `recycle()`: `used` of them are out since then. */
  private readonly bufs: Uint8Array[] = [];
  private used = 0;
  private readonly pool: TcpSegment[] = [new TcpSegment()];

  constructor(
    readonly l2: number,
    readonly maxSegments = GRO_MAX_SEGMENTS,
  ) {}

  /**
   * Every super-packet built so far has been written out: their buffers may be reused. (Until
   * this is called, each `coalesce` builds into a buffer of its own.)
   */
  recycle(): void {
    this.used = 0;
  }

  /**
   * Try a run starting at `pkts[i]` (looking no further than `pkts[n - 1]`). Returns how many
   * packets went into the super-packet (>= 2; `packet` holds it and its virtio_net_hdr is written
   * at `hdr[hdrOff]`), or 0 when pkts[i] must be sent on its own.
   */
  coalesce(
    pkts: ReadonlyArray<{ data: Uint8Array; start: number; end: number; frags?: Uint8Array[] | null; fragBytes?: number; gsoSize?: number }>,
    i: number,
    n: number,
    hdr: Uint8Array,
    hdrOff: number,
  ): number {
    this.packet = null;
    if (i + 1 >= n) return 0;
    const l2 = this.l2;
    const pool = this.pool;
    const first = pool[0]!;
    const p = pkts[i]!;
    // A super-packet already (TSO from the stack) is written as it is.
    if ((p.gsoSize ?? 0) > 0) return 0;
    if (!first.parse(p.data, p.start, p.end, l2, p.frags ?? null, p.fragBytes ?? 0) || !first.canStart) return 0;
    const segSize = first.payloadLen;
    const run = this.run;
    run.length = 0;
    run.push(first);
    let ipLen = first.payload - first.ip + segSize;
    let prev = first;
    for (let j = i + 1; j < n && run.length < this.maxSegments; j++) {
      const q = pkts[j]!;
      if ((q.gsoSize ?? 0) > 0) break;
      const seg = pool[run.length] ?? (pool[run.length] = new TcpSegment());
      if (!seg.parse(q.data, q.start, q.end, l2, q.frags ?? null, q.fragBytes ?? 0)) break;
      if (ipLen + seg.payloadLen > GRO_MAX_IP_LENGTH) break;
      if (!canFollow(first, prev, seg, l2, segSize)) break;
      run.push(seg);
      ipLen += seg.payloadLen;
      prev = seg;
    }
    const count = run.length;
    if (count < 2) return 0;
    let into: Uint8Array | null = null;
    if (this.used < this.bufs.length) into = this.bufs[this.used++]!;
    else if (this.bufs.length < GRO_BUFFERS) {
      into = Buffer.allocUnsafeSlow(l2 + GRO_MAX_IP_LENGTH);
      this.bufs.push(into);
      this.used++;
    }
    this.packet = buildSuperPacket(run, count, l2, hdr, hdrOff, into);
    for (let k = 0; k < count; k++) {
      run[k]!.buf = EMPTY;
      run[k]!.frags = null;
    }
    run.length = 0;
    return count;
  }
}

const EMPTY = new Uint8Array(0);
