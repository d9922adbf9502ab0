/**
 * TCP header (RFC 9293) and options: MSS, window scale, SACK-permitted, SACK (RFC 2018),
 * timestamps (RFC 7323). View conventions as in ethernet.ts. The view's `len` is the IP payload
 * length: TCP has no length field, so the payload runs from the data offset to `len`.
 *
 * Options are parsed into a reusable `TcpOptions` (no allocation per packet). A malformed list
 * (length byte missing, 0 or 1, running past the header, a known kind with the wrong length) is
 * rejected; every step advances at least one byte, so parsing always ends.
 */
import { fold, pseudoHeaderSumV4, pseudoHeaderSumV6, sum } from './checksum.js';
import { IP_PROTO_TCP } from './ipv4.js';
import { pseudoHeaderSum, type PseudoHeaderAddresses } from './udp.js';

export const TCP_MIN_HEADER = 20;
export const TCP_MAX_HEADER = 60;
export const TCP_MAX_OPTIONS = 40;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const TCP_OPT_EOL = 0;
export const TCP_OPT_NOP = 1;
export const TCP_OPT_MSS = 2;
export const TCP_OPT_WSCALE = 3;
export const TCP_OPT_SACK_PERMITTED = 4;
export const TCP_OPT_SACK = 5;
export const TCP_OPT_TIMESTAMP = 8;

export const TCP_OPTLEN_MSS = 4;
export const TCP_OPTLEN_WSCALE = 3;
export const TCP_OPTLEN_SACK_PERMITTED = 2;
export const TCP_OPTLEN_TIMESTAMP = 10;
/** Most SACK blocks an option can hold (2 + 4 * 8 = 34 bytes). */
export const TCP_MAX_SACK_BLOCKS = 4;
/** Largest window scale shift honoured (RFC 7323 2.3); larger values are clamped by receivers. */
export const TCP_MAX_WSCALE = 14;

export class TcpHeader {
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

  /** len >= 20, 5 <= data offset and header length <= len. Options are checked by parseOptions. */
  isValid(): boolean {
    if (this.off < 0 || this.len < TCP_MIN_HEADER || this.off + this.len > this.buf.length) return false;
    const hl = this.headerLength;
    return hl >= TCP_MIN_HEADER && hl <= this.len;
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

  /** Sequence number (unsigned 32-bit). */
  get seq(): number {
    return u32At(this.buf, this.off + 4);
  }

  set seq(v: number) {
    putU32(this.buf, this.off + 4, v);
  }

  /** Acknowledgment number (unsigned 32-bit). */
  get ack(): number {
    return u32At(this.buf, this.off + 8);
  }

  set ack(v: number) {
    putU32(this.buf, this.off + 8, v);
  }

  /** Data offset in 32-bit words (5..15 when valid). */
  get dataOffset(): number {
    return this.buf[this.off + 12]! >>> 4;
  }

  set dataOffset(words: number) {
    this.buf[this.off + 12] = ((words & 0x0f) << 4) | (this.buf[this.off + 12]! & 0x0f);
  }

  /** Header length in bytes, options included. */
  get headerLength(): number {
    return (this.buf[this.off + 12]! >>> 4) << 2;
  }

  /** The 8 flag bits of byte 13 (TCP_FIN ... TCP_CWR). */
  get flags(): number {
    return this.buf[this.off + 13]!;
  }

  set flags(v: number) {
    this.buf[this.off + 13] = v;
  }

  /** The 4 reserved bits of byte 12 (bit 0 was the experimental NS flag of RFC 3540). */
  get reserved(): number {
    return this.buf[this.off + 12]! & 0x0f;
  }

  get fin(): boolean {
    return (this.buf[this.off + 13]! & TCP_FIN) !== 0;
  }

  get syn(): boolean {
    return (this.buf[this.off + 13]! & TCP_SYN) !== 0;
  }

  get rst(): boolean {
    return (this.buf[this.off + 13]! & TCP_RST) !== 0;
  }

  get psh(): boolean {
    return (this.buf[this.off + 13]! & TCP_PSH) !== 0;
  }

  get ackFlag(): boolean {
    return (this.buf[this.off + 13]! & TCP_ACK) !== 0;
  }

  get urg(): boolean {
    return (this.buf[this.off + 13]! & TCP_URG) !== 0;
  }

  get ece(): boolean {
    return (this.buf[this.off + 13]! & TCP_ECE) !== 0;
  }

  get cwr(): boolean {
    return (this.buf[this.off + 13]! & TCP_CWR) !== 0;
  }

  get window(): number {
    return (this.buf[this.off + 14]! << 8) | this.buf[this.off + 15]!;
  }

  set window(v: number) {
    this.buf[this.off + 14] = v >>> 8;
    this.buf[this.off + 15] = v;
  }

  get checksum(): number {
    return (this.buf[this.off + 16]! << 8) | this.buf[this.off + 17]!;
  }

  set checksum(v: number) {
    this.buf[this.off + 16] = v >>> 8;
    this.buf[this.off + 17] = v;
  }

  get urgentPointer(): number {
    return (this.buf[this.off + 18]! << 8) | this.buf[this.off + 19]!;
  }

  set urgentPointer(v: number) {
    this.buf[this.off + 18] = v >>> 8;
    this.buf[this.off + 19] = v;
  }

  get optionsOffset(): number {
    return this.off + TCP_MIN_HEADER;
  }

  get optionsLength(): number {
    return this.headerLength - TCP_MIN_HEADER;
  }

  get options(): Uint8Array {
    return this.buf.subarray(this.off + TCP_MIN_HEADER, this.off + this.headerLength);
  }

  /** Parse the options into `out` (cleared first); false when the list is malformed. */
  parseOptions(out: TcpOptions): boolean {
    return parseTcpOptions(this.buf, this.off + TCP_MIN_HEADER, this.headerLength - TCP_MIN_HEADER, out);
  }

  get payloadOffset(): number {
    return this.off + this.headerLength;
  }

  get payloadLength(): number {
    return this.len - this.headerLength;
  }

  get payload(): Uint8Array {
    return this.buf.subarray(this.off + this.headerLength, this.off + this.len);
  }

  /** Checksum over the `len` bytes (field treated as zero) plus a pseudo-header partial sum. */
  computeChecksum(pseudoSum: number): number {
    return tcpChecksum(this.buf, this.off, this.len, pseudoSum);
  }

  computeChecksumV4(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): number {
    return this.computeChecksum(pseudoHeaderSumV4(src, srcOff, dst, dstOff, IP_PROTO_TCP, this.len));
  }

  computeChecksumV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): number {
    return this.computeChecksum(pseudoHeaderSumV6(src, srcOff, dst, dstOff, IP_PROTO_TCP, this.len));
  }

  setChecksumV4(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
    this.checksum = this.computeChecksumV4(src, srcOff, dst, dstOff);
  }

  setChecksumV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
    this.checksum = this.computeChecksumV6(src, srcOff, dst, dstOff);
  }

  /** True when the segment plus the pseudo-header sum to 0xffff. */
  checksumValid(pseudoSum: number): boolean {
    return sum(this.buf, this.off, this.len, pseudoSum) === 0xffff;
  }

  checksumValidV4(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): boolean {
    return this.checksumValid(pseudoHeaderSumV4(src, srcOff, dst, dstOff, IP_PROTO_TCP, this.len));
  }

  checksumValidV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): boolean {
    return this.checksumValid(pseudoHeaderSumV6(src, srcOff, dst, dstOff, IP_PROTO_TCP, this.len));
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

/** The TCP checksum for `len` bytes at `off` (checksum field treated as zero) plus `pseudoSum`. */
export function tcpChecksum(buf: Uint8Array, off: number, len: number, pseudoSum: number): number {
  return ~sum(buf, off + 18, len - 18, sum(buf, off, 16, pseudoSum)) & 0xffff;
}

/**
 * What an option list says. Absent numeric options are -1; `sackBlocks` holds
 * [left0, right0, left1, right1, ...] for `sackCount` blocks. Reuse one per connection or per
 * receive path and pass it to parseTcpOptions / encodeTcpOptions.
 */
export class TcpOptions {
  /** Maximum segment size, or -1. */
  mss = -1;
  /** Window scale shift as received (not clamped), or -1. */
  windowScale = -1;
  sackPermitted = false;
  /** A timestamps option was present. */
  timestamp = false;
  tsVal = 0;
  tsEcr = 0;
  readonly sackBlocks = new Uint32Array(2 * TCP_MAX_SACK_BLOCKS);
  sackCount = 0;
  /** Options of unknown kinds skipped (by length). */
  unknownCount = 0;

  clear(): this {
    this.mss = -1;
    this.windowScale = -1;
    this.sackPermitted = false;
    this.timestamp = false;
    this.tsVal = 0;
    this.tsEcr = 0;
    this.sackCount = 0;
    this.unknownCount = 0;
    return this;
  }

  sackLeft(i: number): number {
    return this.sackBlocks[2 * i]!;
  }

  sackRight(i: number): number {
    return this.sackBlocks[2 * i + 1]!;
  }

  /** Append a SACK block (ignored once 4 are held); returns the new count. */
  addSack(left: number, right: number): number {
    if (this.sackCount < TCP_MAX_SACK_BLOCKS) {
      this.sackBlocks[2 * this.sackCount] = left;
      this.sackBlocks[2 * this.sackCount + 1] = right;
      this.sackCount++;
    }
    return this.sackCount;
  }
}

/**
 * Parse `len` option bytes at `off` into `out` (cleared first). Returns false for a malformed
 * list; `out` then holds whatever preceded the fault and must not be used. Bytes after EOL are
 * padding and ignored. A repeated option overwrites the earlier one.
 */
export function parseTcpOptions(buf: Uint8Array, off: number, len: number, out: TcpOptions): boolean {
  out.clear();
  if (off < 0 || len < 0 || off + len > buf.length) return false;
  const end = off + len;
  let p = off;
  while (p < end) {
    const kind = buf[p]!;
    if (kind === TCP_OPT_EOL) return true;
    if (kind === TCP_OPT_NOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) return false;
    const l = buf[p + 1]!;
    if (l < 2 || p + l > end) return false;
    switch (kind) {
      case TCP_OPT_MSS:
        if (l !== TCP_OPTLEN_MSS) return false;
        out.mss = (buf[p + 2]! << 8) | buf[p + 3]!;
        break;
      case TCP_OPT_WSCALE:
        if (l !== TCP_OPTLEN_WSCALE) return false;
        out.windowScale = buf[p + 2]!;
        break;
      case TCP_OPT_SACK_PERMITTED:
        if (l !== TCP_OPTLEN_SACK_PERMITTED) return false;
        out.sackPermitted = true;
        break;
      case TCP_OPT_TIMESTAMP:
        if (l !== TCP_OPTLEN_TIMESTAMP) return false;
        out.timestamp = true;
        out.tsVal = u32At(buf, p + 2);
        out.tsEcr = u32At(buf, p + 6);
        break;
      case TCP_OPT_SACK: {
        const n = (l - 2) >>> 3;
        if (n < 1 || n > TCP_MAX_SACK_BLOCKS || l !== 2 + 8 * n) return false;
        for (let i = 0; i < n; i++) {
          out.sackBlocks[2 * i] = u32At(buf, p + 2 + 8 * i);
          out.sackBlocks[2 * i + 1] = u32At(buf, p + 6 + 8 * i);
        }
        out.sackCount = n;
        break;
      }
      default:
        out.unknownCount++;
    }
    p += l;
  }
  return true;
}

/** What to put in an option list; TcpOptions fits this shape (absent = undefined or negative). */
export interface TcpOptionFields {
  mss?: number;
  windowScale?: number;
  sackPermitted?: boolean;
  timestamp?: boolean;
  tsVal?: number;
  tsEcr?: number;
  /** [left0, right0, left1, right1, ...]. */
  sackBlocks?: ArrayLike<number>;
  /** Blocks to write from sackBlocks; default sackBlocks.length / 2. */
  sackCount?: number;
}

function sackToWrite(o: TcpOptionFields, before: number): number {
  if (!o.sackBlocks) return 0;
  let n = Math.min(o.sackCount ?? o.sackBlocks.length >>> 1, o.sackBlocks.length >>> 1, TCP_MAX_SACK_BLOCKS);
  // As Linux does: send as many blocks as fit in the 40 bytes left by the other options.
  const room = TCP_MAX_OPTIONS - before - 4;
  if (room < 8) return 0;
  n = Math.min(n, room >>> 3);
  return Math.max(n, 0);
}

function fixedOptionsLength(o: TcpOptionFields): number {
  let n = 0;
  if (o.mss !== undefined && o.mss >= 0) n += 4;
  if (o.timestamp) n += 12;
  else if (o.sackPermitted) n += 4;
  if (o.windowScale !== undefined && o.windowScale >= 0) n += 4;
  return n;
}

/** Bytes encodeTcpOptions will write for these options (a multiple of 4, at most 40). */
export function tcpOptionsLength(o: TcpOptionFields): number {
  const n = fixedOptionsLength(o);
  const s = sackToWrite(o, n);
  return n + (s > 0 ? 4 + 8 * s : 0);
}

/**
 * Write options in Linux's order and layout, every piece 4-byte aligned:
 * MSS; SACK-permitted + timestamps as SACKOK,TS or NOP,NOP,TS (or NOP,NOP,SACKOK alone);
 * NOP,WS; NOP,NOP,SACK blocks (as many as fit). Returns the length written (multiple of 4).
 */
export function encodeTcpOptions(buf: Uint8Array, off: number, o: TcpOptionFields): number {
  let p = off;
  if (o.mss !== undefined && o.mss >= 0) {
    buf[p] = TCP_OPT_MSS;
    buf[p + 1] = TCP_OPTLEN_MSS;
    buf[p + 2] = o.mss >>> 8;
    buf[p + 3] = o.mss;
    p += 4;
  }
  if (o.timestamp) {
    if (o.sackPermitted) {
      buf[p] = TCP_OPT_SACK_PERMITTED;
      buf[p + 1] = TCP_OPTLEN_SACK_PERMITTED;
    } else {
      buf[p] = TCP_OPT_NOP;
      buf[p + 1] = TCP_OPT_NOP;
    }
    buf[p + 2] = TCP_OPT_TIMESTAMP;
    buf[p + 3] = TCP_OPTLEN_TIMESTAMP;
    putU32(buf, p + 4, o.tsVal ?? 0);
    putU32(buf, p + 8, o.tsEcr ?? 0);
    p += 12;
  } else if (o.sackPermitted) {
    buf[p] = TCP_OPT_NOP;
    buf[p + 1] = TCP_OPT_NOP;
    buf[p + 2] = TCP_OPT_SACK_PERMITTED;
    buf[p + 3] = TCP_OPTLEN_SACK_PERMITTED;
    p += 4;
  }
  if (o.windowScale !== undefined && o.windowScale >= 0) {
    buf[p] = TCP_OPT_NOP;
    buf[p + 1] = TCP_OPT_WSCALE;
    buf[p + 2] = TCP_OPTLEN_WSCALE;
    buf[p + 3] = o.windowScale;
    p += 4;
  }
  const n = sackToWrite(o, p - off);
  if (n > 0 && o.sackBlocks) p += writeSackOption(buf, p, o.sackBlocks, n);
  return p - off;
}

export interface TcpFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  /** Default 0. */
  ack?: number;
  /** TCP_* flag bits. */
  flags: number;
  window: number;
  urgentPointer?: number;
  /** Structured options (encodeTcpOptions). */
  options?: TcpOptionFields;
  /** Raw option bytes, used instead of `options`; padded with EOL to 4. At most 40 bytes. */
  rawOptions?: Uint8Array;
  /** Bytes of payload already after the header in `buf` (encodeTcp). Default 0. */
  payloadLength?: number;
  /** Compute the checksum with this pseudo-header. Without it the field is `checksum ?? 0`. */
  pseudoHeader?: PseudoHeaderAddresses;
  checksum?: number;
}

/** Header length (options included) encodeTcp will write for these fields. */
export function tcpHeaderLength(f: { options?: TcpOptionFields; rawOptions?: Uint8Array }): number {
  if (f.rawOptions) return TCP_MIN_HEADER + ((Math.min(f.rawOptions.length, TCP_MAX_OPTIONS) + 3) & ~3);
  return TCP_MIN_HEADER + (f.options ? tcpOptionsLength(f.options) : 0);
}

/**
 * The stack's one TCP header writer: the fixed 20 bytes at `off` with a zero checksum and urgent
 * pointer; `headerLength` (20 + options) goes into the data offset, options are written after
 * it by the caller. Used by encodeTcp and by every segment the TCP protocol sends.
 */
export function writeTcpHeader(
  buf: Uint8Array,
  off: number,
  srcPort: number,
  dstPort: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  headerLength: number,
): void {
  buf[off] = srcPort >>> 8;
  buf[off + 1] = srcPort;
  buf[off + 2] = dstPort >>> 8;
  buf[off + 3] = dstPort;
  buf[off + 4] = seq >>> 24;
  buf[off + 5] = seq >>> 16;
  buf[off + 6] = seq >>> 8;
  buf[off + 7] = seq;
  buf[off + 8] = ack >>> 24;
  buf[off + 9] = ack >>> 16;
  buf[off + 10] = ack >>> 8;
  buf[off + 11] = ack;
  buf[off + 12] = (headerLength >>> 2) << 4;
  buf[off + 13] = flags;
  buf[off + 14] = window >>> 8;
  buf[off + 15] = window;
  buf[off + 16] = 0;
  buf[off + 17] = 0;
  buf[off + 18] = 0;
  buf[off + 19] = 0;
}

/** NOP, NOP, timestamps (the 12-byte layout of every non-SYN segment) at `off`. */
export function writeTimestampOption(buf: Uint8Array, off: number, tsVal: number, tsEcr: number): void {
  buf[off] = TCP_OPT_NOP;
  buf[off + 1] = TCP_OPT_NOP;
  buf[off + 2] = TCP_OPT_TIMESTAMP;
  buf[off + 3] = TCP_OPTLEN_TIMESTAMP;
  putU32(buf, off + 4, tsVal);
  putU32(buf, off + 8, tsEcr);
}

/**
 * NOP, NOP, SACK with `n` blocks from `blocks` ([left0, right0, left1, ...]) at `off`; returns the
 * bytes written (4 + 8n).
 */
export function writeSackOption(buf: Uint8Array, off: number, blocks: ArrayLike<number>, n: number): number {
  buf[off] = TCP_OPT_NOP;
  buf[off + 1] = TCP_OPT_NOP;
  buf[off + 2] = TCP_OPT_SACK;
  buf[off + 3] = 2 + 8 * n;
  let p = off + 4;
  for (let i = 0; i < 2 * n; i++) {
    putU32(buf, p, blocks[i]!);
    p += 4;
  }
  return p - off;
}

/**
 * The stack's one TCP checksum finisher, for the `len`-byte segment at `off` whose checksum field
 * is zero. `pseudoSum` is the pseudo-header sum with the segment length in it (unfolded is fine).
 * With `offload` only the folded pseudo-header sum goes into the field, for the NIC to complete
 * (CHECKSUM_PARTIAL); else the full checksum.
 */
export function finishTcpChecksum(buf: Uint8Array, off: number, len: number, pseudoSum: number, offload: boolean): void {
  // (A native copy then the word-wise sum beats a fused copy-and-sum loop in JS.)
  const ps = fold(pseudoSum);
  const c = offload ? ps : ~sum(buf, off, len, ps) & 0xffff;
  buf[off + 16] = c >>> 8;
  buf[off + 17] = c;
}

/**
 * Write a TCP header (with options) at `off`; returns its length. With `pseudoHeader`, the
 * checksum covers the header and the `payloadLength` bytes already in `buf` after it.
 */
export function encodeTcp(buf: Uint8Array, off: number, f: TcpFields): number {
  let ol = 0;
  if (f.rawOptions) {
    const raw = f.rawOptions.length > TCP_MAX_OPTIONS ? f.rawOptions.subarray(0, TCP_MAX_OPTIONS) : f.rawOptions;
    buf.set(raw, off + TCP_MIN_HEADER);
    ol = (raw.length + 3) & ~3;
    buf.fill(TCP_OPT_EOL, off + TCP_MIN_HEADER + raw.length, off + TCP_MIN_HEADER + ol);
  } else if (f.options) {
    ol = encodeTcpOptions(buf, off + TCP_MIN_HEADER, f.options);
  }
  const hl = TCP_MIN_HEADER + ol;
  writeTcpHeader(buf, off, f.srcPort, f.dstPort, f.seq, f.ack ?? 0, f.flags, f.window, hl);
  const up = f.urgentPointer ?? 0;
  buf[off + 18] = up >>> 8;
  buf[off + 19] = up;
  if (f.pseudoHeader) {
    const segLen = hl + (f.payloadLength ?? 0);
    finishTcpChecksum(buf, off, segLen, pseudoHeaderSum(f.pseudoHeader, IP_PROTO_TCP, segLen), false);
  } else {
    const c = f.checksum ?? 0;
    buf[off + 16] = c >>> 8;
    buf[off + 17] = c;
  }
  return hl;
}

/** A new segment: header (with options) + payload. */
export function buildTcp(f: TcpFields, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hl = tcpHeaderLength(f);
  const out = new Uint8Array(hl + payload.length);
  out.set(payload, hl);
  encodeTcp(out, 0, { ...f, payloadLength: payload.length });
  return out;
}
