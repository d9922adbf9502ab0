/**
 * Property tests: whatever bytes the reader is given (random, or a valid capture with bits
 * flipped, words overwritten, or cut short), it throws nothing but ParseError, ends, never holds
 * a window larger than its cap, and reads the same whether the bytes come at once, in small
 * synchronous pieces, or as an async stream.
 */
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../src/core/errors.js';
import { PcapReader, readPcap, type PcapRecord, type SyncByteSource } from '../../src/pcap/reader.js';
import {
  concat,
  ngBlock,
  ngEnhancedPacket,
  ngInterface,
  ngOption,
  ngSectionHeader,
  ngSimplePacket,
  pcapHeader,
  pcapRecord,
} from '../helpers/captures.js';

const MAX_BLOCK = 4096;
const WINDOW_LIMIT = MAX_BLOCK + 16;

interface Outcome {
  records: { len: number; orig: number; ts: bigint; ifid: number; lt: number; first: number }[];
  error: { offset: number; message: string } | undefined;
  capacity: number;
}

function summarize(p: PcapRecord): Outcome['records'][number] {
  return { len: p.data.length, orig: p.originalLength, ts: p.timestampNs, ifid: p.interfaceId, lt: p.linkType, first: p.data[0] ?? -1 };
}

function caught(e: unknown): { offset: number; message: string } {
  if (!(e instanceof ParseError)) throw e;
  return { offset: e.offset, message: e.message };
}

function chunked(data: Uint8Array, step: number): SyncByteSource {
  let off = 0;
  return {
    read(into, offset, length) {
      const k = Math.min(step, length, data.length - off);
      into.set(data.subarray(off, off + k), offset);
      off += k;
      return k;
    },
  };
}

function readSync(make: () => PcapReader): Outcome {
  const records: Outcome['records'] = [];
  let reader: PcapReader | undefined;
  let error: Outcome['error'];
  try {
    reader = make();
    for (const p of reader) {
      expect(p.data.length).toBeLessThanOrEqual(MAX_BLOCK);
      records.push(summarize(p));
    }
  } catch (e) {
    error = caught(e);
  }
  return { records, error, capacity: reader?.bufferCapacity ?? 0 };
}

async function readAsync(bytes: Uint8Array, step: number): Promise<Outcome> {
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < bytes.length; o += step) chunks.push(bytes.slice(o, o + step));
  const reader = readPcap(Readable.from(chunks), { maxBlockLength: MAX_BLOCK, bufferSize: 64 });
  const records: Outcome['records'] = [];
  let error: Outcome['error'];
  try {
    for await (const p of reader) records.push(summarize(p));
  } catch (e) {
    error = caught(e);
  }
  return { records, error, capacity: reader.bufferCapacity };
}

/** Read `bytes` three ways; check the invariants and that all three agree. */
function check(bytes: Uint8Array, step: number): Outcome {
  const whole = readSync(() => PcapReader.fromBytes(bytes, { maxBlockLength: MAX_BLOCK }));
  const pieces = readSync(() => PcapReader.fromSource(chunked(bytes, step), { maxBlockLength: MAX_BLOCK, bufferSize: 64 }));
  expect(pieces.records).toEqual(whole.records);
  expect(pieces.error).toEqual(whole.error);
  expect(pieces.capacity).toBeLessThanOrEqual(WINDOW_LIMIT);
  // Every record or skipped block consumes at least 12 bytes: the reader cannot loop.
  expect(whole.records.length).toBeLessThanOrEqual(bytes.length / 12 + 1);
  if (whole.error !== undefined) {
    expect(whole.error.offset).toBeGreaterThanOrEqual(0);
    expect(whole.error.offset).toBeLessThanOrEqual(bytes.length);
  }
  return whole;
}

const LE = true;
const BE = false;
const u8 = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

/** Valid captures that exercise every code path, as mutation seeds. */
const seeds: Uint8Array[] = [
  concat(
    pcapHeader(LE, false, 96, 1),
    pcapRecord(LE, 1, 2, u8(60, 1)),
    pcapRecord(LE, 3, 4, u8(96, 2), 400),
    pcapRecord(LE, 5, 6, u8(0, 0)),
  ),
  concat(pcapHeader(BE, true, 65535, 101), pcapRecord(BE, 7, 999_999_999, u8(20, 3)), pcapRecord(BE, 8, 0, u8(33, 4))),
  concat(
    ngSectionHeader(LE, [ngOption(1, u8(5, 0x61), LE), new Uint8Array(4)]),
    ngInterface(LE, 1, 64, [ngOption(2, u8(4, 0x65), LE), ngOption(9, Uint8Array.of(0x89), LE)]),
    ngInterface(LE, 0, 0, [ngOption(9, Uint8Array.of(9), LE), ngOption(14, u8(8, 1), LE)]),
    ngEnhancedPacket(LE, 0, 123_456_789n, u8(64, 5), 300),
    ngSimplePacket(LE, u8(70, 6)),
    ngBlock(5, u8(20, 7), LE),
    ngEnhancedPacket(LE, 1, 1n << 40n, u8(17, 8)),
    ngSectionHeader(BE),
    ngInterface(BE, 101, 0),
    ngBlock(0x40000bad, u8(9, 9), BE),
    ngEnhancedPacket(BE, 0, 42n, u8(40, 10)),
    ngSimplePacket(BE, u8(3, 11)),
  ),
];

describe('reader properties', () => {
  it('seeds are valid', () => {
    expect(check(seeds[0]!, 7).records.length).toBe(3);
    expect(check(seeds[1]!, 7).records.length).toBe(2);
    const ng = check(seeds[2]!, 7);
    expect(ng.error).toBeUndefined();
    expect(ng.records.length).toBe(5);
  });

  it('random bytes: only ParseError, bounded, same result sync whole/chunked', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 1, max: 50 }), (bytes, step) => {
        check(bytes, step);
      }),
      { numRuns: 1000 },
    );
  });

  it('random bytes behind a valid header: only ParseError, bounded', () => {
    const heads = [pcapHeader(LE, false, 65535, 1), pcapHeader(BE, true, 0, 101), ngSectionHeader(LE), ngSectionHeader(BE), concat(ngSectionHeader(LE), ngInterface(LE, 1, 0))];
    fc.assert(
      fc.property(fc.constantFrom(...heads), fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 1, max: 50 }), (head, tail, step) => {
        check(concat(head, tail), step);
      }),
      { numRuns: 1000 },
    );
  });

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({
      kind: fc.constant('word' as const),
      pos: fc.nat(),
      value: fc.oneof(fc.constantFrom(0, 0xffffffff, 0xfffffffc, 0x7ffffffc, 0x01000000, 0x00001000, 12, 13, 16), fc.nat()),
    }),
    fc.record({ kind: fc.constant('cut' as const), pos: fc.nat() }),
  );

  it('bit-flipped, overwritten and truncated valid files: only ParseError, bounded, sync and async agree', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...seeds.keys()),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 64 }),
        async (seedIndex, mutations, step) => {
          let bytes: Uint8Array = seeds[seedIndex]!.slice();
          for (const m of mutations) {
            if (bytes.length === 0) break;
            const pos = m.pos % bytes.length;
            if (m.kind === 'flip') bytes[pos]! ^= 1 << m.bit;
            else if (m.kind === 'cut') bytes = bytes.subarray(0, pos);
            else {
              const at = pos & ~3;
              if (at + 4 <= bytes.length) new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, m.value >>> 0, (m.pos & 1) === 0);
            }
          }
          const sync = check(bytes, step);
          const asyncOut = await readAsync(bytes, step);
          expect(asyncOut.records).toEqual(sync.records);
          expect(asyncOut.error).toEqual(sync.error);
          expect(asyncOut.capacity).toBeLessThanOrEqual(WINDOW_LIMIT);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("truncated: 'stop' never throws for a valid file cut anywhere after its header", () => {
    fc.assert(
      fc.property(fc.constantFrom(...seeds.keys()), fc.nat(), (seedIndex, cut) => {
        const seed = seeds[seedIndex]!;
        const headerLen = seedIndex === 2 ? 28 : 24;
        const at = headerLen + (cut % (seed.length - headerLen + 1));
        const r = PcapReader.fromBytes(seed.subarray(0, at), { truncated: 'stop' });
        const n = r.readAll().length;
        const full = PcapReader.fromBytes(seed).readAll().length;
        expect(n).toBeLessThanOrEqual(full);
        if (at < seed.length) expect(r.truncatedAt === -1 ? at : r.truncatedAt).toBeLessThanOrEqual(at);
      }),
      { numRuns: 500 },
    );
  });
});
