/**
 * Neighbor Discovery (RFC 4861, RDNSS from RFC 8106) on the wire: option types, the reusable
 * option iterator (it stops, never loops, on malformed input: an option of length 0 is malformed,
 * as RFC 4861 4.6 says), option encoders and the RS/RA/NS/NA/Redirect message encoders. The fixed
 * fields of received NDP messages are read through `IcmpV6Header` (icmpv6.ts).
 */
import { TunstackError } from '../core/errors.js';
import { put16, put32, u32 } from './bytes.js';
import {
  ICMPV6_NEIGHBOR_ADVERTISEMENT,
  ICMPV6_NEIGHBOR_SOLICITATION,
  ICMPV6_REDIRECT,
  ICMPV6_ROUTER_ADVERTISEMENT,
  ICMPV6_ROUTER_SOLICITATION,
  NDP_NA_LENGTH,
  NDP_NS_LENGTH,
  NDP_RA_LENGTH,
  NDP_REDIRECT_LENGTH,
  encodeIcmpV6,
} from './icmpv6.js';

// NDP option types.
export const NDP_OPTION_SOURCE_LINK_ADDRESS = 1;
export const NDP_OPTION_TARGET_LINK_ADDRESS = 2;
export const NDP_OPTION_PREFIX_INFORMATION = 3;
export const NDP_OPTION_REDIRECTED_HEADER = 4;
export const NDP_OPTION_MTU = 5;
export const NDP_OPTION_RDNSS = 25;

/** Prefix Information option length (bytes). */
export const NDP_PREFIX_INFORMATION_LENGTH = 32;
export const NDP_INFINITE_LIFETIME = 0xffffffff;

// ---------------------------------------------------------------------------------------------
// NDP options

/** NDP option iterator states. */
export const NDP_OPTIONS_MORE = 0;
export const NDP_OPTIONS_END = 1;
/** An option with length 0 (RFC 4861 4.6: the message must be discarded). */
export const NDP_OPTIONS_ZERO_LENGTH = 2;
/** An option that runs past the end of the message. */
export const NDP_OPTIONS_TRUNCATED = 3;

/**
 * Walks NDP options in [start, end). Reusable: `reset` then `while (it.next()) { ... }`; then
 * `status` is END for a clean list, or ZERO_LENGTH / TRUNCATED with `offset` at the bad option.
 * Unknown options are returned too (skip them by length). The typed getters read the current
 * option; check `wellFormed` (the length its type requires) before trusting them.
 */
export class NdpOptionIterator {
  buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;
  status = NDP_OPTIONS_END;
  type = 0;
  /** Offset in `buf` of the current option. */
  offset = 0;
  /** Length of the current option in bytes (a multiple of 8). */
  length = 0;

  reset(buf: Uint8Array, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = Math.min(end, buf.length);
    this.status = start < 0 ? NDP_OPTIONS_TRUNCATED : NDP_OPTIONS_MORE;
    this.type = 0;
    this.offset = start;
    this.length = 0;
    return this;
  }

  next(): boolean {
    if (this.status !== NDP_OPTIONS_MORE) return false;
    const p = this.pos;
    if (p >= this.end) {
      this.status = NDP_OPTIONS_END;
      return false;
    }
    this.offset = p;
    if (p + 2 > this.end) {
      this.status = NDP_OPTIONS_TRUNCATED;
      return false;
    }
    this.type = this.buf[p]!;
    const l = this.buf[p + 1]! << 3;
    if (l === 0) {
      this.status = NDP_OPTIONS_ZERO_LENGTH;
      return false;
    }
    if (p + l > this.end) {
      this.status = NDP_OPTIONS_TRUNCATED;
      return false;
    }
    this.length = l;
    this.pos = p + l;
    return true;
  }

  /** Does the current option have the length its type requires? (Unknown types: always.) */
  get wellFormed(): boolean {
    switch (this.type) {
      case NDP_OPTION_SOURCE_LINK_ADDRESS:
      case NDP_OPTION_TARGET_LINK_ADDRESS:
        return this.length >= 8;
      case NDP_OPTION_PREFIX_INFORMATION:
        return this.length === NDP_PREFIX_INFORMATION_LENGTH;
      case NDP_OPTION_MTU:
        return this.length === 8;
      case NDP_OPTION_RDNSS:
        // 8 + 16n, n >= 1: the length field is odd and >= 3.
        return this.length >= 24 && (this.length & 8) === 8;
      case NDP_OPTION_REDIRECTED_HEADER:
        return this.length >= 8;
      default:
        return true;
    }
  }

  get data(): Uint8Array {
    return this.buf.subarray(this.offset + 2, this.offset + this.length);
  }

  // Source / Target Link-Layer Address.
  get linkAddressOffset(): number {
    return this.offset + 2;
  }

  /** Bytes after type and length (6 for Ethernet; the rest is padding). */
  get linkAddressLength(): number {
    return this.length - 2;
  }

  /** The first 6 bytes: an Ethernet MAC. */
  get linkAddress(): Uint8Array {
    return this.buf.subarray(this.offset + 2, this.offset + 8);
  }

  // Prefix Information.
  get prefixLength(): number {
    return this.buf[this.offset + 2]!;
  }

  get onLinkFlag(): boolean {
    return (this.buf[this.offset + 3]! & 0x80) !== 0;
  }

  get autonomousFlag(): boolean {
    return (this.buf[this.offset + 3]! & 0x40) !== 0;
  }

  /** Seconds; 0xffffffff is infinity. */
  get validLifetime(): number {
    return u32(this.buf, this.offset + 4);
  }

  get preferredLifetime(): number {
    return u32(this.buf, this.offset + 8);
  }

  get prefixOffset(): number {
    return this.offset + 16;
  }

  get prefix(): Uint8Array {
    return this.buf.subarray(this.offset + 16, this.offset + 32);
  }

  // MTU.
  get mtu(): number {
    return u32(this.buf, this.offset + 4);
  }

  // RDNSS.
  get rdnssLifetime(): number {
    return u32(this.buf, this.offset + 4);
  }

  get rdnssServerCount(): number {
    return (this.length - 8) >>> 4;
  }

  /** Offset in `buf` of the i-th recursive DNS server address. */
  rdnssServerOffset(i: number): number {
    return this.offset + 8 + 16 * i;
  }

  // Redirected Header.
  /** Offset in `buf` of the redirected packet (after 8 bytes of type, length, reserved). */
  get redirectedPacketOffset(): number {
    return this.offset + 8;
  }

  get redirectedPacketLength(): number {
    return this.length - 8;
  }
}

/** True if the options in [start, end) all have a non-zero length and fit. */
export function ndpOptionsValid(buf: Uint8Array, start: number, end: number, it = new NdpOptionIterator()): boolean {
  it.reset(buf, start, end);
  while (it.next()) {
    /* walk */
  }
  return it.status === NDP_OPTIONS_END;
}

/** One NDP option to encode. `raw` writes any type with `data` padded to a multiple of 8. */
export type NdpOptionFields =
  | { kind: 'sourceLinkAddress'; address: Uint8Array }
  | { kind: 'targetLinkAddress'; address: Uint8Array }
  | {
      kind: 'prefixInformation';
      prefixLength: number;
      onLink: boolean;
      autonomous: boolean;
      validLifetime: number;
      preferredLifetime: number;
      prefix: Uint8Array;
    }
  | { kind: 'mtu'; mtu: number }
  | { kind: 'rdnss'; lifetime: number; servers: readonly Uint8Array[] }
  | { kind: 'redirectedHeader'; packet: Uint8Array }
  | { kind: 'raw'; type: number; data: Uint8Array };

/** Bytes this option takes (a multiple of 8). */
export function ndpOptionLength(o: NdpOptionFields): number {
  switch (o.kind) {
    case 'sourceLinkAddress':
    case 'targetLinkAddress':
      return (2 + o.address.length + 7) & ~7;
    case 'prefixInformation':
      return NDP_PREFIX_INFORMATION_LENGTH;
    case 'mtu':
      return 8;
    case 'rdnss':
      return 8 + 16 * o.servers.length;
    case 'redirectedHeader':
      return 8 + ((o.packet.length + 7) & ~7);
    case 'raw':
      return (2 + o.data.length + 7) & ~7;
  }
}

export function ndpOptionsLength(opts: readonly NdpOptionFields[]): number {
  let n = 0;
  for (const o of opts) n += ndpOptionLength(o);
  return n;
}

/** Write one NDP option (zero padding included); returns its length. */
export function encodeNdpOption(buf: Uint8Array, off: number, o: NdpOptionFields): number {
  const l = ndpOptionLength(o);
  if (l > 255 * 8) throw new TunstackError('EINVAL', `NDP option of ${l} bytes exceeds ${255 * 8}`);
  buf.fill(0, off, off + l);
  buf[off + 1] = l >>> 3;
  switch (o.kind) {
    case 'sourceLinkAddress':
    case 'targetLinkAddress':
      buf[off] = o.kind === 'sourceLinkAddress' ? NDP_OPTION_SOURCE_LINK_ADDRESS : NDP_OPTION_TARGET_LINK_ADDRESS;
      buf.set(o.address, off + 2);
      break;
    case 'prefixInformation':
      buf[off] = NDP_OPTION_PREFIX_INFORMATION;
      buf[off + 2] = o.prefixLength;
      buf[off + 3] = (o.onLink ? 0x80 : 0) | (o.autonomous ? 0x40 : 0);
      put32(buf, off + 4, o.validLifetime);
      put32(buf, off + 8, o.preferredLifetime);
      buf.set(o.prefix.subarray(0, 16), off + 16);
      break;
    case 'mtu':
      buf[off] = NDP_OPTION_MTU;
      put32(buf, off + 4, o.mtu);
      break;
    case 'rdnss':
      buf[off] = NDP_OPTION_RDNSS;
      put32(buf, off + 4, o.lifetime);
      for (let i = 0; i < o.servers.length; i++) buf.set(o.servers[i]!.subarray(0, 16), off + 8 + 16 * i);
      break;
    case 'redirectedHeader':
      buf[off] = NDP_OPTION_REDIRECTED_HEADER;
      buf.set(o.packet, off + 8);
      break;
    case 'raw':
      buf[off] = o.type;
      buf.set(o.data, off + 2);
      break;
  }
  return l;
}

export function encodeNdpOptions(buf: Uint8Array, off: number, opts: readonly NdpOptionFields[]): number {
  let p = off;
  for (const o of opts) p += encodeNdpOption(buf, p, o);
  return p - off;
}

export function encodeNdpRouterSolicitation(buf: Uint8Array, off: number): number {
  return encodeIcmpV6(buf, off, { type: ICMPV6_ROUTER_SOLICITATION, code: 0 });
}

export interface NdpRouterAdvertisementFields {
  curHopLimit: number;
  managed?: boolean;
  other?: boolean;
  /** Seconds. */
  routerLifetime: number;
  /** Milliseconds. */
  reachableTime?: number;
  /** Milliseconds. */
  retransTimer?: number;
}

export function encodeNdpRouterAdvertisement(buf: Uint8Array, off: number, f: NdpRouterAdvertisementFields): number {
  encodeIcmpV6(buf, off, { type: ICMPV6_ROUTER_ADVERTISEMENT, code: 0 });
  buf[off + 4] = f.curHopLimit;
  buf[off + 5] = (f.managed ? 0x80 : 0) | (f.other ? 0x40 : 0);
  put16(buf, off + 6, f.routerLifetime);
  put32(buf, off + 8, f.reachableTime ?? 0);
  put32(buf, off + 12, f.retransTimer ?? 0);
  return NDP_RA_LENGTH;
}

export function encodeNdpNeighborSolicitation(buf: Uint8Array, off: number, f: { target: Uint8Array }): number {
  encodeIcmpV6(buf, off, { type: ICMPV6_NEIGHBOR_SOLICITATION, code: 0 });
  buf.set(f.target.subarray(0, 16), off + 8);
  return NDP_NS_LENGTH;
}

export interface NdpNeighborAdvertisementFields {
  router?: boolean;
  solicited?: boolean;
  override?: boolean;
  target: Uint8Array;
}

export function encodeNdpNeighborAdvertisement(buf: Uint8Array, off: number, f: NdpNeighborAdvertisementFields): number {
  encodeIcmpV6(buf, off, { type: ICMPV6_NEIGHBOR_ADVERTISEMENT, code: 0 });
  buf[off + 4] = (f.router ? 0x80 : 0) | (f.solicited ? 0x40 : 0) | (f.override ? 0x20 : 0);
  buf.set(f.target.subarray(0, 16), off + 8);
  return NDP_NA_LENGTH;
}

export function encodeNdpRedirect(buf: Uint8Array, off: number, f: { target: Uint8Array; destination: Uint8Array }): number {
  encodeIcmpV6(buf, off, { type: ICMPV6_REDIRECT, code: 0 });
  buf.set(f.target.subarray(0, 16), off + 8);
  buf.set(f.destination.subarray(0, 16), off + 24);
  return NDP_REDIRECT_LENGTH;
}

