import { mkdtempSync, rmSync, writeFileSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { ParseError } from '../../src/core/errors.js';
import {
  PcapReader,
  readPcap,
  formatEpochNs,
  type PcapRecord,
  type PcapReaderOptions,
  type SyncByteSource,
} from '../../src/pcap/index.js';
import { PcapWriter } from '../../src/pcap/index.js';
import { Random } from '../../src/core/random.js';
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

const tmp = mkdtempSync(join(tmpdir(), 'tunstack-reader-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const bytes = (n: number, fill = 0): Uint8Array => new Uint8Array(n).fill(fill);

/** A source that hands out at most `step` bytes per read, counting closes. */
function chunked(data: Uint8Array, step: number): SyncByteSource & { closed: number } {
  let off = 0;
  const src = {
    closed: 0,
    read(into: Uint8Array, offset: number, length: number): number {
      const k = Math.min(step, length, data.length - off);
      into.set(data.subarray(off, off + k), offset);
      off += k;
      return k;
    },
    close(): void {
      src.closed++;
    },
  };
  return src;
}

function parseErrorOf(data: Uint8Array, options: PcapReaderOptions = {}): { error: ParseError; records: PcapRecord[] } {
  const records: PcapRecord[] = [];
  try {
    for (const p of PcapReader.fromBytes(data, options)) records.push(p);
  } catch (e) {
    if (e instanceof ParseError) return { error: e, records };
    throw e;
  }
  throw new Error(`no ParseError; read ${records.length} records`);
}

function readAllWays(data: Uint8Array, options: PcapReaderOptions = {}): PcapRecord[] {
  const a = PcapReader.fromBytes(data, options).readAll();
  const b = PcapReader.fromSource(chunked(data, 5), { ...options, bufferSize: 64 }).readAll();
  expect(b).toEqual(a);
  return a;
}

describe('classic pcap', () => {
  for (const le of [true, false]) {
    for (const nano of [false, true]) {
      it(`reads ${le ? 'little' : 'big'}-endian ${nano ? 'nano' : 'micro'}second files`, () => {
        const file = concat(
          pcapHeader(le, nano, 96, 101),
          pcapRecord(le, 1_700_000_000, nano ? 123_456_789 : 123_456, bytes(60, 1)),
          pcapRecord(le, 1_700_000_001, nano ? 999_999_999 : 999_999, bytes(96, 2), 1500),
          pcapRecord(le, 0, 0, bytes(0)),
        );
        const r = PcapReader.fromBytes(file);
        expect(r.format).toBe('pcap');
        expect(r.littleEndian).toBe(le);
        expect(r.nanosecond).toBe(nano);
        expect([r.versionMajor, r.versionMinor]).toEqual([2, 4]);
        expect(r.snapLength).toBe(96);
        expect(r.linkType).toBe(101);
        const recs = readAllWays(file);
        expect(recs.length).toBe(3);
        expect(formatEpochNs(recs[0]!.timestampNs)).toBe(nano ? '1700000000.123456789' : '1700000000.123456000');
        expect(recs[0]!.timestampMs).toBeCloseTo(nano ? 1_700_000_000_123.456789 : 1_700_000_000_123.456, 3);
        expect(formatEpochNs(recs[1]!.timestampNs)).toBe(nano ? '1700000001.999999999' : '1700000001.999999000');
        expect(recs[1]!.originalLength).toBe(1500);
        expect(recs[1]!.data).toEqual(bytes(96, 2));
        expect(recs[2]!.data.length).toBe(0);
        expect(recs.every((p) => p.linkType === 101 && p.interfaceId === 0 && p.hasTimestamp)).toBe(true);
      });
    }
  }

  it('rejects an unknown magic, a bad version, empty and short files, naming the offset', () => {
    expect(() => PcapReader.fromBytes(bytes(24, 0x42))).toThrow(/magic 0x42424242.*at offset 0/);
    const v3 = parseErrorOf(pcapHeader(true, false, 65535, 1, [3, 0])).error;
    expect(v3.offset).toBe(4);
    expect(v3.message).toMatch(/version 3\.0/);
    expect(parseErrorOf(new Uint8Array(0)).error.message).toMatch(/empty file/);
    expect(parseErrorOf(pcapHeader(true, false, 65535, 1).subarray(0, 10)).error.message).toMatch(/truncated pcap file header/);
  });

  it('rejects a record claiming 4 GiB before allocating anything', () => {
    const file = concat(pcapHeader(true, false, 65535, 1), pcapRecord(true, 1, 0, bytes(10)));
    new DataView(file.buffer).setUint32(24 + 8, 0xffffffff, true);
    const src = chunked(file, 1 << 20);
    let err: unknown;
    let reader: PcapReader | undefined;
    try {
      reader = PcapReader.fromSource(src, { bufferSize: 4096 });
      reader.readAll();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ParseError);
    expect((err as ParseError).offset).toBe(32);
    expect((err as ParseError).message).toMatch(/4294967295 exceeds the limit 262144/);
    expect(reader!.bufferCapacity).toBe(4096);
    expect(src.closed).toBe(1);
  });

  it('a record truncated at end of file is an error at its offset, or a quiet stop on request', () => {
    const good = concat(pcapHeader(true, false, 65535, 1), pcapRecord(true, 1, 0, bytes(40)));
    for (const cut of [1, 15, 16, 30]) {
      const file = concat(good, pcapRecord(true, 2, 0, bytes(40)).subarray(0, cut));
      const { error, records } = parseErrorOf(file);
      expect(records.length).toBe(1);
      expect(error.offset).toBe(good.length);
      expect(error.message).toMatch(/truncated pcap record/);
      const r = PcapReader.fromBytes(file, { truncated: 'stop' });
      expect(r.readAll().length).toBe(1);
      expect(r.truncatedAt).toBe(good.length);
    }
    expect(PcapReader.fromBytes(good, { truncated: 'stop' }).truncatedAt).toBe(-1);
  });
});

describe('pcapng', () => {
  const LE = true;
  const BE = false;
  const ts = 1_340_954_905_298_858n;

  it('reads interfaces with different link types, options, and EPBs in both byte orders', () => {
    for (const le of [LE, BE]) {
      const name = new TextEncoder().encode('eth0');
      const file = concat(
        ngSectionHeader(le, [ngOption(1, new TextEncoder().encode('a comment'), le), new Uint8Array(4)]),
        ngInterface(le, 1, 96, [ngOption(2, name, le)]),
        ngInterface(le, 101, 0, [ngOption(9, Uint8Array.of(9), le)]), // nanoseconds
        ngEnhancedPacket(le, 0, ts, bytes(96, 7), 314),
        ngEnhancedPacket(le, 1, 1_340_954_905_298_858_123n, bytes(33, 8)),
      );
      const seen: string[] = [];
      const r = PcapReader.fromBytes(file, { onInterface: (i) => seen.push(`${i.section}/${i.id}/${i.linkType}/${i.name}`) });
      expect(r.format).toBe('pcapng');
      expect(r.littleEndian).toBe(le);
      const recs = r.readAll();
      expect(seen).toEqual(['0/0/1/eth0', '0/1/101/undefined']);
      expect(r.interfaces.map((i) => i.ticksPerSecond)).toEqual([1_000_000n, 1_000_000_000n]);
      expect(r.linkType).toBe(1);
      expect(r.snapLength).toBe(96);
      expect(recs.map((p) => [p.interfaceId, p.linkType, p.originalLength, p.data.length])).toEqual([
        [0, 1, 314, 96],
        [1, 101, 33, 33],
      ]);
      expect(formatEpochNs(recs[0]!.timestampNs)).toBe('1340954905.298858000');
      expect(formatEpochNs(recs[1]!.timestampNs)).toBe('1340954905.298858123');
      expect(recs[1]!.data).toEqual(bytes(33, 8));
      expect(readAllWays(file)).toEqual(recs);
    }
  });

  it('applies if_tsresol (power of 10 and of 2) and if_tsoffset', () => {
    const off = new Uint8Array(8);
    new DataView(off.buffer).setBigInt64(0, -100n, true);
    const off2 = new Uint8Array(8);
    new DataView(off2.buffer).setBigInt64(0, 1_000_000_000n, true);
    const file = concat(
      ngSectionHeader(LE),
      ngInterface(LE, 1, 0, [ngOption(9, Uint8Array.of(3), LE)]), // milliseconds
      ngInterface(LE, 1, 0, [ngOption(9, Uint8Array.of(0x80 | 10), LE)]), // 1/1024 s
      ngInterface(LE, 1, 0, [ngOption(14, off, LE)]), // micro, offset -100 s
      ngInterface(LE, 1, 0, [ngOption(9, Uint8Array.of(12), LE), ngOption(14, off2, LE)]), // picoseconds, +1e9 s
      ngEnhancedPacket(LE, 0, 1_500n, bytes(4)),
      ngEnhancedPacket(LE, 1, 1024n * 5n + 3n, bytes(4)),
      ngEnhancedPacket(LE, 2, 200_000_001n, bytes(4)),
      ngEnhancedPacket(LE, 3, 1_234_567_891_234n, bytes(4)),
    );
    const recs = readAllWays(file);
    expect(recs.map((p) => formatEpochNs(p.timestampNs))).toEqual([
      '1.500000000',
      '5.002929687', // 3/1024 s = 0.0029296875, floored to ns as Wireshark does
      '100.000001000',
      '1000000001.234567891',
    ]);
    expect(recs[0]!.timestampMs).toBe(1500);
  });

  it('handles several sections that switch byte order, restarting interface numbering', () => {
    const file = concat(
      ngSectionHeader(LE),
      ngInterface(LE, 1, 0),
      ngInterface(LE, 0, 0),
      ngEnhancedPacket(LE, 1, ts, bytes(20, 1)),
      ngSectionHeader(BE),
      ngInterface(BE, 101, 0),
      ngEnhancedPacket(BE, 0, ts + 1n, bytes(21, 2)),
      ngSectionHeader(LE),
      ngInterface(LE, 1, 0),
      ngEnhancedPacket(LE, 0, ts + 2n, bytes(22, 3)),
    );
    const r = PcapReader.fromBytes(file);
    const recs = r.readAll();
    expect(recs.map((p) => [p.interfaceId, p.linkType, p.data.length])).toEqual([
      [1, 0, 20],
      [0, 101, 21],
      [0, 1, 22],
    ]);
    expect(r.sections).toBe(3);
    // An EPB naming interface 1 in the BE section (which has only one) is an error at its ifid field.
    const bad = concat(ngSectionHeader(LE), ngInterface(LE, 1, 0), ngInterface(LE, 1, 0), ngSectionHeader(BE), ngInterface(BE, 1, 0));
    const epb = ngEnhancedPacket(BE, 1, ts, bytes(4));
    const { error } = parseErrorOf(concat(bad, epb));
    expect(error.offset).toBe(bad.length + 8);
    expect(error.message).toMatch(/interface 1/);
  });

  it('SPB takes the snap length of interface 0 and has no timestamp; needs an interface', () => {
    const file = concat(
      ngSectionHeader(LE),
      ngInterface(LE, 1, 50),
      ngInterface(LE, 0, 0),
      ngSimplePacket(LE, bytes(50, 9), 314),
      ngSimplePacket(LE, bytes(30, 9)),
      ngSimplePacket(LE, bytes(31, 9)), // padded to 32 in the block; 31 captured
    );
    const recs = readAllWays(file);
    expect(recs.map((p) => [p.data.length, p.originalLength, p.hasTimestamp, p.timestampNs, p.linkType])).toEqual([
      [50, 314, false, 0n, 1],
      [30, 30, false, 0n, 1],
      [31, 31, false, 0n, 1],
    ]);
    const noIf = concat(ngSectionHeader(LE), ngSimplePacket(LE, bytes(4)));
    expect(parseErrorOf(noIf).error.offset).toBe(28);
  });

  it('skips unknown, statistics, name-resolution and custom blocks by their length', () => {
    const file = concat(
      ngSectionHeader(BE),
      ngBlock(0x00000bad, bytes(13, 0xee), BE),
      ngInterface(BE, 1, 0),
      ngBlock(4, bytes(8), BE),
      ngBlock(0x80001234, bytes(0), BE),
      ngBlock(5, bytes(40, 1), BE),
      ngEnhancedPacket(BE, 0, ts, bytes(60, 5)),
      ngBlock(0x40000bad, bytes(100, 0x0a), BE),
    );
    const recs = readAllWays(file);
    expect(recs.length).toBe(1);
    expect(recs[0]!.data).toEqual(bytes(60, 5));
  });

  it('rejects corrupt blocks with the offset of the bad field', () => {
    const head = concat(ngSectionHeader(LE), ngInterface(LE, 1, 0));
    const epb = ngEnhancedPacket(LE, 0, ts, bytes(16));
    const at = head.length;
    const cases: [string, (b: Uint8Array, v: DataView) => void, number, RegExp][] = [
      ['length 4 GiB', (_b, v) => v.setUint32(at + 4, 0xfffffffc, true), at + 4, /exceeds the limit/],
      ['length not a multiple of 4', (_b, v) => v.setUint32(at + 4, epb.length - 2, true), at + 4, /multiple of 4/],
      ['length below the minimum', (_b, v) => v.setUint32(at + 4, 16, true), at + 4, /minimum 32/],
      ['trailing length differs', (_b, v) => v.setUint32(at + epb.length - 4, 999, true), at + epb.length - 4, /trailing length/],
      ['captured length past the block', (_b, v) => v.setUint32(at + 20, 17, true), at + 20, /exceeds its block/],
      ['bad byte-order magic', (_b, v) => v.setUint32(8, 0x12345678, true), 8, /byte-order magic/],
      ['SHB version 2.0', (_b, v) => v.setUint16(12, 2, true), 12, /version 2\.0/],
    ];
    for (const [what, corrupt, offset, msg] of cases) {
      const file = concat(head, epb);
      corrupt(file, new DataView(file.buffer));
      const { error } = parseErrorOf(file);
      expect(error.offset, what).toBe(offset);
      expect(error.message, what).toMatch(msg);
    }
    // An option that runs past its block.
    const badOpt = ngInterface(LE, 1, 0, [ngOption(2, bytes(8, 0x41), LE)]);
    new DataView(badOpt.buffer).setUint16(16 + 2, 200, true);
    const { error } = parseErrorOf(concat(ngSectionHeader(LE), badOpt));
    expect(error.offset).toBe(28 + 16);
    expect(error.message).toMatch(/option 2 of length 200 runs past/);
    // A file that does not start with an SHB.
    expect(parseErrorOf(concat(ngSectionHeader(LE), epb).subarray(28)).error.message).toMatch(/not a pcap or pcapng/);
  });

  it('truncation inside a block: error at the block, or a quiet stop', () => {
    const head = concat(ngSectionHeader(LE), ngInterface(LE, 1, 0), ngEnhancedPacket(LE, 0, ts, bytes(16)));
    const file = concat(head, ngEnhancedPacket(LE, 0, ts, bytes(100)).subarray(0, 50));
    const { error, records } = parseErrorOf(file);
    expect(records.length).toBe(1);
    expect(error.offset).toBe(head.length);
    expect(error.message).toMatch(/truncated pcapng block: 132 bytes needed, 50 left/);
    const r = PcapReader.fromSource(chunked(file, 3), { truncated: 'stop', bufferSize: 64 });
    expect(r.readAll().length).toBe(1);
    expect(r.truncatedAt).toBe(head.length);
  });

  it('rejects more interfaces than the cap', () => {
    const parts = [ngSectionHeader(LE)];
    for (let i = 0; i < 5; i++) parts.push(ngInterface(LE, 1, 0));
    const { error } = parseErrorOf(concat(...parts), { maxInterfaces: 4 });
    expect(error.offset).toBe(28 + 4 * 20);
  });
});

describe('streaming', () => {
  const rnd = new Random(7);
  const N = 3000;
  const path = join(tmp, 'big.pcap');
  const w = PcapWriter.toFile(path, { nanosecond: true });
  const sizes: number[] = [];
  for (let i = 0; i < N; i++) {
    const n = 2 + rnd.below(1513);
    sizes.push(n);
    const p = new Uint8Array(n);
    p[0] = i & 0xff;
    p[n - 1] = (i >> 8) & 0xff;
    w.write(p, 1_700_000_000_000 + i);
  }
  w.close();

  it('reads a file much larger than its window through a file descriptor, the window staying small', () => {
    const r = PcapReader.open(path, { bufferSize: 4096 });
    let i = 0;
    for (const p of r) {
      expect(p.data.length).toBe(sizes[i]);
      expect(p.data[0]).toBe(i & 0xff);
      expect(p.data[p.data.length - 1]).toBe((i >> 8) & 0xff);
      expect(p.timestampNs).toBe((1_700_000_000_000n + BigInt(i)) * 1_000_000n);
      i++;
    }
    expect(i).toBe(N);
    expect(r.bufferCapacity).toBe(4096);
  });

  it('grows the window only as far as the largest block needs', () => {
    const big = concat(pcapHeader(true, false, 65535, 1), pcapRecord(true, 1, 0, bytes(10_000, 3)), pcapRecord(true, 2, 0, bytes(5)));
    const r = PcapReader.fromSource(chunked(big, 999), { bufferSize: 1024 });
    const recs = r.readAll();
    expect(recs.map((p) => p.data.length)).toEqual([10_000, 5]);
    expect(r.bufferCapacity).toBeGreaterThanOrEqual(10_016);
    expect(r.bufferCapacity).toBeLessThanOrEqual(2 * 10_016);
  });

  it('reads a Node Readable asynchronously, with the same packets', async () => {
    let i = 0;
    const reader = readPcap(createReadStream(path, { highWaterMark: 1000 }), { bufferSize: 2048 });
    for await (const p of reader) {
      expect(p.data.length).toBe(sizes[i]);
      i++;
    }
    expect(i).toBe(N);
    expect(reader.format).toBe('pcap');
    expect(reader.nanosecond).toBe(true);
    expect(reader.bufferCapacity).toBe(2048);
  });

  it('stops the stream when the consumer breaks early, and rejects string chunks', async () => {
    const stream = createReadStream(path);
    let n = 0;
    for await (const p of readPcap(stream)) {
      void p;
      if (++n === 3) break;
    }
    expect(stream.destroyed).toBe(true);
    await expect(async () => {
      for await (const p of readPcap(Readable.from(['not bytes']))) void p;
    }).rejects.toThrow(/must yield bytes/);
  });

  it('breaking out of a sync iteration closes the source; reuse mode returns one record over the window', () => {
    const file = concat(pcapHeader(true, false, 65535, 1), pcapRecord(true, 1, 0, bytes(8, 1)), pcapRecord(true, 2, 0, bytes(8, 2)));
    const src = chunked(file, 7);
    for (const p of PcapReader.fromSource(src)) {
      void p;
      break;
    }
    expect(src.closed).toBe(1);
    const r = PcapReader.fromBytes(file, { reuse: true });
    const a = r.read()!;
    expect(a.data[0]).toBe(1);
    expect(a.data.buffer).toBe(file.buffer);
    const b = r.read()!;
    expect(b).toBe(a);
    expect(b.data[0]).toBe(2);
    expect(r.read()).toBeNull();
  });

  it('open() of a non-capture file throws ParseError and closes it', () => {
    const p = join(tmp, 'text.txt');
    writeFileSync(p, 'hello, this is not a capture file\n');
    expect(() => PcapReader.open(p)).toThrow(ParseError);
  });
});
