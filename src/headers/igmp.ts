/**
 * IGMP wire formats: IGMPv1 (RFC 1112), IGMPv2 (RFC 2236) and IGMPv3 (RFC 3376) queries,
 * reports and leaves. Encoders write into caller buffers; `parseIgmp` validates a message and
 * returns a plain description (the few allocations it makes are bounded by the message size).
 */
import { checksum } from './checksum.js';

export const IGMP_MEMBERSHIP_QUERY = 0x11;
export const IGMP_V1_MEMBERSHIP_REPORT = 0x12;
export const IGMP_V2_MEMBERSHIP_REPORT = 0x16;
export const IGMP_V2_LEAVE_GROUP = 0x17;
export const IGMP_V3_MEMBERSHIP_REPORT = 0x22;

/** IGMPv3 group record types (RFC 3376 4.2.12). */
export const IGMPV3_MODE_IS_INCLUDE = 1;
export const IGMPV3_MODE_IS_EXCLUDE = 2;
export const IGMPV3_CHANGE_TO_INCLUDE = 3;
export const IGMPV3_CHANGE_TO_EXCLUDE = 4;
export const IGMPV3_ALLOW_NEW_SOURCES = 5;
export const IGMPV3_BLOCK_OLD_SOURCES = 6;

/** 224.0.0.1, 224.0.0.2, 224.0.0.22. */
export const IGMP_ALL_HOSTS = Uint8Array.of(224, 0, 0, 1);
export const IGMP_ALL_ROUTERS = Uint8Array.of(224, 0, 0, 2);
export const IGMPV3_ALL_ROUTERS = Uint8Array.of(224, 0, 0, 22);

export const IGMP_HEADER_LENGTH = 8;
export const IGMPV3_QUERY_MIN_LENGTH = 12;
export const IGMPV3_REPORT_HEADER_LENGTH = 8;
export const IGMPV3_RECORD_HEADER_LENGTH = 8;

export interface IgmpV3Record {
  type: number;
  group: Uint8Array;
  sources: Uint8Array[];
}

export type IgmpMessage =
  | {
      kind: 'query';
      /** 1, 2 or 3, from the length and Max Resp Code (RFC 3376 7.1). */
      version: 1 | 2 | 3;
      /** Maximum response time in milliseconds (v1: 10 s). */
      maxRespMs: number;
      /** The group asked about; 0.0.0.0 for a general query. */
      group: Uint8Array;
      /** v3 group-and-source query sources (empty otherwise). */
      sources: Uint8Array[];
      /** v3: Querier's Robustness Variable (0 = unset) and Query Interval in seconds. */
      qrv: number;
      qqiSeconds: number;
    }
  | { kind: 'report'; version: 1 | 2; group: Uint8Array }
  | { kind: 'leave'; group: Uint8Array }
  | { kind: 'v3-report'; records: IgmpV3Record[] };

/** Decode an 8-bit floating-point time/interval code (RFC 3376 4.1.1 / 4.1.7). */
export function igmpDecodeCode(code: number): number {
  if (code < 128) return code;
  const exp = (code >> 4) & 0x07;
  const mant = code & 0x0f;
  return (mant | 0x10) << (exp + 3);
}

/** Encode a value (in the code's units) as an 8-bit floating-point code, rounding down. */
export function igmpEncodeCode(value: number): number {
  if (value < 128) return Math.max(0, Math.floor(value));
  for (let exp = 0; exp < 8; exp++) {
    const mant = (value >> (exp + 3)) - 0x10;
    if (mant >= 0 && mant <= 0x0f) return 0x80 | (exp << 4) | mant;
  }
  return 0xff;
}

/**
 * Validate and decode an IGMP message (checksum included). Null when it is malformed: shorter
 * than 8 bytes, a bad checksum, a v3 query or report whose source or record counts run past the
 * message, or an unknown type.
 */
export function parseIgmp(buf: Uint8Array, off: number, len: number): IgmpMessage | null {
  if (len < IGMP_HEADER_LENGTH || off + len > buf.length) return null;
  if (checksum(buf, off, len) !== 0) return null;
  const type = buf[off]!;
  const code = buf[off + 1]!;
  const group = buf.slice(off + 4, off + 8);
  switch (type) {
    case IGMP_MEMBERSHIP_QUERY: {
      if (len === IGMP_HEADER_LENGTH) {
        const version = code === 0 ? 1 : 2;
        return { kind: 'query', version, maxRespMs: version === 1 ? 10_000 : code * 100, group, sources: [], qrv: 0, qqiSeconds: 0 };
      }
      if (len < IGMPV3_QUERY_MIN_LENGTH) return null; // 9-11 bytes: ignored (RFC 3376 7.1)
      const n = (buf[off + 10]! << 8) | buf[off + 11]!;
      if (IGMPV3_QUERY_MIN_LENGTH + 4 * n > len) return null;
      const sources: Uint8Array[] = [];
      for (let i = 0; i < n; i++) sources.push(buf.slice(off + 12 + 4 * i, off + 16 + 4 * i));
      return {
        kind: 'query',
        version: 3,
        maxRespMs: igmpDecodeCode(code) * 100,
        group,
        sources,
        qrv: buf[off + 8]! & 0x07,
        qqiSeconds: igmpDecodeCode(buf[off + 9]!),
      };
    }
    case IGMP_V1_MEMBERSHIP_REPORT:
      return { kind: 'report', version: 1, group };
    case IGMP_V2_MEMBERSHIP_REPORT:
      return { kind: 'report', version: 2, group };
    case IGMP_V2_LEAVE_GROUP:
      return { kind: 'leave', group };
    case IGMP_V3_MEMBERSHIP_REPORT: {
      const count = (buf[off + 6]! << 8) | buf[off + 7]!;
      const records: IgmpV3Record[] = [];
      let p = off + IGMPV3_REPORT_HEADER_LENGTH;
      const end = off + len;
      for (let i = 0; i < count; i++) {
        if (p + IGMPV3_RECORD_HEADER_LENGTH > end) return null;
        const auxWords = buf[p + 1]!;
        const n = (buf[p + 2]! << 8) | buf[p + 3]!;
        const size = IGMPV3_RECORD_HEADER_LENGTH + 4 * n + 4 * auxWords;
        if (p + size > end) return null;
        const sources: Uint8Array[] = [];
        for (let k = 0; k < n; k++) sources.push(buf.slice(p + 8 + 4 * k, p + 12 + 4 * k));
        records.push({ type: buf[p]!, group: buf.slice(p + 4, p + 8), sources });
        p += size;
      }
      return { kind: 'v3-report', records };
    }
    default:
      return null;
  }
}

/** Bytes an IGMPv3 report with these records takes. */
export function igmpV3ReportLength(records: readonly IgmpV3Record[]): number {
  let n = IGMPV3_REPORT_HEADER_LENGTH;
  for (const r of records) n += IGMPV3_RECORD_HEADER_LENGTH + 4 * r.sources.length;
  return n;
}

/** Write an IGMPv3 Membership Report (checksum included); returns its length. */
export function encodeIgmpV3Report(buf: Uint8Array, off: number, records: readonly IgmpV3Record[]): number {
  const len = igmpV3ReportLength(records);
  buf.fill(0, off, off + len);
  buf[off] = IGMP_V3_MEMBERSHIP_REPORT;
  buf[off + 6] = records.length >>> 8;
  buf[off + 7] = records.length & 0xff;
  let p = off + IGMPV3_REPORT_HEADER_LENGTH;
  for (const r of records) {
    buf[p] = r.type;
    buf[p + 2] = r.sources.length >>> 8;
    buf[p + 3] = r.sources.length & 0xff;
    buf.set(r.group.subarray(0, 4), p + 4);
    p += IGMPV3_RECORD_HEADER_LENGTH;
    for (const s of r.sources) {
      buf.set(s.subarray(0, 4), p);
      p += 4;
    }
  }
  const c = checksum(buf, off, len);
  buf[off + 2] = c >>> 8;
  buf[off + 3] = c & 0xff;
  return len;
}

/** Write an 8-byte IGMPv1/v2 message (query, report or leave); returns 8. */
export function encodeIgmpV2(buf: Uint8Array, off: number, type: number, maxRespCode: number, group: Uint8Array): number {
  buf[off] = type;
  buf[off + 1] = maxRespCode;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf.set(group.subarray(0, 4), off + 4);
  const c = checksum(buf, off, IGMP_HEADER_LENGTH);
  buf[off + 2] = c >>> 8;
  buf[off + 3] = c & 0xff;
  return IGMP_HEADER_LENGTH;
}

export interface IgmpV3QueryFields {
  group?: Uint8Array;
  sources?: Uint8Array[];
  /** Maximum response time in milliseconds (encoded in tenths of a second). */
  maxRespMs: number;
  qrv?: number;
  qqiSeconds?: number;
  suppressRouterProcessing?: boolean;
}

/** An IGMPv3 Membership Query (what a querier sends); tests and routers use it. */
export function buildIgmpV3Query(f: IgmpV3QueryFields): Uint8Array {
  const sources = f.sources ?? [];
  const out = new Uint8Array(IGMPV3_QUERY_MIN_LENGTH + 4 * sources.length);
  out[0] = IGMP_MEMBERSHIP_QUERY;
  out[1] = igmpEncodeCode(Math.floor(f.maxRespMs / 100));
  if (f.group) out.set(f.group.subarray(0, 4), 4);
  out[8] = ((f.suppressRouterProcessing ? 0x08 : 0) | ((f.qrv ?? 2) & 0x07)) & 0xff;
  out[9] = igmpEncodeCode(f.qqiSeconds ?? 125);
  out[10] = sources.length >>> 8;
  out[11] = sources.length & 0xff;
  sources.forEach((s, i) => out.set(s.subarray(0, 4), 12 + 4 * i));
  const c = checksum(out, 0, out.length);
  out[2] = c >>> 8;
  out[3] = c & 0xff;
  return out;
}
