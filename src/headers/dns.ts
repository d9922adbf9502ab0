import { TunstackError } from '../core/errors.js';
import { asciiText, latin1Bytes } from './bytes.js';

/**
 * Just enough DNS (RFC 1035) for the demo and tests: an A/AAAA query, and an answer to it.
 */

export const DNS_TYPE_A = 1;
export const DNS_TYPE_AAAA = 28;
const CLASS_IN = 1;

export interface DnsQuestion {
  id: number;
  name: string;
  type: number;
}

function encodeName(name: string): Uint8Array {
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l.length > 0);
  const parts: number[] = [];
  for (const l of labels) {
    const bytes = latin1Bytes(l);
    if (bytes.length > 63) throw new TunstackError('EINVAL', `DNS label "${l}" longer than 63`);
    parts.push(bytes.length, ...bytes);
  }
  parts.push(0);
  if (parts.length > 255) throw new TunstackError('EINVAL', 'DNS name longer than 255');
  return Uint8Array.from(parts);
}

/** A recursive query for one name. */
export function encodeQuery(q: DnsQuestion): Uint8Array {
  const name = encodeName(q.name);
  const out = new Uint8Array(12 + name.length + 4);
  const v = new DataView(out.buffer);
  v.setUint16(0, q.id);
  v.setUint16(2, 0x0100); // RD
  v.setUint16(4, 1); // QDCOUNT
  out.set(name, 12);
  v.setUint16(12 + name.length, q.type);
  v.setUint16(14 + name.length, CLASS_IN);
  return out;
}

/** Parse the question of a query (or response); ParseError-style EBADMSG on malformed input. */
export function decodeQuestion(msg: Uint8Array): DnsQuestion & { end: number; response: boolean; answers: number } {
  if (msg.length < 12) throw new TunstackError('EBADMSG', 'DNS message shorter than its header');
  const v = new DataView(msg.buffer, msg.byteOffset, msg.length);
  if (v.getUint16(4) < 1) throw new TunstackError('EBADMSG', 'DNS message without a question');
  const labels: string[] = [];
  let p = 12;
  for (;;) {
    if (p >= msg.length) throw new TunstackError('EBADMSG', 'DNS name runs past the message');
    const len = msg[p]!;
    if (len === 0) break;
    if (len > 63) throw new TunstackError('EBADMSG', 'compressed or bad label in the question');
    if (p + 1 + len > msg.length) throw new TunstackError('EBADMSG', 'DNS label runs past the message');
    labels.push(asciiText(msg.subarray(p + 1, p + 1 + len)));
    p += 1 + len;
  }
  p++;
  if (p + 4 > msg.length) throw new TunstackError('EBADMSG', 'DNS question truncated');
  return {
    id: v.getUint16(0),
    name: `${labels.join('.')}.`,
    type: v.getUint16(p),
    end: p + 4,
    response: (v.getUint16(2) & 0x8000) !== 0,
    answers: v.getUint16(6),
  };
}

export const DNS_RCODE_NOERROR = 0;
export const DNS_RCODE_SERVFAIL = 2;
export const DNS_RCODE_NXDOMAIN = 3;

/**
 * A response to `query` with address records (4-byte A, 16-byte AAAA). With no addresses: `rcode`
 * (default NXDOMAIN; NOERROR means "the name exists but has no such record").
 */
export function encodeAnswer(query: Uint8Array, address: Uint8Array | readonly Uint8Array[] | null, ttl = 60, rcode?: number): Uint8Array {
  const q = decodeQuestion(query);
  const question = query.subarray(12, q.end);
  const addrs = address === null ? [] : address instanceof Uint8Array ? [address] : [...address];
  const rrBytes = addrs.reduce((n, a) => n + 12 + a.length, 0);
  const out = new Uint8Array(12 + question.length + rrBytes);
  const v = new DataView(out.buffer);
  v.setUint16(0, q.id);
  const code = addrs.length > 0 ? DNS_RCODE_NOERROR : (rcode ?? DNS_RCODE_NXDOMAIN);
  v.setUint16(2, 0x8180 | (code & 0xf)); // QR, RD, RA, RCODE
  v.setUint16(4, 1);
  v.setUint16(6, addrs.length);
  out.set(question, 12);
  let p = 12 + question.length;
  for (const a of addrs) {
    v.setUint16(p, 0xc00c); // pointer to the question's name
    v.setUint16(p + 2, a.length === 4 ? DNS_TYPE_A : DNS_TYPE_AAAA);
    v.setUint16(p + 4, CLASS_IN);
    v.setUint32(p + 6, ttl);
    v.setUint16(p + 10, a.length);
    out.set(a, p + 12);
    p += 12 + a.length;
  }
  return out;
}

/** The RCODE of a response. */
export function responseCode(msg: Uint8Array): number {
  if (msg.length < 4) throw new TunstackError('EBADMSG', 'DNS message shorter than its header');
  return msg[3]! & 0x0f;
}

/** The first address record of a response, or null. */
export function decodeFirstAddress(msg: Uint8Array): Uint8Array | null {
  const q = decodeQuestion(msg);
  if (!q.response || q.answers === 0) return null;
  let p = q.end;
  // Skip the owner name (a pointer or labels).
  if (p < msg.length && (msg[p]! & 0xc0) === 0xc0) p += 2;
  else {
    while (p < msg.length && msg[p] !== 0) p += 1 + msg[p]!;
    p++;
  }
  if (p + 10 > msg.length) throw new TunstackError('EBADMSG', 'DNS answer truncated');
  const v = new DataView(msg.buffer, msg.byteOffset, msg.length);
  const rdlen = v.getUint16(p + 8);
  if (p + 10 + rdlen > msg.length) throw new TunstackError('EBADMSG', 'DNS answer data truncated');
  return msg.slice(p + 10, p + 10 + rdlen);
}

/**
 * Whether two messages ask the same question: equal QDCOUNT and first question, the name compared
 * ignoring ASCII case (RFC 4343; label lengths are at most 63, so never in A-Z), type and class
 * byte for byte. False when either has no well-formed question.
 */
export function sameQuestion(a: Uint8Array, b: Uint8Array): boolean {
  let end: number;
  try {
    end = decodeQuestion(a).end;
    if (decodeQuestion(b).end !== end) return false;
  } catch {
    return false;
  }
  if (a[4] !== b[4] || a[5] !== b[5]) return false;
  for (let i = 12; i < end; i++) {
    let x = a[i]!;
    let y = b[i]!;
    if (i < end - 4) {
      if (x >= 0x41 && x <= 0x5a) x |= 0x20;
      if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    }
    if (x !== y) return false;
  }
  return true;
}
