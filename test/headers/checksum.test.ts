import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  checksum,
  combine,
  finish,
  fold,
  pseudoHeaderSumV4,
  pseudoHeaderSumV6,
  sum,
  updateChecksum16,
  updateChecksum32,
  updateChecksumBytes,
} from '../../src/headers/checksum.js';
import { buildIPv4, IPv4Header, IP_PROTO_TCP, IP_PROTO_UDP } from '../../src/headers/ipv4.js';
import { buildUdp, UdpHeader } from '../../src/headers/udp.js';
import { buildTcp, TcpHeader, TCP_ACK } from '../../src/headers/tcp.js';
import { ipv4ToU32 } from '../../src/core/address.js';
import { Random } from '../../src/core/random.js';

/** Byte-wise reference: 16-bit big-endian words, odd byte padded, end-around carry at each step. */
function naiveSum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) {
    const hi = b[off + i]!;
    const lo = i + 1 < len ? b[off + i + 1]! : 0;
    s += (hi << 8) | lo;
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return s;
}

const swap16 = (x: number): number => ((x & 0xff) << 8) | (x >>> 8);

describe('Internet checksum', () => {
  it('RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2', () => {
    const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    expect(sum(b)).toBe(0xddf2);
    expect(checksum(b)).toBe(0x220d);
    expect(finish(sum(b))).toBe(0x220d);
  });

  it('a captured IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) has checksum 0xb861', () => {
    // 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7, a widely quoted real header.
    const h = Uint8Array.from([0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7]);
    expect(sum(h)).toBe(0xffff);
    const ip = new IPv4Header(h);
    expect(ip.checksumValid()).toBe(true);
    expect(ip.computeChecksum()).toBe(0xb861);
    h[10] = 0;
    h[11] = 0;
    expect(checksum(h)).toBe(0xb861);
    // And our encoder writes the same bytes for the same fields.
    const built = buildIPv4({ src: h.subarray(12, 16), dst: h.subarray(16, 20), protocol: IP_PROTO_UDP, ttl: 64, dontFragment: true, totalLength: 0x73 });
    expect(Array.from(built.subarray(0, 20))).toEqual([0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7]);
  });

  it('odd lengths pad the last byte as a high byte', () => {
    expect(sum(Uint8Array.of(0x01))).toBe(0x0100);
    expect(sum(Uint8Array.of(0x12, 0x34, 0x56))).toBe(0x1234 + 0x5600);
    expect(sum(Uint8Array.of(0xff, 0xff, 0xff))).toBe(fold(0xffff + 0xff00));
    expect(sum(new Uint8Array(0))).toBe(0);
    // 5, 7, 15, 17 bytes exercise every tail of the unrolled loop.
    for (const n of [5, 7, 15, 17, 33]) {
      const b = new Random(n).fill(new Uint8Array(n));
      expect(sum(b)).toBe(naiveSum(b, 0, n));
    }
  });

  it('a region starting at an odd position combines after a byte swap', () => {
    const b = new Random(7).fill(new Uint8Array(101));
    const whole = sum(b);
    for (const k of [1, 3, 17, 50, 51, 99]) {
      const head = sum(b, 0, k);
      const tail = sum(b, k, b.length - k);
      const joined = (k & 1) === 0 ? combine(head, tail) : combine(head, swap16(tail));
      expect(joined).toBe(whole);
    }
    // Without the swap an odd split gives a different (wrong) sum for this data.
    expect(combine(sum(b, 0, 17), sum(b, 17, 84))).not.toBe(whole);
  });

  it('rejects a region outside the buffer', () => {
    expect(() => sum(new Uint8Array(4), 2, 3)).toThrow(RangeError);
  });

  it('equals the naive byte-wise sum for random buffers, lengths and offsets', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.nat(),
        fc.nat(),
        fc.nat({ max: 7 }),
        (bytes, a, b, shift) => {
          // Place the bytes at an arbitrary byteOffset of a bigger buffer (unaligned DataView reads).
          const big = new Uint8Array(bytes.length + 8);
          big.set(bytes, shift);
          const view = big.subarray(shift, shift + bytes.length);
          const off = bytes.length === 0 ? 0 : a % (bytes.length + 1);
          const len = (bytes.length - off === 0 ? 0 : b % (bytes.length - off + 1));
          expect(sum(view, off, len)).toBe(naiveSum(view, off, len));
          expect(checksum(view, off, len)).toBe(~naiveSum(view, off, len) & 0xffff);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('pseudo-header sums equal a sum over the written-out pseudo-header', () => {
    const r = new Random(11);
    for (let i = 0; i < 200; i++) {
      const src = r.fill(new Uint8Array(4));
      const dst = r.fill(new Uint8Array(4));
      const len = r.below(0x10000);
      const ph = Uint8Array.of(...src, ...dst, 0, IP_PROTO_TCP, len >>> 8, len & 0xff);
      expect(pseudoHeaderSumV4(src, 0, dst, 0, IP_PROTO_TCP, len)).toBe(sum(ph));
      const s6 = r.fill(new Uint8Array(16));
      const d6 = r.fill(new Uint8Array(16));
      const l6 = r.u32();
      const ph6 = new Uint8Array(40);
      ph6.set(s6, 0);
      ph6.set(d6, 16);
      new DataView(ph6.buffer).setUint32(32, l6);
      ph6[39] = 17;
      expect(pseudoHeaderSumV6(s6, 0, d6, 0, 17, l6)).toBe(sum(ph6));
    }
  });

  it('incremental updates (RFC 1624) equal full recomputation after NAT-style rewrites', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.uint8Array({ maxLength: 64 }),
        fc.boolean(),
        (src, dst, newSrc, sport, dport, newPort, data, tcp) => {
          const ph = { src, dst };
          const l4 = tcp
            ? buildTcp({ srcPort: sport, dstPort: dport, seq: 1, ack: 2, flags: TCP_ACK, window: 100, pseudoHeader: ph }, data)
            : buildUdp({ srcPort: sport, dstPort: dport, pseudoHeader: ph }, data);
          const pkt = buildIPv4({ src, dst, protocol: tcp ? IP_PROTO_TCP : IP_PROTO_UDP, ttl: 9 }, l4);
          const ip = new IPv4Header(pkt);
          const l4Off = ip.headerLength;
          const csOff = l4Off + (tcp ? 16 : 6);
          const readCs = (): number => (pkt[csOff]! << 8) | pkt[csOff + 1]!;
          const writeCs = (v: number): void => {
            pkt[csOff] = v >>> 8;
            pkt[csOff + 1] = v;
          };
          // Rewrite the source address (IP header and pseudo-header) and the source port.
          const oldSrc = ipv4ToU32(src);
          const nsrc = ipv4ToU32(newSrc);
          ip.checksum = updateChecksum32(ip.checksum, oldSrc, nsrc);
          writeCs(updateChecksumBytes(readCs(), pkt.slice(12, 16), newSrc));
          ip.src = newSrc;
          writeCs(updateChecksum16(readCs(), sport, newPort));
          pkt[l4Off] = newPort >>> 8;
          pkt[l4Off + 1] = newPort;
          expect(ip.checksumValid()).toBe(true);
          expect(ip.checksum).toBe(ip.computeChecksum());
          if (tcp) {
            const t = new TcpHeader(pkt, l4Off, pkt.length - l4Off);
            expect(readCs()).toBe(t.computeChecksumV4(pkt, 12, pkt, 16));
          } else {
            const u = new UdpHeader(pkt, l4Off, pkt.length - l4Off);
            // 0x0000 and 0xffff are the same one's-complement value; UDP sends the latter.
            const inc = readCs() === 0 ? 0xffff : readCs();
            expect(inc).toBe(u.computeChecksumV4(pkt, 12, pkt, 16));
            expect(u.checksumValidV4(pkt, 12, pkt, 16)).toBe(true);
          }
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('decrementTtl patches the header checksum like a full recomputation', () => {
    const r = new Random(3);
    for (let i = 0; i < 300; i++) {
      const pkt = buildIPv4({ src: r.fill(new Uint8Array(4)), dst: r.fill(new Uint8Array(4)), protocol: r.below(256), ttl: 1 + r.below(255), id: r.below(65536) });
      const ip = new IPv4Header(pkt);
      const ttl = ip.ttl;
      ip.decrementTtl();
      expect(ip.ttl).toBe(ttl - 1);
      expect(ip.checksum).toBe(ip.computeChecksum());
    }
  });
});
