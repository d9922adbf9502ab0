import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { PcapReader } from '../../src/pcap/index.js';
import { fixChecksums } from '../../src/replay/checksums.js';
import { decodeFrame } from '../../src/replay/decode.js';
import { LinkInfo, LinkTypes, decapsulate, encapsulate, outputLinkType } from '../../src/replay/linktype.js';
import { replay, replayDevice } from '../../src/replay/replay.js';
import { capture, haveCaptures } from '../helpers/captures.js';
import { haveTshark } from '../helpers/tshark.js';
import { convertCapture, tsharkFields, tsharkFollow, tsharkProblems } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-linktypes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VARIANTS: { name: string; linkType: number; opts?: Parameters<typeof convertCapture>[2] }[] = [
  { name: 'raw IP (101)', linkType: LinkTypes.RAW },
  { name: 'DLT_RAW 12', linkType: LinkTypes.RAW_12 },
  { name: 'DLT_RAW 14', linkType: LinkTypes.RAW_14 },
  { name: 'raw IPv4 (228)', linkType: LinkTypes.IPV4 },
  { name: 'Linux SLL (113)', linkType: LinkTypes.LINUX_SLL, opts: { sllPacketType: 0 } },
  { name: 'Linux SLL2 (276)', linkType: LinkTypes.LINUX_SLL2, opts: { sllPacketType: 0 } },
  { name: 'BSD NULL, little-endian (0)', linkType: LinkTypes.NULL, opts: { littleEndian: true } },
  { name: 'BSD NULL, big-endian (0)', linkType: LinkTypes.NULL, opts: { littleEndian: false } },
  { name: 'OpenBSD LOOP (108)', linkType: LinkTypes.LOOP },
];

describe.skipIf(!haveCaptures())('test_ethernet.pcap converted to every supported link type', () => {
  for (const v of VARIANTS) {
    it(`${v.name}: tshark reads the conversion as the original; the replay matches and writes ${v.name.includes('RAW') || v.linkType === 228 ? 'raw IP' : 'the same link type'}`, async () => {
      const path = join(dir, `${v.linkType}-${v.opts?.littleEndian === false ? 'be' : 'le'}.pcap`);
      writeFileSync(path, convertCapture(capture('test_ethernet.pcap'), v.linkType, v.opts ?? {}));
      if (haveTshark() && v.linkType !== LinkTypes.RAW_14) {
        // The outside judge agrees the frames carry the same IP/TCP packets.
        const f = ['ip.src', 'ip.dst', 'tcp.seq_raw', 'tcp.ack_raw', 'tcp.len'];
        expect(tsharkFields(path, f)).toEqual(tsharkFields(capture('test_ethernet.pcap'), f));
      }
      const out = join(dir, `${v.linkType}-out.pcap`);
      const r = await replay(path, { as: '10.1.1.1', serveCaptured: true, out, record: 'both' });
      expect(r.linkType).toBe(v.linkType);
      expect(r.ok).toBe(true);
      expect(r.tcp[0]).toMatchObject({ match: true, liveBytes: 378 });
      expect(r.resolutionsAnswered).toBe(0); // no link addresses to resolve on these links
      const reader = PcapReader.open(out);
      const recs = reader.readAll();
      expect(reader.linkType).toBe(outputLinkType(v.linkType));
      expect(recs.length).toBe(r.answers + r.injected);
      if (haveTshark()) {
        expect(tsharkProblems(out)).toEqual([]);
        expect(tsharkFollow(out).server.length).toBe(378);
      }
    });
  }
});

describe.skipIf(!haveCaptures())('raw IP captures through a virtual TUN device', () => {
  it('replayDevice makes a TUN for a raw capture; the replay through it matches', async () => {
    const path = join(dir, 'raw-for-tun.pcap');
    writeFileSync(path, convertCapture(capture('test_ethernet.pcap'), LinkTypes.RAW));
    const dev = replayDevice(path);
    expect(dev.isTap).toBe(false);
    const out = join(dir, 'tun-out.pcap');
    const r = await replay(path, { as: '10.1.1.1', device: dev, serveCaptured: true, out });
    dev.close();
    expect(r.ok).toBe(true);
    expect(r.tcp[0]).toMatchObject({ match: true, liveBytes: 378 });
    const reader = PcapReader.open(out);
    const recs = reader.readAll();
    expect(reader.linkType).toBe(LinkTypes.RAW);
    expect(recs.every((f) => f.data[0]! >>> 4 === 4 || f.data[0]! >>> 4 === 6)).toBe(true);
    if (haveTshark()) expect(tsharkProblems(out)).toEqual([]);
  });
});

describe('decapsulate / encapsulate', () => {
  const ip4 = Uint8Array.from([0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
  const ip6 = new Uint8Array(40);
  ip6[0] = 0x60;
  const info = new LinkInfo();

  it('finds the packet and its protocol behind every link header', () => {
    for (const lt of [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]) {
      for (const [pkt, et] of [
        [ip4, 0x0800],
        [ip6, 0x86dd],
      ] as const) {
        const frame = encapsulate(lt, pkt, et, { srcMac: Uint8Array.of(2, 0, 0, 0, 0, 1), dstMac: Uint8Array.of(2, 0, 0, 0, 0, 2) });
        expect(decapsulate(lt, frame, info), `link type ${lt}`).toBe(true);
        expect(info.etherType).toBe(et);
        expect(Buffer.from(frame.subarray(info.offset)).equals(Buffer.from(pkt))).toBe(true);
      }
    }
  });

  it('reads BSD loopback families of every OS in either byte order', () => {
    for (const [family, et] of [
      [2, 0x0800],
      [10, 0x86dd],
      [24, 0x86dd],
      [28, 0x86dd],
      [30, 0x86dd],
    ] as const) {
      for (const le of [true, false]) {
        const f = new Uint8Array(4 + (et === 0x0800 ? 20 : 40));
        new DataView(f.buffer).setUint32(0, family, le);
        f.set(et === 0x0800 ? ip4 : ip6, 4);
        expect(decapsulate(LinkTypes.NULL, f, info)).toBe(true);
        expect([info.family, info.etherType, info.familyLittleEndian]).toEqual([family, et, le]);
      }
    }
  });

  it('skips 802.1Q and QinQ tags, and says why a frame does not decapsulate', () => {
    const tagged = Uint8Array.from([...new Array(12).fill(0xaa), 0x88, 0xa8, 0, 5, 0x81, 0, 0, 7, 0x08, 0x00, ...ip4]);
    expect(decapsulate(LinkTypes.ETHERNET, tagged, info)).toBe(true);
    expect([info.offset, info.etherType]).toEqual([22, 0x0800]);
    expect(decodeFrame(LinkTypes.ETHERNET, tagged).src).toBe('10.0.0.1');
    expect(decapsulate(LinkTypes.ETHERNET, new Uint8Array(10), info)).toBe(false);
    expect(info.error).toMatch(/10 bytes/);
    expect(decapsulate(LinkTypes.LINUX_SLL, new Uint8Array(15), info)).toBe(false);
    expect(decapsulate(LinkTypes.RAW, Uint8Array.of(0x20), info)).toBe(false);
    expect(decapsulate(105, new Uint8Array(40), info)).toBe(false);
    expect(info.error).toMatch(/unsupported link type 105/);
  });

  it('random and mutated bytes never throw from decapsulate, decodeFrame or fixChecksums, and fixing stays in bounds', () => {
    const types = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 105];
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 200 }), (lt, bytes) => {
        decapsulate(lt, bytes, info);
        const s = decodeFrame(lt, bytes);
        expect(s.l3End).toBeLessThanOrEqual(bytes.length);
        if (s.payloadLength > 0) expect(s.payloadOffset + s.payloadLength).toBeLessThanOrEqual(bytes.length);
        // Fix a copy with guard bytes around the region.
        const buf = new Uint8Array(bytes.length + 16).fill(0xee);
        buf.set(bytes, 8);
        fixChecksums(buf, 8, 8 + bytes.length);
        for (let i = 0; i < 8; i++) {
          expect(buf[i]).toBe(0xee);
          expect(buf[buf.length - 1 - i]).toBe(0xee);
        }
      }),
      { numRuns: 3000 },
    );
    // Valid headers with random bits flipped.
    const base = encapsulate(1, Uint8Array.from([...ip4.slice(0, 2), 0, 48, ...ip4.slice(4, 9), 6, ...ip4.slice(10), ...new Uint8Array(28)]), 0x0800, {});
    base[14 + 20 + 12] = 0x50;
    fc.assert(
      fc.property(fc.array(fc.nat(base.length * 8 - 1), { maxLength: 6 }), (bits) => {
        const b = base.slice();
        for (const bit of bits) b[bit >>> 3]! ^= 1 << (bit & 7);
        const s = decodeFrame(1, b);
        if (s.proto === 'tcp') expect(s.tcp!.headerOffset + s.tcp!.headerLength).toBeLessThanOrEqual(b.length);
        fixChecksums(b, 14, b.length);
      }),
      { numRuns: 3000 },
    );
  });
});
