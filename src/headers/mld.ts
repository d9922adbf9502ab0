/**
 * MLD on the wire, the parts a host needs (MLDv2 reports, RFC 3810; query fields are read through
 * `IcmpV6Header` in icmpv6.ts): record types, the reusable MLDv2 record iterator (stops on
 * malformed input) and the record and report encoders.
 */
import { TunstackError } from '../core/errors.js';
import { put16, u16 } from './bytes.js';
import { ICMPV6_HEADER_LENGTH, ICMPV6_MLDV2_REPORT, encodeIcmpV6 } from './icmpv6.js';

export const MLDV2_RECORD_HEADER_LENGTH = 20;
export const MLDV2_MODE_IS_INCLUDE = 1;
export const MLDV2_MODE_IS_EXCLUDE = 2;
export const MLDV2_CHANGE_TO_INCLUDE = 3;
export const MLDV2_CHANGE_TO_EXCLUDE = 4;
export const MLDV2_ALLOW_NEW_SOURCES = 5;
export const MLDV2_BLOCK_OLD_SOURCES = 6;

// ---------------------------------------------------------------------------------------------
// MLDv2 records

export const MLDV2_RECORDS_MORE = 0;
export const MLDV2_RECORDS_END = 1;
/** A record runs past the end of the message. */
export const MLDV2_RECORDS_TRUNCATED = 2;

/**
 * Walks the Multicast Address Records of an MLDv2 report: `reset(buf, start, end, count)`
 * (count from `IcmpV6Header.mldV2RecordCount`), then `while (it.next())`. Stops with TRUNCATED
 * if a record does not fit; END after `count` records.
 */
export class MldV2RecordIterator {
  buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;
  private remaining = 0;
  status = MLDV2_RECORDS_END;
  /** Offset in `buf` of the current record. */
  offset = 0;
  /** Length of the current record in bytes. */
  length = 0;

  reset(buf: Uint8Array, start: number, end: number, count: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = Math.min(end, buf.length);
    this.remaining = count;
    this.status = start < 0 ? MLDV2_RECORDS_TRUNCATED : MLDV2_RECORDS_MORE;
    this.offset = start;
    this.length = 0;
    return this;
  }

  next(): boolean {
    if (this.status !== MLDV2_RECORDS_MORE) return false;
    if (this.remaining <= 0) {
      this.status = MLDV2_RECORDS_END;
      return false;
    }
    const p = this.pos;
    this.offset = p;
    if (p + MLDV2_RECORD_HEADER_LENGTH > this.end) {
      this.status = MLDV2_RECORDS_TRUNCATED;
      return false;
    }
    const l = MLDV2_RECORD_HEADER_LENGTH + 16 * u16(this.buf, p + 2) + 4 * this.buf[p + 1]!;
    if (p + l > this.end) {
      this.status = MLDV2_RECORDS_TRUNCATED;
      return false;
    }
    this.length = l;
    this.pos = p + l;
    this.remaining--;
    return true;
  }

  get recordType(): number {
    return this.buf[this.offset]!;
  }

  /** Auxiliary data length in bytes (the field counts 32-bit words). */
  get auxDataLength(): number {
    return this.buf[this.offset + 1]! << 2;
  }

  get sourceCount(): number {
    return u16(this.buf, this.offset + 2);
  }

  get multicastAddressOffset(): number {
    return this.offset + 4;
  }

  get multicastAddress(): Uint8Array {
    return this.buf.subarray(this.offset + 4, this.offset + 20);
  }

  /** Offset in `buf` of the i-th source address. */
  sourceOffset(i: number): number {
    return this.offset + MLDV2_RECORD_HEADER_LENGTH + 16 * i;
  }

  get auxDataOffset(): number {
    return this.offset + MLDV2_RECORD_HEADER_LENGTH + 16 * this.sourceCount;
  }
}

export interface MldV2RecordFields {
  recordType: number;
  multicastAddress: Uint8Array;
  sources?: readonly Uint8Array[];
  /** Length must be a multiple of 4. */
  auxData?: Uint8Array;
}

export function mldV2RecordLength(r: MldV2RecordFields): number {
  return MLDV2_RECORD_HEADER_LENGTH + 16 * (r.sources?.length ?? 0) + (r.auxData?.length ?? 0);
}

/** Write one Multicast Address Record; returns its length. */
export function encodeMldV2Record(buf: Uint8Array, off: number, r: MldV2RecordFields): number {
  const aux = r.auxData?.length ?? 0;
  if ((aux & 3) !== 0 || aux > 255 * 4) throw new TunstackError('EINVAL', `MLDv2 aux data of ${aux} bytes`);
  const sources = r.sources ?? [];
  buf[off] = r.recordType;
  buf[off + 1] = aux >>> 2;
  put16(buf, off + 2, sources.length);
  buf.set(r.multicastAddress.subarray(0, 16), off + 4);
  let p = off + MLDV2_RECORD_HEADER_LENGTH;
  for (const s of sources) {
    buf.set(s.subarray(0, 16), p);
    p += 16;
  }
  if (r.auxData) buf.set(r.auxData, p);
  return p + aux - off;
}

/** MLDv2 report header and records; returns the message length. */
export function encodeMldV2Report(buf: Uint8Array, off: number, records: readonly MldV2RecordFields[]): number {
  encodeIcmpV6(buf, off, { type: ICMPV6_MLDV2_REPORT, code: 0, rest: records.length & 0xffff });
  let p = off + ICMPV6_HEADER_LENGTH;
  for (const r of records) p += encodeMldV2Record(buf, p, r);
  return p - off;
}
