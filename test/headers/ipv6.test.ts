import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IPv6Header,
  IPV6_NEXT_HEADER_DESTINATION_OPTIONS,
  IPV6_NEXT_HEADER_HOP_BY_HOP,
  IPV6_NEXT_HEADER_ICMPV6,
  IPV6_NEXT_HEADER_NONE,
  IPV6_NEXT_HEADER_TCP,
  IPV6_NEXT_HEADER_UDP,
  IPV6_OPTION_ACTION_DISCARD,
  IPV6_OPTION_ACTION_DISCARD_ICMP,
  IPV6_OPTION_ACTION_DISCARD_ICMP_UNLESS_MULTICAST,
  IPV6_OPTION_PAD1,
  IPV6_OPTION_PADN,
  IPV6_OPTION_ROUTER_ALERT,
  ipv6OptionAction,
} from '../../src/headers/ipv6.js';
import {
  IPv6FragmentHeader,
  IPv6OptionIterator,
  IPv6OptionsHeader,
  IPv6RoutingHeader,
  IPV6_OPTIONS_END,
  IPV6_OPTIONS_TRUNCATED,
  buildIPv6,
  encodeIPv6Options,
  ipv6ExtensionsLength,
  type IPv6BuildFields,
  type IPv6Extension,
  type IPv6OptionFields,
} from '../../src/headers/ipv6-extensions.js';
import {
  IPv6Walk,
  IPV6_WALK_BAD_FRAGMENT,
  IPV6_WALK_BAD_HEADER,
  IPV6_WALK_BAD_OPTION,
  IPV6_WALK_HOP_BY_HOP_NOT_FIRST,
  IPV6_WALK_INCOMPLETE_CHAIN,
  IPV6_WALK_OK,
  IPV6_WALK_ROUTING,
  IPV6_WALK_TOO_MANY_HEADERS,
  IPV6_WALK_TRUNCATED,
  IPV6_WALK_UNKNOWN_OPTION,
  walkIPv6,
  walkIPv6Extensions,
} from '../../src/headers/ipv6-walk.js';
import { buildIcmpV6 } from '../../src/headers/icmpv6-message.js';
import { formatIPv6, parseIPv6 } from '../../src/core/address.js';
import { LinkType } from '../../src/pcap/writer.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';

const src = parseIPv6('2001:db8::1');
const dst = parseIPv6('2001:db8::2');
const mcast = parseIPv6('ff02::1');
const RAW = { linkType: LinkType.RAW };

function ip(extra: Partial<IPv6BuildFields> = {}, payload?: Uint8Array): Uint8Array {
  return buildIPv6({ source: src, destination: dst, hopLimit: 64, nextHeader: IPV6_NEXT_HEADER_UDP, ...extra }, payload);
}

function walk(pkt: Uint8Array, r = new IPv6Walk()): IPv6Walk {
  walkIPv6(pkt, 0, pkt.length, r);
  return r;
}

function echo(s = src, d = dst, data = new Uint8Array(24).fill(0x5a)): Uint8Array {
  return buildIcmpV6({ kind: 'echoRequest', identifier: 0x1234, sequence: 7, data }, s, d);
}

describe('IPv6 fixed header', () => {
  it('reads back every field it wrote', () => {
    const pkt = ip({ trafficClass: 0xb9, flowLabel: 0xabcde, hopLimit: 17 }, new Uint8Array(12));
    const h = new IPv6Header(pkt);
    expect(h.isValid()).toBe(true);
    expect(h.version).toBe(6);
    expect(h.trafficClass).toBe(0xb9);
    expect(h.flowLabel).toBe(0xabcde);
    expect(h.payloadLength).toBe(12);
    expect(h.nextHeader).toBe(IPV6_NEXT_HEADER_UDP);
    expect(h.hopLimit).toBe(17);
    expect(formatIPv6(h.source)).toBe('2001:db8::1');
    expect(formatIPv6(pkt, h.destinationOffset)).toBe('2001:db8::2');
    expect(h.sourceOffset).toBe(8);
    expect(h.totalLength).toBe(52);
    expect(h.payload.length).toBe(12);
  });

  it('setters change one field and leave its neighbours alone', () => {
    const pkt = ip({ trafficClass: 0xff, flowLabel: 0xfffff });
    const h = new IPv6Header(pkt);
    h.trafficClass = 0x12;
    expect(h.version).toBe(6);
    expect(h.flowLabel).toBe(0xfffff);
    h.flowLabel = 0x54321;
    expect(h.trafficClass).toBe(0x12);
    expect(h.version).toBe(6);
    h.hopLimit = 1;
    h.nextHeader = IPV6_NEXT_HEADER_TCP;
    h.payloadLength = 0;
    h.source = mcast;
    expect([h.hopLimit, h.nextHeader, h.payloadLength, h.flowLabel]).toEqual([1, 6, 0, 0x54321]);
    expect(h.isDestinationMulticast).toBe(false);
    h.destination = mcast;
    expect(h.isDestinationMulticast).toBe(true);
    expect(formatIPv6(h.source)).toBe('ff02::1');
  });

  it('rejects short, wrong-version and over-long datagrams; ignores link padding', () => {
    expect(new IPv6Header(new Uint8Array(39)).isValid()).toBe(false);
    const pkt = ip({}, new Uint8Array(8));
    expect(new IPv6Header(pkt, 0, 47).isValid()).toBe(false);
    const v4 = pkt.slice();
    v4[0] = 0x45;
    expect(new IPv6Header(v4).isValid()).toBe(false);
    const padded = new Uint8Array(pkt.length + 10);
    padded.set(pkt);
    const h = new IPv6Header(padded);
    expect(h.isValid()).toBe(true);
    expect(h.payload.length).toBe(8);
    expect(new IPv6Header(padded, 0, 20).isValid()).toBe(false);
    expect(h.reset(pkt, 1).isValid()).toBe(false);
  });
});

describe('IPv6 extension headers: encoding', () => {
  it('pads options headers to a multiple of 8 with Pad1 or PadN', () => {
    const buf = new Uint8Array(64);
    for (let dataLen = 0; dataLen <= 12; dataLen++) {
      buf.fill(0xee);
      const n = encodeIPv6Options(buf, 0, { nextHeader: 17, options: [{ type: 0x3e, data: new Uint8Array(dataLen).fill(9) }] });
      expect(n % 8).toBe(0);
      expect(n).toBe((2 + 2 + dataLen + 7) & ~7);
      const h = new IPv6OptionsHeader(buf, 0, n);
      expect(h.isValid()).toBe(true);
      expect(h.headerLength).toBe(n);
      expect(h.nextHeader).toBe(17);
      const it2 = new IPv6OptionIterator().reset(buf, h.optionsOffset, h.optionsEnd);
      const seen: number[] = [];
      while (it2.next()) seen.push(it2.type);
      expect(it2.status).toBe(IPV6_OPTIONS_END);
      const pad = n - (4 + dataLen);
      expect(seen).toEqual(pad === 0 ? [0x3e] : pad === 1 ? [0x3e, IPV6_OPTION_PAD1] : [0x3e, IPV6_OPTION_PADN]);
    }
  });

  it('views read the routing and fragment headers', () => {
    const pkt = ip({
      extensions: [
        { kind: 'routing', routingType: 2, segmentsLeft: 1, data: new Uint8Array(20) },
        { kind: 'fragment', fragmentOffset: 0x1abc, moreFragments: true, identification: 0xfedcba98 },
      ],
    });
    const rt = new IPv6RoutingHeader(pkt, 40);
    expect(rt.isValid()).toBe(true);
    expect([rt.nextHeader, rt.headerLength, rt.routingType, rt.segmentsLeft, rt.data.length]).toEqual([44, 24, 2, 1, 20]);
    const fh = new IPv6FragmentHeader(pkt, 64);
    expect(fh.isValid()).toBe(true);
    expect([fh.nextHeader, fh.fragmentOffset, fh.fragmentByteOffset, fh.moreFragments, fh.identification, fh.isAtomic]).toEqual([
      17, 0x1abc, 0x1abc * 8, true, 0xfedcba98, false,
    ]);
    fh.moreFragments = false;
    fh.fragmentOffset = 0;
    expect(fh.isAtomic).toBe(true);
    fh.identification = 1;
    expect(fh.identification).toBe(1);
    expect(new IPv6FragmentHeader(pkt, 64, 7).isValid()).toBe(false);
  });
});

describe('IPv6 extension header walker', () => {
  it('finds the upper layer with no extension headers', () => {
    const r = walk(ip({}, new Uint8Array(8)));
    expect(r.status).toBe(IPV6_WALK_OK);
    expect([r.protocol, r.offset, r.nextHeaderFieldOffset, r.headerCount, r.end]).toEqual([17, 40, 6, 0, 48]);
  });

  it('walks a chain of every kind: HBH, DestOpts, Routing (SL 0), atomic Fragment, DestOpts', () => {
    const exts: IPv6Extension[] = [
      { kind: 'hopByHop', options: [{ type: IPV6_OPTION_ROUTER_ALERT, data: Uint8Array.of(0, 0) }] },
      { kind: 'destinationOptions', options: [{ type: 0x1e, data: Uint8Array.of(1, 2, 3) }] },
      { kind: 'routing', routingType: 4, segmentsLeft: 0, data: new Uint8Array(20) },
      { kind: 'fragment', fragmentOffset: 0, moreFragments: false, identification: 99 },
      { kind: 'destinationOptions', options: [] },
    ];
    const pkt = ip({ nextHeader: IPV6_NEXT_HEADER_ICMPV6, extensions: exts }, echo());
    const r = walk(pkt);
    expect(r.status).toBe(IPV6_WALK_OK);
    expect(r.protocol).toBe(IPV6_NEXT_HEADER_ICMPV6);
    expect(r.offset).toBe(40 + ipv6ExtensionsLength(exts));
    expect(r.headerCount).toBe(5);
    expect(r.hopByHopOffset).toBe(40);
    expect(r.routerAlert).toBe(0);
    expect([r.routingType, r.segmentsLeft]).toEqual([4, 0]);
    expect(r.atomicFragment).toBe(true);
    expect(r.isFragment).toBe(false);
    expect(r.fragmentId).toBe(99);
    expect(pkt[r.nextHeaderFieldOffset]).toBe(IPV6_NEXT_HEADER_ICMPV6);
    expect(r.destinationOptionsOffset).toBe(r.offset - 8);
  });

  it('stops at a real fragment and reports offset, M flag and id', () => {
    const pkt = ip({ extensions: [{ kind: 'fragment', fragmentOffset: 185, moreFragments: true, identification: 0xcafef00d }] }, new Uint8Array(16));
    const r = walk(pkt);
    expect(r.status).toBe(IPV6_WALK_OK);
    expect(r.isFragment).toBe(true);
    expect([r.fragmentOffset, r.moreFragments, r.fragmentId, r.protocol, r.offset, r.fragmentHeaderOffset]).toEqual([
      185, true, 0xcafef00d, 17, 48, 40,
    ]);
  });

  it('rejects a fragment with M set whose length is not a multiple of 8 (pointer: payload length)', () => {
    const r = walk(ip({ extensions: [{ kind: 'fragment', fragmentOffset: 0, moreFragments: true, identification: 1 }] }, new Uint8Array(13)));
    expect(r.status).toBe(IPV6_WALK_BAD_FRAGMENT);
    expect([r.pointer, r.icmpCode]).toEqual([4, 0]);
  });

  it('rejects a fragment that would end past 65535 (pointer: fragment offset field)', () => {
    const r = walk(ip({ extensions: [{ kind: 'fragment', fragmentOffset: 8190, moreFragments: false, identification: 1 }] }, new Uint8Array(64)));
    expect(r.status).toBe(IPV6_WALK_BAD_FRAGMENT);
    expect([r.pointer, r.icmpCode]).toEqual([42, 0]);
  });

  it('rejects a first fragment without the whole chain through the upper-layer header (code 3)', () => {
    // TCP needs 20 bytes in the first fragment; 16 are there.
    const tcp = walk(ip({ nextHeader: IPV6_NEXT_HEADER_TCP, extensions: [{ kind: 'fragment', fragmentOffset: 0, moreFragments: true, identification: 1 }] }, new Uint8Array(16)));
    expect(tcp.status).toBe(IPV6_WALK_INCOMPLETE_CHAIN);
    expect([tcp.pointer, tcp.icmpCode]).toEqual([0, 3]);
    // A destination options header after the fragment header that runs past the fragment.
    const dop = new Uint8Array(16);
    dop[0] = IPV6_NEXT_HEADER_UDP;
    dop[1] = 2; // 24 bytes, only 16 present
    const d = walk(ip({ nextHeader: IPV6_NEXT_HEADER_DESTINATION_OPTIONS, extensions: [{ kind: 'fragment', fragmentOffset: 0, moreFragments: true, identification: 1 }] }, dop));
    expect(d.status).toBe(IPV6_WALK_INCOMPLETE_CHAIN);
    // Complete: 24 bytes of TCP.
    const ok = walk(ip({ nextHeader: IPV6_NEXT_HEADER_TCP, extensions: [{ kind: 'fragment', fragmentOffset: 0, moreFragments: true, identification: 1 }] }, new Uint8Array(24)));
    expect(ok.status).toBe(IPV6_WALK_OK);
    expect(ok.isFragment).toBe(true);
  });

  it('rejects Hop-by-Hop anywhere but first, pointing at the Next Header that named it (code 1)', () => {
    const pkt = ip({
      extensions: [
        { kind: 'destinationOptions', options: [] },
        { kind: 'hopByHop', options: [] },
      ],
    });
    const r = walk(pkt);
    expect(r.status).toBe(IPV6_WALK_HOP_BY_HOP_NOT_FIRST);
    expect([r.pointer, r.icmpCode]).toEqual([40, 1]);
    expect(pkt[r.problemOffset]).toBe(IPV6_NEXT_HEADER_HOP_BY_HOP);
  });

  it('applies the action bits of unrecognised options (RFC 8200 4.2)', () => {
    const opt = (type: number, d = dst): IPv6Walk =>
      walk(
        buildIPv6(
          {
            source: src,
            destination: d,
            hopLimit: 64,
            nextHeader: IPV6_NEXT_HEADER_UDP,
            extensions: [{ kind: 'destinationOptions', options: [{ type: IPV6_OPTION_PADN, data: new Uint8Array(1) }, { type, data: Uint8Array.of(1, 2) }] }],
          },
          new Uint8Array(8),
        ),
      );
    expect(ipv6OptionAction(0x3f)).toBe(0);
    expect(opt(0x3f).status).toBe(IPV6_WALK_OK);
    const discard = opt(0x7f);
    expect([discard.status, discard.optionAction, discard.icmpCode, discard.optionType]).toEqual([IPV6_WALK_UNKNOWN_OPTION, IPV6_OPTION_ACTION_DISCARD, -1, 0x7f]);
    const icmp = opt(0xbf);
    expect([icmp.status, icmp.optionAction, icmp.icmpCode, icmp.pointer]).toEqual([IPV6_WALK_UNKNOWN_OPTION, IPV6_OPTION_ACTION_DISCARD_ICMP, 2, 45]);
    const icmpToMulticast = opt(0xbf, mcast);
    expect(icmpToMulticast.icmpCode).toBe(2);
    const unlessUnicast = opt(0xff);
    expect([unlessUnicast.optionAction, unlessUnicast.icmpCode, unlessUnicast.pointer]).toEqual([IPV6_OPTION_ACTION_DISCARD_ICMP_UNLESS_MULTICAST, 2, 45]);
    const unlessMulticast = opt(0xff, mcast);
    expect([unlessMulticast.status, unlessMulticast.icmpCode]).toEqual([IPV6_WALK_UNKNOWN_OPTION, -1]);
  });

  it('drops an option that overruns its header, and a Router Alert of the wrong length', () => {
    const pkt = ip({ extensions: [{ kind: 'hopByHop', options: [{ type: 0x3e, data: new Uint8Array(4) }] }] });
    pkt[43] = 5; // option length 5: 2 + 2 + 5 > 8
    const it2 = new IPv6OptionIterator().reset(pkt, 42, 48);
    while (it2.next());
    expect(it2.status).toBe(IPV6_OPTIONS_TRUNCATED);
    const r = walk(pkt);
    expect([r.status, r.problemOffset, r.icmpCode]).toEqual([IPV6_WALK_BAD_OPTION, 42, -1]);
    const ra = walk(ip({ extensions: [{ kind: 'hopByHop', options: [{ type: IPV6_OPTION_ROUTER_ALERT, data: new Uint8Array(3) }] }] }));
    expect(ra.status).toBe(IPV6_WALK_BAD_OPTION);
  });

  it('refuses a routing header with segments left (no type is supported by a host), ignores it at 0', () => {
    const r = walk(ip({ extensions: [{ kind: 'routing', routingType: 0, segmentsLeft: 1, data: new Uint8Array(20) }] }));
    expect([r.status, r.pointer, r.icmpCode, r.routingType, r.segmentsLeft]).toEqual([IPV6_WALK_ROUTING, 42, 0, 0, 1]);
    expect(walk(ip({ extensions: [{ kind: 'routing', routingType: 0, segmentsLeft: 0, data: new Uint8Array(20) }] })).status).toBe(IPV6_WALK_OK);
  });

  it('reports truncated headers and a bad fixed header', () => {
    const pkt = ip({ extensions: [{ kind: 'destinationOptions', options: [{ type: 0x3e, data: new Uint8Array(20) }] }] });
    const short = pkt.slice();
    new IPv6Header(short).payloadLength = 16; // header claims 24 bytes
    expect(walk(short).status).toBe(IPV6_WALK_TRUNCATED);
    new IPv6Header(short).payloadLength = 4;
    expect(walk(short).status).toBe(IPV6_WALK_TRUNCATED);
    const r = new IPv6Walk();
    expect(walkIPv6(pkt, 0, 39, r)).toBe(IPV6_WALK_BAD_HEADER);
    expect(walkIPv6(pkt, 0, pkt.length - 1, r)).toBe(IPV6_WALK_BAD_HEADER);
    expect(r.pointer).toBe(4);
  });

  it('handles No Next Header (59)', () => {
    const r = walk(ip({ nextHeader: IPV6_NEXT_HEADER_NONE, extensions: [{ kind: 'destinationOptions', options: [] }] }, new Uint8Array(5)));
    expect([r.status, r.protocol, r.offset]).toEqual([IPV6_WALK_OK, IPV6_NEXT_HEADER_NONE, 48]);
  });

  it('bounds the chain length', () => {
    const exts: IPv6Extension[] = Array.from({ length: 20 }, () => ({ kind: 'destinationOptions', options: [] }));
    const pkt = ip({ extensions: exts });
    const r = new IPv6Walk();
    expect(walkIPv6(pkt, 0, pkt.length, r)).toBe(IPV6_WALK_TOO_MANY_HEADERS);
    r.maxHeaders = 20;
    expect(walkIPv6(pkt, 0, pkt.length, r)).toBe(IPV6_WALK_OK);
    expect(r.offset).toBe(40 + 20 * 8);
  });

  it('walks a chain that starts after the fixed header (after reassembly)', () => {
    const pkt = ip({ nextHeader: IPV6_NEXT_HEADER_ICMPV6, extensions: [{ kind: 'hopByHop', options: [] }, { kind: 'destinationOptions', options: [] }] }, echo());
    const r = new IPv6Walk();
    // Resume at the Destination Options header, named by the HBH header's Next Header byte.
    expect(walkIPv6Extensions(pkt, 0, 48, pkt.length, pkt[40]!, 40, r)).toBe(IPV6_WALK_OK);
    expect([r.protocol, r.offset, r.headerCount]).toEqual([58, 56, 1]);
  });

  it('reuses one result object across packets without stale fields', () => {
    const r = new IPv6Walk();
    walk(ip({ extensions: [{ kind: 'fragment', fragmentOffset: 3, moreFragments: true, identification: 5 }] }, new Uint8Array(8)), r);
    expect(r.isFragment).toBe(true);
    walk(ip({}, new Uint8Array(8)), r);
    expect([r.isFragment, r.fragmentHeaderOffset, r.routerAlert, r.offset, r.pointer]).toEqual([false, -1, -1, 40, -1]);
  });
});

describe('IPv6 under fast-check', () => {
  const walkFields = (r: IPv6Walk, base: number): number[] => [
    r.status,
    r.protocol,
    r.offset < 0 ? -1 : r.offset - base,
    r.pointer,
    r.icmpCode,
    r.headerCount,
    r.routerAlert,
    r.fragmentOffset,
    r.fragmentId,
    r.optionType,
  ];

  it('random bytes never make isValid or the walker throw, and the walker reads only [off, off+len)', () => {
    const r1 = new IPv6Walk();
    const r2 = new IPv6Walk();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 120 }),
        fc.uint8Array({ minLength: 0, maxLength: 16 }),
        fc.uint8Array({ minLength: 0, maxLength: 16 }),
        (bytes, before, after) => {
          if (bytes.length >= 1) bytes[0] = (bytes[0]! & 0x0f) | 0x60; // mostly version 6
          if (bytes.length >= 6) {
            const plen = Math.max(0, bytes.length - 40 - (bytes[5]! & 3));
            bytes[4] = plen >>> 8;
            bytes[5] = plen;
          }
          const h = new IPv6Header(bytes);
          if (h.isValid()) {
            expect(h.totalLength).toBeLessThanOrEqual(bytes.length);
            void h.payload;
          }
          walkIPv6(bytes, 0, bytes.length, r1);
          // The same bytes inside a larger buffer of other bytes: same result.
          const big = new Uint8Array(before.length + bytes.length + after.length);
          big.set(before);
          big.set(bytes, before.length);
          big.set(after, before.length + bytes.length);
          walkIPv6(big, before.length, bytes.length, r2);
          expect(walkFields(r2, before.length)).toEqual(walkFields(r1, 0));
          if (r1.ok) {
            expect(r1.offset).toBeGreaterThanOrEqual(40);
            expect(r1.offset).toBeLessThanOrEqual(bytes.length);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  const optionArb: fc.Arbitrary<IPv6OptionFields> = fc.oneof(
    fc.constant({ type: IPV6_OPTION_PAD1 }),
    fc.record({ type: fc.integer({ min: 2, max: 0x3f }).filter((t) => t !== IPV6_OPTION_ROUTER_ALERT), data: fc.uint8Array({ maxLength: 20 }) }),
    fc.record({ type: fc.constant(IPV6_OPTION_PADN), data: fc.uint8Array({ maxLength: 6 }).map((d) => new Uint8Array(d.length)) }),
  );
  const extArb: fc.Arbitrary<IPv6Extension> = fc.oneof(
    fc.record({ kind: fc.constant('destinationOptions' as const), options: fc.array(optionArb, { maxLength: 4 }) }),
    fc.record({ kind: fc.constant('routing' as const), routingType: fc.integer({ min: 0, max: 255 }), segmentsLeft: fc.constant(0), data: fc.uint8Array({ maxLength: 40 }) }),
    fc.record({ kind: fc.constant('fragment' as const), fragmentOffset: fc.constant(0), moreFragments: fc.constant(false), identification: fc.nat() }),
  );
  const chainArb = fc.tuple(
    fc.option(fc.array(optionArb, { maxLength: 4 }), { nil: undefined }),
    fc.array(extArb, { maxLength: 6 }),
  ).map(([hbh, rest]): IPv6Extension[] => (hbh ? [{ kind: 'hopByHop', options: hbh }, ...rest] : rest));

  it('build-then-walk round trips random chains', () => {
    const r = new IPv6Walk();
    fc.assert(
      fc.property(chainArb, fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 255 }), (exts, payload, upper) => {
        fc.pre(![0, 43, 44, 60].includes(upper));
        const pkt = buildIPv6({ source: src, destination: dst, hopLimit: 1, nextHeader: upper, extensions: exts }, payload);
        expect(walkIPv6(pkt, 0, pkt.length, r)).toBe(IPV6_WALK_OK);
        expect(r.protocol).toBe(upper);
        expect(r.offset).toBe(40 + ipv6ExtensionsLength(exts));
        expect(r.headerCount).toBe(exts.length);
        expect(r.offset + payload.length).toBe(pkt.length);
      }),
      { numRuns: 1000 },
    );
  });

  it('bit flips in valid chains never throw and keep offsets inside the packet', () => {
    const r = new IPv6Walk();
    fc.assert(
      fc.property(chainArb, fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), (exts, flips) => {
        const pkt = buildIPv6({ source: src, destination: dst, hopLimit: 1, nextHeader: 17, extensions: exts }, new Uint8Array(8));
        for (const f of flips) pkt[f % pkt.length]! ^= 1 << (f % 8);
        walkIPv6(pkt, 0, pkt.length, r);
        if (r.ok) {
          expect(r.offset).toBeGreaterThanOrEqual(40);
          expect(r.offset).toBeLessThanOrEqual(pkt.length);
        } else {
          expect(r.problemOffset).toBeGreaterThanOrEqual(0);
          expect(r.problemOffset).toBeLessThan(pkt.length);
        }
      }),
      { numRuns: 4000 },
    );
  });
});

describe.skipIf(!haveTshark())('IPv6 dissected by tshark', () => {
  it('decodes each extension header and a chain of several as built', () => {
    const e = echo();
    const mk = (exts: IPv6Extension[], extra: Partial<IPv6BuildFields> = {}): Uint8Array =>
      ip({ nextHeader: IPV6_NEXT_HEADER_ICMPV6, extensions: exts, ...extra }, e);
    const packets = [
      mk([], { trafficClass: 0xb8, flowLabel: 0x12345, hopLimit: 33 }),
      mk([{ kind: 'hopByHop', options: [{ type: IPV6_OPTION_ROUTER_ALERT, data: Uint8Array.of(0, 0) }] }]),
      mk([{ kind: 'destinationOptions', options: [{ type: 0x1e, data: Uint8Array.of(1, 2, 3, 4, 5) }] }]),
      mk([{ kind: 'routing', routingType: 4, segmentsLeft: 0, data: new Uint8Array(4 + 16) }]),
      mk([{ kind: 'fragment', fragmentOffset: 0, moreFragments: false, identification: 0xdeadbeef }]),
      mk([
        { kind: 'hopByHop', options: [{ type: IPV6_OPTION_ROUTER_ALERT, data: Uint8Array.of(0, 0) }] },
        { kind: 'destinationOptions', options: [{ type: 0x1e, data: Uint8Array.of(7) }] },
        { kind: 'routing', routingType: 4, segmentsLeft: 0, data: new Uint8Array(4 + 16) },
        { kind: 'fragment', fragmentOffset: 0, moreFragments: false, identification: 42 },
        { kind: 'destinationOptions', options: [{ type: IPV6_OPTION_PAD1 }, { type: 0x1e, data: new Uint8Array(9) }] },
      ]),
    ];
    const d = dissect(packets, [
      'ipv6.version', 'ipv6.tclass', 'ipv6.flow', 'ipv6.plen', 'ipv6.nxt', 'ipv6.hlim', 'ipv6.src', 'ipv6.dst',
      'ipv6.hopopts.nxt', 'ipv6.hopopts.len_oct', 'ipv6.opt.router_alert', 'ipv6.dstopts.nxt', 'ipv6.dstopts.len_oct',
      'ipv6.routing.type', 'ipv6.routing.segleft', 'ipv6.routing.len_oct', 'ipv6.fraghdr.nxt', 'ipv6.fraghdr.offset',
      'ipv6.fraghdr.more', 'ipv6.fraghdr.ident', 'icmpv6.type', 'icmpv6.checksum.status', 'icmpv6.echo.identifier',
    ], RAW);
    expect(d.expert).toEqual([]);
    const r = new IPv6Walk();
    packets.forEach((p, i) => {
      expect(field(d, i, 'ipv6.version')).toBe('6');
      expect(field(d, i, 'ipv6.plen')).toBe(String(p.length - 40));
      expect(field(d, i, 'icmpv6.type')).toBe('128');
      expect(field(d, i, 'icmpv6.checksum.status')).toBe('1'); // 1 = Good
      expect(field(d, i, 'icmpv6.echo.identifier')).toBe('0x1234');
      // Our walker and tshark agree on where ICMPv6 starts: it found the checksum good there.
      expect(walkIPv6(p, 0, p.length, r)).toBe(IPV6_WALK_OK);
      expect(r.offset).toBe(p.length - e.length);
    });
    expect(field(d, 0, 'ipv6.tclass')).toBe('0x000000b8');
    expect(field(d, 0, 'ipv6.flow')).toBe('0x012345');
    expect(field(d, 0, 'ipv6.hlim')).toBe('33');
    expect(field(d, 0, 'ipv6.nxt')).toBe('58');
    expect(field(d, 0, 'ipv6.src')).toBe('2001:db8::1');
    expect(field(d, 0, 'ipv6.dst')).toBe('2001:db8::2');
    expect(field(d, 1, 'ipv6.nxt')).toBe('0');
    expect(field(d, 1, 'ipv6.hopopts.nxt')).toBe('58');
    expect(field(d, 1, 'ipv6.hopopts.len_oct')).toBe('8');
    expect(field(d, 1, 'ipv6.opt.router_alert')).toBe('0');
    expect(field(d, 2, 'ipv6.dstopts.len_oct')).toBe('16');
    expect(field(d, 3, 'ipv6.routing.type')).toBe('4');
    expect(field(d, 3, 'ipv6.routing.segleft')).toBe('0');
    expect(field(d, 3, 'ipv6.routing.len_oct')).toBe('24');
    expect(field(d, 4, 'ipv6.fraghdr.offset')).toBe('0');
    expect(field(d, 4, 'ipv6.fraghdr.more')).toBe('0');
    expect(field(d, 4, 'ipv6.fraghdr.ident')).toBe('0xdeadbeef');
    expect(d.protocols[5]).toContain('ipv6.hopopts:ipv6.dstopts:ipv6.routing:ipv6.fraghdr:ipv6.dstopts:icmpv6');
    expect(d.fields[5]!['ipv6.dstopts.nxt']).toEqual(['43', '58']);
  });

  it('fragments: tshark reads offset/M/id and reassembles two fragments into a good ICMPv6 echo', () => {
    const msg = echo(src, dst, new Uint8Array(100).map((_, i) => i));
    const first = msg.subarray(0, 56);
    const second = msg.subarray(56);
    const frag = (fragmentOffset: number, moreFragments: boolean, payload: Uint8Array): Uint8Array =>
      ip({ nextHeader: IPV6_NEXT_HEADER_ICMPV6, extensions: [{ kind: 'fragment', fragmentOffset, moreFragments, identification: 0x77 }] }, payload);
    const packets = [frag(0, true, first), frag(7, false, second), frag(100, true, new Uint8Array(16))];
    const d = dissect(packets, ['ipv6.fraghdr.offset', 'ipv6.fraghdr.more', 'ipv6.fraghdr.ident', 'ipv6.reassembled.length', 'icmpv6.checksum.status', 'icmpv6.echo.sequence_number'], RAW);
    expect(d.expert).toEqual([]);
    expect(field(d, 0, 'ipv6.fraghdr.offset')).toBe('0');
    expect(field(d, 0, 'ipv6.fraghdr.more')).toBe('1');
    expect(field(d, 1, 'ipv6.fraghdr.offset')).toBe('7');
    expect(field(d, 1, 'ipv6.fraghdr.more')).toBe('0');
    expect(field(d, 1, 'ipv6.fraghdr.ident')).toBe('0x00000077');
    expect(field(d, 1, 'ipv6.reassembled.length')).toBe(String(msg.length));
    expect(field(d, 1, 'icmpv6.checksum.status')).toBe('1');
    expect(field(d, 1, 'icmpv6.echo.sequence_number')).toBe('7');
    expect(field(d, 2, 'ipv6.fraghdr.offset')).toBe('100');
    const r = new IPv6Walk();
    packets.forEach((p) => expect(walkIPv6(p, 0, p.length, r)).toBe(IPV6_WALK_OK));
    expect([r.fragmentOffset, r.moreFragments, r.isFragment]).toEqual([100, true, true]);
  });

  it('pads every option size so tshark sees well-formed headers', () => {
    const packets: Uint8Array[] = [];
    for (let n = 0; n <= 9; n++) {
      packets.push(ip({ nextHeader: IPV6_NEXT_HEADER_ICMPV6, extensions: [{ kind: 'destinationOptions', options: [{ type: 0x1e, data: new Uint8Array(n) }] }] }, echo()));
    }
    const d = dissect(packets, ['ipv6.dstopts.len_oct', 'icmpv6.checksum.status'], RAW);
    expect(d.expert).toEqual([]);
    packets.forEach((_, i) => {
      expect(field(d, i, 'ipv6.dstopts.len_oct')).toBe(String((4 + i + 7) & ~7));
      expect(field(d, i, 'icmpv6.checksum.status')).toBe('1');
    });
  });
});
