/**
 * IPv6 (RFC 8200): constants, the fixed header view and its encoder. View conventions as in
 * ethernet.ts. Extension-header views, the option (TLV) iterator, extension encoders and
 * `buildIPv6` are in ipv6-extensions.ts; the extension-header chain walker in ipv6-walk.ts.
 */


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
