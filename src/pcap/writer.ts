import { TunstackError } from '../core/errors.js';
import { expectBytes, expectMethods, expectNumber, optionalBoolean, optionalInteger, optionsObject } from '../core/validate.js';

/** pcap link types (LINKTYPE_*). */
export const LinkType = {
  NULL: 0,
  ETHERNET: 1,
  RAW: 101,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
} as const;

export const PCAP_MAGIC_MICRO = 0xa1b2c3d4;
export const PCAP_MAGIC_NANO = 0xa1b23c4d;

export interface PcapWriterOptions {
  /** LINKTYPE_* value; default Ethernet (1). */
  linkType?: number;
  /** Nanosecond timestamps (magic 0xa1b23c4d); default microseconds. */
  nanosecond?: boolean;
  /** Largest number of bytes stored per packet; default 262144. */
  snapLength?: number;
}

/** Where a writer's bytes go. */
export interface ByteSink {
  write(bytes: Uint8Array): void;
  close?(): void;
}

/**
 * A classic pcap writer (little-endian, as libpcap writes on x86). Timestamps are wall-clock
 * milliseconds (fractions allowed); each record stores the packet truncated to the snap length
 * with its original length.
 */
export class PcapWriter {
  readonly linkType: number;
  readonly nanosecond: boolean;
  readonly snapLength: number;
  private readonly sink: ByteSink;
  private readonly rec = new Uint8Array(16);
  private readonly recView = new DataView(this.rec.buffer);
  packets = 0;

  constructor(sink: ByteSink, options: PcapWriterOptions = {}) {
    const where = 'new PcapWriter';
    this.sink = expectMethods<ByteSink>(sink, where, 'sink', ['write']);
    options = optionsObject<PcapWriterOptions>(options, where);
    optionalInteger(options.linkType, where, 'options.linkType', 0, 0xffff);
    optionalBoolean(options.nanosecond, where, 'options.nanosecond');
    optionalInteger(options.snapLength, where, 'options.snapLength', 1, 0x7fffffff);
    this.linkType = options.linkType ?? LinkType.ETHERNET;
    this.nanosecond = options.nanosecond ?? false;
    this.snapLength = options.snapLength ?? 262144;
    if (!Number.isInteger(this.snapLength) || this.snapLength <= 0 || this.snapLength > 0x7fffffff) {
      throw new TunstackError('EINVAL', `pcap snap length ${this.snapLength} out of range`);
    }
    if (!Number.isInteger(this.linkType) || this.linkType < 0 || this.linkType > 0xffff) {
      throw new TunstackError('EINVAL', `pcap link type ${this.linkType} out of range`);
    }
    const h = new Uint8Array(24);
    const v = new DataView(h.buffer);
    v.setUint32(0, this.nanosecond ? PCAP_MAGIC_NANO : PCAP_MAGIC_MICRO, true);
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setInt32(8, 0, true);
    v.setUint32(12, 0, true);
    v.setUint32(16, this.snapLength, true);
    v.setUint32(20, this.linkType, true);
    this.sink.write(h);
  }

  /** Collect into memory (`bytes()` returns the file so far). */
  static inMemory(options: PcapWriterOptions = {}): PcapWriter & { bytes(): Uint8Array } {
    const sink = new MemorySink();
    const w = new PcapWriter(sink, options) as PcapWriter & { bytes(): Uint8Array };
    w.bytes = () => sink.bytes();
    return w;
  }

  /** Append one packet captured at `timeMs` (wall-clock ms since the epoch). */
  write(packet: Uint8Array, timeMs: number, originalLength?: number): void {
    this.writeParts(packet, null, timeMs, originalLength);
  }

  /** Like `write`, for a packet in pieces: `head` followed by each of `rest` (not joined first). */
  writeParts(head: Uint8Array, rest: readonly Uint8Array[] | null, timeMs: number, originalLength?: number): void {
    checkRecord('write', head, rest, originalLength);
    // Seconds must fit the 32-bit field.
    expectNumber(timeMs, 'write', 'timeMs', 0, 0xffffffff * 1000);
    let sec = Math.floor(timeMs / 1000);
    const units = this.nanosecond ? 1e9 : 1e6;
    let frac = Math.round((timeMs - sec * 1000) * (units / 1000));
    if (frac >= units) {
      // The fraction rounded up to a whole second: carry it.
      sec += 1;
      frac -= units;
    } else if (frac < 0) {
      // timeMs / 1000 rounded up to the next integer in floating point.
      sec -= 1;
      frac += units;
    }
    this.record(head, rest, sec, frac, originalLength);
  }

  /**
   * Append one packet captured at `timeNs` (nanoseconds since the epoch), exactly: a microsecond
   * file keeps the whole microseconds (the nanoseconds are dropped, as libpcap does).
   */
  writeNs(packet: Uint8Array, timeNs: bigint, originalLength?: number): void {
    checkRecord('writeNs', packet, null, originalLength);
    if (typeof timeNs !== 'bigint' || timeNs < 0n || timeNs >= 0x100000000n * 1_000_000_000n) {
      throw new TunstackError('EINVAL', `writeNs: "timeNs" must be a bigint in 0..2^32 s, got ${typeof timeNs}`);
    }
    const sec = timeNs / 1_000_000_000n;
    const ns = Number(timeNs - sec * 1_000_000_000n);
    this.record(packet, null, Number(sec), this.nanosecond ? ns : Math.floor(ns / 1000), originalLength);
  }

  private record(head: Uint8Array, rest: readonly Uint8Array[] | null, sec: number, frac: number, originalLength?: number): void {
    let len = head.length;
    if (rest !== null) for (let i = 0; i < rest.length; i++) len += rest[i]!.length;
    let left = Math.min(len, this.snapLength);
    const v = this.recView;
    v.setUint32(0, sec >>> 0, true);
    v.setUint32(4, frac, true);
    v.setUint32(8, left, true);
    v.setUint32(12, originalLength ?? len, true);
    this.sink.write(this.rec);
    for (let i = -1; left > 0 && i < (rest === null ? 0 : rest.length); i++) {
      const part = i < 0 ? head : rest![i]!;
      const n = Math.min(part.length, left);
      if (n > 0) this.sink.write(n === part.length ? part : part.subarray(0, n));
      left -= n;
    }
    this.packets++;
  }

  close(): void {
    this.sink.close?.();
  }
}

/** A record's packet parts and original length (at least the bytes given, at most 2^32-1). */
function checkRecord(where: string, head: unknown, rest: unknown, originalLength: unknown): void {
  expectBytes(head, where, 'packet');
  if (rest !== null) {
    if (!Array.isArray(rest)) throw new TunstackError('EINVAL', `${where}: "rest" must be an array of Uint8Array or null`);
    rest.forEach((r, i) => expectBytes(r, where, `rest[${i}]`));
  }
  optionalInteger(originalLength, where, 'originalLength', 0, 0xffffffff);
}

export class MemorySink implements ByteSink {
  private chunks: Uint8Array[] = [];
  private total = 0;
  write(bytes: Uint8Array): void {
    this.chunks.push(bytes.slice());
    this.total += bytes.length;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.total);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
