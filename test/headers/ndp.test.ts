import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IcmpV6Header,
  ICMPV6_MLDV2_REPORT,
  ICMPV6_MLD_QUERY,
  ICMPV6_NEIGHBOR_ADVERTISEMENT,
  ICMPV6_NEIGHBOR_SOLICITATION,
  ICMPV6_REDIRECT,
  ICMPV6_ROUTER_ADVERTISEMENT,
  ICMPV6_ROUTER_SOLICITATION,
  setIcmpV6Checksum,
} from '../../src/headers/icmpv6.js';
import {
  NDP_INFINITE_LIFETIME,
  NDP_OPTIONS_END,
  NDP_OPTIONS_TRUNCATED,
  NDP_OPTIONS_ZERO_LENGTH,
  NDP_OPTION_MTU,
  NDP_OPTION_PREFIX_INFORMATION,
  NDP_OPTION_RDNSS,
  NDP_OPTION_REDIRECTED_HEADER,
  NDP_OPTION_SOURCE_LINK_ADDRESS,
  NDP_OPTION_TARGET_LINK_ADDRESS,
  NdpOptionIterator,
  encodeNdpOptions,
  ndpOptionsLength,
  ndpOptionsValid,
  type NdpOptionFields,
} from '../../src/headers/ndp.js';
import {
  MLDV2_ALLOW_NEW_SOURCES,
  MLDV2_CHANGE_TO_EXCLUDE,
  MLDV2_MODE_IS_INCLUDE,
  MLDV2_RECORDS_END,
  MLDV2_RECORDS_TRUNCATED,
  MldV2RecordIterator,
  type MldV2RecordFields,
} from '../../src/headers/mld.js';
import { buildIcmpV6, buildIcmpV6Packet, type IcmpV6Message } from '../../src/headers/icmpv6-message.js';
import { IPV6_MIN_MTU } from '../../src/headers/ipv6.js';
import { buildIPv6 } from '../../src/headers/ipv6-extensions.js';
import { IPv6Walk, walkIPv6 } from '../../src/headers/ipv6-walk.js';
import { formatIPv6, formatMAC, parseIPv6, parseMAC } from '../../src/core/address.js';
import { LinkType } from '../../src/pcap/writer.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';

const RAW = { linkType: LinkType.RAW };
const routerLL = parseIPv6('fe80::1');
const hostLL = parseIPv6('fe80::2');
const allNodes = parseIPv6('ff02::1');
const allRouters = parseIPv6('ff02::2');
const mldv2Routers = parseIPv6('ff02::16');
const routerMac = parseMAC('02:00:00:00:00:01');
const hostMac = parseMAC('02:00:00:00:00:02');
const target = parseIPv6('2001:db8::2');
const solicitedNode = parseIPv6('ff02::1:ff00:2');

const raOptions: NdpOptionFields[] = [
  { kind: 'sourceLinkAddress', address: routerMac },
  { kind: 'mtu', mtu: 1500 },
  { kind: 'prefixInformation', prefixLength: 64, onLink: true, autonomous: true, validLifetime: 86400, preferredLifetime: 14400, prefix: parseIPv6('2001:db8:1::') },
  { kind: 'prefixInformation', prefixLength: 48, onLink: false, autonomous: false, validLifetime: NDP_INFINITE_LIFETIME, preferredLifetime: 0, prefix: parseIPv6('2001:db8:2::') },
  { kind: 'rdnss', lifetime: 600, servers: [parseIPv6('2001:db8::53'), parseIPv6('2001:db8::54')] },
];

/** The ICMPv6 message in a datagram. */
function messageOf(pkt: Uint8Array): IcmpV6Header {
  const r = new IPv6Walk();
  expect(walkIPv6(pkt, 0, pkt.length, r)).toBe(0);
  expect(r.protocol).toBe(58);
  return new IcmpV6Header(pkt, r.offset, r.end - r.offset);
}

function optionsOf(m: IcmpV6Header): NdpOptionIterator {
  return new NdpOptionIterator().reset(m.buf, m.ndpOptionsOffset, m.end);
}

function invokingPacket(n: number): Uint8Array {
  return buildIPv6({ source: hostLL, destination: parseIPv6('2001:db8:99::1'), hopLimit: 63, nextHeader: 59 }, new Uint8Array(n).fill(0xa5));
}

const ndpMessages: { name: string; m: IcmpV6Message; src: Uint8Array; dst: Uint8Array }[] = [
  { name: 'RS', m: { kind: 'routerSolicitation', options: [{ kind: 'sourceLinkAddress', address: hostMac }] }, src: hostLL, dst: allRouters },
  {
    name: 'RA',
    m: { kind: 'routerAdvertisement', curHopLimit: 64, managed: true, other: false, routerLifetime: 1800, reachableTime: 30000, retransTimer: 1000, options: raOptions },
    src: routerLL,
    dst: allNodes,
  },
  { name: 'NS', m: { kind: 'neighborSolicitation', target, options: [{ kind: 'sourceLinkAddress', address: hostMac }] }, src: hostLL, dst: solicitedNode },
  {
    name: 'NA',
    m: { kind: 'neighborAdvertisement', router: true, solicited: true, override: false, target, options: [{ kind: 'targetLinkAddress', address: routerMac }] },
    src: routerLL,
    dst: hostLL,
  },
  {
    name: 'Redirect',
    m: {
      kind: 'redirect',
      target: routerLL,
      destination: parseIPv6('2001:db8:99::1'),
      options: [
        { kind: 'targetLinkAddress', address: routerMac },
        { kind: 'redirectedHeader', packet: invokingPacket(24) },
      ],
    },
    src: routerLL,
    dst: hostLL,
  },
];

describe('NDP messages', () => {
  it('builds RS, RA, NS, NA and Redirect that parse back field by field', () => {
    const [rs, ra, ns, na, rd] = ndpMessages.map((x) => messageOf(buildIcmpV6Packet(x.m, { source: x.src, destination: x.dst })));

    expect(rs!.type).toBe(ICMPV6_ROUTER_SOLICITATION);
    expect(rs!.ndpOptionsOffset - rs!.off).toBe(8);

    expect(ra!.type).toBe(ICMPV6_ROUTER_ADVERTISEMENT);
    expect([ra!.curHopLimit, ra!.managedFlag, ra!.otherFlag, ra!.routerLifetime, ra!.reachableTime, ra!.retransTimer]).toEqual([64, true, false, 1800, 30000, 1000]);
    expect(ra!.ndpOptionsOffset - ra!.off).toBe(16);

    expect(ns!.type).toBe(ICMPV6_NEIGHBOR_SOLICITATION);
    expect(formatIPv6(ns!.targetAddress)).toBe('2001:db8::2');
    expect(ns!.ndpOptionsOffset - ns!.off).toBe(24);

    expect(na!.type).toBe(ICMPV6_NEIGHBOR_ADVERTISEMENT);
    expect([na!.routerFlag, na!.solicitedFlag, na!.overrideFlag]).toEqual([true, true, false]);
    expect(formatIPv6(na!.buf, na!.targetAddressOffset)).toBe('2001:db8::2');

    expect(rd!.type).toBe(ICMPV6_REDIRECT);
    expect(formatIPv6(rd!.targetAddress)).toBe('fe80::1');
    expect(formatIPv6(rd!.redirectDestination)).toBe('2001:db8:99::1');
    expect(rd!.ndpOptionsOffset - rd!.off).toBe(40);

    for (const m of [rs!, ra!, ns!, na!, rd!]) {
      expect(m.isValid()).toBe(true);
      expect(m.code).toBe(0);
      expect(m.buf[7]).toBe(255); // hop limit 255, as RFC 4861 requires
      expect(m.checksumValid(m.buf, m.buf, 8, 24)).toBe(true);
    }
  });

  it('reads every option kind through the iterator', () => {
    const ra = messageOf(buildIcmpV6Packet(ndpMessages[1]!.m, { source: routerLL, destination: allNodes }));
    const it2 = optionsOf(ra);
    const seen: string[] = [];
    while (it2.next()) {
      expect(it2.wellFormed).toBe(true);
      switch (it2.type) {
        case NDP_OPTION_SOURCE_LINK_ADDRESS:
          expect([it2.length, it2.linkAddressLength]).toEqual([8, 6]);
          seen.push(`slla ${formatMAC(it2.linkAddress)} ${formatMAC(it2.buf, it2.linkAddressOffset)}`);
          break;
        case NDP_OPTION_MTU:
          seen.push(`mtu ${it2.mtu}`);
          break;
        case NDP_OPTION_PREFIX_INFORMATION:
          seen.push(`pi ${formatIPv6(it2.prefix)}/${it2.prefixLength} L=${it2.onLinkFlag} A=${it2.autonomousFlag} ${it2.validLifetime} ${it2.preferredLifetime} ${it2.prefixOffset - it2.offset}`);
          break;
        case NDP_OPTION_RDNSS:
          seen.push(`rdnss ${it2.rdnssLifetime} ${Array.from({ length: it2.rdnssServerCount }, (_, i) => formatIPv6(it2.buf, it2.rdnssServerOffset(i))).join(' ')}`);
          break;
        default:
          seen.push(`other ${it2.type}`);
      }
    }
    expect(it2.status).toBe(NDP_OPTIONS_END);
    expect(seen).toEqual([
      'slla 02:00:00:00:00:01 02:00:00:00:00:01',
      'mtu 1500',
      'pi 2001:db8:1::/64 L=true A=true 86400 14400 16',
      'pi 2001:db8:2::/48 L=false A=false 4294967295 0 16',
      'rdnss 600 2001:db8::53 2001:db8::54',
    ]);

    const rd = messageOf(buildIcmpV6Packet(ndpMessages[4]!.m, { source: routerLL, destination: hostLL }));
    const it3 = optionsOf(rd);
    const types: number[] = [];
    while (it3.next()) {
      types.push(it3.type);
      if (it3.type === NDP_OPTION_REDIRECTED_HEADER) {
        expect(it3.redirectedPacketLength).toBe(64);
        expect(Array.from(it3.buf.subarray(it3.redirectedPacketOffset, it3.redirectedPacketOffset + 64))).toEqual(Array.from(invokingPacket(24)));
      }
      if (it3.type === NDP_OPTION_TARGET_LINK_ADDRESS) expect(formatMAC(it3.linkAddress)).toBe('02:00:00:00:00:01');
    }
    expect(types).toEqual([NDP_OPTION_TARGET_LINK_ADDRESS, NDP_OPTION_REDIRECTED_HEADER]);
    expect(it3.status).toBe(NDP_OPTIONS_END);
  });

  it('skips unknown options by their length', () => {
    const opts: NdpOptionFields[] = [
      { kind: 'raw', type: 200, data: new Uint8Array(13).fill(7) },
      { kind: 'sourceLinkAddress', address: hostMac },
    ];
    const buf = new Uint8Array(ndpOptionsLength(opts));
    expect(encodeNdpOptions(buf, 0, opts)).toBe(24);
    const it2 = new NdpOptionIterator().reset(buf, 0, buf.length);
    expect(it2.next()).toBe(true);
    expect([it2.type, it2.length, it2.wellFormed, it2.data.length]).toEqual([200, 16, true, 14]);
    expect(it2.next()).toBe(true);
    expect(it2.type).toBe(NDP_OPTION_SOURCE_LINK_ADDRESS);
    expect(it2.next()).toBe(false);
    expect(it2.status).toBe(NDP_OPTIONS_END);
  });

  it('rejects an option of length 0 instead of looping on it, and a truncated option', () => {
    const buf = new Uint8Array(24);
    encodeNdpOptions(buf, 0, [{ kind: 'sourceLinkAddress', address: hostMac }]);
    buf[8] = 200; // second option: type 200, length 0
    const it2 = new NdpOptionIterator().reset(buf, 0, buf.length);
    let n = 0;
    while (it2.next()) n++;
    expect(n).toBe(1);
    expect(it2.status).toBe(NDP_OPTIONS_ZERO_LENGTH);
    expect(it2.offset).toBe(8);
    expect(ndpOptionsValid(buf, 0, buf.length)).toBe(false);

    buf[9] = 3; // 24 bytes claimed, 16 left
    expect(ndpOptionsValid(buf, 0, buf.length)).toBe(false);
    it2.reset(buf, 0, buf.length);
    while (it2.next());
    expect(it2.status).toBe(NDP_OPTIONS_TRUNCATED);
    buf[9] = 2;
    expect(ndpOptionsValid(buf, 0, buf.length)).toBe(true);
    expect(ndpOptionsValid(buf, 0, 9)).toBe(false); // one byte of an option header
    expect(ndpOptionsValid(buf, 0, 0)).toBe(true);
  });

  it('flags known options whose length is wrong for their type', () => {
    const check = (type: number, units: number): boolean => {
      const b = new Uint8Array(units * 8);
      b[0] = type;
      b[1] = units;
      const it2 = new NdpOptionIterator().reset(b, 0, b.length);
      expect(it2.next()).toBe(true);
      return it2.wellFormed;
    };
    expect(check(NDP_OPTION_PREFIX_INFORMATION, 4)).toBe(true);
    expect(check(NDP_OPTION_PREFIX_INFORMATION, 3)).toBe(false);
    expect(check(NDP_OPTION_MTU, 1)).toBe(true);
    expect(check(NDP_OPTION_MTU, 2)).toBe(false);
    expect(check(NDP_OPTION_RDNSS, 1)).toBe(false);
    expect(check(NDP_OPTION_RDNSS, 3)).toBe(true);
    expect(check(NDP_OPTION_RDNSS, 4)).toBe(false);
    expect(check(NDP_OPTION_RDNSS, 5)).toBe(true);
  });

  it('cuts the Redirected Header so the redirect fits the minimum MTU', () => {
    const m: IcmpV6Message = {
      kind: 'redirect',
      target: routerLL,
      destination: parseIPv6('2001:db8:99::1'),
      options: [
        { kind: 'targetLinkAddress', address: routerMac },
        { kind: 'redirectedHeader', packet: invokingPacket(2000) },
      ],
    };
    const pkt = buildIcmpV6Packet(m, { source: routerLL, destination: hostLL });
    expect(pkt.length).toBeLessThanOrEqual(IPV6_MIN_MTU);
    expect(pkt.length).toBeGreaterThan(IPV6_MIN_MTU - 8);
    const msg = messageOf(pkt);
    expect(ndpOptionsValid(msg.buf, msg.ndpOptionsOffset, msg.end)).toBe(true);
    expect(msg.checksumValid(routerLL, hostLL)).toBe(true);
  });

  it('never throws or loops on random option bytes, and reads only [start, end)', () => {
    const it1 = new NdpOptionIterator();
    const it2 = new NdpOptionIterator();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ maxLength: 16 }), (bytes, before, after) => {
        const big = new Uint8Array(before.length + bytes.length + after.length);
        big.set(before);
        big.set(bytes, before.length);
        big.set(after, before.length + bytes.length);
        it1.reset(bytes, 0, bytes.length);
        it2.reset(big, before.length, before.length + bytes.length);
        let steps = 0;
        while (it1.next()) {
          expect(it2.next()).toBe(true);
          expect([it2.type, it2.length, it2.offset - before.length, it2.wellFormed]).toEqual([it1.type, it1.length, it1.offset, it1.wellFormed]);
          expect(it1.offset + it1.length).toBeLessThanOrEqual(bytes.length);
          void [it1.mtu, it1.prefixLength, it1.validLifetime, it1.rdnssServerCount, it1.linkAddress];
          steps++;
        }
        expect(it2.next()).toBe(false);
        expect(it2.status).toBe(it1.status);
        expect(steps).toBeLessThanOrEqual(bytes.length / 8);
        expect(it1.status).not.toBe(0);
      }),
      { numRuns: 3000 },
    );
  });

  const optArb: fc.Arbitrary<NdpOptionFields> = fc.oneof(
    fc.record({ kind: fc.constant('sourceLinkAddress' as const), address: fc.uint8Array({ minLength: 6, maxLength: 6 }) }),
    fc.record({ kind: fc.constant('targetLinkAddress' as const), address: fc.uint8Array({ minLength: 6, maxLength: 6 }) }),
    fc.record({
      kind: fc.constant('prefixInformation' as const),
      prefixLength: fc.integer({ min: 0, max: 128 }),
      onLink: fc.boolean(),
      autonomous: fc.boolean(),
      validLifetime: fc.integer({ min: 0, max: 0xffffffff }),
      preferredLifetime: fc.integer({ min: 0, max: 0xffffffff }),
      prefix: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    }),
    fc.record({ kind: fc.constant('mtu' as const), mtu: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({ kind: fc.constant('rdnss' as const), lifetime: fc.integer({ min: 0, max: 0xffffffff }), servers: fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { minLength: 1, maxLength: 3 }) }),
    fc.record({ kind: fc.constant('redirectedHeader' as const), packet: fc.uint8Array({ maxLength: 60 }) }),
    fc.record({ kind: fc.constant('raw' as const), type: fc.integer({ min: 6, max: 255 }).filter((t) => t !== 25), data: fc.uint8Array({ maxLength: 30 }) }),
  );

  it('build-then-parse round trips random option lists', () => {
    const it2 = new NdpOptionIterator();
    fc.assert(
      fc.property(fc.array(optArb, { maxLength: 6 }), (opts) => {
        const buf = new Uint8Array(ndpOptionsLength(opts));
        expect(encodeNdpOptions(buf, 0, opts)).toBe(buf.length);
        it2.reset(buf, 0, buf.length);
        for (const o of opts) {
          expect(it2.next()).toBe(true);
          expect(it2.wellFormed).toBe(true);
          switch (o.kind) {
            case 'sourceLinkAddress':
            case 'targetLinkAddress':
              expect(it2.type).toBe(o.kind === 'sourceLinkAddress' ? 1 : 2);
              expect(Array.from(it2.linkAddress)).toEqual(Array.from(o.address));
              break;
            case 'prefixInformation':
              expect([it2.type, it2.prefixLength, it2.onLinkFlag, it2.autonomousFlag, it2.validLifetime, it2.preferredLifetime]).toEqual([
                3, o.prefixLength, o.onLink, o.autonomous, o.validLifetime, o.preferredLifetime,
              ]);
              expect(Array.from(it2.prefix)).toEqual(Array.from(o.prefix));
              break;
            case 'mtu':
              expect([it2.type, it2.mtu]).toEqual([NDP_OPTION_MTU, o.mtu]);
              break;
            case 'rdnss':
              expect([it2.type, it2.rdnssLifetime, it2.rdnssServerCount]).toEqual([NDP_OPTION_RDNSS, o.lifetime, o.servers.length]);
              o.servers.forEach((s, i) => expect(Array.from(it2.buf.subarray(it2.rdnssServerOffset(i), it2.rdnssServerOffset(i) + 16))).toEqual(Array.from(s)));
              break;
            case 'redirectedHeader':
              expect(it2.type).toBe(NDP_OPTION_REDIRECTED_HEADER);
              expect(Array.from(it2.buf.subarray(it2.redirectedPacketOffset, it2.redirectedPacketOffset + o.packet.length))).toEqual(Array.from(o.packet));
              break;
            case 'raw':
              expect(it2.type).toBe(o.type);
              expect(Array.from(it2.data.subarray(0, o.data.length))).toEqual(Array.from(o.data));
              break;
          }
        }
        expect(it2.next()).toBe(false);
        expect(it2.status).toBe(NDP_OPTIONS_END);
      }),
      { numRuns: 500 },
    );
  });
});

const records: MldV2RecordFields[] = [
  { recordType: MLDV2_CHANGE_TO_EXCLUDE, multicastAddress: parseIPv6('ff02::fb') },
  { recordType: MLDV2_MODE_IS_INCLUDE, multicastAddress: parseIPv6('ff05::1:3'), sources: [parseIPv6('2001:db8::9'), parseIPv6('2001:db8::a')] },
  { recordType: MLDV2_ALLOW_NEW_SOURCES, multicastAddress: parseIPv6('ff0e::101'), sources: [parseIPv6('2001:db8::b')], auxData: Uint8Array.of(1, 2, 3, 4) },
];

describe('MLDv2', () => {
  it('builds a report with a Router Alert, hop limit 1, and records that parse back', () => {
    const pkt = buildIcmpV6Packet({ kind: 'mldv2Report', records }, { source: hostLL, destination: mldv2Routers });
    const r = new IPv6Walk();
    expect(walkIPv6(pkt, 0, pkt.length, r)).toBe(0);
    expect(r.routerAlert).toBe(0);
    expect(pkt[7]).toBe(1);
    const m = new IcmpV6Header(pkt, r.offset, r.end - r.offset);
    expect(m.isValid()).toBe(true);
    expect([m.type, m.code, m.mldV2RecordCount]).toEqual([ICMPV6_MLDV2_REPORT, 0, 3]);
    expect(m.checksumValid(hostLL, mldv2Routers)).toBe(true);
    const it2 = new MldV2RecordIterator().reset(pkt, m.mldV2RecordsOffset, m.end, m.mldV2RecordCount);
    const got: string[] = [];
    while (it2.next()) {
      const srcs = Array.from({ length: it2.sourceCount }, (_, i) => formatIPv6(pkt, it2.sourceOffset(i)));
      got.push(`${it2.recordType} ${formatIPv6(it2.multicastAddress)} [${srcs.join(',')}] aux=${it2.auxDataLength}@${it2.auxDataOffset - it2.offset} ${formatIPv6(pkt, it2.multicastAddressOffset)}`);
    }
    expect(it2.status).toBe(MLDV2_RECORDS_END);
    expect(got).toEqual([
      '4 ff02::fb [] aux=0@20 ff02::fb',
      '1 ff05::1:3 [2001:db8::9,2001:db8::a] aux=0@52 ff05::1:3',
      '5 ff0e::101 [2001:db8::b] aux=4@36 ff0e::101',
    ]);
  });

  it('stops with TRUNCATED when the count promises more than the bytes hold', () => {
    const msg = buildIcmpV6({ kind: 'mldv2Report', records }, hostLL, mldv2Routers);
    const m = new IcmpV6Header(msg);
    const it2 = new MldV2RecordIterator().reset(msg, 8, msg.length, 4);
    let n = 0;
    while (it2.next()) n++;
    expect([n, it2.status]).toEqual([3, MLDV2_RECORDS_TRUNCATED]);
    it2.reset(msg, 8, msg.length - 1, m.mldV2RecordCount);
    n = 0;
    while (it2.next()) n++;
    expect([n, it2.status]).toEqual([2, MLDV2_RECORDS_TRUNCATED]);
  });

  it('reads MLDv2 query fields', () => {
    const body = new Uint8Array(20 + 16);
    body.set(parseIPv6('ff02::fb'), 0);
    body[16] = 0x08 | 2; // S, QRV 2
    body[17] = 125;
    body[19] = 1;
    body.set(parseIPv6('2001:db8::77'), 20);
    const msg = buildIcmpV6({ kind: 'raw', type: ICMPV6_MLD_QUERY, code: 0, rest: 10000 << 16, body }, routerLL, allNodes);
    const q = new IcmpV6Header(msg);
    expect(q.isValid()).toBe(true);
    expect(q.isMldV2Query).toBe(true);
    expect([q.mldMaxResponseCode, formatIPv6(q.mldMulticastAddress), q.mldSuppressFlag, q.mldQrv, q.mldQqic, q.mldSourceCount]).toEqual([
      10000, 'ff02::fb', true, 2, 125, 1,
    ]);
  });

  it('never throws or loops on random record bytes', () => {
    const it2 = new MldV2RecordIterator();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.integer({ min: 0, max: 0xffff }), (bytes, count) => {
        it2.reset(bytes, 0, bytes.length, count);
        let n = 0;
        while (it2.next()) {
          expect(it2.offset + it2.length).toBeLessThanOrEqual(bytes.length);
          n++;
        }
        expect(n).toBeLessThanOrEqual(Math.min(count, bytes.length / 20));
        expect(it2.status).not.toBe(0);
      }),
      { numRuns: 2000 },
    );
  });
});

describe.skipIf(!haveTshark())('NDP and MLD dissected by tshark', () => {
  it('decodes every NDP message and option as built', () => {
    const packets = ndpMessages.map((x) => buildIcmpV6Packet(x.m, { source: x.src, destination: x.dst }));
    const d = dissect(
      packets,
      [
        'icmpv6.type', 'icmpv6.code', 'icmpv6.checksum.status', 'ipv6.hlim',
        'icmpv6.nd.ra.cur_hop_limit', 'icmpv6.nd.ra.flag.m', 'icmpv6.nd.ra.flag.o', 'icmpv6.nd.ra.router_lifetime',
        'icmpv6.nd.ra.reachable_time', 'icmpv6.nd.ra.retrans_timer',
        'icmpv6.nd.ns.target_address', 'icmpv6.nd.na.target_address', 'icmpv6.nd.na.flag.r', 'icmpv6.nd.na.flag.s', 'icmpv6.nd.na.flag.o',
        'icmpv6.nd.rd.target_address', 'icmpv6.rd.na.destination_address',
        'icmpv6.opt.type', 'icmpv6.opt.linkaddr', 'icmpv6.opt.src_linkaddr', 'icmpv6.opt.target_linkaddr', 'icmpv6.opt.mtu',
        'icmpv6.opt.prefix', 'icmpv6.opt.prefix.length', 'icmpv6.opt.prefix.flag.l', 'icmpv6.opt.prefix.flag.a',
        'icmpv6.opt.prefix.valid_lifetime', 'icmpv6.opt.prefix.preferred_lifetime', 'icmpv6.opt.rdnss', 'icmpv6.opt.rdnss.lifetime',
        'ipv6.src',
      ],
      RAW,
    );
    expect(d.expert).toEqual([]);
    const [rs, ra, ns, na, rd] = [0, 1, 2, 3, 4];
    for (let i = 0; i < 5; i++) {
      expect(field(d, i, 'icmpv6.type')).toBe(String(133 + i));
      expect(field(d, i, 'icmpv6.code')).toBe('0');
      expect(field(d, i, 'icmpv6.checksum.status')).toBe('1');
      expect(field(d, i, 'ipv6.hlim')).toBe('255');
    }
    expect(field(d, rs, 'icmpv6.opt.src_linkaddr')).toBe('02:00:00:00:00:02');

    expect(field(d, ra, 'icmpv6.nd.ra.cur_hop_limit')).toBe('64');
    expect(field(d, ra, 'icmpv6.nd.ra.flag.m')).toBe('1');
    expect(field(d, ra, 'icmpv6.nd.ra.flag.o')).toBe('0');
    expect(field(d, ra, 'icmpv6.nd.ra.router_lifetime')).toBe('1800');
    expect(field(d, ra, 'icmpv6.nd.ra.reachable_time')).toBe('30000');
    expect(field(d, ra, 'icmpv6.nd.ra.retrans_timer')).toBe('1000');
    expect(d.fields[ra]!['icmpv6.opt.type']).toEqual(['1', '5', '3', '3', '25']);
    expect(field(d, ra, 'icmpv6.opt.linkaddr')).toBe('02:00:00:00:00:01');
    expect(field(d, ra, 'icmpv6.opt.mtu')).toBe('1500');
    expect(d.fields[ra]!['icmpv6.opt.prefix']).toEqual(['2001:db8:1::', '2001:db8:2::']);
    expect(d.fields[ra]!['icmpv6.opt.prefix.length']).toEqual(['64', '48']);
    expect(d.fields[ra]!['icmpv6.opt.prefix.flag.l']).toEqual(['1', '0']);
    expect(d.fields[ra]!['icmpv6.opt.prefix.flag.a']).toEqual(['1', '0']);
    expect(d.fields[ra]!['icmpv6.opt.prefix.valid_lifetime']).toEqual(['86400', '4294967295']);
    expect(d.fields[ra]!['icmpv6.opt.prefix.preferred_lifetime']).toEqual(['14400', '0']);
    expect(d.fields[ra]!['icmpv6.opt.rdnss']).toEqual(['2001:db8::53', '2001:db8::54']);
    expect(field(d, ra, 'icmpv6.opt.rdnss.lifetime')).toBe('600');

    expect(field(d, ns, 'icmpv6.nd.ns.target_address')).toBe('2001:db8::2');
    expect(field(d, ns, 'icmpv6.opt.src_linkaddr')).toBe('02:00:00:00:00:02');

    expect(field(d, na, 'icmpv6.nd.na.target_address')).toBe('2001:db8::2');
    expect(field(d, na, 'icmpv6.nd.na.flag.r')).toBe('1');
    expect(field(d, na, 'icmpv6.nd.na.flag.s')).toBe('1');
    expect(field(d, na, 'icmpv6.nd.na.flag.o')).toBe('0');
    expect(field(d, na, 'icmpv6.opt.target_linkaddr')).toBe('02:00:00:00:00:01');

    expect(field(d, rd, 'icmpv6.nd.rd.target_address')).toBe('fe80::1');
    expect(field(d, rd, 'icmpv6.rd.na.destination_address')).toBe('2001:db8:99::1');
    expect(d.fields[rd]!['icmpv6.opt.type']).toEqual(['2', '4']);
    // The redirected packet is dissected as IPv6: its source is the second ipv6.src.
    expect(d.fields[rd]!['ipv6.src']).toEqual(['fe80::1', 'fe80::2']);
  });

  it('decodes an unknown NDP option without complaint and a zero-length option as an error', () => {
    const ok = buildIcmpV6Packet(
      { kind: 'neighborSolicitation', target, options: [{ kind: 'raw', type: 200, data: new Uint8Array(6) }, { kind: 'sourceLinkAddress', address: hostMac }] },
      { source: hostLL, destination: solicitedNode },
    );
    const zero = ok.slice();
    zero[40 + 24 + 1] = 0;
    setIcmpV6Checksum(zero, 40, zero.length - 40, hostLL, solicitedNode);
    const d = dissect([ok, zero], ['icmpv6.opt.type', 'icmpv6.opt.src_linkaddr', 'icmpv6.checksum.status'], RAW);
    expect(d.expert.filter((e) => e.startsWith('packet 1'))).toEqual([]);
    expect(d.fields[0]!['icmpv6.opt.type']).toEqual(['200', '1']);
    expect(field(d, 0, 'icmpv6.opt.src_linkaddr')).toBe('02:00:00:00:00:02');
    // tshark too finds the zero-length option invalid (our parser rejects it: NDP_OPTIONS_ZERO_LENGTH).
    expect(field(d, 1, 'icmpv6.checksum.status')).toBe('1');
    expect(d.expert.some((e) => e.startsWith('packet 2') && /option length/i.test(e))).toBe(true);
    const m = new IcmpV6Header(zero, 40, zero.length - 40);
    expect(ndpOptionsValid(zero, m.ndpOptionsOffset, m.end)).toBe(false);
  });

  it('decodes the MLDv2 report records as built', () => {
    const pkt = buildIcmpV6Packet({ kind: 'mldv2Report', records }, { source: hostLL, destination: mldv2Routers });
    const d = dissect(
      [pkt],
      [
        'icmpv6.type', 'icmpv6.checksum.status', 'ipv6.hlim', 'ipv6.opt.router_alert', 'icmpv6.mldr.nb_mcast_records',
        'icmpv6.mldr.mar.record_type', 'icmpv6.mldr.mar.aux_data_len', 'icmpv6.mldr.mar.nb_sources', 'icmpv6.mldr.mar.multicast_address',
        'icmpv6.mldr.mar.source_address',
      ],
      RAW,
    );
    expect(d.expert).toEqual([]);
    expect(field(d, 0, 'icmpv6.type')).toBe('143');
    expect(field(d, 0, 'icmpv6.checksum.status')).toBe('1');
    expect(field(d, 0, 'ipv6.hlim')).toBe('1');
    expect(field(d, 0, 'ipv6.opt.router_alert')).toBe('0');
    expect(field(d, 0, 'icmpv6.mldr.nb_mcast_records')).toBe('3');
    expect(d.fields[0]!['icmpv6.mldr.mar.record_type']).toEqual(['4', '1', '5']);
    expect(d.fields[0]!['icmpv6.mldr.mar.aux_data_len']).toEqual(['0', '0', '1']);
    expect(d.fields[0]!['icmpv6.mldr.mar.nb_sources']).toEqual(['0', '2', '1']);
    expect(d.fields[0]!['icmpv6.mldr.mar.multicast_address']).toEqual(['ff02::fb', 'ff05::1:3', 'ff0e::101']);
    expect(d.fields[0]!['icmpv6.mldr.mar.source_address']).toEqual(['2001:db8::9', '2001:db8::a', '2001:db8::b']);
  });
});
