/**
 * UDP header (RFC 768) with IPv4 and IPv6 pseudo-header checksums (RFC 768, RFC 8200 8.1).
 * View conventions as in ethernet.ts. The view's `len` is the IP payload length; the UDP length
 * field must fit in it, and bytes after `length` are ignored.
 *
 * Checksum rules: a computed checksum of 0 is sent as 0xffff. On receive over IPv4 a stored 0
 * means "no checksum" (accepted); over IPv6 a stored 0 is invalid.
 */
import { pseudoHeaderSumV4, pseudoHeaderSumV6, sum } from './checksum.js';
import { IP_PROTO_UDP } from './ipv4.js';

export const UDP_HEADER_LENGTH = 8;

export class UdpHeader {
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

  /** len >= 8 and 8 <= length field <= len. */
  isValid(): boolean {
    if (this.off < 0 || this.len < UDP_HEADER_LENGTH || this.off + this.len > this.buf.length) return false;
    const l = this.length;
    return l >= UDP_HEADER_LENGTH && l <= this.len;
  }

  get srcPort(): number {
    return (this.buf[this.off]! << 8) | this.buf[this.off + 1]!;
  }

  set srcPort(v: number) {
    this.buf[this.off] = v >>> 8;
    this.buf[this.off + 1] = v;
  }

  get dstPort(): number {
    return (this.buf[this.off + 2]! << 8) | this.buf[this.off + 3]!;
  }

  set dstPort(v: number) {
    this.buf[this.off + 2] = v >>> 8;
    this.buf[this.off + 3] = v;
  }

  /** The length field (header + data). */
  get length(): number {
    return (this.buf[this.off + 4]! << 8) | this.buf[this.off + 5]!;
  }

  set length(v: number) {
    this.buf[this.off + 4] = v >>> 8;
    this.buf[this.off + 5] = v;
  }

  get checksum(): number {
    return (this.buf[this.off + 6]! << 8) | this.buf[this.off + 7]!;
  }

  set checksum(v: number) {
    this.buf[this.off + 6] = v >>> 8;
    this.buf[this.off + 7] = v;
  }

  get payloadOffset(): number {
    return this.off + UDP_HEADER_LENGTH;
  }

  get payloadLength(): number {
    return this.length - UDP_HEADER_LENGTH;
  }

  /** Data bytes up to the length field. */
  get payload(): Uint8Array {
    return this.buf.subarray(this.off + UDP_HEADER_LENGTH, this.off + this.length);
  }

  /**
   * Checksum over `length` bytes plus the pseudo-header partial sum `pseudoSum`, as if the field
   * were zero, with the 0 -> 0xffff rule applied (the value to store).
   */
  computeChecksum(pseudoSum: number): number {
    return udpChecksum(this.buf, this.off, this.length, pseudoSum);
  }

  /** `computeChecksum` with an IPv4 pseudo-header from addresses at the given offsets. */
  computeChecksumV4(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): number {
    return this.computeChecksum(pseudoHeaderSumV4(src, srcOff, dst, dstOff, IP_PROTO_UDP, this.length));
  }

  /** `computeChecksum` with an IPv6 pseudo-header from addresses at the given offsets. */
  computeChecksumV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): number {
    return this.computeChecksum(pseudoHeaderSumV6(src, srcOff, dst, dstOff, IP_PROTO_UDP, this.length));
  }

  setChecksumV4(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
    this.checksum = this.computeChecksumV4(src, srcOff, dst, dstOff);
  }

  setChecksumV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
    this.checksum = this.computeChecksumV6(src, srcOff, dst, dstOff);
  }

  /** True when `length` bytes plus the pseudo-header sum to 0xffff (a stored 0 is not special here). */
  checksumValid(pseudoSum: number): boolean {
    return sum(this.buf, this.off, this.length, pseudoSum) === 0xffff;
  }

  /** IPv4 receive rule: a stored 0 means no checksum and is accepted. */
  checksumValidV4(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): boolean {
    if (this.checksum === 0) return true;
    return this.checksumValid(pseudoHeaderSumV4(src, srcOff, dst, dstOff, IP_PROTO_UDP, this.length));
  }

  /** IPv6 receive rule: a stored 0 is invalid (RFC 8200 8.1). */
  checksumValidV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): boolean {
    if (this.checksum === 0) return false;
    return this.checksumValid(pseudoHeaderSumV6(src, srcOff, dst, dstOff, IP_PROTO_UDP, this.length));
  }
}

/**
 * The UDP checksum value to store for `len` bytes at `off` (header included, its checksum field
 * treated as zero) plus a pseudo-header partial sum; 0 becomes 0xffff.
 */
export function udpChecksum(buf: Uint8Array, off: number, len: number, pseudoSum: number): number {
  const s = sum(buf, off + 8, len - 8, sum(buf, off, 6, pseudoSum));
  const c = ~s & 0xffff;
  return c === 0 ? 0xffff : c;
}

/** Pseudo-header addresses; 4-byte addresses select IPv4, 16-byte IPv6. */
export interface PseudoHeaderAddresses {
  src: Uint8Array;
  dst: Uint8Array;
}

/** Partial pseudo-header sum for addresses of either family. */
export function pseudoHeaderSum(p: PseudoHeaderAddresses, protocol: number, length: number): number {
  return p.src.length === 16
    ? pseudoHeaderSumV6(p.src, 0, p.dst, 0, protocol, length)
    : pseudoHeaderSumV4(p.src, 0, p.dst, 0, protocol, length);
}

export interface UdpFields {
  srcPort: number;
  dstPort: number;
  /** Length field; default 8 + payloadLength. */
  length?: number;
  /** Bytes of data already at off + 8 (encodeUdp). Default 0. */
  payloadLength?: number;
  /** Compute the checksum with this pseudo-header. Without it the field is `checksum ?? 0`. */
  pseudoHeader?: PseudoHeaderAddresses;
  checksum?: number;
}

/**
 * Write a UDP header at `off`; returns 8. With `pseudoHeader`, the checksum covers the header and
 * the `length - 8` data bytes already in `buf` after it.
 */
export function encodeUdp(buf: Uint8Array, off: number, f: UdpFields): number {
  const l = f.length ?? UDP_HEADER_LENGTH + (f.payloadLength ?? 0);
  buf[off] = f.srcPort >>> 8;
  buf[off + 1] = f.srcPort;
  buf[off + 2] = f.dstPort >>> 8;
  buf[off + 3] = f.dstPort;
  buf[off + 4] = l >>> 8;
  buf[off + 5] = l;
  let c = f.checksum ?? 0;
  if (f.pseudoHeader) {
    // A deliberately wrong length field must not make the checksum read past the buffer.
    const covered = Math.max(UDP_HEADER_LENGTH, Math.min(l, buf.length - off));
    c = udpChecksum(buf, off, covered, pseudoHeaderSum(f.pseudoHeader, IP_PROTO_UDP, l));
  }
  buf[off + 6] = c >>> 8;
  buf[off + 7] = c;
  return UDP_HEADER_LENGTH;
}

/** A new datagram: header + payload, length from the payload. */
export function buildUdp(f: UdpFields, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(UDP_HEADER_LENGTH + payload.length);
  out.set(payload, UDP_HEADER_LENGTH);
  encodeUdp(out, 0, { ...f, payloadLength: payload.length, length: f.length ?? UDP_HEADER_LENGTH + payload.length });
  return out;
}
