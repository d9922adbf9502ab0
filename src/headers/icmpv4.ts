/**
 * ICMP for IPv4 (RFC 792, RFC 1191 next-hop MTU, RFC 1812 error sizes). View conventions as in
 * ethernet.ts. The view covers the whole ICMP message (the checksum covers all of it), so `len`
 * should be the IP payload length.
 */
import { TunstackError } from '../core/errors.js';
import { sum } from './checksum.js';
import { IPV4_MIN_HEADER, IPV4_MIN_REASSEMBLY } from './ipv4.js';

export const ICMPV4_HEADER_LENGTH = 8;

export const ICMPV4_ECHO_REPLY = 0;
export const ICMPV4_DEST_UNREACHABLE = 3;
export const ICMPV4_SOURCE_QUENCH = 4;
export const ICMPV4_REDIRECT = 5;
export const ICMPV4_ECHO_REQUEST = 8;
export const ICMPV4_ROUTER_ADVERTISEMENT = 9;
export const ICMPV4_ROUTER_SOLICITATION = 10;
export const ICMPV4_TIME_EXCEEDED = 11;
export const ICMPV4_PARAMETER_PROBLEM = 12;
export const ICMPV4_TIMESTAMP = 13;
export const ICMPV4_TIMESTAMP_REPLY = 14;

/** Destination unreachable codes. */
export const ICMPV4_NET_UNREACHABLE = 0;
export const ICMPV4_HOST_UNREACHABLE = 1;
export const ICMPV4_PROTOCOL_UNREACHABLE = 2;
export const ICMPV4_PORT_UNREACHABLE = 3;
export const ICMPV4_FRAG_NEEDED = 4;
export const ICMPV4_SOURCE_ROUTE_FAILED = 5;
export const ICMPV4_NET_UNKNOWN = 6;
export const ICMPV4_HOST_UNKNOWN = 7;
export const ICMPV4_NET_PROHIBITED = 9;
export const ICMPV4_HOST_PROHIBITED = 10;
export const ICMPV4_ADMIN_PROHIBITED = 13;

/** Time exceeded codes. */
export const ICMPV4_TTL_EXCEEDED = 0;
export const ICMPV4_REASSEMBLY_TIMEOUT = 1;

/** Parameter problem codes. */
export const ICMPV4_PARAM_POINTER = 0;
export const ICMPV4_PARAM_MISSING_OPTION = 1;
export const ICMPV4_PARAM_BAD_LENGTH = 2;

/** RFC 1812 4.3.2.3: an ICMP error datagram (IP header included) should not exceed 576 bytes. */
export const ICMPV4_ERROR_MAX_DATAGRAM = IPV4_MIN_REASSEMBLY;

/** True for the types that carry (part of) an offending datagram. */
export function isIcmpV4Error(type: number): boolean {
  return (
    type === ICMPV4_DEST_UNREACHABLE ||
    type === ICMPV4_SOURCE_QUENCH ||
    type === ICMPV4_REDIRECT ||
    type === ICMPV4_TIME_EXCEEDED ||
    type === ICMPV4_PARAMETER_PROBLEM
  );
}

export class IcmpV4Header {
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

  /** At least the 8-byte header. Does not check the checksum or the type. */
  isValid(): boolean {
    return this.off >= 0 && this.len >= ICMPV4_HEADER_LENGTH && this.off + this.len <= this.buf.length;
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
    return (this.buf[this.off + 2]! << 8) | this.buf[this.off + 3]!;
  }

  set checksum(v: number) {
    this.buf[this.off + 2] = v >>> 8;
    this.buf[this.off + 3] = v;
  }

  get isError(): boolean {
    return isIcmpV4Error(this.buf[this.off]!);
  }

  get isEcho(): boolean {
    const t = this.buf[this.off]!;
    return t === ICMPV4_ECHO_REQUEST || t === ICMPV4_ECHO_REPLY;
  }

  /** Bytes 4..7 ("rest of header") as an unsigned 32-bit number. */
  get rest(): number {
    const b = this.buf;
    const o = this.off + 4;
    return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }

  set rest(v: number) {
    const o = this.off + 4;
    this.buf[o] = v >>> 24;
    this.buf[o + 1] = v >>> 16;
    this.buf[o + 2] = v >>> 8;
    this.buf[o + 3] = v;
  }

  /** Echo identifier. */
  get ident(): number {
    return (this.buf[this.off + 4]! << 8) | this.buf[this.off + 5]!;
  }

  set ident(v: number) {
    this.buf[this.off + 4] = v >>> 8;
    this.buf[this.off + 5] = v;
  }

  /** Echo sequence number. */
  get sequence(): number {
    return (this.buf[this.off + 6]! << 8) | this.buf[this.off + 7]!;
  }

  set sequence(v: number) {
    this.buf[this.off + 6] = v >>> 8;
    this.buf[this.off + 7] = v;
  }

  /** Next-hop MTU of a "fragmentation needed" message (RFC 1191); 0 from old routers. */
  get mtu(): number {
    return (this.buf[this.off + 6]! << 8) | this.buf[this.off + 7]!;
  }

  set mtu(v: number) {
    this.buf[this.off + 6] = v >>> 8;
    this.buf[this.off + 7] = v;
  }

  /** Parameter problem pointer: offset of the offending octet in the original datagram. */
  get pointer(): number {
    return this.buf[this.off + 4]!;
  }

  set pointer(v: number) {
    this.buf[this.off + 4] = v;
  }

  /** Redirect gateway address (4 bytes). */
  get gateway(): Uint8Array {
    return this.buf.subarray(this.off + 4, this.off + 8);
  }

  /** Offset of the data (echo data, or the original datagram of an error) in `buf`. */
  get dataOffset(): number {
    return this.off + ICMPV4_HEADER_LENGTH;
  }

  get dataLength(): number {
    return this.len - ICMPV4_HEADER_LENGTH;
  }

  /** The bytes after the 8-byte header: echo data, or the embedded original datagram. */
  get data(): Uint8Array {
    return this.buf.subarray(this.off + ICMPV4_HEADER_LENGTH, this.off + this.len);
  }

  /** The embedded original datagram of an error message (IP header + leading payload bytes). */
  get original(): Uint8Array {
    return this.data;
  }

  /** The checksum over the whole message, as if the field were zero. */
  computeChecksum(): number {
    const s = sum(this.buf, this.off + 4, this.len - 4, sum(this.buf, this.off, 2));
    return ~s & 0xffff;
  }

  setChecksum(): void {
    this.checksum = this.computeChecksum();
  }

  /** True when the whole message sums to 0xffff. */
  checksumValid(): boolean {
    return sum(this.buf, this.off, this.len) === 0xffff;
  }
}

export interface IcmpV4Fields {
  type: number;
  code: number;
  /** Bytes 4..7 as a u32 (ident/sequence, pointer, mtu, gateway). Default 0. */
  rest?: number;
  /** Copied after the header. */
  data?: Uint8Array;
  /** Without `data`: this many bytes already at off + 8 are covered by the checksum. */
  dataLength?: number;
}

/**
 * Write an ICMP message at `off` (header, `data` if given) and its checksum over header + data.
 * Returns the message length (8 + data length).
 */
export function encodeIcmpV4(buf: Uint8Array, off: number, f: IcmpV4Fields): number {
  const dl = f.data ? f.data.length : (f.dataLength ?? 0);
  const rest = f.rest ?? 0;
  buf[off] = f.type;
  buf[off + 1] = f.code;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = rest >>> 24;
  buf[off + 5] = rest >>> 16;
  buf[off + 6] = rest >>> 8;
  buf[off + 7] = rest;
  if (f.data) buf.set(f.data, off + ICMPV4_HEADER_LENGTH);
  const c = ~sum(buf, off, ICMPV4_HEADER_LENGTH + dl) & 0xffff;
  buf[off + 2] = c >>> 8;
  buf[off + 3] = c;
  return ICMPV4_HEADER_LENGTH + dl;
}

/** A new ICMP message. */
export function buildIcmpV4(f: IcmpV4Fields, data: Uint8Array = f.data ?? new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(ICMPV4_HEADER_LENGTH + data.length);
  encodeIcmpV4(out, 0, { type: f.type, code: f.code, rest: f.rest ?? 0, data });
  return out;
}

export interface IcmpV4EchoFields {
  /** Echo reply (type 0) instead of request (type 8). */
  reply?: boolean;
  ident: number;
  sequence: number;
  data?: Uint8Array;
  dataLength?: number;
}

function echoRest(f: IcmpV4EchoFields): number {
  return (((f.ident & 0xffff) << 16) | (f.sequence & 0xffff)) >>> 0;
}

/** Write an echo request/reply; returns the message length. */
export function encodeIcmpV4Echo(buf: Uint8Array, off: number, f: IcmpV4EchoFields): number {
  const type = f.reply ? ICMPV4_ECHO_REPLY : ICMPV4_ECHO_REQUEST;
  if (f.data) return encodeIcmpV4(buf, off, { type, code: 0, rest: echoRest(f), data: f.data });
  return encodeIcmpV4(buf, off, { type, code: 0, rest: echoRest(f), dataLength: f.dataLength ?? 0 });
}

export function buildIcmpV4Echo(f: IcmpV4EchoFields, data: Uint8Array = f.data ?? new Uint8Array(0)): Uint8Array {
  const type = f.reply ? ICMPV4_ECHO_REPLY : ICMPV4_ECHO_REQUEST;
  return buildIcmpV4({ type, code: 0, rest: echoRest(f) }, data);
}

export interface IcmpV4ErrorOptions {
  /**
   * Largest datagram the error may make, IP header included (default 576, RFC 1812 4.3.2.3).
   * The original is cut so that ipHeaderLength + 8 + embedded <= maxDatagram.
   */
  maxDatagram?: number;
  /** Length of the IP header that will carry the error (default 20). */
  ipHeaderLength?: number;
}

/** How many bytes of an original datagram of `originalLength` bytes an error message embeds. */
export function icmpV4ErrorEmbedLength(originalLength: number, opts: IcmpV4ErrorOptions = {}): number {
  const room = (opts.maxDatagram ?? ICMPV4_ERROR_MAX_DATAGRAM) - (opts.ipHeaderLength ?? IPV4_MIN_HEADER) - ICMPV4_HEADER_LENGTH;
  return Math.max(0, Math.min(originalLength, room));
}

export interface IcmpV4ErrorFields {
  type: number;
  code: number;
  /** Bytes 4..7 (pointer << 24, or the next-hop MTU, or a gateway). Default 0. */
  rest?: number;
}

/**
 * Write an error message embedding as much of `original` as the options allow; returns the
 * message length. `buf` must have room for it (see icmpV4ErrorEmbedLength).
 */
export function encodeIcmpV4Error(
  buf: Uint8Array,
  off: number,
  f: IcmpV4ErrorFields,
  original: Uint8Array,
  opts: IcmpV4ErrorOptions = {},
): number {
  const n = icmpV4ErrorEmbedLength(original.length, opts);
  if (off + ICMPV4_HEADER_LENGTH + n > buf.length) {
    throw new TunstackError('ENOBUFS', 'encodeIcmpV4Error: buffer too small');
  }
  return encodeIcmpV4(buf, off, { type: f.type, code: f.code, rest: f.rest ?? 0, data: original.subarray(0, n) });
}

/** A new error message embedding as much of `original` as the options allow. */
export function buildIcmpV4Error(f: IcmpV4ErrorFields, original: Uint8Array, opts: IcmpV4ErrorOptions = {}): Uint8Array {
  const out = new Uint8Array(ICMPV4_HEADER_LENGTH + icmpV4ErrorEmbedLength(original.length, opts));
  encodeIcmpV4Error(out, 0, f, original, opts);
  return out;
}

/** Destination unreachable; `mtu` is the next-hop MTU for code 4 (fragmentation needed). */
export function buildIcmpV4DestUnreachable(
  code: number,
  original: Uint8Array,
  opts: IcmpV4ErrorOptions & { mtu?: number } = {},
): Uint8Array {
  return buildIcmpV4Error({ type: ICMPV4_DEST_UNREACHABLE, code, rest: (opts.mtu ?? 0) & 0xffff }, original, opts);
}

/** Time exceeded: code 0 TTL exceeded in transit, 1 fragment reassembly time exceeded. */
export function buildIcmpV4TimeExceeded(code: number, original: Uint8Array, opts: IcmpV4ErrorOptions = {}): Uint8Array {
  return buildIcmpV4Error({ type: ICMPV4_TIME_EXCEEDED, code, rest: 0 }, original, opts);
}

/** Parameter problem with `pointer` = offset of the offending octet in the original. */
export function buildIcmpV4ParamProblem(
  pointer: number,
  original: Uint8Array,
  opts: IcmpV4ErrorOptions & { code?: number } = {},
): Uint8Array {
  return buildIcmpV4Error(
    { type: ICMPV4_PARAMETER_PROBLEM, code: opts.code ?? ICMPV4_PARAM_POINTER, rest: ((pointer & 0xff) << 24) >>> 0 },
    original,
    opts,
  );
}
