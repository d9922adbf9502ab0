import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IcmpV6Header,
  ICMPV6_ADDRESS_UNREACHABLE,
  ICMPV6_ADMIN_PROHIBITED,
  ICMPV6_BEYOND_SCOPE,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_ERROR_MAX_MESSAGE,
  ICMPV6_ERRONEOUS_HEADER,
  ICMPV6_HOP_LIMIT_EXCEEDED,
  ICMPV6_INCOMPLETE_HEADER_CHAIN,
  ICMPV6_NEIGHBOR_SOLICITATION,
  ICMPV6_NO_ROUTE,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_PORT_UNREACHABLE,
  ICMPV6_REASSEMBLY_TIMEOUT,
  ICMPV6_REDIRECT,
  ICMPV6_REJECT_ROUTE,
  ICMPV6_ROUTER_ADVERTISEMENT,
  ICMPV6_SOURCE_POLICY_FAILED,
  ICMPV6_TIME_EXCEEDED,
  ICMPV6_UNRECOGNIZED_NEXT_HEADER,
  ICMPV6_UNRECOGNIZED_OPTION,
  encodeIcmpV6Echo,
  icmpV6Checksum,
  icmpV6ErrorPayloadLength,
  isIcmpV6Error,
  setIcmpV6Checksum,
} from '../../src/headers/icmpv6.js';
import { buildIcmpV6, buildIcmpV6Packet, type IcmpV6Message } from '../../src/headers/icmpv6-message.js';
import { IPV6_MIN_MTU } from '../../src/headers/ipv6.js';
import { buildIPv6 } from '../../src/headers/ipv6-extensions.js';
import { IPv6Walk, walkIPv6 } from '../../src/headers/ipv6-walk.js';
import { parseIPv6 } from '../../src/core/address.js';
import { checksum, pseudoHeaderSumV6 } from '../../src/headers/checksum.js';
import { LinkType } from '../../src/pcap/writer.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';

const src = parseIPv6('2001:db8::1');
const dst = parseIPv6('2001:db8::2');
const RAW = { linkType: LinkType.RAW };

/** The ICMPv6 message inside a datagram built by buildIcmpV6Packet. */
function messageOf(pkt: Uint8Array): IcmpV6Header {
  const r = new IPv6Walk();
  expect(walkIPv6(pkt, 0, pkt.length, r)).toBe(0);
  expect(r.protocol).toBe(58);
  return new IcmpV6Header(pkt, r.offset, r.end - r.offset);
}

/** A UDP datagram (checksum right) of `n` payload bytes, as an invoking packet for errors. */
function invoking(n: number): Uint8Array {
  const udp = new Uint8Array(8 + n).map((_, i) => i & 0xff);
  udp[4] = (8 + n) >>> 8;
  udp[5] = (8 + n) & 0xff;
  udp[6] = 0;
  udp[7] = 0;
  const c = checksum(udp, 0, udp.length, pseudoHeaderSumV6(dst, 0, src, 0, 17, udp.length));
  udp[6] = c >>> 8;
  udp[7] = c & 0xff;
  return buildIPv6({ source: dst, destination: src, hopLimit: 60, nextHeader: 17 }, udp);
}

const errors: { m: IcmpV6Message; type: number; code: number }[] = [
  ...[ICMPV6_NO_ROUTE, ICMPV6_ADMIN_PROHIBITED, ICMPV6_BEYOND_SCOPE, ICMPV6_ADDRESS_UNREACHABLE, ICMPV6_PORT_UNREACHABLE, ICMPV6_SOURCE_POLICY_FAILED, ICMPV6_REJECT_ROUTE].map(
    (code) => ({ m: { kind: 'destinationUnreachable', code, invoking: invoking(20) } as IcmpV6Message, type: ICMPV6_DEST_UNREACHABLE, code }),
  ),
  { m: { kind: 'packetTooBig', mtu: 1400, invoking: invoking(1500) }, type: ICMPV6_PACKET_TOO_BIG, code: 0 },
  { m: { kind: 'timeExceeded', code: ICMPV6_HOP_LIMIT_EXCEEDED, invoking: invoking(10) }, type: ICMPV6_TIME_EXCEEDED, code: 0 },
  { m: { kind: 'timeExceeded', code: ICMPV6_REASSEMBLY_TIMEOUT, invoking: invoking(10) }, type: ICMPV6_TIME_EXCEEDED, code: 1 },
  ...[ICMPV6_ERRONEOUS_HEADER, ICMPV6_UNRECOGNIZED_NEXT_HEADER, ICMPV6_UNRECOGNIZED_OPTION, ICMPV6_INCOMPLETE_HEADER_CHAIN].map((code) => ({
    m: { kind: 'parameterProblem', code, pointer: 6, invoking: invoking(12) } as IcmpV6Message,
    type: ICMPV6_PARAMETER_PROBLEM,
    code,
  })),
];

describe('ICMPv6', () => {
  it('builds and parses echo request and reply with a good checksum', () => {
    const data = Uint8Array.from({ length: 33 }, (_, i) => i);
    for (const kind of ['echoRequest', 'echoReply'] as const) {
      const m = new IcmpV6Header(buildIcmpV6({ kind, identifier: 0xbeef, sequence: 513, data }, src, dst));
      expect(m.isValid()).toBe(true);
      expect(m.type).toBe(kind === 'echoRequest' ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY);
      expect([m.code, m.identifier, m.sequence, m.isError]).toEqual([0, 0xbeef, 513, false]);
      expect(Array.from(m.body)).toEqual(Array.from(data));
      expect(m.checksumValid(src, dst)).toBe(true);
      expect(m.computeChecksum(src, dst)).toBe(m.checksum);
      // Swapping the addresses is still valid (the sum is symmetric); changing one is not.
      expect(m.checksumValid(dst, src)).toBe(true);
      expect(m.checksumValid(src, parseIPv6('2001:db8::3'))).toBe(false);
    }
  });

  it('checksum: every single-bit corruption is detected; setChecksum repairs it', () => {
    const msg = buildIcmpV6({ kind: 'echoRequest', identifier: 1, sequence: 2, data: new Uint8Array(7).fill(0x81) }, src, dst);
    const m = new IcmpV6Header(msg);
    for (let bit = 0; bit < msg.length * 8; bit++) {
      msg[bit >>> 3]! ^= 1 << (bit & 7);
      expect(m.checksumValid(src, dst)).toBe(false);
      msg[bit >>> 3]! ^= 1 << (bit & 7);
    }
    m.identifier = 0x4242;
    expect(m.checksumValid(src, dst)).toBe(false);
    expect(icmpV6Checksum(msg, 0, msg.length, src, 0, dst, 0)).not.toBe(m.checksum);
    m.setChecksum(src, dst);
    expect(m.checksumValid(src, dst)).toBe(true);
  });

  it('computes the checksum with addresses at offsets inside a datagram', () => {
    const pkt = buildIcmpV6Packet({ kind: 'echoReply', identifier: 9, sequence: 10 }, { source: src, destination: dst });
    const m = messageOf(pkt);
    expect(m.checksumValid(pkt, pkt, 8, 24)).toBe(true);
    pkt[9]! ^= 0x40;
    expect(m.checksumValid(pkt, pkt, 8, 24)).toBe(false);
    setIcmpV6Checksum(pkt, m.off, m.len, pkt, pkt, 8, 24);
    expect(m.checksumValid(pkt, pkt, 8, 24)).toBe(true);
  });

  it('builds every error type and code with its parameter and the invoking packet', () => {
    for (const { m, type, code } of errors) {
      const h = new IcmpV6Header(buildIcmpV6(m, src, dst));
      expect(h.isValid()).toBe(true);
      expect([h.type, h.code, h.isError, isIcmpV6Error(h.type)]).toEqual([type, code, true, true]);
      if (type === ICMPV6_PACKET_TOO_BIG) expect(h.mtu).toBe(1400);
      else if (type === ICMPV6_PARAMETER_PROBLEM) expect(h.pointer).toBe(6);
      else expect(h.restOfHeader).toBe(0);
      const inv = (m as { invoking: Uint8Array }).invoking;
      expect(Array.from(h.body.subarray(0, 40))).toEqual(Array.from(inv.subarray(0, 40)));
      expect(h.checksumValid(src, dst)).toBe(true);
    }
  });

  it('cuts the invoking packet so the error datagram fits the 1280-byte minimum MTU', () => {
    const big = invoking(3000);
    const pkt = buildIcmpV6Packet({ kind: 'packetTooBig', mtu: 1280, invoking: big }, { source: src, destination: dst });
    expect(pkt.length).toBe(IPV6_MIN_MTU);
    const m = messageOf(pkt);
    expect(m.len).toBe(ICMPV6_ERROR_MAX_MESSAGE);
    expect(Array.from(m.body)).toEqual(Array.from(big.subarray(0, 1232)));
    expect(m.checksumValid(src, dst)).toBe(true);
    // With extension headers on the error itself, less of the invoking packet fits.
    const withExt = buildIcmpV6Packet(
      { kind: 'destinationUnreachable', code: ICMPV6_PORT_UNREACHABLE, invoking: big },
      { source: src, destination: dst, extensions: [{ kind: 'destinationOptions', options: [{ type: 0x1e, data: new Uint8Array(10) }] }] },
    );
    expect(withExt.length).toBe(IPV6_MIN_MTU);
    // A small invoking packet is carried whole.
    const small = invoking(4);
    expect(buildIcmpV6({ kind: 'timeExceeded', code: 0, invoking: small }, src, dst).length).toBe(8 + small.length);
    expect(icmpV6ErrorPayloadLength(5000)).toBe(1232);
    expect(icmpV6ErrorPayloadLength(100)).toBe(100);
    expect(icmpV6ErrorPayloadLength(5000, 56)).toBe(1216);
  });

  it('isValid enforces the minimum length of each known type', () => {
    const mk = (type: number, len: number): IcmpV6Header => {
      const b = new Uint8Array(len);
      b[0] = type;
      return new IcmpV6Header(b);
    };
    expect(mk(ICMPV6_ECHO_REQUEST, 7).isValid()).toBe(false);
    expect(mk(ICMPV6_ECHO_REQUEST, 8).isValid()).toBe(true);
    expect(mk(ICMPV6_ROUTER_ADVERTISEMENT, 15).isValid()).toBe(false);
    expect(mk(ICMPV6_ROUTER_ADVERTISEMENT, 16).isValid()).toBe(true);
    expect(mk(ICMPV6_NEIGHBOR_SOLICITATION, 23).isValid()).toBe(false);
    expect(mk(ICMPV6_NEIGHBOR_SOLICITATION, 24).isValid()).toBe(true);
    expect(mk(ICMPV6_REDIRECT, 39).isValid()).toBe(false);
    expect(mk(ICMPV6_REDIRECT, 40).isValid()).toBe(true);
    expect(mk(200, 8).isValid()).toBe(true);
    expect(new IcmpV6Header(new Uint8Array(16), 10).isValid()).toBe(false);
  });

  it('setters write the fields in place', () => {
    const b = new Uint8Array(8);
    encodeIcmpV6Echo(b, 0, { type: ICMPV6_ECHO_REQUEST, identifier: 1, sequence: 2 });
    const m = new IcmpV6Header(b);
    m.type = ICMPV6_PACKET_TOO_BIG;
    m.code = 3;
    m.mtu = 0x01020304;
    expect(Array.from(b)).toEqual([2, 3, 0, 0, 1, 2, 3, 4]);
    m.pointer = 0xffffffff;
    expect(m.pointer).toBe(0xffffffff);
    m.checksum = 0xabcd;
    expect([b[2], b[3]]).toEqual([0xab, 0xcd]);
    m.sequence = 0x0506;
    m.identifier = 0x0708;
    expect(m.restOfHeader).toBe(0x07080506);
  });

  it('never throws on random bytes; build-then-parse round trips echo', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const m = new IcmpV6Header(bytes);
        if (m.isValid()) {
          void [m.type, m.code, m.checksum, m.identifier, m.sequence, m.mtu, m.pointer, m.body, m.ndpOptionsOffset, m.curHopLimit];
          m.checksumValid(src, dst);
          expect(m.computeChecksum(src, dst)).toBeGreaterThanOrEqual(0);
        }
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 100 }), (identifier, sequence, data) => {
        const m = new IcmpV6Header(buildIcmpV6({ kind: 'echoRequest', identifier, sequence, data }, src, dst));
        expect(m.isValid()).toBe(true);
        expect([m.identifier, m.sequence, m.body.length]).toEqual([identifier, sequence, data.length]);
        expect(m.checksumValid(src, dst)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe.skipIf(!haveTshark())('ICMPv6 dissected by tshark', () => {
  it('decodes echo and every error as built, with good checksums', () => {
    const msgs: IcmpV6Message[] = [
      { kind: 'echoRequest', identifier: 0x1234, sequence: 77, data: new Uint8Array(20).fill(1) },
      { kind: 'echoReply', identifier: 0x1234, sequence: 77, data: new Uint8Array(20).fill(1) },
      ...errors.map((e) => e.m),
    ];
    const packets = msgs.map((m) => buildIcmpV6Packet(m, { source: src, destination: dst }));
    const d = dissect(packets, ['icmpv6.type', 'icmpv6.code', 'icmpv6.checksum.status', 'icmpv6.echo.identifier', 'icmpv6.echo.sequence_number', 'icmpv6.mtu', 'icmpv6.pointer', 'ipv6.plen'], RAW);
    expect(d.expert).toEqual([]);
    expect(field(d, 0, 'icmpv6.type')).toBe('128');
    expect(field(d, 1, 'icmpv6.type')).toBe('129');
    expect(field(d, 0, 'icmpv6.echo.identifier')).toBe('0x1234');
    expect(field(d, 1, 'icmpv6.echo.sequence_number')).toBe('77');
    errors.forEach((e, k) => {
      const i = k + 2;
      expect(field(d, i, 'icmpv6.type')).toBe(String(e.type));
      expect(field(d, i, 'icmpv6.code')).toBe(String(e.code));
      if (e.type === ICMPV6_PACKET_TOO_BIG) expect(field(d, i, 'icmpv6.mtu')).toBe('1400');
      if (e.type === ICMPV6_PARAMETER_PROBLEM) expect(field(d, i, 'icmpv6.pointer')).toBe('6');
      // The invoking packet is dissected too: its plen is the second occurrence.
      expect(d.fields[i]!['ipv6.plen']!.length).toBe(2);
    });
    packets.forEach((_, i) => expect(field(d, i, 'icmpv6.checksum.status')).toBe('1'));
    // The cut Packet Too Big is exactly 1280 bytes.
    const ptb = errors.findIndex((e) => e.type === ICMPV6_PACKET_TOO_BIG) + 2;
    expect(field(d, ptb, 'ipv6.plen')).toBe('1240');
  });

  it('a corrupted checksum IS reported as bad (so the good results mean something)', () => {
    const good = buildIcmpV6Packet({ kind: 'echoRequest', identifier: 1, sequence: 1, data: new Uint8Array(8) }, { source: src, destination: dst });
    const bad = good.slice();
    bad[bad.length - 1]! ^= 0x01;
    const d = dissect([good, bad], ['icmpv6.checksum.status'], RAW);
    expect(field(d, 0, 'icmpv6.checksum.status')).toBe('1');
    expect(field(d, 1, 'icmpv6.checksum.status')).toBe('0'); // 0 = Bad
    expect(d.expert.some((e) => e.startsWith('packet 2') && /checksum/i.test(e))).toBe(true);
    expect(d.expert.some((e) => e.startsWith('packet 1'))).toBe(false);
  });
});
