import { TunstackError } from '../errors.js';

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
    const bytes = Buffer.from(l, 'ascii');
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
    labels.push(Buffer.from(msg.subarray(p + 1, p + 1 + len)).toString('ascii'));
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

/** A response to `query` with one address record (4 bytes A, 16 bytes AAAA), or NXDOMAIN. */
export function encodeAnswer(query: Uint8Array, address: Uint8Array | null, ttl = 60): Uint8Array {
  const q = decodeQuestion(query);
  const question = query.subarray(12, q.end);
  const rr = address ? 12 + address.length : 0;
  const out = new Uint8Array(12 + question.length + rr);
  const v = new DataView(out.buffer);
  v.setUint16(0, q.id);
  v.setUint16(2, 0x8180 | (address ? 0 : 3)); // QR, RD, RA; RCODE NXDOMAIN when no address
  v.setUint16(4, 1);
  v.setUint16(6, address ? 1 : 0);
  out.set(question, 12);
  if (address) {
    let p = 12 + question.length;
    v.setUint16(p, 0xc00c); // pointer to the question's name
    v.setUint16(p + 2, address.length === 4 ? DNS_TYPE_A : DNS_TYPE_AAAA);
    v.setUint16(p + 4, CLASS_IN);
    v.setUint32(p + 6, ttl);
    v.setUint16(p + 10, address.length);
    p += 12;
    out.set(address, p);
  }
  return out;
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
