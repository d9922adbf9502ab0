/**
 * The pcap writer judged from outside: tshark and capinfos must read its files (Ethernet and raw
 * IP, micro- and nanosecond, a snap length that truncates) with the timestamps, lengths, link type
 * and bytes written; and our reader must read them back the same way.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PcapReader, formatEpochNs } from '../../src/pcap/index.js';
import { LinkType, PcapWriter } from '../../src/pcap/index.js';
import { buildEthernet, ETHERTYPE_IPV4 } from '../../src/headers/ethernet.js';
import { parseMAC } from '../../src/core/address.js';
import { Random } from '../../src/core/random.js';
import { haveTshark } from '../helpers/tshark.js';
import { capinfos, haveCapinfos, tsharkRead, WTAP_ENCAP } from '../helpers/captures.js';

const tmp = mkdtempSync(join(tmpdir(), 'tunstack-writer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

/** A minimal IPv4 header (checksum not needed for frame-level checks) followed by payload. */
function ipv4(rnd: Random, total: number): Uint8Array {
  const p = rnd.fill(new Uint8Array(total));
  p[0] = 0x45;
  p[2] = total >> 8;
  p[3] = total & 0xff;
  p[9] = 17;
  return p;
}

interface Written {
  data: Uint8Array;
  ns: bigint;
  /** tshark's frame.time_epoch for the file's resolution. */
  time: string;
}

function makePackets(linkType: number, nano: boolean): Written[] {
  const rnd = new Random(linkType * 2 + (nano ? 1 : 0));
  const out: Written[] = [];
  const base = 1_700_000_000_000_000_000n;
  const lengths = [20, 60, 99, 100, 101, 576, 1500];
  lengths.forEach((len, i) => {
    const ip = ipv4(rnd, len);
    const data =
      linkType === LinkType.ETHERNET
        ? buildEthernet({ destination: parseMAC('02:00:00:00:00:02'), source: parseMAC('02:00:00:00:00:01'), etherType: ETHERTYPE_IPV4 }, ip)
        : ip;
    const ns = base + BigInt(i) * 1_234_567_891n + 987n;
    const stored = nano ? ns : (ns / 1000n) * 1000n;
    out.push({ data, ns, time: formatEpochNs(stored) });
  });
  return out;
}

describe('PcapWriter', () => {
  for (const linkType of [LinkType.ETHERNET, LinkType.RAW]) {
    for (const nano of [false, true]) {
      const label = `${linkType === LinkType.ETHERNET ? 'Ethernet' : 'raw IP (101)'}, ${nano ? 'nano' : 'micro'}seconds, snap length 100`;
      const snap = 100;
      const packets = makePackets(linkType, nano);
      const path = join(tmp, `w-${linkType}-${nano ? 'ns' : 'us'}.pcap`);
      const w = PcapWriter.toFile(path, { linkType, nanosecond: nano, snapLength: snap });
      for (const p of packets) w.writeNs(p.data, p.ns);
      w.close();

      it.skipIf(!haveTshark())(`${label}: tshark reads what was written`, () => {
        const ts = tsharkRead(path);
        expect(ts.status, ts.stderr).toBe(0);
        expect(ts.frames.length).toBe(packets.length);
        ts.frames.forEach((f, i) => {
          const p = packets[i]!;
          expect(f.time).toBe(p.time);
          expect(f.len).toBe(p.data.length);
          expect(f.capLen).toBe(Math.min(p.data.length, snap));
          expect(f.encap).toBe(WTAP_ENCAP[linkType]!.encap);
          expect(f.md5).toBe(md5(p.data.subarray(0, snap)));
        });
      });

      it.skipIf(!haveCapinfos())(`${label}: capinfos agrees on format (skipped without capinfos)`, () => {
        const ci = capinfos(path);
        expect(ci.status, ci.stderr).toBe(0);
        expect(ci.packets).toBe(packets.length);
        expect(ci.precision).toBe(nano ? 'nanoseconds (9)' : 'microseconds (6)');
        expect(ci.interfaces.length).toBe(1);
        expect(ci.interfaces[0]!.encapName).toBe(WTAP_ENCAP[linkType]!.name);
        expect(ci.interfaces[0]!.snapLength).toBe(snap);
      });

      it(`${label}: our reader reads it back`, () => {
        const r = PcapReader.open(path);
        expect([r.format, r.linkType, r.snapLength, r.nanosecond, r.littleEndian]).toEqual(['pcap', linkType, snap, nano, true]);
        const recs = r.readAll();
        expect(recs.length).toBe(packets.length);
        recs.forEach((rec, i) => {
          const p = packets[i]!;
          expect(formatEpochNs(rec.timestampNs)).toBe(p.time);
          expect(rec.originalLength).toBe(p.data.length);
          expect(rec.data).toEqual(p.data.subarray(0, snap));
          expect(rec.linkType).toBe(linkType);
        });
      });
    }
  }

  it.skipIf(!haveTshark())('write(ms) rounds to the resolution and carries a fraction that rounds up to a whole second', () => {
    const cases: [number, boolean, string][] = [
      [1_700_000_000_123.5, false, '1700000000.123500000'],
      [1_700_000_000_123.25, true, '1700000000.123250000'],
      [1999.9996, false, '2.000000000'],
      [1999.9996, true, '1.999999600'],
      [2999.9999999999995, true, '3.000000000'],
      [0, false, '0.000000000'],
    ];
    for (const nano of [false, true]) {
      const mine = cases.filter((c) => c[1] === nano);
      const path = join(tmp, `ms-${nano}.pcap`);
      const w = PcapWriter.toFile(path, { nanosecond: nano });
      for (const [ms] of mine) w.write(new Uint8Array(60), ms);
      w.close();
      const want = mine.map((c) => c[2]);
      expect(tsharkRead(path).frames.map((f) => f.time)).toEqual(want);
      expect(PcapReader.open(path).readAll().map((r) => formatEpochNs(r.timestampNs))).toEqual(want);
    }
  });

  it('inMemory bytes equal the file bytes', () => {
    const a = PcapWriter.inMemory({ linkType: LinkType.RAW, snapLength: 64 });
    const path = join(tmp, 'same.pcap');
    const b = PcapWriter.toFile(path, { linkType: LinkType.RAW, snapLength: 64 });
    for (const w of [a, b]) {
      w.write(new Uint8Array(80).fill(1), 1000.5);
      w.writeNs(new Uint8Array(10).fill(2), 5_000_000_001n, 1000);
    }
    b.close();
    expect(a.bytes()).toEqual(new Uint8Array(readFileSync(path)));
    const recs = PcapReader.fromBytes(a.bytes()).readAll();
    expect(recs.map((r) => [r.data.length, r.originalLength, r.timestampNs])).toEqual([
      [64, 80, 1_000_500_000n],
      [10, 1000, 5_000_000_000n],
    ]);
  });

  it('a packet written in parts is the same record as the joined packet, snap length cutting inside a part', () => {
    const rnd = new Random(4);
    for (const snap of [65535, 100, 30, 10]) {
      const joined = PcapWriter.inMemory({ linkType: LinkType.RAW, snapLength: snap });
      const parts = PcapWriter.inMemory({ linkType: LinkType.RAW, snapLength: snap });
      for (let i = 0; i < 20; i++) {
        const pkt = ipv4(rnd, 20 + rnd.below(200));
        const cuts = [rnd.below(pkt.length + 1), rnd.below(pkt.length + 1), rnd.below(pkt.length + 1)].sort((a, b) => a - b);
        const pieces = [pkt.subarray(0, cuts[0]), pkt.subarray(cuts[0], cuts[1]), pkt.subarray(cuts[1], cuts[2]), pkt.subarray(cuts[2])];
        joined.write(pkt, 1000 + i);
        parts.writeParts(pieces[0]!, pieces.slice(1), 1000 + i);
      }
      expect(parts.bytes()).toEqual(joined.bytes());
      const recs = PcapReader.fromBytes(parts.bytes()).readAll();
      expect(recs.length).toBe(20);
      expect(recs.every((r) => r.data.length === Math.min(snap, r.originalLength))).toBe(true);
    }
  });
});
