/**
 * IPv6 extension headers (RFC 8200 4): views over Hop-by-Hop/Destination Options, Routing and
 * Fragment headers, an option (TLV) iterator for the options headers, their encoders, and
 * `buildIPv6` for whole datagrams with a chain of them. View conventions as in ethernet.ts.
 */
import { TunstackError } from '../core/errors.js';
import { IPV6_HEADER_LENGTH, encodeIPv6, type IPv6Fields } from './ipv6.js';
import {
  IPV6_FRAGMENT_HEADER_LENGTH,
  IPV6_MAX_EXTENSION_HEADER_LENGTH,
  IPV6_NEXT_HEADER_DESTINATION_OPTIONS,
  IPV6_NEXT_HEADER_FRAGMENT,
  IPV6_NEXT_HEADER_HOP_BY_HOP,
  IPV6_NEXT_HEADER_ROUTING,
  IPV6_OPTION_PAD1,
  IPV6_OPTION_PADN,
} from './ipv6.js';

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
// Encoders

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
