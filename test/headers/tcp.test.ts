import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  buildTcp,
  encodeTcp,
  encodeTcpOptions,
  parseTcpOptions,
  tcpHeaderLength,
  tcpOptionsLength,
  TcpHeader,
  TcpOptions,
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_OPT_NOP,
  TCP_OPT_SACK,
  TCP_OPT_TIMESTAMP,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  type TcpFields,
  type TcpOptionFields,
} from '../../src/headers/tcp.js';
import { buildIPv4, IPv4Header, IP_PROTO_TCP } from '../../src/headers/ipv4.js';
import { buildEthernet, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/headers/ethernet.js';
import { parseIPv4, parseIPv6, parseMAC } from '../../src/core/address.js';
import { Random } from '../../src/core/random.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';
import { xorAt } from '../helpers/bytes.js';

const mac1 = parseMAC('02:00:00:00:00:01');
const mac2 = parseMAC('02:00:00:00:00:02');
const A = parseIPv4('10.0.0.1');
const B = parseIPv4('10.0.0.2');
const A6 = parseIPv6('fd00::1');
const B6 = parseIPv6('fd00::2');

function v4frame(tcp: Uint8Array): Uint8Array {
  return buildEthernet({ destination: mac2, source: mac1, etherType: ETHERTYPE_IPV4 }, buildIPv4({ src: A, dst: B, protocol: IP_PROTO_TCP }, tcp));
}

function v6frame(tcp: Uint8Array): Uint8Array {
  const ip = new Uint8Array(40 + tcp.length);
  ip[0] = 0x60;
  ip[4] = tcp.length >>> 8;
  ip[5] = tcp.length & 0xff;
  ip[6] = IP_PROTO_TCP;
  ip[7] = 64;
  ip.set(A6, 8);
  ip.set(B6, 24);
  ip.set(tcp, 40);
  return buildEthernet({ destination: mac2, source: mac1, etherType: ETHERTYPE_IPV6 }, ip);
}

/** Raw bytes: NOP, NOP, SACK with the given [left, right] pairs. */
function rawSack(blocks: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * blocks.length);
  out.set([TCP_OPT_NOP, TCP_OPT_NOP, TCP_OPT_SACK, 2 + 4 * blocks.length]);
  const dv = new DataView(out.buffer);
  blocks.forEach((v, i) => dv.setUint32(4 + 4 * i, v));
  return out;
}

describe('TCP header', () => {
  it('reads back every field it writes', () => {
    const payload = new Uint8Array(100).fill(0x42);
    const seg = buildTcp(
      { srcPort: 443, dstPort: 51234, seq: 0xfffffff0, ack: 0x80000001, flags: TCP_ACK | TCP_PSH | TCP_URG | TCP_ECE | TCP_CWR, window: 65535, urgentPointer: 17, options: { timestamp: true, tsVal: 1, tsEcr: 0xffffffff }, pseudoHeader: { src: A, dst: B } },
      payload,
    );
    const t = new TcpHeader(seg);
    expect(t.isValid()).toBe(true);
    expect([t.srcPort, t.dstPort, t.seq, t.ack, t.window, t.urgentPointer]).toEqual([443, 51234, 0xfffffff0, 0x80000001, 65535, 17]);
    expect([t.dataOffset, t.headerLength, t.optionsLength, t.payloadLength]).toEqual([8, 32, 12, 100]);
    expect([t.fin, t.syn, t.rst, t.psh, t.ackFlag, t.urg, t.ece, t.cwr]).toEqual([false, false, false, true, true, true, true, true]);
    expect(t.reserved).toBe(0);
    expect(t.payload).toEqual(payload);
    expect(t.checksumValidV4(A, 0, B, 0)).toBe(true);
    expect(t.checksumValidV4(A, 0, A, 0)).toBe(false);
    const o = new TcpOptions();
    expect(t.parseOptions(o)).toBe(true);
    expect([o.timestamp, o.tsVal, o.tsEcr, o.mss, o.windowScale, o.sackPermitted, o.sackCount]).toEqual([true, 1, 0xffffffff, -1, -1, false, 0]);

    t.seq = 5;
    t.ack = 6;
    t.flags = TCP_FIN | TCP_ACK;
    t.window = 1;
    t.srcPort = 1;
    t.dstPort = 2;
    t.urgentPointer = 0;
    expect([t.seq, t.ack, t.fin, t.ackFlag, t.psh, t.window, t.srcPort, t.dstPort]).toEqual([5, 6, true, true, false, 1, 1, 2]);
    expect(t.checksumValidV4(A, 0, B, 0)).toBe(false);
    t.setChecksumV4(A, 0, B, 0);
    expect(t.checksumValidV4(A, 0, B, 0)).toBe(true);
    t.setChecksumV6(A6, 0, B6, 0);
    expect(t.checksumValidV6(A6, 0, B6, 0)).toBe(true);
    expect(t.checksum).toBe(t.computeChecksumV6(A6, 0, B6, 0));
  });

  it('checks against the addresses of an IPv4 view in place', () => {
    const pkt = buildIPv4({ src: A, dst: B, protocol: IP_PROTO_TCP }, buildTcp({ srcPort: 1, dstPort: 2, seq: 3, flags: TCP_SYN, window: 4, pseudoHeader: { src: A, dst: B } }, Uint8Array.of(9)));
    const ip = new IPv4Header(pkt);
    const t = new TcpHeader(pkt, ip.payloadOffset, ip.payloadLength);
    expect(t.checksumValidV4(pkt, ip.srcOffset, pkt, ip.dstOffset)).toBe(true);
    expect(t.checksumValid(ip.pseudoHeaderSum(ip.payloadLength))).toBe(true);
  });

  it('isValid needs 20 bytes and 5 <= data offset with the header inside len', () => {
    const seg = buildTcp({ srcPort: 1, dstPort: 2, seq: 0, flags: TCP_SYN, window: 0, options: { mss: 1460 } });
    expect(new TcpHeader(seg).isValid()).toBe(true);
    expect(new TcpHeader(seg, 0, 19).isValid()).toBe(false);
    expect(new TcpHeader(seg, 0, 23).isValid()).toBe(false); // header is 24
    const b = seg.slice();
    b[12] = 4 << 4;
    expect(new TcpHeader(b).isValid()).toBe(false);
    b[12] = 15 << 4;
    expect(new TcpHeader(b).isValid()).toBe(false);
  });

  it('encodes options in Linux order and layout', () => {
    const bytes = (o: TcpOptionFields): number[] => {
      const buf = new Uint8Array(40);
      const n = encodeTcpOptions(buf, 0, o);
      expect(n).toBe(tcpOptionsLength(o));
      expect(n % 4).toBe(0);
      return Array.from(buf.subarray(0, n));
    };
    // A Linux SYN: MSS, SACKOK+TS, NOP+WS.
    expect(bytes({ mss: 1460, sackPermitted: true, timestamp: true, tsVal: 0x01020304, tsEcr: 0, windowScale: 7 })).toEqual([
      2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7,
    ]);
    // Timestamps without SACK: NOP, NOP, TS.
    expect(bytes({ timestamp: true, tsVal: 1, tsEcr: 2 })).toEqual([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    // SACK-permitted without timestamps: NOP, NOP, SACKOK.
    expect(bytes({ mss: 536, sackPermitted: true })).toEqual([2, 4, 2, 0x18, 1, 1, 4, 2]);
    // SACK blocks after the rest: NOP, NOP, SACK.
    expect(bytes({ sackBlocks: [10, 20, 30, 40] })).toEqual([1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40]);
    expect(bytes({})).toEqual([]);
    // With timestamps only 3 SACK blocks fit (12 + 4 + 24 = 40), as in Linux.
    const eight = [1, 2, 3, 4, 5, 6, 7, 8];
    expect(tcpOptionsLength({ timestamp: true, sackBlocks: eight })).toBe(40);
    expect(tcpOptionsLength({ sackBlocks: eight })).toBe(36);
    expect(tcpOptionsLength({ sackBlocks: eight, sackCount: 2 })).toBe(20);
    // TcpOptions itself is accepted (absent fields are -1/false).
    const o = new TcpOptions();
    o.mss = 1200;
    o.addSack(100, 200);
    expect(bytes(o)).toEqual([2, 4, 4, 176, 1, 1, 5, 10, 0, 0, 0, 100, 0, 0, 0, 200]);
  });

  it('parses every option kind and skips unknown ones by length', () => {
    const o = new TcpOptions();
    const buf = new Uint8Array(40);
    const n = encodeTcpOptions(buf, 0, { mss: 9000, sackPermitted: true, timestamp: true, tsVal: 123, tsEcr: 456, windowScale: 14 });
    expect(parseTcpOptions(buf, 0, n, o)).toBe(true);
    expect([o.mss, o.sackPermitted, o.timestamp, o.tsVal, o.tsEcr, o.windowScale, o.sackCount, o.unknownCount]).toEqual([9000, true, true, 123, 456, 14, 0, 0]);
    for (let k = 1; k <= 4; k++) {
      const blocks = Array.from({ length: 2 * k }, (_, i) => 0xfffffff0 + i);
      const raw = rawSack(blocks);
      expect(parseTcpOptions(raw, 0, raw.length, o)).toBe(true);
      expect(o.sackCount).toBe(k);
      expect(Array.from(o.sackBlocks.subarray(0, 2 * k))).toEqual(blocks.map((v) => v >>> 0));
      expect([o.sackLeft(k - 1), o.sackRight(k - 1)]).toEqual([blocks[2 * k - 2], blocks[2 * k - 1]]);
    }
    // Unknown kinds 30 (MPTCP) and 99 skipped; MSS after them still found; EOL ends the list.
    const raw = Uint8Array.of(30, 4, 0, 0, 99, 3, 7, 2, 4, 1, 0, 0, 0xff, 0xff, 0xff);
    expect(parseTcpOptions(raw, 0, raw.length, o)).toBe(true);
    expect([o.unknownCount, o.mss, o.timestamp]).toEqual([2, 256, false]);
    // parse clears what an earlier parse left.
    expect(parseTcpOptions(raw, 0, 0, o)).toBe(true);
    expect([o.unknownCount, o.mss]).toEqual([0, -1]);
  });

  it('rejects malformed option lists', () => {
    const o = new TcpOptions();
    const bad: [string, number[]][] = [
      ['kind without length', [1, 1, 1, 2]],
      ['length 0', [99, 0, 1, 1]],
      ['length 1', [99, 1, 1, 1]],
      ['past the end', [1, 99, 6, 0]],
      ['MSS length 3', [2, 3, 0, 1]],
      ['MSS length 5', [2, 5, 0, 1, 0, 1, 1, 1]],
      ['WS length 4', [3, 4, 1, 1]],
      ['SACKOK length 3', [4, 3, 0, 1]],
      ['TS length 8', [8, 8, 0, 0, 0, 0, 0, 0]],
      ['SACK length 2', [5, 2, 1, 1]],
      ['SACK length 11', [5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
      ['SACK with 5 blocks (42 > 40 in any case)', [5, 34 + 8, ...new Array<number>(40).fill(0)]],
    ];
    for (const [name, b] of bad) {
      const u = Uint8Array.from(b);
      expect(parseTcpOptions(u, 0, u.length, o), name).toBe(false);
    }
    expect(parseTcpOptions(new Uint8Array(4), 2, 4, o)).toBe(false); // region outside the buffer
    // A malformed list in a header still leaves the header valid; parseOptions reports it.
    const seg = buildTcp({ srcPort: 1, dstPort: 2, seq: 0, flags: TCP_ACK, window: 1, rawOptions: Uint8Array.of(2, 0, 0, 0) });
    const t = new TcpHeader(seg);
    expect(t.isValid()).toBe(true);
    expect(t.parseOptions(o)).toBe(false);
  });

  it('never throws or loops on random bytes and bit-flipped segments', () => {
    const o = new TcpOptions();
    const probe = (bytes: Uint8Array): void => {
      const t = new TcpHeader(bytes);
      if (!t.isValid()) return;
      void [t.seq, t.ack, t.flags, t.window, t.payload, t.options, t.urgentPointer];
      t.checksumValidV4(A, 0, B, 0);
      t.checksumValidV6(A6, 0, B6, 0);
      if (t.parseOptions(o)) {
        expect(o.sackCount).toBeLessThanOrEqual(4);
        expect(o.mss).toBeLessThanOrEqual(0xffff);
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 80 }), (bytes) => probe(bytes)),
      { numRuns: 3000 },
    );
    // Option areas of random bytes (the interesting part) at random offsets.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 44 }), fc.nat({ max: 4 }), (bytes, off) => {
        const start = Math.min(off, bytes.length);
        parseTcpOptions(bytes, start, bytes.length - start, o);
      }),
      { numRuns: 5000 },
    );
    const base = buildTcp(
      { srcPort: 80, dstPort: 8080, seq: 1, ack: 2, flags: TCP_ACK, window: 9, options: { timestamp: true, tsVal: 3, tsEcr: 4, sackBlocks: [5, 6, 7, 8] }, pseudoHeader: { src: A, dst: B } },
      new Uint8Array(12),
    );
    fc.assert(
      fc.property(fc.array(fc.nat({ max: base.length * 8 - 1 }), { minLength: 1, maxLength: 5 }), (bits) => {
        const b = base.slice();
        for (const bit of bits) xorAt(b, bit >>> 3, 1 << (bit & 7));
        probe(b);
        if (bits.length === 1) expect(new TcpHeader(b).checksumValidV4(A, 0, B, 0)).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips arbitrary fields and options', () => {
    const o = new TcpOptions();
    fc.assert(
      fc.property(
        fc.record({
          srcPort: fc.integer({ min: 0, max: 0xffff }),
          dstPort: fc.integer({ min: 0, max: 0xffff }),
          seq: fc.integer({ min: 0, max: 0xffffffff }),
          ack: fc.integer({ min: 0, max: 0xffffffff }),
          flags: fc.integer({ min: 0, max: 0xff }),
          window: fc.integer({ min: 0, max: 0xffff }),
          urgentPointer: fc.integer({ min: 0, max: 0xffff }),
        }),
        fc.record(
          {
            mss: fc.integer({ min: 0, max: 0xffff }),
            windowScale: fc.integer({ min: 0, max: 255 }),
            sackPermitted: fc.boolean(),
            timestamp: fc.boolean(),
            tsVal: fc.integer({ min: 0, max: 0xffffffff }),
            tsEcr: fc.integer({ min: 0, max: 0xffffffff }),
            sackBlocks: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 0, maxLength: 8 }).map((a) => a.slice(0, a.length & ~1)),
          },
          { requiredKeys: [] },
        ),
        fc.uint8Array({ maxLength: 64 }),
        (f, opts: TcpOptionFields, payload) => {
          const fields: TcpFields = { ...f, options: opts, pseudoHeader: { src: A6, dst: B6 } };
          const seg = buildTcp(fields, payload);
          const t = new TcpHeader(seg);
          expect(t.isValid()).toBe(true);
          expect(t.headerLength).toBe(tcpHeaderLength(fields));
          expect([t.srcPort, t.dstPort, t.seq, t.ack, t.flags, t.window, t.urgentPointer]).toEqual([f.srcPort, f.dstPort, f.seq, f.ack, f.flags, f.window, f.urgentPointer]);
          expect(t.payload).toEqual(payload);
          expect(t.checksumValidV6(A6, 0, B6, 0)).toBe(true);
          expect(t.parseOptions(o)).toBe(true);
          expect(o.mss).toBe(opts.mss ?? -1);
          expect(o.windowScale).toBe(opts.windowScale ?? -1);
          expect(o.sackPermitted).toBe(opts.sackPermitted ?? false);
          expect(o.timestamp).toBe(opts.timestamp ?? false);
          if (opts.timestamp) expect([o.tsVal, o.tsEcr]).toEqual([opts.tsVal ?? 0, opts.tsEcr ?? 0]);
          // SACK blocks: as many as fit after the other options, in order.
          const want = Array.from(opts.sackBlocks ?? []);
          expect(o.sackCount).toBeLessThanOrEqual(want.length / 2);
          expect(Array.from(o.sackBlocks.subarray(0, 2 * o.sackCount))).toEqual(want.slice(0, 2 * o.sackCount));
          if (o.sackCount < want.length / 2) expect(t.optionsLength + 8).toBeGreaterThan(40);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('encodeTcp covers payload already in the buffer and pads raw options with EOL', () => {
    const buf = new Uint8Array(100);
    const hl = tcpHeaderLength({ rawOptions: Uint8Array.of(1, 1, 1, 1, 1) });
    expect(hl).toBe(28);
    buf.set([7, 7, 7], 10 + hl);
    expect(encodeTcp(buf, 10, { srcPort: 1, dstPort: 2, seq: 3, flags: TCP_ACK, window: 5, rawOptions: Uint8Array.of(1, 1, 1, 1, 1), payloadLength: 3, pseudoHeader: { src: A, dst: B } })).toBe(28);
    expect(Array.from(buf.subarray(30, 38))).toEqual([1, 1, 1, 1, 1, 0, 0, 0]);
    const t = new TcpHeader(buf, 10, hl + 3);
    expect(t.checksumValidV4(A, 0, B, 0)).toBe(true);
    expect(Array.from(t.payload)).toEqual([7, 7, 7]);
  });

  it.skipIf(!haveTshark())('is dissected by tshark as built, every option kind included', () => {
    const r = new Random(9);
    const seq = (): number => r.u32();
    const ph = { src: A, dst: B };
    const unknown = Uint8Array.of(99, 6, 0xde, 0xad, 0xbe, 0xef, TCP_OPT_NOP, TCP_OPT_NOP, TCP_OPT_TIMESTAMP, 10, 0, 0, 0, 5, 0, 0, 0, 6);
    const cases: TcpFields[] = [
      // A Linux SYN: MSS, SACKOK+TS, NOP+WS.
      { srcPort: 40001, dstPort: 80, seq: seq(), flags: TCP_SYN, window: 64240, options: { mss: 1460, sackPermitted: true, timestamp: true, tsVal: 0x11223344, tsEcr: 0, windowScale: 7 }, pseudoHeader: ph },
      // A SYN-ACK without timestamps: MSS, NOP NOP SACKOK, NOP WS.
      { srcPort: 40002, dstPort: 81, seq: seq(), ack: seq(), flags: TCP_SYN | TCP_ACK | TCP_ECE, window: 65535, options: { mss: 1400, sackPermitted: true, windowScale: 0 }, pseudoHeader: ph },
      // Data with timestamps and 3 SACK blocks (a full 60-byte header).
      { srcPort: 40003, dstPort: 82, seq: seq(), ack: 1000, flags: TCP_ACK | TCP_PSH, window: 501, options: { timestamp: true, tsVal: 4000000000, tsEcr: 77, sackBlocks: [2000, 3000, 4000, 5000, 6000, 7000] }, pseudoHeader: ph },
      // 4 SACK blocks, written raw.
      { srcPort: 40004, dstPort: 83, seq: seq(), ack: 100, flags: TCP_ACK, window: 1, rawOptions: rawSack([200, 300, 400, 500, 600, 700, 800, 900]), pseudoHeader: ph },
      // An unknown option kind, then timestamps.
      { srcPort: 40005, dstPort: 84, seq: seq(), ack: seq(), flags: TCP_ACK | TCP_CWR, window: 0x1234, rawOptions: unknown, pseudoHeader: ph },
      // FIN, RST, URG with an urgent pointer.
      { srcPort: 40006, dstPort: 85, seq: seq(), ack: seq(), flags: TCP_FIN | TCP_ACK | TCP_URG, window: 10, urgentPointer: 3, pseudoHeader: ph },
      { srcPort: 40007, dstPort: 86, seq: seq(), ack: 0, flags: TCP_RST, window: 0, pseudoHeader: ph },
    ];
    const payloads = cases.map((_, i) => (i === 2 || i === 5 ? r.fill(new Uint8Array(i * 10)) : new Uint8Array(0)));
    const frames = cases.map((c, i) => v4frame(buildTcp(c, payloads[i])));
    // The same SYN over IPv6.
    frames.push(v6frame(buildTcp({ ...cases[0]!, srcPort: 40008, pseudoHeader: { src: A6, dst: B6 } })));
    const names = [
      'tcp.srcport', 'tcp.dstport', 'tcp.seq_raw', 'tcp.ack_raw', 'tcp.hdr_len', 'tcp.flags', 'tcp.window_size_value', 'tcp.urgent_pointer',
      'tcp.checksum.status', 'tcp.len', 'tcp.options.mss_val', 'tcp.options.wscale.shift', 'tcp.options.sack_perm', 'tcp.options.sack_le',
      'tcp.options.sack_re', 'tcp.options.sack.count', 'tcp.options.timestamp.tsval', 'tcp.options.timestamp.tsecr', 'tcp.options.unknown.payload', 'tcp.option_kind',
    ];
    const d = dissect(frames, names);
    // The only expert note is the one tshark always raises (at warning level) for a RST.
    expect(d.expert).toEqual(['packet 7: Connection reset (RST)']);
    cases.forEach((c, i) => {
      const at = `segment ${i}`;
      expect(field(d, i, 'tcp.srcport'), at).toBe(String(c.srcPort));
      expect(field(d, i, 'tcp.dstport'), at).toBe(String(c.dstPort));
      expect(field(d, i, 'tcp.seq_raw'), at).toBe(String(c.seq));
      if (c.flags & TCP_ACK) expect(field(d, i, 'tcp.ack_raw'), at).toBe(String(c.ack));
      expect(field(d, i, 'tcp.hdr_len'), at).toBe(String(tcpHeaderLength(c)));
      expect(Number(field(d, i, 'tcp.flags')), at).toBe(c.flags);
      expect(field(d, i, 'tcp.window_size_value'), at).toBe(String(c.window));
      expect(field(d, i, 'tcp.urgent_pointer'), at).toBe(String(c.urgentPointer ?? 0));
      expect(field(d, i, 'tcp.checksum.status'), at).toBe('1');
      expect(field(d, i, 'tcp.len'), at).toBe(String(payloads[i]!.length));
    });
    expect(field(d, 0, 'tcp.options.mss_val')).toBe('1460');
    expect(field(d, 0, 'tcp.options.wscale.shift')).toBe('7');
    expect(field(d, 0, 'tcp.options.timestamp.tsval')).toBe(String(0x11223344));
    expect(field(d, 0, 'tcp.options.timestamp.tsecr')).toBe('0');
    expect(d.fields[0]!['tcp.option_kind']).toEqual(['2', '4', '8', '1', '3']);
    expect(field(d, 1, 'tcp.options.mss_val')).toBe('1400');
    expect(field(d, 1, 'tcp.options.wscale.shift')).toBe('0');
    expect(d.fields[1]!['tcp.option_kind']).toEqual(['2', '1', '1', '4', '1', '3']);
    expect(field(d, 2, 'tcp.options.timestamp.tsval')).toBe('4000000000');
    expect(field(d, 2, 'tcp.options.timestamp.tsecr')).toBe('77');
    expect(field(d, 2, 'tcp.options.sack.count')).toBe('3');
    expect(d.fields[2]!['tcp.option_kind']).toEqual(['1', '1', '8', '1', '1', '5']);
    expect(field(d, 3, 'tcp.options.sack.count')).toBe('4');
    expect(d.fields[4]!['tcp.option_kind']).toEqual(['99', '1', '1', '8', '0', '0']); // 18 bytes + 2 EOL padding
    expect(field(d, 4, 'tcp.options.unknown.payload')).toBe('deadbeef');
    expect(field(d, 4, 'tcp.options.timestamp.tsval')).toBe('5');
    expect(field(d, 7, 'tcp.options.mss_val')).toBe('1460');
    expect(field(d, 7, 'tcp.checksum.status')).toBe('1');
    expect(field(d, 7, 'tcp.hdr_len')).toBe('40');
    // tshark prints SACK edges relative to the peer's ISN; with the peer unseen it takes
    // ISN = ack - 1, so relative = edge - ack + 1.
    const rel = (edges: number[], ack: number): string[] => edges.map((e) => String(e - ack + 1));
    expect(d.fields[2]!['tcp.options.sack_le']).toEqual(rel([2000, 4000, 6000], 1000));
    expect(d.fields[2]!['tcp.options.sack_re']).toEqual(rel([3000, 5000, 7000], 1000));
    expect(d.fields[3]!['tcp.options.sack_le']).toEqual(rel([200, 400, 600, 800], 100));
    expect(d.fields[3]!['tcp.options.sack_re']).toEqual(rel([300, 500, 700, 900], 100));
  });

  it.skipIf(!haveTshark())('tshark flags a corrupted checksum', () => {
    const seg = buildTcp({ srcPort: 40010, dstPort: 90, seq: 1, flags: TCP_SYN, window: 100, options: { mss: 1460 }, pseudoHeader: { src: A, dst: B } });
    xorAt(seg, 17, 0x04);
    const d = dissect([v4frame(seg)], ['tcp.checksum.status']);
    expect(field(d, 0, 'tcp.checksum.status')).toBe('0');
    expect(d.expert.length).toBeGreaterThan(0);
    expect(new TcpHeader(seg).checksumValidV4(A, 0, B, 0)).toBe(false);
  });
});

