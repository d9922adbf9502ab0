import { TunstackError } from './errors.js';

/**
 * Address text forms: IPv4 dotted quad, IPv6 (RFC 4291 input, RFC 5952 output), MAC, CIDR.
 * Addresses are Uint8Arrays of 4, 16 or 6 bytes. Bad text throws TunstackError EINVAL.
 */

export type IPAddress = Uint8Array;

export function parseIPv4(text: string): Uint8Array {
  const out = tryParseIPv4(text);
  if (!out) throw new TunstackError('EINVAL', `invalid IPv4 address "${text}"`);
  return out;
}

export function tryParseIPv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

export function formatIPv4(a: Uint8Array, off = 0): string {
  return `${a[off]}.${a[off + 1]}.${a[off + 2]}.${a[off + 3]}`;
}

export function parseIPv6(text: string): Uint8Array {
  const out = tryParseIPv6(text);
  if (!out) throw new TunstackError('EINVAL', `invalid IPv6 address "${text}"`);
  return out;
}

export function tryParseIPv6(input: string): Uint8Array | null {
  let text = input;
  const pct = text.indexOf('%');
  if (pct >= 0) text = text.slice(0, pct);
  if (text.length < 2 || text.length > 45) return null;
  const out = new Uint8Array(16);
  const dbl = text.indexOf('::');
  if (dbl !== text.lastIndexOf('::')) return null;
  const parseGroups = (s: string, allowV4Tail: boolean): number[] | null => {
    if (s === '') return [];
    const groups = s.split(':');
    const words: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = tryParseIPv4(g);
        if (!v4) return null;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        words.push(parseInt(g, 16));
      }
    }
    return words;
  };
  let words: number[];
  if (dbl >= 0) {
    const head = parseGroups(text.slice(0, dbl), false);
    const tail = parseGroups(text.slice(dbl + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return null;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseGroups(text, true);
    if (!all || all.length !== 8) return null;
    words = all;
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >>> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

/** RFC 5952 canonical text: lower case, longest run (>1) of zero words compressed. */
export function formatIPv6(a: Uint8Array, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((a[off + 2 * i]! << 8) | a[off + 2 * i + 1]!);
  // IPv4-mapped addresses are shown with a dotted tail, as Node and Linux do.
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    return `::ffff:${formatIPv4(a, off + 12)}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (x: number): string => x.toString(16);
  if (bestStart < 0) return w.map(hex).join(':');
  const left = w.slice(0, bestStart).map(hex).join(':');
  const right = w.slice(bestStart + bestLen).map(hex).join(':');
  return `${left}::${right}`;
}

/** Parse an IPv4 or IPv6 address. */
export function parseIP(text: string): Uint8Array {
  const out = text.includes(':') ? tryParseIPv6(text) : tryParseIPv4(text);
  if (!out) throw new TunstackError('EINVAL', `invalid IP address "${text}"`);
  return out;
}

export function formatIP(a: Uint8Array): string {
  if (a.length === 4) return formatIPv4(a);
  if (a.length === 16) return formatIPv6(a);
  throw new TunstackError('EINVAL', `address of ${a.length} bytes is neither IPv4 nor IPv6`);
}

export interface Prefix {
  address: Uint8Array;
  prefixLength: number;
}

/** Parse "a.b.c.d/n" or "x::y/n"; without "/n" the full length is used. */
export function parseCIDR(text: string): Prefix {
  const slash = text.indexOf('/');
  const address = parseIP(slash < 0 ? text : text.slice(0, slash));
  const max = address.length * 8;
  let prefixLength = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > max) {
      throw new TunstackError('EINVAL', `invalid prefix length in "${text}"`);
    }
    prefixLength = Number(p);
  }
  return { address, prefixLength };
}

/** True if the first `bits` bits of a and b agree (same family assumed). */
export function prefixMatch(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  if (a.length !== b.length) return false;
  const full = bits >>> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rem = bits & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

/** The address with host bits cleared. */
export function maskAddress(a: Uint8Array, bits: number): Uint8Array {
  const out = new Uint8Array(a.length);
  const full = bits >>> 3;
  out.set(a.subarray(0, full));
  const rem = bits & 7;
  if (rem !== 0 && full < a.length) out[full] = a[full]! & ((0xff << (8 - rem)) & 0xff);
  return out;
}

export function addrEqual(a: Uint8Array, b: Uint8Array, bOff = 0, aOff = 0, len = a.length): boolean {
  for (let i = 0; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

export function parseMAC(text: string): Uint8Array {
  const m = /^([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})$/.exec(
    text,
  );
  if (!m) throw new TunstackError('EINVAL', `invalid MAC address "${text}"`);
  return Uint8Array.from(m.slice(1).map((h) => parseInt(h, 16)));
}

export function formatMAC(a: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    if (i > 0) s += ':';
    s += a[off + i]!.toString(16).padStart(2, '0');
  }
  return s;
}

/** IPv4 address as an unsigned 32-bit number (for maps and arithmetic). */
export function ipv4ToU32(a: Uint8Array, off = 0): number {
  return ((a[off]! << 24) | (a[off + 1]! << 16) | (a[off + 2]! << 8) | a[off + 3]!) >>> 0;
}

export function u32ToIPv4(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, v >>> 16, v >>> 8, v);
}

export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
export const IPV4_ANY = new Uint8Array(4);
export const IPV4_BROADCAST = Uint8Array.of(255, 255, 255, 255);
export const IPV6_ANY = new Uint8Array(16);
