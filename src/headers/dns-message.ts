import { ParseError, TunstackError } from '../core/errors.js';
import { formatIPv4, formatIPv6 } from '../core/address.js';
import { asciiText, latin1Text, utf8Bytes } from './bytes.js';

/**
 * DNS messages (RFC 1035) for the stub resolver of src/adapters/dns.ts: a query with an EDNS(0)
 * OPT record (RFC 6891), and a whole response decoded into sections of records, with the record
 * data of the types a stub resolver reads (A, AAAA, CNAME, NS, PTR, MX, TXT, SRV, SOA, CAA).
 *
 * Decoding is bounded: a compression pointer must point before the label it is found in (so
 * pointers cannot loop), a name is at most 255 bytes, and every length is checked against the
 * message. Malformed input throws ParseError (EBADMSG), never anything else.
 */

export const DNS_TYPES = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  CAA: 257,
} as const;
export type DnsTypeName = Exclude<keyof typeof DNS_TYPES, 'OPT'>;

export const DNS_CLASS_IN = 1;
const MAX_NAME = 255;

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** Where the record data starts in the message, and its length (names in it may point back). */
  rdOffset: number;
  rdLength: number;
}

export interface DnsResponse {
  id: number;
  /** QR bit: a response. */
  response: boolean;
  /** TC bit: truncated (ask again over TCP). */
  truncated: boolean;
  rcode: number;
  questions: Array<{ name: string; type: number; class: number }>;
  answers: DnsRecord[];
  authorities: DnsRecord[];
}

/**
 * The wire form of `name` (dotted, a trailing dot optional, `\.` and `\\` and `\DDD` escapes as
 * in zone files). EINVAL for an empty label, a label over 63 bytes or a name over 255.
 */
export function encodeDnsName(name: string): Uint8Array {
  const out: number[] = [];
  if (name === '.' || name === '') return Uint8Array.of(0);
  let label: number[] = [];
  const flush = (): void => {
    if (label.length === 0 || label.length > 63) throw new TunstackError('EINVAL', `bad DNS label in "${name}"`);
    out.push(label.length, ...label);
    label = [];
  };
  const bytes = utf8Bytes(name);
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 0x2e) {
      flush();
      if (i === bytes.length - 1) break;
    } else if (c === 0x5c && i + 1 < bytes.length) {
      const d = bytes.subarray(i + 1, i + 4);
      if (d.length === 3 && d.every((x) => x >= 0x30 && x <= 0x39)) {
        const v = Number(asciiText(d));
        if (v > 255) throw new TunstackError('EINVAL', `bad escape in "${name}"`);
        label.push(v);
        i += 3;
      } else {
        label.push(bytes[++i]!);
      }
    } else {
      label.push(c);
    }
  }
  if (label.length > 0) flush();
  out.push(0);
  if (out.length > MAX_NAME) throw new TunstackError('EINVAL', `DNS name "${name}" longer than 255 bytes`);
  return Uint8Array.from(out);
}

/** A recursive (RD) query for `name`/`type` with an EDNS(0) OPT record advertising `udpSize`. */
export function encodeDnsQuery(id: number, name: string, type: number, udpSize = 1232): Uint8Array {
  const qname = encodeDnsName(name);
  const out = new Uint8Array(12 + qname.length + 4 + 11);
  const v = new DataView(out.buffer);
  v.setUint16(0, id);
  v.setUint16(2, 0x0100); // RD
  v.setUint16(4, 1); // QDCOUNT
  v.setUint16(10, 1); // ARCOUNT: the OPT record
  out.set(qname, 12);
  let p = 12 + qname.length;
  v.setUint16(p, type);
  v.setUint16(p + 2, DNS_CLASS_IN);
  p += 4;
  // OPT: root name, type 41, class = UDP payload size, TTL = extended rcode/version/flags, no data.
  out[p] = 0;
  v.setUint16(p + 1, DNS_TYPES.OPT);
  v.setUint16(p + 3, udpSize);
  return out;
}

function bad(what: string, offset: number): ParseError {
  return new ParseError(`DNS ${what}`, offset);
}

/** One label as presentation text: `.`, `\` and the zone-file specials escaped, other bytes outside printable ASCII as \DDD. */
function labelText(b: Uint8Array): string {
  let s = '';
  for (const c of b) {
    if (c <= 0x20 || c >= 0x7f) s += `\\${c.toString().padStart(3, '0')}`;
    else if ('.\\"$();@'.includes(String.fromCharCode(c))) s += `\\${String.fromCharCode(c)}`;
    else s += String.fromCharCode(c);
  }
  return s;
}

/** The name at `off` (following compression pointers) and the offset just past it in place. */
export function decodeDnsName(msg: Uint8Array, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let p = off;
  let end = -1;
  let total = 1;
  // Each pointer must go strictly backwards from the label it is found in: no loops, at most
  // msg.length jumps.
  let limit = off;
  for (;;) {
    if (p >= msg.length) throw bad('name runs past the message', p);
    const len = msg[p]!;
    if (len === 0) {
      if (end < 0) end = p + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (p + 1 >= msg.length) throw bad('compression pointer truncated', p);
      const target = ((len & 0x3f) << 8) | msg[p + 1]!;
      if (target >= limit) throw bad('compression pointer does not point backwards', p);
      if (end < 0) end = p + 2;
      p = target;
      limit = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw bad('label type not supported', p);
    if (p + 1 + len > msg.length) throw bad('label runs past the message', p);
    total += 1 + len;
    if (total > MAX_NAME) throw bad('name longer than 255 bytes', p);
    labels.push(labelText(msg.subarray(p + 1, p + 1 + len)));
    p += 1 + len;
  }
  return { name: labels.join('.'), end };
}

function decodeRecords(msg: Uint8Array, v: DataView, count: number, start: number, out: DnsRecord[]): number {
  let p = start;
  for (let i = 0; i < count; i++) {
    const { name, end } = decodeDnsName(msg, p);
    if (end + 10 > msg.length) throw bad('record header truncated', end);
    const rdLength = v.getUint16(end + 8);
    if (end + 10 + rdLength > msg.length) throw bad('record data truncated', end);
    out.push({ name, type: v.getUint16(end), class: v.getUint16(end + 2), ttl: v.getUint32(end + 4), rdOffset: end + 10, rdLength });
    p = end + 10 + rdLength;
  }
  return p;
}

/** Header, questions, answers and authorities of a message (the additional section is not read). */
export function decodeDnsResponse(msg: Uint8Array): DnsResponse {
  if (msg.length < 12) throw bad('message shorter than its header', 0);
  const v = new DataView(msg.buffer, msg.byteOffset, msg.length);
  const flags = v.getUint16(2);
  const res: DnsResponse = {
    id: v.getUint16(0),
    response: (flags & 0x8000) !== 0,
    truncated: (flags & 0x0200) !== 0,
    rcode: flags & 0x0f,
    questions: [],
    answers: [],
    authorities: [],
  };
  let p = 12;
  for (let i = 0; i < v.getUint16(4); i++) {
    const { name, end } = decodeDnsName(msg, p);
    if (end + 4 > msg.length) throw bad('question truncated', end);
    res.questions.push({ name, type: v.getUint16(end), class: v.getUint16(end + 2) });
    p = end + 4;
  }
  // A truncated answer may stop anywhere after the question: keep what is whole.
  if (res.truncated) return res;
  p = decodeRecords(msg, v, v.getUint16(6), p, res.answers);
  decodeRecords(msg, v, v.getUint16(8), p, res.authorities);
  return res;
}

export interface SoaData {
  nsname: string;
  hostmaster: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minttl: number;
}
export interface MxData {
  exchange: string;
  priority: number;
}
export interface SrvData {
  name: string;
  port: number;
  priority: number;
  weight: number;
}
export interface CaaData {
  critical: number;
  [tag: string]: string | number;
}

function rdata(msg: Uint8Array, rr: DnsRecord): { data: Uint8Array; v: DataView } {
  const data = msg.subarray(rr.rdOffset, rr.rdOffset + rr.rdLength);
  return { data, v: new DataView(data.buffer, data.byteOffset, data.length) };
}

function need(rr: DnsRecord, n: number, exact = false): void {
  if (exact ? rr.rdLength !== n : rr.rdLength < n) throw bad(`type ${rr.type} record data of ${rr.rdLength} bytes`, rr.rdOffset);
}

/** A name within record data: it must end inside the record. */
function rdName(msg: Uint8Array, rr: DnsRecord, off: number): { name: string; end: number } {
  const r = decodeDnsName(msg, off);
  if (r.end > rr.rdOffset + rr.rdLength) throw bad('name runs past its record', off);
  return r;
}

/** The data of one record as Node's dns returns it (a string for addresses and names). */
export function decodeRecordData(msg: Uint8Array, rr: DnsRecord): string | string[] | MxData | SrvData | SoaData | CaaData {
  const { data, v } = rdata(msg, rr);
  switch (rr.type) {
    case DNS_TYPES.A:
      need(rr, 4, true);
      return formatIPv4(data);
    case DNS_TYPES.AAAA:
      need(rr, 16, true);
      return formatIPv6(data);
    case DNS_TYPES.CNAME:
    case DNS_TYPES.NS:
    case DNS_TYPES.PTR:
      return rdName(msg, rr, rr.rdOffset).name;
    case DNS_TYPES.MX:
      need(rr, 3);
      return { exchange: rdName(msg, rr, rr.rdOffset + 2).name, priority: v.getUint16(0) };
    case DNS_TYPES.SRV:
      need(rr, 7);
      return { name: rdName(msg, rr, rr.rdOffset + 6).name, port: v.getUint16(4), priority: v.getUint16(0), weight: v.getUint16(2) };
    case DNS_TYPES.SOA: {
      const ns = rdName(msg, rr, rr.rdOffset);
      const hm = rdName(msg, rr, ns.end);
      const o = hm.end - rr.rdOffset;
      if (o + 20 !== rr.rdLength) throw bad('SOA record data length', rr.rdOffset);
      return { nsname: ns.name, hostmaster: hm.name, serial: v.getUint32(o), refresh: v.getUint32(o + 4), retry: v.getUint32(o + 8), expire: v.getUint32(o + 12), minttl: v.getUint32(o + 16) };
    }
    case DNS_TYPES.TXT: {
      const chunks: string[] = [];
      for (let p = 0; p < data.length; ) {
        const n = data[p]!;
        if (p + 1 + n > data.length) throw bad('TXT string runs past its record', rr.rdOffset + p);
        chunks.push(latin1Text(data.subarray(p + 1, p + 1 + n)));
        p += 1 + n;
      }
      return chunks;
    }
    case DNS_TYPES.CAA: {
      need(rr, 2);
      const tagLen = data[1]!;
      if (tagLen === 0 || 2 + tagLen > data.length) throw bad('CAA tag length', rr.rdOffset);
      const tag = latin1Text(data.subarray(2, 2 + tagLen));
      return { critical: data[0]!, [tag]: latin1Text(data.subarray(2 + tagLen)) };
    }
    default:
      throw bad(`record type ${rr.type} not decoded`, rr.rdOffset);
  }
}
