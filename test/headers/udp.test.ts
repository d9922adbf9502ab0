import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildUdp, encodeUdp, udpChecksum, UdpHeader, UDP_HEADER_LENGTH } from '../../src/headers/udp.js';
import { buildIPv4, IPv4Header, IP_PROTO_UDP } from '../../src/headers/ipv4.js';
import { buildEthernet, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/headers/ethernet.js';
import { pseudoHeaderSumV4 } from '../../src/headers/checksum.js';
import { parseIPv4, parseIPv6, parseMAC } from '../../src/core/address.js';
import { Random } from '../../src/core/random.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';
import { xorAt } from '../helpers/bytes.js';

const mac1 = parseMAC('02:00:00:00:00:01');
const mac2 = parseMAC('02:00:00:00:00:02');
const A = parseIPv4('10.1.2.3');
const B = parseIPv4('172.16.254.9');
const A6 = parseIPv6('2001:db8::1');
const B6 = parseIPv6('2001:db8:ffff::abcd');

function v4frame(udp: Uint8Array, src = A, dst = B): Uint8Array {
  return buildEthernet({ destination: mac2, source: mac1, etherType: ETHERTYPE_IPV4 }, buildIPv4({ src, dst, protocol: IP_PROTO_UDP }, udp));
}

/** A plain 40-byte IPv6 header written out by hand (the IPv6 view is another module's job). */
function v6frame(udp: Uint8Array): Uint8Array {
  const ip = new Uint8Array(40 + udp.length);
  ip[0] = 0x60;
  ip[4] = udp.length >>> 8;
  ip[5] = udp.length & 0xff;
  ip[6] = IP_PROTO_UDP;
  ip[7] = 64;
  ip.set(A6, 8);
  ip.set(B6, 24);
  ip.set(udp, 40);
  return buildEthernet({ destination: mac2, source: mac1, etherType: ETHERTYPE_IPV6 }, ip);
}

/** A payload whose UDP checksum computes to 0 (so it must go out as 0xffff). */
function zeroSumPayload(src: Uint8Array, dst: Uint8Array): Uint8Array {
  const p = new Uint8Array(10).fill(0x33);
  p[8] = 0;
  p[9] = 0;
  const c = new UdpHeader(buildUdp({ srcPort: 50000, dstPort: 50001, pseudoHeader: { src, dst } }, p)).checksum;
  p[8] = c >>> 8;
  p[9] = c & 0xff;
  return p;
}

describe('UDP header', () => {
  it('reads back what it writes', () => {
    const payload = new Uint8Array(13).fill(9);
    const b = buildUdp({ srcPort: 5353, dstPort: 65535, pseudoHeader: { src: A, dst: B } }, payload);
    const u = new UdpHeader(b);
    expect(u.isValid()).toBe(true);
    expect([u.srcPort, u.dstPort, u.length, u.payloadLength]).toEqual([5353, 65535, 21, 13]);
    expect(u.payload).toEqual(payload);
    expect(u.checksumValidV4(A, 0, B, 0)).toBe(true);
    expect(u.checksumValidV4(B, 0, A, 0)).toBe(true); // swapped addresses sum the same
    expect(u.checksumValidV4(A, 0, parseIPv4('10.1.2.4'), 0)).toBe(false);
    u.dstPort = 1;
    expect(u.checksumValidV4(A, 0, B, 0)).toBe(false);
    u.setChecksumV4(A, 0, B, 0);
    expect(u.checksumValidV4(A, 0, B, 0)).toBe(true);
  });

  it('checks against IPv4 addresses in place (offset getters of the IP view)', () => {
    const pkt = buildIPv4({ src: A, dst: B, protocol: IP_PROTO_UDP }, buildUdp({ srcPort: 1, dstPort: 2, pseudoHeader: { src: A, dst: B } }, Uint8Array.of(1, 2, 3)));
    const ip = new IPv4Header(pkt);
    const u = new UdpHeader(pkt, ip.payloadOffset, ip.payloadLength);
    expect(u.checksumValidV4(pkt, ip.srcOffset, pkt, ip.dstOffset)).toBe(true);
    expect(u.checksumValid(ip.pseudoHeaderSum(u.length))).toBe(true);
  });

  it('isValid needs 8 <= length <= len; bytes after length are ignored', () => {
    const b = buildUdp({ srcPort: 1, dstPort: 2 }, new Uint8Array(4));
    expect(new UdpHeader(b, 0, 7).isValid()).toBe(false);
    expect(new UdpHeader(b, 0, 11).isValid()).toBe(false); // length 12 > 11
    const short = b.slice();
    short[5] = 7; // length 7 < 8
    expect(new UdpHeader(short).isValid()).toBe(false);
    const trailing = new Uint8Array(20);
    trailing.set(b);
    const u = new UdpHeader(trailing);
    expect(u.isValid()).toBe(true);
    expect(u.payload.length).toBe(4);
  });

  it('sends a computed 0 as 0xffff; IPv4 accepts 0 as "none", IPv6 rejects it', () => {
    const p = zeroSumPayload(A, B);
    const u = new UdpHeader(buildUdp({ srcPort: 50000, dstPort: 50001, pseudoHeader: { src: A, dst: B } }, p));
    expect(u.checksum).toBe(0xffff);
    expect(u.computeChecksumV4(A, 0, B, 0)).toBe(0xffff);
    expect(u.checksumValidV4(A, 0, B, 0)).toBe(true);
    const none = new UdpHeader(buildUdp({ srcPort: 1, dstPort: 2 }, Uint8Array.of(1, 2, 3)));
    expect(none.checksum).toBe(0);
    expect(none.checksumValidV4(A, 0, B, 0)).toBe(true);
    expect(none.checksumValidV6(A6, 0, B6, 0)).toBe(false);
    none.setChecksumV6(A6, 0, B6, 0);
    expect(none.checksumValidV6(A6, 0, B6, 0)).toBe(true);
    expect(none.checksumValidV6(B6, 0, A6, 0)).toBe(true);
    expect(none.checksumValidV6(A6, 0, A6, 0)).toBe(false);
  });

  it('encodeUdp covers payload already in the buffer; udpChecksum agrees', () => {
    const buf = new Uint8Array(40);
    buf.set(Uint8Array.of(5, 6, 7, 8, 9), 10 + UDP_HEADER_LENGTH);
    expect(encodeUdp(buf, 10, { srcPort: 7, dstPort: 9, payloadLength: 5, pseudoHeader: { src: A, dst: B } })).toBe(8);
    const u = new UdpHeader(buf, 10, 13);
    expect(u.isValid()).toBe(true);
    expect(u.checksumValidV4(A, 0, B, 0)).toBe(true);
    expect(u.checksum).toBe(udpChecksum(buf, 10, 13, pseudoHeaderSumV4(A, 0, B, 0, IP_PROTO_UDP, 13)));
    // A deliberately wrong length field does not make the encoder read past the buffer.
    expect(() => buildUdp({ srcPort: 1, dstPort: 2, length: 999, pseudoHeader: { src: A, dst: B } }, new Uint8Array(3))).not.toThrow();
  });

  it('never throws on random bytes and bit flips; round-trips arbitrary fields', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const u = new UdpHeader(bytes);
        if (!u.isValid()) return;
        expect(u.off + u.length).toBeLessThanOrEqual(bytes.length);
        void [u.srcPort, u.dstPort, u.payload];
        u.checksumValidV4(A, 0, B, 0);
        u.checksumValidV6(A6, 0, B6, 0);
        u.computeChecksumV4(A, 0, B, 0);
      }),
      { numRuns: 2000 },
    );
    const base = buildUdp({ srcPort: 1000, dstPort: 2000, pseudoHeader: { src: A, dst: B } }, new Uint8Array(16).fill(4));
    fc.assert(
      fc.property(fc.nat({ max: base.length * 8 - 1 }), (bit) => {
        const b = base.slice();
        xorAt(b, bit >>> 3, 1 << (bit & 7));
        const u = new UdpHeader(b);
        // A single flipped bit is always caught (unless it only broke the length).
        if (u.isValid() && u.length === base.length) expect(u.checksumValidV4(A, 0, B, 0)).toBe(false);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.uint8Array({ maxLength: 200 }),
        fc.boolean(),
        (sp, dp, payload, v6) => {
          const ph = v6 ? { src: A6, dst: B6 } : { src: A, dst: B };
          const u = new UdpHeader(buildUdp({ srcPort: sp, dstPort: dp, pseudoHeader: ph }, payload));
          expect(u.isValid()).toBe(true);
          expect([u.srcPort, u.dstPort, u.length]).toEqual([sp, dp, 8 + payload.length]);
          expect(u.payload).toEqual(payload);
          expect(u.checksum).not.toBe(0);
          expect(v6 ? u.checksumValidV6(A6, 0, B6, 0) : u.checksumValidV4(A, 0, B, 0)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it.skipIf(!haveTshark())('is dissected by tshark as built, over IPv4 and IPv6', () => {
    const r = new Random(42);
    const cases = [
      { srcPort: 40000, dstPort: 40001, len: 0, v6: false },
      { srcPort: 47001, dstPort: 47002, len: 1, v6: false },
      { srcPort: 61000, dstPort: 61001, len: 333, v6: false },
      { srcPort: 47003, dstPort: 47004, len: 17, v6: true },
      { srcPort: 47005, dstPort: 47006, len: 1000, v6: true },
    ];
    const frames = cases.map((c) => {
      const payload = r.fill(new Uint8Array(c.len));
      const ph = c.v6 ? { src: A6, dst: B6 } : { src: A, dst: B };
      const udp = buildUdp({ srcPort: c.srcPort, dstPort: c.dstPort, pseudoHeader: ph }, payload);
      return c.v6 ? v6frame(udp) : v4frame(udp);
    });
    // The 0 -> 0xffff case, which tshark must accept as a good checksum.
    frames.push(v4frame(buildUdp({ srcPort: 50000, dstPort: 50001, pseudoHeader: { src: A, dst: B } }, zeroSumPayload(A, B))));
    const d = dissect(frames, ['udp.srcport', 'udp.dstport', 'udp.length', 'udp.checksum', 'udp.checksum.status']);
    expect(d.expert).toEqual([]);
    cases.forEach((c, i) => {
      expect(field(d, i, 'udp.srcport')).toBe(String(c.srcPort));
      expect(field(d, i, 'udp.dstport')).toBe(String(c.dstPort));
      expect(field(d, i, 'udp.length')).toBe(String(8 + c.len));
      expect(field(d, i, 'udp.checksum.status')).toBe('1'); // good
    });
    expect(field(d, 5, 'udp.checksum')).toBe('0xffff');
    expect(field(d, 5, 'udp.checksum.status')).toBe('1');
  });

  it.skipIf(!haveTshark())('tshark flags a corrupted checksum and a zero checksum over IPv6', () => {
    const bad = buildUdp({ srcPort: 40000, dstPort: 40001, pseudoHeader: { src: A, dst: B } }, new Uint8Array(5).fill(1));
    xorAt(bad, 7, 0x10);
    const zero6 = buildUdp({ srcPort: 40000, dstPort: 40001 }, new Uint8Array(5).fill(1));
    const d = dissect([v4frame(bad), v6frame(zero6)], ['udp.checksum.status']);
    expect(field(d, 0, 'udp.checksum.status')).toBe('0'); // bad
    expect(d.expert.some((e) => e.startsWith('packet 1:'))).toBe(true);
    expect(d.expert.some((e) => e.startsWith('packet 2:'))).toBe(true);
    expect(new UdpHeader(bad).checksumValidV4(A, 0, B, 0)).toBe(false);
    expect(new UdpHeader(zero6).checksumValidV6(A6, 0, B6, 0)).toBe(false);
  });
});
