/**
 * The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
 *
 * `sum` returns the folded but not complemented 16-bit partial sum, so partial sums over several
 * regions (pseudo-header, header, payload) can be combined with `combine` and complemented once
 * with `finish`. The inner loop adds 32-bit words read through a DataView, four bytes per step.
 */

/** Fold a (possibly > 16-bit) sum into 16 bits with end-around carry. */
export function fold(sum: number): number {
  // sum < 2^53; reduce to 32 bits first without losing carries.
  sum = (sum % 0x100000000) + Math.floor(sum / 0x100000000);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum & 0xffff) + (sum >>> 16);
}

/** Add two 16-bit partial sums. */
export function combine(a: number, b: number): number {
  const s = a + b;
  return (s & 0xffff) + (s >>> 16);
}

/** Complement a partial sum into the value stored in a header. */
export function finish(partial: number): number {
  return ~partial & 0xffff;
}

const viewCache = new WeakMap<ArrayBufferLike, DataView>();

function viewOf(buf: Uint8Array): DataView {
  let v = viewCache.get(buf.buffer);
  if (v === undefined) {
    v = new DataView(buf.buffer);
    viewCache.set(buf.buffer, v);
  }
  return v;
}

/**
 * Partial (folded, uncomplemented) sum of `len` bytes at `off`, starting from `initial`.
 * A trailing odd byte is padded with zero as the high byte of a word. `off` is treated as the
 * start of a 16-bit word: to add a region that starts at an odd position of a larger checksummed
 * area, byte-swap its partial sum before combining.
 */
export function sum(buf: Uint8Array, off = 0, len = buf.length - off, initial = 0): number {
  if (off < 0 || len < 0 || off + len > buf.length) {
    throw new RangeError(`checksum: region ${off}+${len} outside buffer of ${buf.length}`);
  }
  const dv = viewOf(buf);
  let p = buf.byteOffset + off;
  const end = p + len;
  const end4 = p + (len & ~3);
  // Accumulate 32-bit words as two 16-bit halves to stay within safe integers.
  let acc = initial;
  let hi = 0;
  let lo = 0;
  // Unrolled by 4 words (16 bytes).
  const end16 = p + (len & ~15);
  while (p < end16) {
    const a = dv.getUint32(p);
    const b = dv.getUint32(p + 4);
    const c = dv.getUint32(p + 8);
    const d = dv.getUint32(p + 12);
    hi += (a >>> 16) + (b >>> 16) + (c >>> 16) + (d >>> 16);
    lo += (a & 0xffff) + (b & 0xffff) + (c & 0xffff) + (d & 0xffff);
    p += 16;
  }
  while (p < end4) {
    const a = dv.getUint32(p);
    hi += a >>> 16;
    lo += a & 0xffff;
    p += 4;
  }
  if (end - p >= 2) {
    hi += dv.getUint16(p);
    p += 2;
  }
  if (p < end) {
    lo += dv.getUint8(p) << 8;
  }
  acc += hi + lo;
  return fold(acc);
}

/** The checksum field value (complemented) over a region. */
export function checksum(buf: Uint8Array, off = 0, len = buf.length - off, initial = 0): number {
  return finish(sum(buf, off, len, initial));
}

/** Partial sum of an IPv4 pseudo-header (src, dst at the given offsets; protocol; length). */
export function pseudoHeaderSumV4(
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  protocol: number,
  length: number,
): number {
  const s =
    ((src[srcOff]! << 8) | src[srcOff + 1]!) +
    ((src[srcOff + 2]! << 8) | src[srcOff + 3]!) +
    ((dst[dstOff]! << 8) | dst[dstOff + 1]!) +
    ((dst[dstOff + 2]! << 8) | dst[dstOff + 3]!) +
    protocol +
    (length & 0xffff) +
    (length >>> 16);
  return fold(s);
}

/** Partial sum of an IPv6 pseudo-header (RFC 8200 section 8.1). */
export function pseudoHeaderSumV6(
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  nextHeader: number,
  length: number,
): number {
  let s = nextHeader + (length & 0xffff) + (length >>> 16);
  for (let i = 0; i < 16; i += 2) {
    s += (src[srcOff + i]! << 8) | src[srcOff + i + 1]!;
    s += (dst[dstOff + i]! << 8) | dst[dstOff + i + 1]!;
  }
  return fold(s);
}

/**
 * RFC 1624 incremental update: the new checksum field value after a 16-bit word of the covered
 * data changes from `oldWord` to `newWord`. HC' = ~(~HC + ~m + m').
 */
export function updateChecksum16(oldChecksum: number, oldWord: number, newWord: number): number {
  const s = (~oldChecksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(s) & 0xffff;
}

/** RFC 1624 update for a 32-bit value (an IPv4 address) changing. */
export function updateChecksum32(oldChecksum: number, oldValue: number, newValue: number): number {
  const s =
    (~oldChecksum & 0xffff) +
    (~(oldValue >>> 16) & 0xffff) +
    (~oldValue & 0xffff) +
    ((newValue >>> 16) & 0xffff) +
    (newValue & 0xffff);
  return ~fold(s) & 0xffff;
}

/**
 * RFC 1624 update for an arbitrary run of bytes (even length, at an even offset of the covered
 * data) changing from `oldBytes` to `newBytes`, e.g. a 16-byte IPv6 address.
 */
export function updateChecksumBytes(
  oldChecksum: number,
  oldBytes: Uint8Array,
  newBytes: Uint8Array,
): number {
  if (oldBytes.length !== newBytes.length || (oldBytes.length & 1) !== 0) {
    throw new RangeError('updateChecksumBytes: lengths must match and be even');
  }
  let s = ~oldChecksum & 0xffff;
  for (let i = 0; i < oldBytes.length; i += 2) {
    s += ~((oldBytes[i]! << 8) | oldBytes[i + 1]!) & 0xffff;
    s += (newBytes[i]! << 8) | newBytes[i + 1]!;
  }
  return ~fold(s) & 0xffff;
}
