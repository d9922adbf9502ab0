/**
 * ICMPv6 (RFC 4443), Neighbor Discovery (RFC 4861, RDNSS from RFC 8106) and the MLD messages a
 * host needs (MLDv2 reports, RFC 3810; query fields). View conventions as in ethernet.ts.
 *
 * `IcmpV6Header` is one view for every message type: the type decides which getters mean
 * something, and `isValid()` checks the minimum length of the known types. The checksum covers
 * the IPv6 pseudo-header (RFC 8200 8.1), so the view's `len` must be the exact message length.
 * NDP options and MLDv2 records have reusable iterators that stop (never loop) on malformed input:
 * an option of length 0 is malformed, as RFC 4861 4.6 says.
 */
import { TunstackError } from '../errors.js';
import { finish, fold, pseudoHeaderSumV6, sum } from './checksum.js';
import {
  IPV6_HEADER_LENGTH,
  IPV6_MIN_MTU,
  IPV6_NEXT_HEADER_ICMPV6,
  IPV6_OPTION_ROUTER_ALERT,
  IPV6_ROUTER_ALERT_MLD,
  buildIPv6,
  ipv6ExtensionsLength,
  type IPv6Extension,
} from './ipv6.js';

/** Type, code, checksum and the 4-byte message-specific word every defined message has. */
export const ICMPV6_HEADER_LENGTH = 8;

// Types.
export const ICMPV6_DEST_UNREACHABLE = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAMETER_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_MLD_QUERY = 130;
export const ICMPV6_MLD_REPORT = 131;
export const ICMPV6_MLD_DONE = 132;
export const ICMPV6_ROUTER_SOLICITATION = 133;
export const ICMPV6_ROUTER_ADVERTISEMENT = 134;
export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;
export const ICMPV6_REDIRECT = 137;
export const ICMPV6_MLDV2_REPORT = 143;

// Destination Unreachable codes.
export const ICMPV6_NO_ROUTE = 0;
export const ICMPV6_ADMIN_PROHIBITED = 1;
export const ICMPV6_BEYOND_SCOPE = 2;
export const ICMPV6_ADDRESS_UNREACHABLE = 3;
export const ICMPV6_PORT_UNREACHABLE = 4;
export const ICMPV6_SOURCE_POLICY_FAILED = 5;
export const ICMPV6_REJECT_ROUTE = 6;
// Time Exceeded codes.
export const ICMPV6_HOP_LIMIT_EXCEEDED = 0;
export const ICMPV6_REASSEMBLY_TIMEOUT = 1;
// Parameter Problem codes.
export const ICMPV6_ERRONEOUS_HEADER = 0;
export const ICMPV6_UNRECOGNIZED_NEXT_HEADER = 1;
export const ICMPV6_UNRECOGNIZED_OPTION = 2;
export const ICMPV6_INCOMPLETE_HEADER_CHAIN = 3;

/** An error message must not make the datagram exceed the minimum MTU: 1280 - 40. */
export const ICMPV6_ERROR_MAX_MESSAGE = IPV6_MIN_MTU - IPV6_HEADER_LENGTH;

// NDP fixed part lengths (header included; options follow).
export const NDP_RS_LENGTH = 8;
export const NDP_RA_LENGTH = 16;
export const NDP_NS_LENGTH = 24;
export const NDP_NA_LENGTH = 24;
export const NDP_REDIRECT_LENGTH = 40;

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

// MLD.
export const MLD_QUERY_V1_LENGTH = 24;
export const MLD_QUERY_V2_LENGTH = 28;
export const MLDV2_RECORD_HEADER_LENGTH = 20;
export const MLDV2_MODE_IS_INCLUDE = 1;
export const MLDV2_MODE_IS_EXCLUDE = 2;
export const MLDV2_CHANGE_TO_INCLUDE = 3;
export const MLDV2_CHANGE_TO_EXCLUDE = 4;
export const MLDV2_ALLOW_NEW_SOURCES = 5;
export const MLDV2_BLOCK_OLD_SOURCES = 6;

/** Error messages have types 0..127 (RFC 4443 2.1). */
export function isIcmpV6Error(type: number): boolean {
  return type < 128;
}

/** The smallest valid length of a message of this type (8 for types this module does not know). */
export function icmpV6MinLength(type: number): number {
  switch (type) {
    case ICMPV6_ROUTER_ADVERTISEMENT:
      return NDP_RA_LENGTH;
    case ICMPV6_NEIGHBOR_SOLICITATION:
    case ICMPV6_NEIGHBOR_ADVERTISEMENT:
    case ICMPV6_MLD_QUERY:
    case ICMPV6_MLD_REPORT:
    case ICMPV6_MLD_DONE:
      return 24;
    case ICMPV6_REDIRECT:
      return NDP_REDIRECT_LENGTH;
    default:
      return ICMPV6_HEADER_LENGTH;
  }
}

/** Offset from the message start of the NDP options of this type, or -1 if it has none. */
export function ndpOptionsStart(type: number): number {
  switch (type) {
    case ICMPV6_ROUTER_SOLICITATION:
      return NDP_RS_LENGTH;
    case ICMPV6_ROUTER_ADVERTISEMENT:
      return NDP_RA_LENGTH;
    case ICMPV6_NEIGHBOR_SOLICITATION:
    case ICMPV6_NEIGHBOR_ADVERTISEMENT:
      return NDP_NS_LENGTH;
    case ICMPV6_REDIRECT:
      return NDP_REDIRECT_LENGTH;
    default:
      return -1;
  }
}

/**
 * Partial (uncomplemented) sum of pseudo-header + message. A message is intact when this folds
 * to 0xffff.
 */
function messageSum(
  buf: Uint8Array,
  off: number,
  len: number,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
): number {
  return sum(buf, off, len, pseudoHeaderSumV6(src, srcOff, dst, dstOff, IPV6_NEXT_HEADER_ICMPV6, len));
}

/**
 * The checksum field value for the message at [off, off+len) between `src` and `dst`, computed
 * as if the field were zero (the buffer is not modified).
 */
export function icmpV6Checksum(
  buf: Uint8Array,
  off: number,
  len: number,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
): number {
  const field = (buf[off + 2]! << 8) | buf[off + 3]!;
  // Adding the complement of the field removes it from the one's-complement sum.
  const s = fold(messageSum(buf, off, len, src, srcOff, dst, dstOff) + (~field & 0xffff));
  return finish(s);
}

/** Compute and store the checksum of the message at [off, off+len). */
export function setIcmpV6Checksum(
  buf: Uint8Array,
  off: number,
  len: number,
  src: Uint8Array,
  dst: Uint8Array,
  srcOff = 0,
  dstOff = 0,
): void {
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  const c = finish(messageSum(buf, off, len, src, srcOff, dst, dstOff));
  buf[off + 2] = c >>> 8;
  buf[off + 3] = c;
}

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

export class IcmpV6Header {
  constructor(
    public buf: Uint8Array,
    public off = 0,
    public len = buf.length - off,
  ) {}

  reset(buf: Uint8Array, off = 0, len = buf.length - off): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    return this;
  }

  /** len >= 8 and at least the fixed part of the known types (RA 16, NS/NA/MLD 24, redirect 40). */
  isValid(): boolean {
    if (this.off < 0 || this.len < ICMPV6_HEADER_LENGTH || this.off + this.len > this.buf.length) return false;
    return this.len >= icmpV6MinLength(this.type);
  }

  get type(): number {
    return this.buf[this.off]!;
  }

  set type(v: number) {
    this.buf[this.off] = v;
  }

  get code(): number {
    return this.buf[this.off + 1]!;
  }

  set code(v: number) {
    this.buf[this.off + 1] = v;
  }

  get checksum(): number {
    return u16(this.buf, this.off + 2);
  }

  set checksum(v: number) {
    put16(this.buf, this.off + 2, v);
  }

  /** The 32-bit word after the checksum (identifier+sequence, MTU, pointer, flags...). */
  get restOfHeader(): number {
    return u32(this.buf, this.off + 4);
  }

  set restOfHeader(v: number) {
    put32(this.buf, this.off + 4, v);
  }

  get isError(): boolean {
    return this.type < 128;
  }

  /** The checksum this message should carry between these addresses. */
  computeChecksum(src: Uint8Array, dst: Uint8Array, srcOff = 0, dstOff = 0): number {
    return icmpV6Checksum(this.buf, this.off, this.len, src, srcOff, dst, dstOff);
  }

  /** Store the correct checksum. */
  setChecksum(src: Uint8Array, dst: Uint8Array, srcOff = 0, dstOff = 0): void {
    setIcmpV6Checksum(this.buf, this.off, this.len, src, dst, srcOff, dstOff);
  }

  /** True if the stored checksum is right for these addresses. */
  checksumValid(src: Uint8Array, dst: Uint8Array, srcOff = 0, dstOff = 0): boolean {
    return fold(messageSum(this.buf, this.off, this.len, src, srcOff, dst, dstOff)) === 0xffff;
  }

  // Echo.
  get identifier(): number {
    return u16(this.buf, this.off + 4);
  }

  set identifier(v: number) {
    put16(this.buf, this.off + 4, v);
  }

  get sequence(): number {
    return u16(this.buf, this.off + 6);
  }

  set sequence(v: number) {
    put16(this.buf, this.off + 6, v);
  }

  // Errors.
  /** Packet Too Big: the next-hop MTU. */
  get mtu(): number {
    return u32(this.buf, this.off + 4);
  }

  set mtu(v: number) {
    put32(this.buf, this.off + 4, v);
  }

  /** Parameter Problem: offset in the invoking packet of the problem. */
  get pointer(): number {
    return u32(this.buf, this.off + 4);
  }

  set pointer(v: number) {
    put32(this.buf, this.off + 4, v);
  }

  /** Offset in `buf` of the body after the 8-byte header (echo data, invoking packet). */
  get bodyOffset(): number {
    return this.off + ICMPV6_HEADER_LENGTH;
  }

  /** The body after the 8-byte header: echo data or an error's invoking packet. */
  get body(): Uint8Array {
    return this.buf.subarray(this.off + ICMPV6_HEADER_LENGTH, this.off + this.len);
  }

  // Router Advertisement.
  get curHopLimit(): number {
    return this.buf[this.off + 4]!;
  }

  /** The RA flags byte (M 0x80, O 0x40, ...). */
  get raFlags(): number {
    return this.buf[this.off + 5]!;
  }

  get managedFlag(): boolean {
    return (this.buf[this.off + 5]! & 0x80) !== 0;
  }

  get otherFlag(): boolean {
    return (this.buf[this.off + 5]! & 0x40) !== 0;
  }

  /** Seconds; 0: not a default router. */
  get routerLifetime(): number {
    return u16(this.buf, this.off + 6);
  }

  /** Milliseconds; 0: unspecified. */
  get reachableTime(): number {
    return u32(this.buf, this.off + 8);
  }

  /** Milliseconds; 0: unspecified. */
  get retransTimer(): number {
    return u32(this.buf, this.off + 12);
  }

  // Neighbor Advertisement flags.
  get routerFlag(): boolean {
    return (this.buf[this.off + 4]! & 0x80) !== 0;
  }

  get solicitedFlag(): boolean {
    return (this.buf[this.off + 4]! & 0x40) !== 0;
  }

  get overrideFlag(): boolean {
    return (this.buf[this.off + 4]! & 0x20) !== 0;
  }

  // NS / NA / Redirect.
  /** Offset in `buf` of the Target Address (NS, NA, Redirect; 16 bytes). */
  get targetAddressOffset(): number {
    return this.off + 8;
  }

  get targetAddress(): Uint8Array {
    return this.buf.subarray(this.off + 8, this.off + 24);
  }

  /** Offset in `buf` of a Redirect's Destination Address (16 bytes). */
  get redirectDestinationOffset(): number {
    return this.off + 24;
  }

  get redirectDestination(): Uint8Array {
    return this.buf.subarray(this.off + 24, this.off + 40);
  }

  /** Offset in `buf` of the NDP options, or -1 if this type has none. */
  get ndpOptionsOffset(): number {
    const s = ndpOptionsStart(this.type);
    return s < 0 ? -1 : this.off + s;
  }

  /** Offset in `buf` of the end of the message (where options end). */
  get end(): number {
    return this.off + this.len;
  }

  // MLD.
  /** Query: Maximum Response Code (milliseconds in MLDv1; see RFC 3810 5.1.3 for v2). */
  get mldMaxResponseCode(): number {
    return u16(this.buf, this.off + 4);
  }

  /** Query / MLDv1 report / done: offset in `buf` of the Multicast Address (16 bytes). */
  get mldMulticastAddressOffset(): number {
    return this.off + 8;
  }

  get mldMulticastAddress(): Uint8Array {
    return this.buf.subarray(this.off + 8, this.off + 24);
  }

  /** A query of 28 bytes or more is an MLDv2 query. */
  get isMldV2Query(): boolean {
    return this.type === ICMPV6_MLD_QUERY && this.len >= MLD_QUERY_V2_LENGTH;
  }

  /** MLDv2 query: S flag (suppress router-side processing). */
  get mldSuppressFlag(): boolean {
    return (this.buf[this.off + 24]! & 0x08) !== 0;
  }

  /** MLDv2 query: Querier's Robustness Variable. */
  get mldQrv(): number {
    return this.buf[this.off + 24]! & 0x07;
  }

  /** MLDv2 query: Querier's Query Interval Code. */
  get mldQqic(): number {
    return this.buf[this.off + 25]!;
  }

  /** MLDv2 query: number of sources. */
  get mldSourceCount(): number {
    return u16(this.buf, this.off + 26);
  }

  /** MLDv2 report: Nr of Mcast Address Records. */
  get mldV2RecordCount(): number {
    return u16(this.buf, this.off + 6);
  }

  /** MLDv2 report: offset in `buf` of the first record. */
  get mldV2RecordsOffset(): number {
    return this.off + 8;
  }
}

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

// ---------------------------------------------------------------------------------------------
// MLDv2 records

export const MLDV2_RECORDS_MORE = 0;
export const MLDV2_RECORDS_END = 1;
/** A record runs past the end of the message. */
export const MLDV2_RECORDS_TRUNCATED = 2;

/**
 * Walks the Multicast Address Records of an MLDv2 report: `reset(buf, start, end, count)`
 * (count from `IcmpV6Header.mldV2RecordCount`), then `while (it.next())`. Stops with TRUNCATED
 * if a record does not fit; END after `count` records.
 */
export class MldV2RecordIterator {
  buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;
  private remaining = 0;
  status = MLDV2_RECORDS_END;
  /** Offset in `buf` of the current record. */
  offset = 0;
  /** Length of the current record in bytes. */
  length = 0;

  reset(buf: Uint8Array, start: number, end: number, count: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = Math.min(end, buf.length);
    this.remaining = count;
    this.status = start < 0 ? MLDV2_RECORDS_TRUNCATED : MLDV2_RECORDS_MORE;
    this.offset = start;
    this.length = 0;
    return this;
  }

  next(): boolean {
    if (this.status !== MLDV2_RECORDS_MORE) return false;
    if (this.remaining <= 0) {
      this.status = MLDV2_RECORDS_END;
      return false;
    }
    const p = this.pos;
    this.offset = p;
    if (p + MLDV2_RECORD_HEADER_LENGTH > this.end) {
      this.status = MLDV2_RECORDS_TRUNCATED;
      return false;
    }
    const l = MLDV2_RECORD_HEADER_LENGTH + 16 * u16(this.buf, p + 2) + 4 * this.buf[p + 1]!;
    if (p + l > this.end) {
      this.status = MLDV2_RECORDS_TRUNCATED;
      return false;
    }
    this.length = l;
    this.pos = p + l;
    this.remaining--;
    return true;
  }

  get recordType(): number {
    return this.buf[this.offset]!;
  }

  /** Auxiliary data length in bytes (the field counts 32-bit words). */
  get auxDataLength(): number {
    return this.buf[this.offset + 1]! << 2;
  }

  get sourceCount(): number {
    return u16(this.buf, this.offset + 2);
  }

  get multicastAddressOffset(): number {
    return this.offset + 4;
  }

  get multicastAddress(): Uint8Array {
    return this.buf.subarray(this.offset + 4, this.offset + 20);
  }

  /** Offset in `buf` of the i-th source address. */
  sourceOffset(i: number): number {
    return this.offset + MLDV2_RECORD_HEADER_LENGTH + 16 * i;
  }

  get auxDataOffset(): number {
    return this.offset + MLDV2_RECORD_HEADER_LENGTH + 16 * this.sourceCount;
  }
}

export interface MldV2RecordFields {
  recordType: number;
  multicastAddress: Uint8Array;
  sources?: readonly Uint8Array[];
  /** Length must be a multiple of 4. */
  auxData?: Uint8Array;
}

export function mldV2RecordLength(r: MldV2RecordFields): number {
  return MLDV2_RECORD_HEADER_LENGTH + 16 * (r.sources?.length ?? 0) + (r.auxData?.length ?? 0);
}

/** Write one Multicast Address Record; returns its length. */
export function encodeMldV2Record(buf: Uint8Array, off: number, r: MldV2RecordFields): number {
  const aux = r.auxData?.length ?? 0;
  if ((aux & 3) !== 0 || aux > 255 * 4) throw new TunstackError('EINVAL', `MLDv2 aux data of ${aux} bytes`);
  const sources = r.sources ?? [];
  buf[off] = r.recordType;
  buf[off + 1] = aux >>> 2;
  put16(buf, off + 2, sources.length);
  buf.set(r.multicastAddress.subarray(0, 16), off + 4);
  let p = off + MLDV2_RECORD_HEADER_LENGTH;
  for (const s of sources) {
    buf.set(s.subarray(0, 16), p);
    p += 16;
  }
  if (r.auxData) buf.set(r.auxData, p);
  return p + aux - off;
}

// ---------------------------------------------------------------------------------------------
// Message encoders (the checksum is left 0: set it with setIcmpV6Checksum over the whole message)

/** Type, code, zero checksum and the 32-bit rest-of-header word; returns 8. */
export function encodeIcmpV6(buf: Uint8Array, off: number, f: { type: number; code: number; rest?: number }): number {
  buf[off] = f.type;
  buf[off + 1] = f.code;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  put32(buf, off + 4, f.rest ?? 0);
  return ICMPV6_HEADER_LENGTH;
}

export interface IcmpV6EchoFields {
  type: typeof ICMPV6_ECHO_REQUEST | typeof ICMPV6_ECHO_REPLY;
  identifier: number;
  sequence: number;
}

export function encodeIcmpV6Echo(buf: Uint8Array, off: number, f: IcmpV6EchoFields): number {
  return encodeIcmpV6(buf, off, { type: f.type, code: 0, rest: ((f.identifier & 0xffff) << 16 | (f.sequence & 0xffff)) >>> 0 });
}

export interface IcmpV6ErrorFields {
  type: number;
  code: number;
  /** MTU for Packet Too Big, pointer for Parameter Problem, otherwise 0 (unused). */
  parameter?: number;
}

export function encodeIcmpV6Error(buf: Uint8Array, off: number, f: IcmpV6ErrorFields): number {
  return encodeIcmpV6(buf, off, { type: f.type, code: f.code, rest: f.parameter ?? 0 });
}

/**
 * How many bytes of the invoking packet an error may carry so that the error datagram stays
 * within the minimum MTU; `ipOverhead` is the error's own IPv6 header plus extension headers.
 */
export function icmpV6ErrorPayloadLength(invokingLength: number, ipOverhead = IPV6_HEADER_LENGTH): number {
  return Math.max(0, Math.min(invokingLength, IPV6_MIN_MTU - ipOverhead - ICMPV6_HEADER_LENGTH));
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

/** MLDv2 report header and records; returns the message length. */
export function encodeMldV2Report(buf: Uint8Array, off: number, records: readonly MldV2RecordFields[]): number {
  encodeIcmpV6(buf, off, { type: ICMPV6_MLDV2_REPORT, code: 0, rest: records.length & 0xffff });
  let p = off + ICMPV6_HEADER_LENGTH;
  for (const r of records) p += encodeMldV2Record(buf, p, r);
  return p - off;
}

// ---------------------------------------------------------------------------------------------
// Builders

/** Any ICMPv6 message, for `buildIcmpV6`. */
export type IcmpV6Message =
  | { kind: 'echoRequest' | 'echoReply'; identifier: number; sequence: number; data?: Uint8Array }
  | { kind: 'destinationUnreachable'; code: number; invoking: Uint8Array }
  | { kind: 'packetTooBig'; mtu: number; invoking: Uint8Array }
  | { kind: 'timeExceeded'; code: number; invoking: Uint8Array }
  | { kind: 'parameterProblem'; code: number; pointer: number; invoking: Uint8Array }
  | { kind: 'routerSolicitation'; options?: readonly NdpOptionFields[] }
  | ({ kind: 'routerAdvertisement'; options?: readonly NdpOptionFields[] } & NdpRouterAdvertisementFields)
  | { kind: 'neighborSolicitation'; target: Uint8Array; options?: readonly NdpOptionFields[] }
  | ({ kind: 'neighborAdvertisement'; options?: readonly NdpOptionFields[] } & NdpNeighborAdvertisementFields)
  | { kind: 'redirect'; target: Uint8Array; destination: Uint8Array; options?: readonly NdpOptionFields[] }
  | { kind: 'mldv2Report'; records: readonly MldV2RecordFields[] }
  | { kind: 'raw'; type: number; code: number; rest?: number; body?: Uint8Array };

const ERROR_TYPES = {
  destinationUnreachable: ICMPV6_DEST_UNREACHABLE,
  packetTooBig: ICMPV6_PACKET_TOO_BIG,
  timeExceeded: ICMPV6_TIME_EXCEEDED,
  parameterProblem: ICMPV6_PARAMETER_PROBLEM,
} as const;

/**
 * Errors and redirects are cut so the datagram fits the minimum MTU: `maxLength` is the room
 * for the ICMPv6 message (1280 - IPv6 header - extension headers).
 */
function fitOptions(opts: readonly NdpOptionFields[], fixed: number, maxLength: number): readonly NdpOptionFields[] {
  const total = fixed + ndpOptionsLength(opts);
  if (total <= maxLength) return opts;
  return opts.map((o) => {
    if (o.kind !== 'redirectedHeader') return o;
    const others = total - ndpOptionLength(o);
    const room = Math.max(0, (maxLength - others - 8) & ~7);
    return { kind: 'redirectedHeader', packet: o.packet.subarray(0, Math.min(o.packet.length, room)) };
  });
}

/**
 * A new ICMPv6 message with its checksum set for `source` -> `destination`. An error's invoking
 * packet and a redirect's Redirected Header are truncated to fit in `maxLength` bytes (default
 * 1240: the minimum MTU less a bare IPv6 header).
 */
export function buildIcmpV6(
  m: IcmpV6Message,
  source: Uint8Array,
  destination: Uint8Array,
  maxLength = ICMPV6_ERROR_MAX_MESSAGE,
): Uint8Array {
  let out: Uint8Array;
  switch (m.kind) {
    case 'echoRequest':
    case 'echoReply': {
      const data = m.data ?? new Uint8Array(0);
      out = new Uint8Array(ICMPV6_HEADER_LENGTH + data.length);
      encodeIcmpV6Echo(out, 0, {
        type: m.kind === 'echoRequest' ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY,
        identifier: m.identifier,
        sequence: m.sequence,
      });
      out.set(data, ICMPV6_HEADER_LENGTH);
      break;
    }
    case 'destinationUnreachable':
    case 'packetTooBig':
    case 'timeExceeded':
    case 'parameterProblem': {
      const n = Math.max(0, Math.min(m.invoking.length, maxLength - ICMPV6_HEADER_LENGTH));
      out = new Uint8Array(ICMPV6_HEADER_LENGTH + n);
      encodeIcmpV6Error(out, 0, {
        type: ERROR_TYPES[m.kind],
        code: m.kind === 'packetTooBig' ? 0 : m.code,
        parameter: m.kind === 'packetTooBig' ? m.mtu : m.kind === 'parameterProblem' ? m.pointer : 0,
      });
      out.set(m.invoking.subarray(0, n), ICMPV6_HEADER_LENGTH);
      break;
    }
    case 'routerSolicitation': {
      const opts = m.options ?? [];
      out = new Uint8Array(NDP_RS_LENGTH + ndpOptionsLength(opts));
      encodeNdpRouterSolicitation(out, 0);
      encodeNdpOptions(out, NDP_RS_LENGTH, opts);
      break;
    }
    case 'routerAdvertisement': {
      const opts = m.options ?? [];
      out = new Uint8Array(NDP_RA_LENGTH + ndpOptionsLength(opts));
      encodeNdpRouterAdvertisement(out, 0, m);
      encodeNdpOptions(out, NDP_RA_LENGTH, opts);
      break;
    }
    case 'neighborSolicitation': {
      const opts = m.options ?? [];
      out = new Uint8Array(NDP_NS_LENGTH + ndpOptionsLength(opts));
      encodeNdpNeighborSolicitation(out, 0, m);
      encodeNdpOptions(out, NDP_NS_LENGTH, opts);
      break;
    }
    case 'neighborAdvertisement': {
      const opts = m.options ?? [];
      out = new Uint8Array(NDP_NA_LENGTH + ndpOptionsLength(opts));
      encodeNdpNeighborAdvertisement(out, 0, m);
      encodeNdpOptions(out, NDP_NA_LENGTH, opts);
      break;
    }
    case 'redirect': {
      const opts = fitOptions(m.options ?? [], NDP_REDIRECT_LENGTH, maxLength);
      out = new Uint8Array(NDP_REDIRECT_LENGTH + ndpOptionsLength(opts));
      encodeNdpRedirect(out, 0, m);
      encodeNdpOptions(out, NDP_REDIRECT_LENGTH, opts);
      break;
    }
    case 'mldv2Report': {
      let n = ICMPV6_HEADER_LENGTH;
      for (const r of m.records) n += mldV2RecordLength(r);
      out = new Uint8Array(n);
      encodeMldV2Report(out, 0, m.records);
      break;
    }
    case 'raw': {
      const body = m.body ?? new Uint8Array(0);
      out = new Uint8Array(ICMPV6_HEADER_LENGTH + body.length);
      encodeIcmpV6(out, 0, m);
      out.set(body, ICMPV6_HEADER_LENGTH);
      break;
    }
  }
  setIcmpV6Checksum(out, 0, out.length, source, destination);
  return out;
}

export interface IcmpV6PacketFields {
  source: Uint8Array;
  destination: Uint8Array;
  /** Default: 255 for NDP (RFC 4861 requires it), 1 for MLD, else 64. */
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /**
   * Extension headers. Default: none, except MLD messages, which get the Hop-by-Hop Router
   * Alert (value 0) RFC 3810 requires.
   */
  extensions?: readonly IPv6Extension[];
}

function isNdp(kind: IcmpV6Message['kind']): boolean {
  return (
    kind === 'routerSolicitation' ||
    kind === 'routerAdvertisement' ||
    kind === 'neighborSolicitation' ||
    kind === 'neighborAdvertisement' ||
    kind === 'redirect'
  );
}

/** A whole IPv6 datagram carrying the message (checksum set). */
export function buildIcmpV6Packet(m: IcmpV6Message, f: IcmpV6PacketFields): Uint8Array {
  const mld = m.kind === 'mldv2Report';
  const extensions =
    f.extensions ??
    (mld
      ? [{ kind: 'hopByHop' as const, options: [{ type: IPV6_OPTION_ROUTER_ALERT, data: Uint8Array.of(0, IPV6_ROUTER_ALERT_MLD) }] }]
      : []);
  const room = IPV6_MIN_MTU - IPV6_HEADER_LENGTH - ipv6ExtensionsLength(extensions);
  const msg = buildIcmpV6(m, f.source, f.destination, room);
  return buildIPv6(
    {
      source: f.source,
      destination: f.destination,
      hopLimit: f.hopLimit ?? (isNdp(m.kind) ? 255 : mld ? 1 : 64),
      trafficClass: f.trafficClass ?? 0,
      flowLabel: f.flowLabel ?? 0,
      nextHeader: IPV6_NEXT_HEADER_ICMPV6,
      extensions,
    },
    msg,
  );
}
