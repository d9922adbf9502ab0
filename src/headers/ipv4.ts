/**
 * IPv4 header (RFC 791), with options. View conventions as in ethernet.ts.
 *
 * `isValid()` checks lengths only (version, IHL, total length against the bytes at hand); the
 * header checksum has its own `checksumValid()`, and options their own `optionsValid()`.
 * The payload respects `totalLength`, so Ethernet padding after a short datagram is ignored.
 */
import { TunstackError } from '../core/errors.js';
import { fold, pseudoHeaderSumV4, sum, updateChecksum16 } from './checksum.js';

export const IPV4_VERSION = 4;
export const IPV4_MIN_HEADER = 20;
export const IPV4_MAX_HEADER = 60;
/** Largest options area (60 - 20). */
export const IPV4_MAX_OPTIONS = 40;
export const IPV4_MAX_TOTAL_LENGTH = 0xffff;
/** Every IPv4 host must accept datagrams of this size (RFC 791, RFC 1122). */
export const IPV4_MIN_REASSEMBLY = 576;

/** IP protocol numbers (IANA "Assigned Internet Protocol Numbers"). */
export const IP_PROTO_HOPOPTS = 0;
export const IP_PROTO_ICMP = 1;
export const IP_PROTO_IGMP = 2;
export const IP_PROTO_IPIP = 4;
export const IP_PROTO_TCP = 6;
export const IP_PROTO_UDP = 17;
export const IP_PROTO_IPV6 = 41;
export const IP_PROTO_ROUTING = 43;
export const IP_PROTO_FRAGMENT = 44;
export const IP_PROTO_GRE = 47;
export const IP_PROTO_ESP = 50;
export const IP_PROTO_AH = 51;
export const IP_PROTO_ICMPV6 = 58;
export const IP_PROTO_NONE = 59;
export const IP_PROTO_DSTOPTS = 60;
export const IP_PROTO_SCTP = 132;
export const IP_PROTO_UDPLITE = 136;
export const IP_PROTO_RAW = 255;

/** The 3-bit flags field, as `IPv4Header.flags` returns it. */
export const IPV4_FLAG_RESERVED = 0x4;
export const IPV4_FLAG_DF = 0x2;
export const IPV4_FLAG_MF = 0x1;

/** IPv4 option types (copied flag, class and number in one byte). */
export const IPV4_OPT_EOL = 0;
export const IPV4_OPT_NOP = 1;
export const IPV4_OPT_RECORD_ROUTE = 7;
export const IPV4_OPT_TIMESTAMP = 68;
export const IPV4_OPT_SECURITY = 130;
export const IPV4_OPT_LSRR = 131;
export const IPV4_OPT_STREAM_ID = 136;
export const IPV4_OPT_SSRR = 137;
export const IPV4_OPT_ROUTER_ALERT = 148;

export class IPv4Header {
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

  /**
   * len >= 20, version 4, IHL >= 5, header within len, headerLength <= totalLength <= len.
   * Does not look at the checksum or the options.
   */
  isValid(): boolean {
    if (this.off < 0 || this.len < IPV4_MIN_HEADER || this.off + this.len > this.buf.length) return false;
    const b0 = this.buf[this.off]!;
    if (b0 >>> 4 !== IPV4_VERSION) return false;
    const hl = (b0 & 0x0f) << 2;
    if (hl < IPV4_MIN_HEADER || hl > this.len) return false;
    const tl = this.totalLength;
    return tl >= hl && tl <= this.len;
  }

  get version(): number {
    return this.buf[this.off]! >>> 4;
  }

  /** IHL in 32-bit words (5..15). */
  get ihl(): number {
    return this.buf[this.off]! & 0x0f;
  }

  set ihl(words: number) {
    this.buf[this.off] = (IPV4_VERSION << 4) | (words & 0x0f);
  }

  /** Header length in bytes, options included (20..60). */
  get headerLength(): number {
    return (this.buf[this.off]! & 0x0f) << 2;
  }

  /** The whole type-of-service byte (DSCP << 2 | ECN). */
  get tos(): number {
    return this.buf[this.off + 1]!;
  }

  set tos(v: number) {
    this.buf[this.off + 1] = v;
  }

  get dscp(): number {
    return this.buf[this.off + 1]! >>> 2;
  }

  set dscp(v: number) {
    this.buf[this.off + 1] = ((v & 0x3f) << 2) | (this.buf[this.off + 1]! & 0x03);
  }

  get ecn(): number {
    return this.buf[this.off + 1]! & 0x03;
  }

  set ecn(v: number) {
    this.buf[this.off + 1] = (this.buf[this.off + 1]! & 0xfc) | (v & 0x03);
  }

  get totalLength(): number {
    return (this.buf[this.off + 2]! << 8) | this.buf[this.off + 3]!;
  }

  set totalLength(v: number) {
    this.buf[this.off + 2] = v >>> 8;
    this.buf[this.off + 3] = v;
  }

  get id(): number {
    return (this.buf[this.off + 4]! << 8) | this.buf[this.off + 5]!;
  }

  set id(v: number) {
    this.buf[this.off + 4] = v >>> 8;
    this.buf[this.off + 5] = v;
  }

  /** The 3-bit flags field (IPV4_FLAG_RESERVED | IPV4_FLAG_DF | IPV4_FLAG_MF). */
  get flags(): number {
    return this.buf[this.off + 6]! >>> 5;
  }

  set flags(v: number) {
    this.buf[this.off + 6] = ((v & 0x7) << 5) | (this.buf[this.off + 6]! & 0x1f);
  }

  get dontFragment(): boolean {
    return (this.buf[this.off + 6]! & 0x40) !== 0;
  }

  set dontFragment(v: boolean) {
    const o = this.off + 6;
    this.buf[o] = v ? this.buf[o]! | 0x40 : this.buf[o]! & ~0x40;
  }

  get moreFragments(): boolean {
    return (this.buf[this.off + 6]! & 0x20) !== 0;
  }

  set moreFragments(v: boolean) {
    const o = this.off + 6;
    this.buf[o] = v ? this.buf[o]! | 0x20 : this.buf[o]! & ~0x20;
  }

  /** Fragment offset in 8-byte units, as on the wire (13 bits). */
  get fragmentOffsetRaw(): number {
    return ((this.buf[this.off + 6]! & 0x1f) << 8) | this.buf[this.off + 7]!;
  }

  set fragmentOffsetRaw(units: number) {
    const o = this.off + 6;
    this.buf[o] = (this.buf[o]! & 0xe0) | ((units >>> 8) & 0x1f);
    this.buf[o + 1] = units;
  }

  /** Fragment offset in bytes (a multiple of 8). Setting a non-multiple of 8 rounds down. */
  get fragmentOffset(): number {
    return this.fragmentOffsetRaw << 3;
  }

  set fragmentOffset(bytes: number) {
    this.fragmentOffsetRaw = bytes >>> 3;
  }

  /** MF set or a non-zero offset. */
  get isFragment(): boolean {
    return (((this.buf[this.off + 6]! & 0x3f) << 8) | this.buf[this.off + 7]!) !== 0;
  }

  get ttl(): number {
    return this.buf[this.off + 8]!;
  }

  set ttl(v: number) {
    this.buf[this.off + 8] = v;
  }

  get protocol(): number {
    return this.buf[this.off + 9]!;
  }

  set protocol(v: number) {
    this.buf[this.off + 9] = v;
  }

  get checksum(): number {
    return (this.buf[this.off + 10]! << 8) | this.buf[this.off + 11]!;
  }

  set checksum(v: number) {
    this.buf[this.off + 10] = v >>> 8;
    this.buf[this.off + 11] = v;
  }

  /** Offset of the source address in `buf` (4 bytes). */
  get srcOffset(): number {
    return this.off + 12;
  }

  /** Offset of the destination address in `buf` (4 bytes). */
  get dstOffset(): number {
    return this.off + 16;
  }

  get src(): Uint8Array {
    return this.buf.subarray(this.off + 12, this.off + 16);
  }

  set src(a: Uint8Array) {
    this.buf.set(a.subarray(0, 4), this.off + 12);
  }

  get dst(): Uint8Array {
    return this.buf.subarray(this.off + 16, this.off + 20);
  }

  set dst(a: Uint8Array) {
    this.buf.set(a.subarray(0, 4), this.off + 16);
  }

  /** Source address as an unsigned 32-bit number. */
  get srcU32(): number {
    return u32At(this.buf, this.off + 12);
  }

  set srcU32(v: number) {
    putU32(this.buf, this.off + 12, v);
  }

  /** Destination address as an unsigned 32-bit number. */
  get dstU32(): number {
    return u32At(this.buf, this.off + 16);
  }

  set dstU32(v: number) {
    putU32(this.buf, this.off + 16, v);
  }

  /** Offset of the options in `buf`. */
  get optionsOffset(): number {
    return this.off + IPV4_MIN_HEADER;
  }

  get optionsLength(): number {
    return this.headerLength - IPV4_MIN_HEADER;
  }

  /** The option bytes (headerLength - 20 of them, padding included). */
  get options(): Uint8Array {
    return this.buf.subarray(this.off + IPV4_MIN_HEADER, this.off + this.headerLength);
  }

  /** True when the option list is well formed (see IPv4OptionWalker). */
  optionsValid(): boolean {
    return validateIPv4Options(this.buf, this.off + IPV4_MIN_HEADER, this.headerLength - IPV4_MIN_HEADER);
  }

  /** Offset of the payload in `buf`. */
  get payloadOffset(): number {
    return this.off + this.headerLength;
  }

  /** totalLength - headerLength. */
  get payloadLength(): number {
    return this.totalLength - this.headerLength;
  }

  /** The bytes after the header up to totalLength (link padding excluded). */
  get payload(): Uint8Array {
    return this.buf.subarray(this.off + this.headerLength, this.off + this.totalLength);
  }

  /** The header checksum over the current header bytes, as if the field were zero. */
  computeChecksum(): number {
    const hl = this.headerLength;
    const s = sum(this.buf, this.off + 12, hl - 12, sum(this.buf, this.off, 10));
    return ~s & 0xffff;
  }

  /** Compute and store the header checksum. */
  setChecksum(): void {
    this.checksum = this.computeChecksum();
  }

  /** True when the header sums to 0xffff (checksum field included). */
  checksumValid(): boolean {
    return sum(this.buf, this.off, this.headerLength) === 0xffff;
  }

  /** Decrement the TTL and patch the checksum incrementally (RFC 1624), as a router does. */
  decrementTtl(): void {
    const o = this.off + 8;
    const oldWord = (this.buf[o]! << 8) | this.buf[o + 1]!;
    const newWord = (oldWord - 0x100) & 0xffff;
    this.buf[o] = newWord >>> 8;
    this.checksum = updateChecksum16(this.checksum, oldWord, newWord);
  }

  /** Partial sum of the transport pseudo-header for this datagram (protocol from the header). */
  pseudoHeaderSum(transportLength: number): number {
    return pseudoHeaderSumV4(this.buf, this.off + 12, this.buf, this.off + 16, this.protocol, transportLength);
  }
}

function u32At(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/**
 * Walks an IPv4 options area without allocating. Usage:
 *
 *     const w = new IPv4OptionWalker();          // keep one, reset per packet
 *     w.reset(buf, ip.optionsOffset, ip.optionsLength);
 *     while (w.next()) { if (w.type === IPV4_OPT_ROUTER_ALERT) ... }
 *     if (w.malformed) drop();
 *
 * EOL ends the list (the rest is padding); NOP is a one-byte option; every other type is
 * type, length (>= 2, within the area), data. A bad length stops the walk with `malformed` set.
 * Each step advances by at least one byte, so the walk ends after at most `len` steps.
 */
export class IPv4OptionWalker {
  buf: Uint8Array = new Uint8Array(0);
  /** Start of the current option in `buf`. */
  offset = 0;
  /** Current option type. */
  type = 0;
  /** Current option length (1 for NOP). */
  length = 0;
  /** Set when the walk stopped at a malformed option. */
  malformed = false;
  private pos = 0;
  private end = 0;

  reset(buf: Uint8Array, off: number, len: number): this {
    this.buf = buf;
    this.pos = off;
    this.end = Math.min(off + Math.max(len, 0), buf.length);
    this.offset = off;
    this.type = 0;
    this.length = 0;
    this.malformed = false;
    return this;
  }

  /** Offset of the current option's data (after type and length). */
  get dataOffset(): number {
    return this.offset + (this.length >= 2 ? 2 : 1);
  }

  get dataLength(): number {
    return this.length >= 2 ? this.length - 2 : 0;
  }

  /** Advance to the next option (NOPs included); false at EOL, the end, or a malformed option. */
  next(): boolean {
    if (this.pos >= this.end || this.malformed) return false;
    const t = this.buf[this.pos]!;
    if (t === IPV4_OPT_EOL) {
      this.pos = this.end;
      return false;
    }
    this.offset = this.pos;
    this.type = t;
    if (t === IPV4_OPT_NOP) {
      this.length = 1;
      this.pos++;
      return true;
    }
    if (this.pos + 1 >= this.end) {
      this.malformed = true;
      return false;
    }
    const l = this.buf[this.pos + 1]!;
    if (l < 2 || this.pos + l > this.end || !fixedLengthOk(t, l)) {
      this.malformed = true;
      return false;
    }
    this.length = l;
    this.pos += l;
    return true;
  }
}

function fixedLengthOk(type: number, len: number): boolean {
  switch (type) {
    case IPV4_OPT_ROUTER_ALERT:
    case IPV4_OPT_STREAM_ID:
      return len === 4;
    case IPV4_OPT_RECORD_ROUTE:
    case IPV4_OPT_LSRR:
    case IPV4_OPT_SSRR:
      return len >= 3;
    case IPV4_OPT_TIMESTAMP:
      return len >= 4;
    default:
      return true;
  }
}

const sharedWalker = new IPv4OptionWalker();

/** True when an IPv4 options area is well formed. */
export function validateIPv4Options(buf: Uint8Array, off: number, len: number): boolean {
  const w = sharedWalker.reset(buf, off, len);
  while (w.next()) {
    /* walk */
  }
  return !w.malformed;
}

/** `checkReceivedIPv4Options`: the options are acceptable. */
export const IPV4_OPTIONS_OK = -1;
/** `checkReceivedIPv4Options`: acceptable, and a loose or strict source route is present. */
export const IPV4_OPTIONS_SOURCE_ROUTE = -2;

const IPV4_OPT_CIPSO = 134;

/**
 * Check the options of a received datagram as a Linux host does before it delivers or forwards
 * it (the receive-side rules of `ip_options_compile`). Returns `IPV4_OPTIONS_OK`,
 * `IPV4_OPTIONS_SOURCE_ROUTE`, or the offset from the start of the IP header of the octet a
 * Parameter Problem message points at:
 * - an option other than EOL/NOP without room for its length byte, or whose length is below 2 or
 *   runs past the header: the option's type octet;
 * - record route / source routes shorter than 3, timestamp / router alert shorter than 4, CIPSO
 *   shorter than 8: the length octet;
 * - a record route pointer below 4 (timestamp: 5), or one inside the area with no room for a whole
 *   entry (4 octets; 8 for timestamp flags 1 and 3): the pointer octet;
 * - a full timestamp whose overflow counter is already 15: the flags octet;
 * - a second record route, timestamp, source route or CIPSO option: its type octet;
 * - CIPSO with any domain of interpretation (none is configured): the DOI's first octet.
 * Security (130), stream identifier and unknown options are accepted with any length.
 */
export function checkReceivedIPv4Options(buf: Uint8Array, ipStart: number, headerLength: number): number {
  const end = Math.min(ipStart + headerLength, buf.length);
  let p = ipStart + IPV4_MIN_HEADER;
  let seen = 0; // bit 0 record route, 1 timestamp, 2 source route, 3 CIPSO
  while (p < end) {
    const type = buf[p]!;
    if (type === IPV4_OPT_EOL) break;
    if (type === IPV4_OPT_NOP) {
      p++;
      continue;
    }
    const left = end - p;
    if (left < 2) return p - ipStart;
    const len = buf[p + 1]!;
    if (len < 2 || len > left) return p - ipStart;
    let bit = 0;
    switch (type) {
      case IPV4_OPT_LSRR:
      case IPV4_OPT_SSRR:
        bit = 4;
        if (seen & bit) return p - ipStart;
        if (len < 3) return p + 1 - ipStart;
        if (buf[p + 2]! < 4) return p + 2 - ipStart;
        break;
      case IPV4_OPT_RECORD_ROUTE: {
        bit = 1;
        if (seen & bit) return p - ipStart;
        if (len < 3) return p + 1 - ipStart;
        const ptr = buf[p + 2]!;
        if (ptr < 4 || (ptr <= len && ptr + 3 > len)) return p + 2 - ipStart;
        break;
      }
      case IPV4_OPT_TIMESTAMP: {
        bit = 2;
        if (seen & bit) return p - ipStart;
        if (len < 4) return p + 1 - ipStart;
        const ptr = buf[p + 2]!;
        if (ptr < 5) return p + 2 - ipStart;
        const flags = buf[p + 3]! & 0x0f;
        if (ptr <= len) {
          const entry = flags === 1 || flags === 3 ? 8 : 4;
          if (ptr + entry - 1 > len) return p + 2 - ipStart;
        } else if (flags !== 3 && buf[p + 3]! >>> 4 === 15) {
          return p + 3 - ipStart;
        }
        break;
      }
      case IPV4_OPT_ROUTER_ALERT:
        if (len < 4) return p + 1 - ipStart;
        break;
      case IPV4_OPT_CIPSO:
        bit = 8;
        if (seen & bit) return p - ipStart;
        return (len < 8 ? p + 1 : p + 2) - ipStart;
      default:
        break;
    }
    seen |= bit;
    p += len;
  }
  return seen & 4 ? IPV4_OPTIONS_SOURCE_ROUTE : IPV4_OPTIONS_OK;
}

export interface IPv4Fields {
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  /** Total length; default header length + `payloadLength`. */
  totalLength?: number;
  /** Used when totalLength is not given. Default 0. */
  payloadLength?: number;
  /** Default 64. */
  ttl?: number;
  /** Whole TOS byte; default 0. */
  tos?: number;
  id?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** Fragment offset in bytes (multiple of 8). */
  fragmentOffset?: number;
  /** Raw option bytes; padded with EOL (zeros) to a multiple of 4. At most 40 bytes. */
  options?: Uint8Array;
}

/** Header length (20 + options padded to 4) that encodeIPv4 will write for these fields. */
export function ipv4HeaderLength(f: { options?: Uint8Array }): number {
  const ol = f.options ? f.options.length : 0;
  return IPV4_MIN_HEADER + ((ol + 3) & ~3);
}

/** Write an IPv4 header (options and checksum included) at `off`; returns its length. */
export function encodeIPv4(buf: Uint8Array, off: number, f: IPv4Fields): number {
  const ol = f.options ? f.options.length : 0;
  if (ol > IPV4_MAX_OPTIONS) {
    throw new TunstackError('EINVAL', `IPv4 options of ${ol} bytes exceed ${IPV4_MAX_OPTIONS}`);
  }
  const hl = IPV4_MIN_HEADER + ((ol + 3) & ~3);
  const tl = f.totalLength ?? hl + (f.payloadLength ?? 0);
  buf[off] = (IPV4_VERSION << 4) | (hl >>> 2);
  buf[off + 1] = f.tos ?? 0;
  buf[off + 2] = tl >>> 8;
  buf[off + 3] = tl;
  const id = f.id ?? 0;
  buf[off + 4] = id >>> 8;
  buf[off + 5] = id;
  const fo = (f.fragmentOffset ?? 0) >>> 3;
  buf[off + 6] = (f.dontFragment ? 0x40 : 0) | (f.moreFragments ? 0x20 : 0) | ((fo >>> 8) & 0x1f);
  buf[off + 7] = fo;
  buf[off + 8] = f.ttl ?? 64;
  buf[off + 9] = f.protocol;
  buf[off + 10] = 0;
  buf[off + 11] = 0;
  buf.set(f.src.subarray(0, 4), off + 12);
  buf.set(f.dst.subarray(0, 4), off + 16);
  if (f.options && ol > 0) buf.set(f.options, off + IPV4_MIN_HEADER);
  buf.fill(0, off + IPV4_MIN_HEADER + ol, off + hl);
  const c = ~fold(sum(buf, off, hl)) & 0xffff;
  buf[off + 10] = c >>> 8;
  buf[off + 11] = c;
  return hl;
}

/** A new datagram: header + payload, totalLength set from the payload. */
export function buildIPv4(f: IPv4Fields, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hl = ipv4HeaderLength(f);
  const out = new Uint8Array(hl + payload.length);
  encodeIPv4(out, 0, { ...f, totalLength: f.totalLength ?? hl + payload.length });
  out.set(payload, hl);
  return out;
}
