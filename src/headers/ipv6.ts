/**
 * IPv6 (RFC 8200): the fixed header view, views over the extension headers, an option (TLV)
 * iterator for Hop-by-Hop and Destination Options, and a walker over the extension-header chain
 * that finds the upper-layer protocol or says exactly why (and where) the packet must be dropped.
 * View conventions as in ethernet.ts.
 *
 * The walker never throws and never reads outside [start, end): every length is checked before it
 * is used, every step advances by at least 8 bytes, and the number of headers is bounded. Its
 * result object is reused from packet to packet (no allocation per packet).
 */
import { TunstackError } from '../errors.js';

export const IPV6_VERSION = 6;
export const IPV6_HEADER_LENGTH = 40;
/** Every link that carries IPv6 has at least this MTU (RFC 8200 section 5). */
export const IPV6_MIN_MTU = 1280;
export const IPV6_MAX_PAYLOAD = 0xffff;

/** Next Header values this module knows (IANA protocol numbers), local to IPv6. */
export const IPV6_NEXT_HEADER_HOP_BY_HOP = 0;
export const IPV6_NEXT_HEADER_TCP = 6;
export const IPV6_NEXT_HEADER_UDP = 17;
export const IPV6_NEXT_HEADER_ROUTING = 43;
export const IPV6_NEXT_HEADER_FRAGMENT = 44;
export const IPV6_NEXT_HEADER_ESP = 50;
export const IPV6_NEXT_HEADER_AH = 51;
export const IPV6_NEXT_HEADER_ICMPV6 = 58;
export const IPV6_NEXT_HEADER_NONE = 59;
export const IPV6_NEXT_HEADER_DESTINATION_OPTIONS = 60;

export const IPV6_FRAGMENT_HEADER_LENGTH = 8;
/** Largest Hop-by-Hop / Destination Options / Routing header: (255 + 1) * 8 bytes. */
export const IPV6_MAX_EXTENSION_HEADER_LENGTH = 2048;

/** Option types in Hop-by-Hop and Destination Options headers. */
export const IPV6_OPTION_PAD1 = 0;
export const IPV6_OPTION_PADN = 1;
export const IPV6_OPTION_TUNNEL_ENCAPSULATION_LIMIT = 4;
export const IPV6_OPTION_ROUTER_ALERT = 5;
export const IPV6_OPTION_JUMBO_PAYLOAD = 0xc2;

/** Router Alert values (RFC 2711). */
export const IPV6_ROUTER_ALERT_MLD = 0;

/**
 * What to do with an unrecognised option: the two high bits of its type (RFC 8200 4.2).
 */
export const IPV6_OPTION_ACTION_SKIP = 0;
export const IPV6_OPTION_ACTION_DISCARD = 1;
export const IPV6_OPTION_ACTION_DISCARD_ICMP = 2;
export const IPV6_OPTION_ACTION_DISCARD_ICMP_UNLESS_MULTICAST = 3;

/** The action bits of an option type (IPV6_OPTION_ACTION_*). */
export function ipv6OptionAction(type: number): number {
  return (type >>> 6) & 3;
}

// ---------------------------------------------------------------------------------------------
// Fixed header

export class IPv6Header {
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

  /** len >= 40, version 6, payloadLength <= the bytes after the fixed header. */
  isValid(): boolean {
    if (this.off < 0 || this.len < IPV6_HEADER_LENGTH || this.off + this.len > this.buf.length) {
      return false;
    }
    if (this.buf[this.off]! >>> 4 !== IPV6_VERSION) return false;
    return this.payloadLength <= this.len - IPV6_HEADER_LENGTH;
  }

  get headerLength(): number {
    return IPV6_HEADER_LENGTH;
  }

  get version(): number {
    return this.buf[this.off]! >>> 4;
  }

  /** The 8-bit Traffic Class (DSCP << 2 | ECN). */
  get trafficClass(): number {
    return ((this.buf[this.off]! & 0x0f) << 4) | (this.buf[this.off + 1]! >>> 4);
  }

  set trafficClass(v: number) {
    const b = this.buf;
    const o = this.off;
    b[o] = (b[o]! & 0xf0) | ((v >>> 4) & 0x0f);
    b[o + 1] = (b[o + 1]! & 0x0f) | ((v & 0x0f) << 4);
  }

  /** The 20-bit flow label. */
  get flowLabel(): number {
    const b = this.buf;
    const o = this.off;
    return ((b[o + 1]! & 0x0f) << 16) | (b[o + 2]! << 8) | b[o + 3]!;
  }

  set flowLabel(v: number) {
    const b = this.buf;
    const o = this.off;
    b[o + 1] = (b[o + 1]! & 0xf0) | ((v >>> 16) & 0x0f);
    b[o + 2] = v >>> 8;
    b[o + 3] = v;
  }

  /** Bytes after the fixed header (extension headers included). */
  get payloadLength(): number {
    return (this.buf[this.off + 4]! << 8) | this.buf[this.off + 5]!;
  }

  set payloadLength(v: number) {
    this.buf[this.off + 4] = v >>> 8;
    this.buf[this.off + 5] = v;
  }

  get nextHeader(): number {
    return this.buf[this.off + 6]!;
  }

  set nextHeader(v: number) {
    this.buf[this.off + 6] = v;
  }

  get hopLimit(): number {
    return this.buf[this.off + 7]!;
  }

  set hopLimit(v: number) {
    this.buf[this.off + 7] = v;
  }

  /** Offset of the source address in `buf` (16 bytes). */
  get sourceOffset(): number {
    return this.off + 8;
  }

  /** Offset of the destination address in `buf` (16 bytes). */
  get destinationOffset(): number {
    return this.off + 24;
  }

  get source(): Uint8Array {
    return this.buf.subarray(this.off + 8, this.off + 24);
  }

  set source(a: Uint8Array) {
    this.buf.set(a.subarray(0, 16), this.off + 8);
  }

  get destination(): Uint8Array {
    return this.buf.subarray(this.off + 24, this.off + 40);
  }

  set destination(a: Uint8Array) {
    this.buf.set(a.subarray(0, 16), this.off + 24);
  }

  get isDestinationMulticast(): boolean {
    return this.buf[this.off + 24] === 0xff;
  }

  /** 40 + payloadLength: the datagram's length (link padding after it excluded). */
  get totalLength(): number {
    return IPV6_HEADER_LENGTH + this.payloadLength;
  }

  /** The bytes after the fixed header, up to payloadLength. */
  get payload(): Uint8Array {
    const end = this.off + Math.min(this.len, IPV6_HEADER_LENGTH + this.payloadLength);
    return this.buf.subarray(this.off + IPV6_HEADER_LENGTH, end);
  }
}

// ---------------------------------------------------------------------------------------------
// Extension header views

/** A Hop-by-Hop or Destination Options header: next header, length, options. */
export class IPv6OptionsHeader {
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

  isValid(): boolean {
    if (this.off < 0 || this.len < 8 || this.off + this.len > this.buf.length) return false;
    return this.headerLength <= this.len;
  }

  get nextHeader(): number {
    return this.buf[this.off]!;
  }

  set nextHeader(v: number) {
    this.buf[this.off] = v;
  }

  /** Length of the whole header in bytes: (Hdr Ext Len + 1) * 8. */
  get headerLength(): number {
    return (this.buf[this.off + 1]! + 1) << 3;
  }

  /** Offset in `buf` of the first option. */
  get optionsOffset(): number {
    return this.off + 2;
  }

  /** Offset in `buf` just after the last option. */
  get optionsEnd(): number {
    return this.off + this.headerLength;
  }
}

/** A Routing header (the four fixed bytes; type-specific data follows). */
export class IPv6RoutingHeader {
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

  isValid(): boolean {
    if (this.off < 0 || this.len < 8 || this.off + this.len > this.buf.length) return false;
    return this.headerLength <= this.len;
  }

  get nextHeader(): number {
    return this.buf[this.off]!;
  }

  set nextHeader(v: number) {
    this.buf[this.off] = v;
  }

  get headerLength(): number {
    return (this.buf[this.off + 1]! + 1) << 3;
  }

  get routingType(): number {
    return this.buf[this.off + 2]!;
  }

  get segmentsLeft(): number {
    return this.buf[this.off + 3]!;
  }

  set segmentsLeft(v: number) {
    this.buf[this.off + 3] = v;
  }

  /** Type-specific data: from offset 4 to the end of the header. */
  get data(): Uint8Array {
    return this.buf.subarray(this.off + 4, this.off + this.headerLength);
  }
}

/** A Fragment header (8 bytes). */
export class IPv6FragmentHeader {
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

  isValid(): boolean {
    return this.off >= 0 && this.len >= IPV6_FRAGMENT_HEADER_LENGTH && this.off + this.len <= this.buf.length;
  }

  get nextHeader(): number {
    return this.buf[this.off]!;
  }

  set nextHeader(v: number) {
    this.buf[this.off] = v;
  }

  /** Fragment offset in 8-octet units, as on the wire. */
  get fragmentOffset(): number {
    return ((this.buf[this.off + 2]! << 8) | this.buf[this.off + 3]!) >>> 3;
  }

  set fragmentOffset(v: number) {
    const b = this.buf;
    const o = this.off;
    const w = ((v & 0x1fff) << 3) | (b[o + 3]! & 7);
    b[o + 2] = w >>> 8;
    b[o + 3] = w;
  }

  /** Fragment offset in bytes (fragmentOffset * 8). */
  get fragmentByteOffset(): number {
    return this.fragmentOffset << 3;
  }

  /** The M flag. */
  get moreFragments(): boolean {
    return (this.buf[this.off + 3]! & 1) !== 0;
  }

  set moreFragments(v: boolean) {
    const o = this.off + 3;
    this.buf[o] = v ? this.buf[o]! | 1 : this.buf[o]! & 0xfe;
  }

  get identification(): number {
    const b = this.buf;
    const o = this.off + 4;
    return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }

  set identification(v: number) {
    const b = this.buf;
    const o = this.off + 4;
    b[o] = v >>> 24;
    b[o + 1] = v >>> 16;
    b[o + 2] = v >>> 8;
    b[o + 3] = v;
  }

  /** Offset 0 and M clear (RFC 6946): not really a fragment. */
  get isAtomic(): boolean {
    return this.fragmentOffset === 0 && !this.moreFragments;
  }
}

// ---------------------------------------------------------------------------------------------
// Options (TLV) iterator

/** Iterator states. */
export const IPV6_OPTIONS_MORE = 0;
export const IPV6_OPTIONS_END = 1;
/** An option's length runs past the end of its header. */
export const IPV6_OPTIONS_TRUNCATED = 2;

/**
 * Walks the TLV-encoded options of a Hop-by-Hop or Destination Options header, over
 * [start, end) of `buf`. Reusable: `reset` then `while (it.next()) { ... }`; afterwards `status`
 * says whether the options ended cleanly (END) or an option overran the header (TRUNCATED, with
 * `optionOffset` at the bad option). Pad1 and PadN are returned like any other option.
 */
export class IPv6OptionIterator {
  buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;
  status = IPV6_OPTIONS_END;
  /** Option type of the current option. */
  type = 0;
  /** Offset in `buf` of the current option's type byte. */
  optionOffset = 0;
  /** Offset in `buf` of the current option's data. */
  dataOffset = 0;
  /** Length of the current option's data (0 for Pad1). */
  dataLength = 0;

  reset(buf: Uint8Array, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = Math.min(end, buf.length);
    this.status = IPV6_OPTIONS_MORE;
    this.type = 0;
    this.optionOffset = start;
    this.dataOffset = start;
    this.dataLength = 0;
    return this;
  }

  /** Advance to the next option; false at the end or on a malformed option (see `status`). */
  next(): boolean {
    if (this.status !== IPV6_OPTIONS_MORE) return false;
    const p = this.pos;
    if (p >= this.end) {
      this.status = IPV6_OPTIONS_END;
      return false;
    }
    const t = this.buf[p]!;
    this.type = t;
    this.optionOffset = p;
    if (t === IPV6_OPTION_PAD1) {
      this.dataOffset = p + 1;
      this.dataLength = 0;
      this.pos = p + 1;
      return true;
    }
    if (p + 2 > this.end) {
      this.status = IPV6_OPTIONS_TRUNCATED;
      return false;
    }
    const l = this.buf[p + 1]!;
    if (p + 2 + l > this.end) {
      this.status = IPV6_OPTIONS_TRUNCATED;
      return false;
    }
    this.dataOffset = p + 2;
    this.dataLength = l;
    this.pos = p + 2 + l;
    return true;
  }

  /** The action bits of the current option's type. */
  get action(): number {
    return (this.type >>> 6) & 3;
  }

  get data(): Uint8Array {
    return this.buf.subarray(this.dataOffset, this.dataOffset + this.dataLength);
  }
}

// ---------------------------------------------------------------------------------------------
// Extension header chain walker

/** Walk outcomes (`IPv6Walk.status`). Everything but OK means "drop the packet". */
export const IPV6_WALK_OK = 0;
/** The fixed header is not valid (too short, not version 6, payload length beyond the bytes). */
export const IPV6_WALK_BAD_HEADER = 1;
/**
 * An extension header runs past the end of the packet. Dropped silently. `problemOffset` is the
 * Next Header byte that named a header with no room, or the length byte of one that overruns.
 */
export const IPV6_WALK_TRUNCATED = 2;
/** A Hop-by-Hop header anywhere but right after the fixed header (ICMP code 1). */
export const IPV6_WALK_HOP_BY_HOP_NOT_FIRST = 3;
/**
 * An option's TLV overruns its header, or a Router Alert is not 2 bytes; `problemOffset` is the
 * option's type byte. Dropped silently.
 */
export const IPV6_WALK_BAD_OPTION = 4;
/** An unrecognised option whose action says discard (see `optionAction`, `icmpCode`). */
export const IPV6_WALK_UNKNOWN_OPTION = 5;
/** A Routing header with Segments Left > 0: no routing type is supported by a host (code 0). */
export const IPV6_WALK_ROUTING = 6;
/** A fragment of a length that is not a multiple of 8 with M set, or one ending past 65535 (code 0). */
export const IPV6_WALK_BAD_FRAGMENT = 7;
/** A first fragment without the whole header chain through the upper-layer header (code 3). */
export const IPV6_WALK_INCOMPLETE_CHAIN = 8;
/** More extension headers than `maxHeaders` (problemOffset: the Next Header naming one too many). Dropped silently. */
export const IPV6_WALK_TOO_MANY_HEADERS = 9;

/** Default bound on the number of extension headers in one chain. */
export const IPV6_DEFAULT_MAX_EXTENSION_HEADERS = 16;

/**
 * The result of a walk, reused from packet to packet. Offsets are absolute offsets in the buffer
 * walked; `pointer` is relative to the start of the IPv6 header (the ICMPv6 Parameter Problem
 * pointer). Fields not touched by the chain are -1 (offsets) or false.
 */
export class IPv6Walk {
  /** Bound on the chain length (extension headers counted). */
  maxHeaders = IPV6_DEFAULT_MAX_EXTENSION_HEADERS;

  status = IPV6_WALK_OK;
  /** Offset of the IPv6 fixed header. */
  ipOffset = 0;
  /** End of the datagram (40 + payloadLength after ipOffset, clipped to the bytes at hand). */
  end = 0;
  /** The upper-layer protocol (or 59, no next header); for a fragment, the fragment's next header. */
  protocol = -1;
  /** Offset of the upper-layer header (for a fragment: of the fragment's data). */
  offset = -1;
  /** Offset of the Next Header byte that named `protocol` (pointer for ICMP code 1). */
  nextHeaderFieldOffset = -1;
  /** Number of extension headers walked. */
  headerCount = 0;

  hopByHopOffset = -1;
  /** Router Alert value from the Hop-by-Hop header, or -1. */
  routerAlert = -1;
  /** Offset of the last Destination Options header walked, or -1. */
  destinationOptionsOffset = -1;

  routingOffset = -1;
  routingType = -1;
  segmentsLeft = -1;

  fragmentHeaderOffset = -1;
  /** Fragment offset in 8-octet units. */
  fragmentOffset = 0;
  moreFragments = false;
  fragmentId = 0;
  /** A fragment header that is not atomic: the walk stopped there; reassemble before going on. */
  isFragment = false;
  /** A fragment header with offset 0 and M clear (RFC 6946); the walk went on past it. */
  atomicFragment = false;

  /** On failure: absolute offset of the byte at fault. */
  problemOffset = -1;
  /** On failure: problemOffset - ipOffset, the Parameter Problem pointer. */
  pointer = -1;
  /** On failure: the ICMPv6 Parameter Problem code to send, or -1 to drop silently. */
  icmpCode = -1;
  /** For UNKNOWN_OPTION: the option type and its action (IPV6_OPTION_ACTION_*). */
  optionType = -1;
  optionAction = -1;

  /** @internal */
  readonly options = new IPv6OptionIterator();

  get ok(): boolean {
    return this.status === IPV6_WALK_OK;
  }

  clear(): this {
    this.status = IPV6_WALK_OK;
    this.ipOffset = 0;
    this.end = 0;
    this.protocol = -1;
    this.offset = -1;
    this.nextHeaderFieldOffset = -1;
    this.headerCount = 0;
    this.hopByHopOffset = -1;
    this.routerAlert = -1;
    this.destinationOptionsOffset = -1;
    this.routingOffset = -1;
    this.routingType = -1;
    this.segmentsLeft = -1;
    this.fragmentHeaderOffset = -1;
    this.fragmentOffset = 0;
    this.moreFragments = false;
    this.fragmentId = 0;
    this.isFragment = false;
    this.atomicFragment = false;
    this.problemOffset = -1;
    this.pointer = -1;
    this.icmpCode = -1;
    this.optionType = -1;
    this.optionAction = -1;
    return this;
  }
}

function fail(r: IPv6Walk, status: number, at: number, icmpCode: number): number {
  r.status = status;
  r.problemOffset = at;
  r.pointer = at - r.ipOffset;
  r.icmpCode = icmpCode;
  return status;
}

/**
 * Walk a whole IPv6 datagram at `off` (`len` bytes available). Returns `r.status`.
 * On OK, `r.protocol` and `r.offset` name the upper layer (or the fragment data).
 */
export function walkIPv6(buf: Uint8Array, off: number, len: number, r: IPv6Walk): number {
  r.clear();
  r.ipOffset = off;
  if (off < 0 || len < IPV6_HEADER_LENGTH || off + len > buf.length || buf[off]! >>> 4 !== IPV6_VERSION) {
    return fail(r, IPV6_WALK_BAD_HEADER, off, -1);
  }
  const plen = (buf[off + 4]! << 8) | buf[off + 5]!;
  if (plen > len - IPV6_HEADER_LENGTH) return fail(r, IPV6_WALK_BAD_HEADER, off + 4, -1);
  return walkIPv6Extensions(buf, off, off + IPV6_HEADER_LENGTH, off + IPV6_HEADER_LENGTH + plen, buf[off + 6]!, off + 6, r);
}

/**
 * Walk an extension-header chain that starts at `start` with Next Header value `nextHeader`
 * (named by the byte at `nextHeaderFieldOffset`), within [start, end). `ipOff` is the IPv6 fixed
 * header's offset (pointers are relative to it; a Hop-by-Hop header is allowed only at ipOff + 40;
 * the destination address is read from it for the "unless multicast" rule).
 * Usable after reassembly to walk the reassembled datagram's chain. Returns `r.status`.
 */
export function walkIPv6Extensions(
  buf: Uint8Array,
  ipOff: number,
  start: number,
  end: number,
  nextHeader: number,
  nextHeaderFieldOffset: number,
  r: IPv6Walk,
): number {
  r.clear();
  r.ipOffset = ipOff;
  if (end > buf.length) end = buf.length;
  r.end = end;
  const dstMulticast = ipOff >= 0 && ipOff + IPV6_HEADER_LENGTH <= buf.length && buf[ipOff + 24] === 0xff;
  let nh = nextHeader;
  let nhField = nextHeaderFieldOffset;
  let p = start;
  if (p < 0 || p > end) return fail(r, IPV6_WALK_TRUNCATED, nhField, -1);
  for (;;) {
    switch (nh) {
      case IPV6_NEXT_HEADER_HOP_BY_HOP:
      case IPV6_NEXT_HEADER_DESTINATION_OPTIONS: {
        const hbh = nh === IPV6_NEXT_HEADER_HOP_BY_HOP;
        if (hbh && p !== ipOff + IPV6_HEADER_LENGTH) {
          // RFC 8200 4.1: only right after the fixed header; otherwise "unrecognized Next Header".
          return fail(r, IPV6_WALK_HOP_BY_HOP_NOT_FIRST, nhField, 1);
        }
        if (++r.headerCount > r.maxHeaders) return fail(r, IPV6_WALK_TOO_MANY_HEADERS, nhField, -1);
        if (p + 8 > end) return fail(r, IPV6_WALK_TRUNCATED, nhField, -1);
        const hl = (buf[p + 1]! + 1) << 3;
        if (p + hl > end) return fail(r, IPV6_WALK_TRUNCATED, p + 1, -1);
        if (hbh) r.hopByHopOffset = p;
        else r.destinationOptionsOffset = p;
        const it = r.options.reset(buf, p + 2, p + hl);
        while (it.next()) {
          const t = it.type;
          if (t === IPV6_OPTION_PAD1 || t === IPV6_OPTION_PADN) continue;
          if (hbh && t === IPV6_OPTION_ROUTER_ALERT) {
            if (it.dataLength !== 2) return fail(r, IPV6_WALK_BAD_OPTION, it.optionOffset, -1);
            r.routerAlert = (buf[it.dataOffset]! << 8) | buf[it.dataOffset + 1]!;
            continue;
          }
          const action = (t >>> 6) & 3;
          if (action === IPV6_OPTION_ACTION_SKIP) continue;
          r.optionType = t;
          r.optionAction = action;
          const code =
            action === IPV6_OPTION_ACTION_DISCARD ||
            (action === IPV6_OPTION_ACTION_DISCARD_ICMP_UNLESS_MULTICAST && dstMulticast)
              ? -1
              : 2;
          return fail(r, IPV6_WALK_UNKNOWN_OPTION, it.optionOffset, code);
        }
        if (it.status !== IPV6_OPTIONS_END) {
          // The option at optionOffset claims more bytes than its header has.
          return fail(r, IPV6_WALK_BAD_OPTION, it.optionOffset, -1);
        }
        nhField = p;
        nh = buf[p]!;
        p += hl;
        continue;
      }
      case IPV6_NEXT_HEADER_ROUTING: {
        if (++r.headerCount > r.maxHeaders) return fail(r, IPV6_WALK_TOO_MANY_HEADERS, nhField, -1);
        if (p + 8 > end) return fail(r, IPV6_WALK_TRUNCATED, nhField, -1);
        const hl = (buf[p + 1]! + 1) << 3;
        if (p + hl > end) return fail(r, IPV6_WALK_TRUNCATED, p + 1, -1);
        r.routingOffset = p;
        r.routingType = buf[p + 2]!;
        r.segmentsLeft = buf[p + 3]!;
        // RFC 8200 4.4: an unrecognised type with Segments Left 0 is ignored; otherwise the
        // packet is discarded with a Parameter Problem pointing at the Routing Type.
        if (r.segmentsLeft !== 0) return fail(r, IPV6_WALK_ROUTING, p + 2, 0);
        nhField = p;
        nh = buf[p]!;
        p += hl;
        continue;
      }
      case IPV6_NEXT_HEADER_FRAGMENT: {
        if (++r.headerCount > r.maxHeaders) return fail(r, IPV6_WALK_TOO_MANY_HEADERS, nhField, -1);
        if (p + IPV6_FRAGMENT_HEADER_LENGTH > end) return fail(r, IPV6_WALK_TRUNCATED, nhField, -1);
        const w = (buf[p + 2]! << 8) | buf[p + 3]!;
        r.fragmentHeaderOffset = p;
        r.fragmentOffset = w >>> 3;
        r.moreFragments = (w & 1) !== 0;
        r.fragmentId = ((buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!) >>> 0;
        const dataStart = p + IPV6_FRAGMENT_HEADER_LENGTH;
        if (r.fragmentOffset === 0 && !r.moreFragments) {
          r.atomicFragment = true;
          nhField = p;
          nh = buf[p]!;
          p = dataStart;
          continue;
        }
        r.isFragment = true;
        const dataLen = end - dataStart;
        if (r.moreFragments && (dataLen & 7) !== 0) {
          // RFC 8200 4.5: pointer at the Payload Length field.
          return fail(r, IPV6_WALK_BAD_FRAGMENT, ipOff + 4, 0);
        }
        if ((r.fragmentOffset << 3) + dataLen > IPV6_MAX_PAYLOAD) {
          return fail(r, IPV6_WALK_BAD_FRAGMENT, p + 2, 0);
        }
        if (r.fragmentOffset === 0 && !chainComplete(buf, dataStart, end, buf[p]!, r.maxHeaders - r.headerCount)) {
          // RFC 8200 4.5 / RFC 7112: pointer 0.
          return fail(r, IPV6_WALK_INCOMPLETE_CHAIN, ipOff, 3);
        }
        r.protocol = buf[p]!;
        r.offset = dataStart;
        r.nextHeaderFieldOffset = p;
        return IPV6_WALK_OK;
      }
      default:
        // Upper layer (or 59, no next header: the rest is ignored).
        r.protocol = nh;
        r.offset = p;
        r.nextHeaderFieldOffset = nhField;
        return IPV6_WALK_OK;
    }
  }
}

/**
 * Within a first fragment: do the remaining extension headers and the start of the upper-layer
 * header fit in [p, end)? Skips headers by their length only (their options are processed after
 * reassembly). Minimum upper-layer header sizes: TCP 20, UDP 8, ICMPv6 8, others 1.
 */
function chainComplete(buf: Uint8Array, p: number, end: number, nh: number, budget: number): boolean {
  for (let n = 0; ; n++) {
    switch (nh) {
      case IPV6_NEXT_HEADER_HOP_BY_HOP:
      case IPV6_NEXT_HEADER_DESTINATION_OPTIONS:
      case IPV6_NEXT_HEADER_ROUTING: {
        if (n >= budget || p + 8 > end) return false;
        const hl = (buf[p + 1]! + 1) << 3;
        if (p + hl > end) return false;
        nh = buf[p]!;
        p += hl;
        continue;
      }
      case IPV6_NEXT_HEADER_FRAGMENT:
        // A second fragment header inside a fragment: let reassembly deal with it.
        return p + IPV6_FRAGMENT_HEADER_LENGTH <= end;
      case IPV6_NEXT_HEADER_NONE:
        return true;
      case IPV6_NEXT_HEADER_TCP:
        return p + 20 <= end;
      case IPV6_NEXT_HEADER_UDP:
      case IPV6_NEXT_HEADER_ICMPV6:
        return p + 8 <= end;
      default:
        return p + 1 <= end;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Encoders

export interface IPv6Fields {
  trafficClass?: number;
  flowLabel?: number;
  /** Default: 0 for encodeIPv6; extensions + payload for buildIPv6. */
  payloadLength?: number;
  nextHeader: number;
  hopLimit: number;
  source: Uint8Array;
  destination: Uint8Array;
}

/** Write a fixed IPv6 header at `off`; returns 40. */
export function encodeIPv6(buf: Uint8Array, off: number, f: IPv6Fields): number {
  const tc = f.trafficClass ?? 0;
  const fl = f.flowLabel ?? 0;
  const pl = f.payloadLength ?? 0;
  buf[off] = (IPV6_VERSION << 4) | ((tc >>> 4) & 0x0f);
  buf[off + 1] = ((tc & 0x0f) << 4) | ((fl >>> 16) & 0x0f);
  buf[off + 2] = fl >>> 8;
  buf[off + 3] = fl;
  buf[off + 4] = pl >>> 8;
  buf[off + 5] = pl;
  buf[off + 6] = f.nextHeader;
  buf[off + 7] = f.hopLimit;
  buf.set(f.source.subarray(0, 16), off + 8);
  buf.set(f.destination.subarray(0, 16), off + 24);
  return IPV6_HEADER_LENGTH;
}

/** One option in a Hop-by-Hop or Destination Options header. Pad1 is `{ type: 0 }`. */
export interface IPv6OptionFields {
  type: number;
  data?: Uint8Array;
}

export interface IPv6OptionsHeaderFields {
  nextHeader: number;
  options: IPv6OptionFields[];
}

export interface IPv6RoutingFields {
  nextHeader: number;
  routingType: number;
  segmentsLeft: number;
  /** Type-specific data after the first four bytes; zero-padded to a multiple of 8 in all. */
  data?: Uint8Array;
}

export interface IPv6FragmentFields {
  nextHeader: number;
  /** In 8-octet units. */
  fragmentOffset: number;
  moreFragments: boolean;
  identification: number;
}

/** One extension header for `buildIPv6` / `encodeIPv6Extensions`; next headers are chained for you. */
export type IPv6Extension =
  | { kind: 'hopByHop'; options: IPv6OptionFields[] }
  | { kind: 'destinationOptions'; options: IPv6OptionFields[] }
  | { kind: 'routing'; routingType: number; segmentsLeft: number; data?: Uint8Array }
  | { kind: 'fragment'; fragmentOffset: number; moreFragments: boolean; identification: number };

function optionsLength(options: IPv6OptionFields[]): number {
  let n = 2;
  for (const o of options) n += o.type === IPV6_OPTION_PAD1 ? 1 : 2 + (o.data?.length ?? 0);
  return (n + 7) & ~7;
}

/** Bytes an extension header takes (padding included). */
export function ipv6ExtensionLength(e: IPv6Extension): number {
  switch (e.kind) {
    case 'hopByHop':
    case 'destinationOptions':
      return optionsLength(e.options);
    case 'routing':
      return (4 + (e.data?.length ?? 0) + 7) & ~7;
    case 'fragment':
      return IPV6_FRAGMENT_HEADER_LENGTH;
  }
}

/** The Next Header value that names an extension header. */
export function ipv6ExtensionType(e: IPv6Extension): number {
  switch (e.kind) {
    case 'hopByHop':
      return IPV6_NEXT_HEADER_HOP_BY_HOP;
    case 'destinationOptions':
      return IPV6_NEXT_HEADER_DESTINATION_OPTIONS;
    case 'routing':
      return IPV6_NEXT_HEADER_ROUTING;
    case 'fragment':
      return IPV6_NEXT_HEADER_FRAGMENT;
  }
}

/**
 * Write a Hop-by-Hop or Destination Options header; the options are padded with Pad1 or PadN to
 * a multiple of 8 bytes. Returns its length.
 */
export function encodeIPv6Options(buf: Uint8Array, off: number, f: IPv6OptionsHeaderFields): number {
  const total = optionsLength(f.options);
  if (total > IPV6_MAX_EXTENSION_HEADER_LENGTH) {
    throw new TunstackError('EINVAL', `IPv6 options header of ${total} bytes exceeds ${IPV6_MAX_EXTENSION_HEADER_LENGTH}`);
  }
  buf[off] = f.nextHeader;
  buf[off + 1] = (total >>> 3) - 1;
  let p = off + 2;
  for (const o of f.options) {
    buf[p++] = o.type;
    if (o.type === IPV6_OPTION_PAD1) continue;
    const d = o.data ?? new Uint8Array(0);
    if (d.length > 255) throw new TunstackError('EINVAL', `IPv6 option data of ${d.length} bytes exceeds 255`);
    buf[p++] = d.length;
    buf.set(d, p);
    p += d.length;
  }
  const pad = off + total - p;
  if (pad === 1) {
    buf[p] = IPV6_OPTION_PAD1;
  } else if (pad > 1) {
    buf[p] = IPV6_OPTION_PADN;
    buf[p + 1] = pad - 2;
    buf.fill(0, p + 2, off + total);
  }
  return total;
}

/** A Hop-by-Hop Options header (see encodeIPv6Options). */
export const encodeIPv6HopByHop = encodeIPv6Options;
/** A Destination Options header (see encodeIPv6Options). */
export const encodeIPv6DestinationOptions = encodeIPv6Options;

/** Write a Routing header; returns its length (a multiple of 8). */
export function encodeIPv6Routing(buf: Uint8Array, off: number, f: IPv6RoutingFields): number {
  const d = f.data ?? new Uint8Array(0);
  const total = (4 + d.length + 7) & ~7;
  if (total > IPV6_MAX_EXTENSION_HEADER_LENGTH) {
    throw new TunstackError('EINVAL', `IPv6 routing header of ${total} bytes exceeds ${IPV6_MAX_EXTENSION_HEADER_LENGTH}`);
  }
  buf[off] = f.nextHeader;
  buf[off + 1] = (total >>> 3) - 1;
  buf[off + 2] = f.routingType;
  buf[off + 3] = f.segmentsLeft;
  buf.set(d, off + 4);
  buf.fill(0, off + 4 + d.length, off + total);
  return total;
}

/** Write a Fragment header; returns 8. */
export function encodeIPv6Fragment(buf: Uint8Array, off: number, f: IPv6FragmentFields): number {
  const w = ((f.fragmentOffset & 0x1fff) << 3) | (f.moreFragments ? 1 : 0);
  buf[off] = f.nextHeader;
  buf[off + 1] = 0;
  buf[off + 2] = w >>> 8;
  buf[off + 3] = w;
  const id = f.identification;
  buf[off + 4] = id >>> 24;
  buf[off + 5] = id >>> 16;
  buf[off + 6] = id >>> 8;
  buf[off + 7] = id;
  return IPV6_FRAGMENT_HEADER_LENGTH;
}

/** Total bytes of a list of extension headers. */
export function ipv6ExtensionsLength(exts: readonly IPv6Extension[]): number {
  let n = 0;
  for (const e of exts) n += ipv6ExtensionLength(e);
  return n;
}

/**
 * Write a chain of extension headers, each naming the next, the last naming `upperProtocol`.
 * Returns the bytes written.
 */
export function encodeIPv6Extensions(
  buf: Uint8Array,
  off: number,
  exts: readonly IPv6Extension[],
  upperProtocol: number,
): number {
  let p = off;
  for (let i = 0; i < exts.length; i++) {
    const e = exts[i]!;
    const next = i + 1 < exts.length ? ipv6ExtensionType(exts[i + 1]!) : upperProtocol;
    switch (e.kind) {
      case 'hopByHop':
      case 'destinationOptions':
        p += encodeIPv6Options(buf, p, { nextHeader: next, options: e.options });
        break;
      case 'routing':
        p += encodeIPv6Routing(buf, p, { nextHeader: next, routingType: e.routingType, segmentsLeft: e.segmentsLeft, ...(e.data ? { data: e.data } : {}) });
        break;
      case 'fragment':
        p += encodeIPv6Fragment(buf, p, { nextHeader: next, fragmentOffset: e.fragmentOffset, moreFragments: e.moreFragments, identification: e.identification });
        break;
    }
  }
  return p - off;
}

export interface IPv6BuildFields extends IPv6Fields {
  /** Extension headers between the fixed header and the payload; `nextHeader` names the payload. */
  extensions?: readonly IPv6Extension[];
}

/**
 * A new datagram: fixed header, extension headers (chained), payload. Payload length defaults to
 * the extension headers plus the payload.
 */
export function buildIPv6(f: IPv6BuildFields, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const exts = f.extensions ?? [];
  const extLen = ipv6ExtensionsLength(exts);
  const out = new Uint8Array(IPV6_HEADER_LENGTH + extLen + payload.length);
  encodeIPv6(out, 0, {
    ...f,
    nextHeader: exts.length > 0 ? ipv6ExtensionType(exts[0]!) : f.nextHeader,
    payloadLength: f.payloadLength ?? extLen + payload.length,
  });
  encodeIPv6Extensions(out, IPV6_HEADER_LENGTH, exts, f.nextHeader);
  out.set(payload, IPV6_HEADER_LENGTH + extLen);
  return out;
}
