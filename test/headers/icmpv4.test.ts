import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  buildIcmpV4,
  buildIcmpV4DestUnreachable,
  buildIcmpV4Echo,
  buildIcmpV4Error,
  buildIcmpV4ParamProblem,
  buildIcmpV4TimeExceeded,
  encodeIcmpV4Echo,
  encodeIcmpV4Error,
  icmpV4ErrorEmbedLength,
  IcmpV4Header,
  isIcmpV4Error,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REPLY,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_FRAG_NEEDED,
  ICMPV4_PARAMETER_PROBLEM,
  ICMPV4_PORT_UNREACHABLE,
  ICMPV4_PROTOCOL_UNREACHABLE,
  ICMPV4_REASSEMBLY_TIMEOUT,
  ICMPV4_TIME_EXCEEDED,
  ICMPV4_TTL_EXCEEDED,
} from '../../src/headers/icmpv4.js';
import { buildIPv4, IPv4Header, IP_PROTO_ICMP, IP_PROTO_UDP } from '../../src/headers/ipv4.js';
import { buildUdp } from '../../src/headers/udp.js';
import { buildEthernet, ETHERTYPE_IPV4 } from '../../src/headers/ethernet.js';
import { formatIPv4, parseIPv4, parseMAC } from '../../src/core/address.js';
import { Random } from '../../src/core/random.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';
import { xorAt } from '../helpers/bytes.js';

const mac1 = parseMAC('02:00:00:00:00:01');
const mac2 = parseMAC('02:00:00:00:00:02');
const A = parseIPv4('10.0.0.1');
const B = parseIPv4('10.0.0.2');
const R = parseIPv4('10.9.9.9');

/** The IP datagram an ICMP message travels in (from `src` to `dst`). */
function carry(icmp: Uint8Array, src = A, dst = B): Uint8Array {
  return buildIPv4({ src, dst, protocol: IP_PROTO_ICMP, ttl: 64 }, icmp);
}

function frame(ip: Uint8Array): Uint8Array {
  return buildEthernet({ destination: mac2, source: mac1, etherType: ETHERTYPE_IPV4 }, ip);
}

/** An offending UDP datagram of `n` payload bytes from B to A. */
function offending(n: number): Uint8Array {
  const data = new Random(n).fill(new Uint8Array(n));
  return buildIPv4({ src: B, dst: A, protocol: IP_PROTO_UDP, id: 99 }, buildUdp({ srcPort: 40000, dstPort: 40001, pseudoHeader: { src: B, dst: A } }, data));
}

describe('ICMPv4', () => {
  it('echo request and reply carry ident, sequence and data; checksum covers everything', () => {
    const data = new Uint8Array(56).map((_, i) => i);
    const m = new IcmpV4Header(buildIcmpV4Echo({ ident: 0x1234, sequence: 7 }, data));
    expect(m.isValid()).toBe(true);
    expect([m.type, m.code, m.ident, m.sequence]).toEqual([ICMPV4_ECHO_REQUEST, 0, 0x1234, 7]);
    expect(m.isEcho).toBe(true);
    expect(m.isError).toBe(false);
    expect(m.data).toEqual(data);
    expect(m.checksumValid()).toBe(true);
    expect(m.computeChecksum()).toBe(m.checksum);
    xorAt(m.buf, m.off + 8 + 55, 1); // last data byte
    expect(m.checksumValid()).toBe(false);
    m.setChecksum();
    expect(m.checksumValid()).toBe(true);
    // A reply written in place over the request's data (zero copy).
    const buf = new Uint8Array(100);
    buf.set(data, 8 + 4);
    const n = encodeIcmpV4Echo(buf, 4, { reply: true, ident: 0x1234, sequence: 7, dataLength: 56 });
    expect(n).toBe(64);
    const r = new IcmpV4Header(buf, 4, n);
    expect(r.type).toBe(ICMPV4_ECHO_REPLY);
    expect(r.checksumValid()).toBe(true);
    expect(r.data).toEqual(data);
  });

  it('odd-length messages checksum correctly', () => {
    for (const n of [0, 1, 3, 57]) {
      const m = new IcmpV4Header(buildIcmpV4Echo({ ident: 1, sequence: n }, new Uint8Array(n).fill(0xa5)));
      expect(m.checksumValid()).toBe(true);
    }
  });

  it('errors embed the original datagram, at most 576 bytes in all by default (RFC 1812)', () => {
    const big = offending(1472); // a 1500-byte datagram
    const small = offending(10);
    expect(icmpV4ErrorEmbedLength(big.length)).toBe(576 - 20 - 8);
    expect(icmpV4ErrorEmbedLength(small.length)).toBe(small.length);
    expect(icmpV4ErrorEmbedLength(big.length, { maxDatagram: 1280 })).toBe(1280 - 28);
    expect(icmpV4ErrorEmbedLength(big.length, { maxDatagram: 576, ipHeaderLength: 24 })).toBe(576 - 24 - 8);
    expect(icmpV4ErrorEmbedLength(big.length, { maxDatagram: 10 })).toBe(0);

    const e = new IcmpV4Header(buildIcmpV4DestUnreachable(ICMPV4_PORT_UNREACHABLE, big));
    expect(e.len).toBe(556);
    expect(carry(e.buf).length).toBe(576);
    expect([e.type, e.code, e.rest]).toEqual([ICMPV4_DEST_UNREACHABLE, ICMPV4_PORT_UNREACHABLE, 0]);
    expect(e.isError).toBe(true);
    expect(e.checksumValid()).toBe(true);
    expect(e.original).toEqual(big.subarray(0, 548));
    // The embedded header still parses (as a view over only the bytes present).
    const inner = new IPv4Header(e.buf, e.dataOffset, 20);
    expect(formatIPv4(inner.src)).toBe('10.0.0.2');
    expect(inner.id).toBe(99);

    const s = new IcmpV4Header(buildIcmpV4DestUnreachable(ICMPV4_PROTOCOL_UNREACHABLE, small));
    expect(s.original).toEqual(small);

    const f = new IcmpV4Header(buildIcmpV4DestUnreachable(ICMPV4_FRAG_NEEDED, big, { mtu: 1400 }));
    expect([f.code, f.mtu, f.rest]).toEqual([ICMPV4_FRAG_NEEDED, 1400, 1400]);

    const t = new IcmpV4Header(buildIcmpV4TimeExceeded(ICMPV4_REASSEMBLY_TIMEOUT, small));
    expect([t.type, t.code]).toEqual([ICMPV4_TIME_EXCEEDED, ICMPV4_REASSEMBLY_TIMEOUT]);

    const p = new IcmpV4Header(buildIcmpV4ParamProblem(9, small));
    expect([p.type, p.code, p.pointer]).toEqual([ICMPV4_PARAMETER_PROBLEM, 0, 9]);
    expect(p.checksumValid()).toBe(true);

    expect(() => encodeIcmpV4Error(new Uint8Array(100), 0, { type: 3, code: 3 }, big)).toThrow(/ENOBUFS/);
    expect(isIcmpV4Error(ICMPV4_ECHO_REQUEST)).toBe(false);
    expect(isIcmpV4Error(ICMPV4_TIME_EXCEEDED)).toBe(true);
  });

  it('isValid needs 8 bytes; random bytes never throw; round trips hold', () => {
    expect(new IcmpV4Header(new Uint8Array(7)).isValid()).toBe(false);
    expect(new IcmpV4Header(new Uint8Array(8)).isValid()).toBe(true);
    expect(new IcmpV4Header(new Uint8Array(8), 1).isValid()).toBe(false);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const m = new IcmpV4Header(bytes);
        if (!m.isValid()) return;
        void [m.type, m.code, m.rest, m.ident, m.sequence, m.mtu, m.pointer, m.gateway, m.data, m.isError];
        m.checksumValid();
        m.computeChecksum();
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 100 }),
        (type, code, rest, data) => {
          const m = new IcmpV4Header(buildIcmpV4({ type, code, rest }, data));
          expect([m.type, m.code, m.rest]).toEqual([type, code, rest]);
          expect(m.data).toEqual(data);
          expect(m.checksumValid()).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it.skipIf(!haveTshark())('is dissected by tshark as built', () => {
    const big = offending(1472);
    const small = offending(10);
    const messages = [
      buildIcmpV4Echo({ ident: 0x4d2, sequence: 1 }, new Uint8Array(48).fill(0x61)),
      buildIcmpV4Echo({ reply: true, ident: 0x4d2, sequence: 1 }, new Uint8Array(48).fill(0x61)),
      buildIcmpV4Echo({ ident: 65535, sequence: 65535 }, new Uint8Array(1).fill(0x62)),
      buildIcmpV4DestUnreachable(ICMPV4_PORT_UNREACHABLE, small),
      buildIcmpV4DestUnreachable(ICMPV4_PROTOCOL_UNREACHABLE, big),
      buildIcmpV4DestUnreachable(ICMPV4_FRAG_NEEDED, big, { mtu: 1400 }),
      buildIcmpV4TimeExceeded(ICMPV4_TTL_EXCEEDED, big),
      buildIcmpV4TimeExceeded(ICMPV4_REASSEMBLY_TIMEOUT, small),
      buildIcmpV4ParamProblem(8, small),
      buildIcmpV4Error({ type: ICMPV4_DEST_UNREACHABLE, code: 1 }, big, { maxDatagram: 1280 }),
    ];
    // Echo requests go A -> B and replies B -> A (so tshark pairs them); errors come from a router.
    const frames = messages.map((m, i) => frame(i === 1 ? carry(m, B, A) : i < 3 ? carry(m) : carry(m, R, B)));
    const d = dissect(frames, ['icmp.type', 'icmp.code', 'icmp.ident', 'icmp.seq', 'icmp.mtu', 'icmp.pointer', 'icmp.checksum.status', 'ip.src', 'ip.len', 'ip.id', 'udp.srcport', 'udp.dstport']);
    expect(d.expert).toEqual([]);
    const expectMsg = (i: number, type: number, code: number): void => {
      expect(field(d, i, 'icmp.type'), `message ${i}`).toBe(String(type));
      expect(field(d, i, 'icmp.code'), `message ${i}`).toBe(String(code));
      expect(field(d, i, 'icmp.checksum.status'), `message ${i}`).toBe('1');
    };
    expectMsg(0, 8, 0);
    expect(Number(field(d, 0, 'icmp.ident'))).toBe(0x4d2);
    expect(field(d, 0, 'icmp.seq')).toBe('1');
    expectMsg(1, 0, 0);
    expectMsg(2, 8, 0);
    expect(Number(field(d, 2, 'icmp.ident'))).toBe(65535);
    expect(field(d, 2, 'icmp.seq')).toBe('65535');
    expectMsg(3, 3, 3);
    expectMsg(4, 3, 2);
    expectMsg(5, 3, 4);
    expect(field(d, 5, 'icmp.mtu')).toBe('1400');
    expectMsg(6, 11, 0);
    expectMsg(7, 11, 1);
    expectMsg(8, 12, 0);
    expect(field(d, 8, 'icmp.pointer')).toBe('8');
    expectMsg(9, 3, 1);
    // The outer datagram is 576 bytes for a big original; tshark finds the original inside.
    for (const i of [4, 5, 6]) {
      expect(field(d, i, 'ip.len', 0)).toBe('576');
      expect(field(d, i, 'ip.len', 1)).toBe(String(big.length));
      expect(field(d, i, 'ip.src', 1)).toBe('10.0.0.2');
      expect(Number(field(d, i, 'ip.id', 1))).toBe(99);
      expect(field(d, i, 'udp.dstport')).toBe('40001');
    }
    expect(field(d, 9, 'ip.len', 0)).toBe('1280');
    expect(field(d, 3, 'ip.len', 1)).toBe(String(small.length));
  });

  it.skipIf(!haveTshark())('tshark flags a corrupted ICMP checksum', () => {
    const m = buildIcmpV4Echo({ ident: 1, sequence: 2 }, new Uint8Array(8));
    xorAt(m, 2, 0x80);
    const d = dissect([frame(carry(m))], ['icmp.checksum.status']);
    expect(field(d, 0, 'icmp.checksum.status')).toBe('0');
    expect(d.expert.length).toBeGreaterThan(0);
    expect(new IcmpV4Header(m).checksumValid()).toBe(false);
  });
});
