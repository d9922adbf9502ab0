/**
 * ICMPv6 (RFC 4443): message types and codes, the checksum over the IPv6 pseudo-header and the
 * `IcmpV6Header` view. View conventions as in ethernet.ts. NDP options and message encoders are in
 * ndp.ts, MLDv2 records in mld.ts, and whole-message builders in icmpv6-message.ts.
 *
 * `IcmpV6Header` is one view for every message type: the type decides which getters mean
 * something (echo, errors, and the fixed fields of the NDP and MLD messages), and `isValid()`
 * checks the minimum length of the known types. The checksum covers the IPv6 pseudo-header
 * (RFC 8200 8.1), so the view's `len` must be the exact message length.
 */
import { finish, fold, pseudoHeaderSumV6, sum } from './checksum.js';
import { put16, put32, u16, u32 } from './bytes.js';
import { IPV6_HEADER_LENGTH, IPV6_MIN_MTU, IPV6_NEXT_HEADER_ICMPV6 } from './ipv6.js';


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


// MLD.
export const MLD_QUERY_V1_LENGTH = 24;
export const MLD_QUERY_V2_LENGTH = 28;

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

