/**
 * The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
 *
 * `sum` returns the folded but not complemented 16-bit partial sum, so partial sums over several
 * regions (pseudo-header, header, payload) can be combined with `combine` and complemented once
 * with `finish`.
 *
 * The inner loop adds whole 32-bit words read in the host's byte order from an aligned
 * Uint32Array, one addition per word into doubles (exact below 2^53), and folds at the end. The
 * one's-complement sum does not depend on byte order except for a final byte swap (RFC 1071
 * section 2(B)), which is applied according to where the aligned run starts relative to `off`.
 * Big-endian hosts use a DataView loop instead.
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

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Regions shorter than this are summed byte-pair by byte-pair. */
const SMALL_REGION = 128;

/** Largest number of 32-bit words summed before folding (keeps the double sum exact). */
const WORDS_PER_FOLD = 1 << 20;

const wordViews = new WeakMap<ArrayBufferLike, Uint32Array>();

/** A Uint32Array over the whole of `ab` (cached; renewed if the buffer has grown). */
function wordsOf(ab: ArrayBufferLike, needWords: number): Uint32Array {
  let v = wordViews.get(ab);
  if (v === undefined || v.length < needWords) {
    v = new Uint32Array(ab, 0, ab.byteLength >>> 2);
    wordViews.set(ab, v);
  }
  return v;
}

const dataViews = new WeakMap<ArrayBufferLike, DataView>();

function dataViewOf(buf: Uint8Array): DataView {
  let v = dataViews.get(buf.buffer);
  if (v === undefined || v.byteLength < buf.byteOffset + buf.length) {
    v = new DataView(buf.buffer);
    dataViews.set(buf.buffer, v);
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
  if (len < SMALL_REGION) {
    // Headers and small packets: a plain loop beats setting up word views.
    let acc = initial;
    let i = off;
    const end2 = off + (len & ~1);
    while (i < end2) {
      acc += (buf[i]! << 8) | buf[i + 1]!;
      i += 2;
    }
    if (i < off + len) acc += buf[i]! << 8;
    return fold(acc);
  }
  if (!LITTLE_ENDIAN_HOST) return sumDataView(buf, off, len, initial);
  let acc = initial;
  let p = off;
  const end = off + len;
  const base = buf.byteOffset;
  // Leading bytes up to a 4-byte aligned address: a byte at an even distance from `off` is the
  // high byte of its word.
  while (p < end && ((base + p) & 3) !== 0) {
    acc += ((p - off) & 1) === 0 ? buf[p]! << 8 : buf[p]!;
    p++;
  }
  let words = (end - p) >>> 2;
  if (words > 0) {
    let i = (base + p) >>> 2;
    const u = wordsOf(buf.buffer, i + words);
    // Little-endian words hold each 16-bit pair byte-swapped when the run starts at an even
    // distance from `off`, and in network order when it starts at an odd one.
    const swap = ((p - off) & 1) === 0;
    p += words << 2;
    while (words > 0) {
      const n = words < WORDS_PER_FOLD ? words : WORDS_PER_FOLD;
      const iend = i + n;
      const i8 = i + (n & ~7);
      // Two independent sums, so that additions of consecutive steps can overlap.
      let s = 0;
      let t = 0;
      while (i < i8) {
        s += u[i]! + u[i + 1]! + u[i + 2]! + u[i + 3]!;
        t += u[i + 4]! + u[i + 5]! + u[i + 6]! + u[i + 7]!;
        i += 8;
      }
      while (i < iend) s += u[i++]!;
      let f = fold(s + t);
      if (swap) f = ((f & 0xff) << 8) | (f >>> 8);
      acc += f;
      words -= n;
    }
  }
  while (p < end) {
    acc += ((p - off) & 1) === 0 ? buf[p]! << 8 : buf[p]!;
    p++;
  }
  return fold(acc);
}

/** The same sum through big-endian DataView reads (for big-endian hosts). */
function sumDataView(buf: Uint8Array, off: number, len: number, initial: number): number {
  const dv = dataViewOf(buf);
  let p = buf.byteOffset + off;
  const end = p + len;
  const end4 = p + (len & ~3);
  let acc = initial;
  while (p < end4) {
    const a = dv.getUint32(p);
    acc += (a >>> 16) + (a & 0xffff);
    p += 4;
  }
  if (end - p >= 2) {
    acc += dv.getUint16(p);
    p += 2;
  }
  if (p < end) acc += dv.getUint8(p) << 8;
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
