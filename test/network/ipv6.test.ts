import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ManualClock,
  Stack,
  Wire,
  formatIP,
  parseMAC,
  type IPv6Protocol,
} from '../../src/index.js';
import { ETHERTYPE_IPV6, buildEthernet, buildIPv6, buildIcmpV6, buildUdp, type IPv6Extension } from '../../src/headers/index.js';
import { haveTshark } from '../helpers/tshark.js';
import { HOST_MAC, PEER_MAC, decode, ip6, ofType, pcapOf, tapHost, type TapHost } from './frames.js';
import { attach, pcapWriter, tsharkFields } from './helpers.js';
import { xorAt } from '../helpers/bytes.js';

const US = 'fd00::a';
const PEER = 'fd00::b';

function host(opts: Parameters<typeof tapHost>[0] = {}): TapHost {
  const h = tapHost(opts);
  h.nic.addAddress(`${US}/64`, { nodad: true });
  h.clock.advance(20_000); // DAD of the link-local address, MLD reports, router solicitations
  h.out();
  h.all.length = 0;
  // The peer is known: replies need no resolution.
  h.ip6.cache(h.nic).addStatic(ip6(PEER), parseMAC(PEER_MAC));
  return h;
}

/** An IPv6 datagram from the peer in an Ethernet frame. */
function frame(
  f: { nextHeader: number; extensions?: IPv6Extension[]; src?: string; dst?: string; hopLimit?: number; payloadLength?: number },
  payload: Uint8Array,
): Uint8Array {
  const dst = ip6(f.dst ?? US);
  const ip = buildIPv6(
    { source: ip6(f.src ?? PEER), destination: dst, nextHeader: f.nextHeader, hopLimit: f.hopLimit ?? 64, extensions: f.extensions ?? [], ...(f.payloadLength !== undefined ? { payloadLength: f.payloadLength } : {}) },
    payload,
  );
  const mac = dst[0] === 0xff ? Uint8Array.of(0x33, 0x33, dst[12]!, dst[13]!, dst[14]!, dst[15]!) : parseMAC(HOST_MAC);
  return buildEthernet({ destination: mac, source: parseMAC(PEER_MAC), etherType: ETHERTYPE_IPV6 }, ip);
}

function echo(id = 7, seq = 1, data = new Uint8Array([1, 2, 3, 4]), src = PEER, dst = US): Uint8Array {
  return buildIcmpV6({ kind: 'echoRequest', identifier: id, sequence: seq, data }, ip6(src), ip6(dst));
}

function udp(srcPort: number, dstPort: number, data: Uint8Array, src = PEER, dst = US): Uint8Array {
  return buildUdp({ srcPort, dstPort, pseudoHeader: { src: ip6(src), dst: ip6(dst) } }, data);
}

function judge(frames: Uint8Array[], fields: string[]): string[][] {
  const d = tsharkFields(pcapOf(frames), fields);
  expect(d.expert).toEqual([]);
  return d.rows;
}

describe('IPv6 receive', () => {
  it('answers echo requests to its address and to all-nodes, from the right source', () => {
    const h = host();
    h.inject(frame({ nextHeader: 58 }, echo(7, 1, new Uint8Array(100).fill(0x5a))));
    const [r] = ofType(h.out(), 129);
    expect(r).toMatchObject({ ethDst: PEER_MAC, src: US, dst: PEER, hopLimit: 64 });
    expect(r!.icmp!.identifier).toBe(7);
    expect(r!.icmp!.sequence).toBe(1);
    expect(r!.payload.subarray(8)).toEqual(new Uint8Array(100).fill(0x5a));
    expect(r!.flowLabel).not.toBe(0); // auto flow label, as Linux
    // To all-nodes from a link-local peer: answered from our link-local address.
    h.ip6.cache(h.nic).addStatic(ip6('fe80::b'), parseMAC(PEER_MAC));
    h.inject(frame({ nextHeader: 58, src: 'fe80::b', dst: 'ff02::1' }, echo(8, 2, undefined, 'fe80::b', 'ff02::1')));
    const [m] = ofType(h.out(), 129);
    expect(m).toMatchObject({ src: 'fe80::ff:fe00:a', dst: 'fe80::b' });
    if (haveTshark()) {
      const rows = judge(h.all, ['icmpv6.type', 'icmpv6.checksum.status']);
      expect(rows.filter((x) => x[0] === '129').map((x) => x[1])).toEqual(['1', '1']);
    }
  });

  it('gives each flow its own flow label from the seeded hash; the same seed gives the same labels', () => {
    const labels = (seed: number, auto = true): number[] => {
      const h = host({ seed });
      if (!auto) h.ip6.autoFlowLabels = false;
      const s = h.stack.udp({ family: 6 });
      s.bind(null, 4000);
      s.send(new Uint8Array(1), 53, PEER);
      s.send(new Uint8Array(1), 53, PEER);
      s.send(new Uint8Array(1), 54, PEER);
      return h.out().map((f) => decode(f).flowLabel);
    };
    const a = labels(5);
    expect(a[0]).toBe(a[1]);
    expect(a[2]).not.toBe(a[0]);
    expect(a.every((l) => l > 0 && l < 1 << 20)).toBe(true);
    expect(labels(5)).toEqual(a);
    expect(labels(6)).not.toEqual(a);
    expect(labels(5, false)).toEqual([0, 0, 0]);
  });

  it('handles unknown options by their two high bits (RFC 8200 4.2), for unicast and multicast destinations', () => {
    const h = host();
    const opt = (type: number, kind: 'hopByHop' | 'destinationOptions' = 'hopByHop'): IPv6Extension[] => [{ kind, options: [{ type, data: Uint8Array.of(0, 0) }] }];
    const cases: Array<[number, string, string]> = [
      // type, destination, what happens
      [0x1e, US, 'echo'], // 00: skip
      [0x5e, US, 'drop'], // 01: discard
      [0x9e, US, 'pp'], // 10: discard + Parameter Problem
      [0x9e, 'ff02::1', 'pp'], // 10: even to multicast
      [0xde, US, 'pp'], // 11: unless multicast
      [0xde, 'ff02::1', 'drop'],
    ];
    for (const [type, dst, want] of cases) {
      for (const kind of ['hopByHop', 'destinationOptions'] as const) {
        h.inject(frame({ nextHeader: 58, dst, extensions: opt(type, kind) }, echo(1, 1, undefined, PEER, dst)));
        const out = h.out().map(decode);
        const label = `${kind} 0x${type.toString(16)} to ${dst}`;
        if (want === 'echo') expect(out.map((d) => d.icmp?.type), label).toEqual([129]);
        if (want === 'drop') expect(out, label).toEqual([]);
        if (want === 'pp') {
          expect(out.map((d) => [d.icmp?.type, d.icmp?.code, d.icmp?.pointer]), label).toEqual([[4, 2, 42]]);
          expect(out[0]!.dst).toBe(PEER);
          expect(out[0]!.payload.length).toBe(8 + 40 + 8 + 12); // the whole invoking datagram is quoted
        }
      }
    }
    expect(h.ip6.stats.icmp.paramProblemSent).toBe(6);
    if (haveTshark()) {
      const rows = judge(h.all, ['icmpv6.type', 'icmpv6.code', 'icmpv6.pointer', 'ipv6.opt.type.action']);
      expect(rows.filter((r) => r[0]!.startsWith('4')).length).toBe(6);
    }
  });

  it('rejects a type 0 routing header with segments left (Parameter Problem code 0 at the routing type), ignores it with none left', () => {
    const h = host();
    // Reserved word, then one address: ours, so the checksum (over the final destination) is right.
    const data = new Uint8Array(20);
    data.set(ip6(US), 4);
    const rh = (segmentsLeft: number): IPv6Extension[] => [{ kind: 'routing', routingType: 0, segmentsLeft, data }];
    h.inject(frame({ nextHeader: 58, extensions: rh(1) }, echo()));
    const [pp] = ofType(h.out(), 4);
    expect([pp!.icmp!.code, pp!.icmp!.pointer]).toEqual([0, 42]);
    h.inject(frame({ nextHeader: 58, extensions: rh(0) }, echo()));
    expect(ofType(h.out(), 129)).toHaveLength(1);
    if (haveTshark()) judge(h.all, ['icmpv6.type']);
  });

  it('answers an unknown Next Header with Parameter Problem code 1 pointing at that field; a misplaced Hop-by-Hop too', () => {
    const h = host();
    h.inject(frame({ nextHeader: 253 }, new Uint8Array(8)));
    h.inject(frame({ nextHeader: 253, extensions: [{ kind: 'destinationOptions', options: [] }] }, new Uint8Array(8)));
    h.inject(frame({ nextHeader: 58, extensions: [{ kind: 'destinationOptions', options: [] }, { kind: 'hopByHop', options: [] }] }, echo()));
    // 59: nothing follows, nothing said.
    h.inject(frame({ nextHeader: 59 }, new Uint8Array(0)));
    const pps = ofType(h.out(), 4).map((d) => [d.icmp!.code, d.icmp!.pointer]);
    expect(pps).toEqual([
      [1, 6],
      [1, 40],
      [1, 40],
    ]);
    expect(h.ip6.stats.unknownProtocol).toBe(2);
    expect(h.ip6.stats.noNextHeader).toBe(1);
    if (haveTshark()) {
      // tshark flags the misplaced Hop-by-Hop header we sent (and its quote); nothing else.
      const d = tsharkFields(pcapOf(h.all), ['icmpv6.type']);
      expect(d.expert.filter((e) => !/Hop-by-Hop extension header must appear immediately/.test(e))).toEqual([]);
    }
  });

  it('never answers errors with errors, nor errors to multicast or unspecified sources', () => {
    const h = host();
    const closed = udp(1, 9, new Uint8Array(4));
    h.inject(frame({ nextHeader: 17 }, closed));
    expect(ofType(h.out(), 1).map((d) => d.icmp!.code)).toEqual([4]); // port unreachable
    h.inject(frame({ nextHeader: 17, dst: 'ff02::1' }, udp(1, 9, new Uint8Array(4), PEER, 'ff02::1')));
    h.inject(frame({ nextHeader: 17, src: '::' }, udp(1, 9, new Uint8Array(4), '::', US)));
    // An error quoting something: an unknown next header inside an ICMPv6 error is not answered.
    const err = buildIcmpV6({ kind: 'destinationUnreachable', code: 4, invoking: new Uint8Array(48) }, ip6(PEER), ip6(US));
    h.inject(frame({ nextHeader: 58, extensions: [{ kind: 'destinationOptions', options: [{ type: 0xbe, data: new Uint8Array(2) }] }] }, err));
    expect(h.out()).toEqual([]);
  });

  it('rate-limits errors with a token bucket (burst 50, 1000/s) but never Packet Too Big', () => {
    const h = host();
    for (let i = 0; i < 80; i++) h.inject(frame({ nextHeader: 17 }, udp(1000 + i, 9, new Uint8Array(1))));
    expect(ofType(h.out(), 1)).toHaveLength(50);
    expect(h.ip6.stats.icmp.rateLimited).toBe(30);
    h.clock.advance(10); // 10 tokens back
    for (let i = 0; i < 20; i++) h.inject(frame({ nextHeader: 17 }, udp(2000 + i, 9, new Uint8Array(1))));
    expect(ofType(h.out(), 1)).toHaveLength(10);
  });

  it('drops what is not for it: other addresses, unjoined groups, multicast sources, IPv4-mapped and loopback addresses', () => {
    const h = host();
    const st = h.ip6.stats;
    h.inject(frame({ nextHeader: 58, dst: 'fd00::99' }, echo(1, 1, undefined, PEER, 'fd00::99')));
    h.inject(frame({ nextHeader: 58, dst: 'ff02::1:3' }, echo(1, 1, undefined, PEER, 'ff02::1:3')));
    h.inject(frame({ nextHeader: 58, dst: 'ff01::1' }, echo(1, 1, undefined, PEER, 'ff01::1')));
    h.inject(frame({ nextHeader: 58, src: 'ff02::5' }, echo(1, 1, undefined, 'ff02::5')));
    h.inject(frame({ nextHeader: 58, src: '::ffff:10.0.0.1' }, echo(1, 1, undefined, '::ffff:10.0.0.1')));
    h.inject(frame({ nextHeader: 58, src: '::1' }, echo(1, 1, undefined, '::1')));
    // Truncated: payload length beyond the frame.
    h.inject(frame({ nextHeader: 58, payloadLength: 500 }, echo()));
    expect(h.out()).toEqual([]);
    expect(st.notForUs).toBe(3);
    expect(st.invalidAddress).toBe(3);
    expect(st.truncatedReceived).toBe(1);
    // Joining the group makes it ours.
    h.ip6.joinGroup(h.nic, ip6('ff02::1:3'));
    h.inject(frame({ nextHeader: 58, dst: 'ff02::1:3' }, echo(1, 1, undefined, PEER, 'ff02::1:3')));
    expect(ofType(h.out(), 129)).toHaveLength(1);
  });
});

describe('IPv6 fragments', () => {
  function frag(id: number, offset: number, more: boolean, data: Uint8Array, nh = 17, src = PEER): Uint8Array {
    return frame({ nextHeader: nh, src, extensions: [{ kind: 'fragment', fragmentOffset: offset >> 3, moreFragments: more, identification: id }] }, data);
  }

  it('sends and reassembles a 60 KB UDP datagram between two stacks; tshark reassembles it too', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock });
    const w = pcapWriter();
    const a = new Stack({ clock, seed: 1 });
    const b = new Stack({ clock, seed: 2 });
    attach(a, wire.a, '02:00:00:00:00:01', { clock, sniff: w }).addAddress('fd00::1/64', { nodad: true });
    attach(b, wire.b, '02:00:00:00:00:02', { clock }).addAddress('fd00::2/64', { nodad: true });
    const server = b.udp({ family: 6 });
    server.bind(null, 7000);
    const data = new Uint8Array(60_000).map((_, i) => (i * 7) ^ (i >> 8));
    a.udp({ family: 6 }).send(data, 7000, 'fd00::2');
    const m = server.recv()!;
    expect(Buffer.from(m.data).equals(Buffer.from(data))).toBe(true);
    const ipA = a.requireNetwork<IPv6Protocol>(0x86dd);
    const ipB = b.requireNetwork<IPv6Protocol>(0x86dd);
    expect(ipA.stats.fragmentsCreated).toBe(Math.ceil(60_008 / 1448));
    expect(ipB.reassembler.stats.reassembled).toBe(1);
    expect(ipB.reassembler.memoryUsed).toBe(0);
    if (haveTshark()) {
      const d = tsharkFields(w.bytes(), ['ipv6.fraghdr.offset', 'ipv6.fragment.count', 'udp.length', 'udp.checksum.status']);
      expect(d.expert).toEqual([]);
      const last = d.rows.filter((r) => r[1] !== '');
      expect(last).toHaveLength(1);
      expect(last[0]!.slice(1)).toEqual(['42', '60008', '1']);
    }
  });

  it('reassembles fragments in any order; an atomic fragment is a whole datagram (RFC 6946)', () => {
    const h = host();
    const s = h.stack.udp({ family: 6 });
    s.bind(null, 7000);
    const whole = udp(5, 7000, new Uint8Array(40).map((_, i) => i));
    h.inject(frag(9, 16, true, whole.subarray(16, 32)));
    h.inject(frag(9, 32, false, whole.subarray(32)));
    h.inject(frag(9, 0, true, whole.subarray(0, 16)));
    expect(s.recv()!.data).toEqual(whole.subarray(8));
    h.inject(frag(10, 0, false, whole));
    expect(s.recv()!.data).toEqual(whole.subarray(8));
    expect(h.ip6.reassembler.stats.reassembled).toBe(1);
    expect(h.ip6.reassembler.stats.fragmentsReceived).toBe(3);
  });

  it('drops the whole datagram when fragments overlap (RFC 5722)', () => {
    const h = host();
    const s = h.stack.udp({ family: 6 });
    s.bind(null, 7000);
    const whole = udp(5, 7000, new Uint8Array(40));
    h.inject(frag(11, 0, true, whole.subarray(0, 24)));
    h.inject(frag(11, 16, true, whole.subarray(16, 32))); // overlaps 16..24
    h.inject(frag(11, 32, false, whole.subarray(32)));
    h.inject(frag(11, 24, true, whole.subarray(24, 32)));
    expect(s.recv()).toBeNull();
    expect(h.ip6.reassembler.stats.overlapsDropped).toBe(1);
    expect(h.ip6.reassembler.stats.reassembled).toBe(0);
  });

  it('sends Time Exceeded (reassembly) after 60 s when the first fragment came, and nothing otherwise', () => {
    const h = host();
    const whole = udp(5, 7000, new Uint8Array(40));
    h.inject(frag(12, 0, true, whole.subarray(0, 24)));
    h.inject(frag(13, 24, false, whole.subarray(24))); // a datagram without its first fragment
    h.clock.advance(59_999);
    expect(h.out()).toEqual([]);
    h.clock.advance(1);
    const te = ofType(h.out(), 3);
    expect(te).toHaveLength(1);
    expect(te[0]).toMatchObject({ src: US, dst: PEER });
    expect(te[0]!.icmp!.code).toBe(1);
    // It quotes the first fragment: fixed header, fragment header, the start of the data.
    const quoted = te[0]!.payload.subarray(8);
    expect(quoted[6]).toBe(44);
    expect(formatIP(quoted.slice(8, 24))).toBe(PEER);
    expect(h.ip6.reassembler.stats.timeouts).toBe(2);
    expect(h.ip6.reassembler.memoryUsed).toBe(0);
    if (haveTshark()) judge(h.all.filter((f) => decode(f).icmp?.type === 3), ['icmpv6.type', 'icmpv6.code']);
  });

  it('asks for the whole header chain in the first fragment (RFC 7112, code 3) and rejects bad fragment lengths (code 0)', () => {
    const h = host();
    // A destination options header naming UDP, then nothing. (With ICMPv6 named instead, no
    // error could be sent: an ICMPv6 header too short to show its type is ineligible, as in Linux.)
    h.inject(frag(14, 0, true, Uint8Array.of(17, 0, 0, 0, 0, 0, 0, 0), 60));
    h.inject(frag(15, 0, true, new Uint8Array(12))); // M set, length not a multiple of 8
    const pps = ofType(h.out(), 4).map((d) => [d.icmp!.code, d.icmp!.pointer]);
    expect(pps).toEqual([
      [3, 0],
      [0, 4],
    ]);
  });

  it('bounds reassembly memory', () => {
    const h = host({ stack: {} });
    const ip = h.ip6;
    for (let i = 0; i < 2000; i++) h.inject(frag(1000 + i, 0, true, new Uint8Array(1024)));
    expect(ip.reassembler.memoryUsed).toBeLessThanOrEqual(4 << 20);
    expect(ip.reassembler.inProgress).toBeLessThanOrEqual(1024);
    expect(ip.reassembler.stats.memoryEvictions).toBeGreaterThan(0);
  });
});

describe('IPv6 never throws on bad input', () => {
  it('random bytes, truncations and bit flips of valid datagrams are dropped or processed, never thrown', () => {
    const h = host();
    const s = h.stack.udp({ family: 6 });
    s.bind(null, 7000);
    const seeds = [
      frame({ nextHeader: 58 }, echo()),
      frame({ nextHeader: 17 }, udp(1, 7000, new Uint8Array(16))),
      frame({ nextHeader: 58, extensions: [{ kind: 'hopByHop', options: [{ type: 5, data: Uint8Array.of(0, 0) }] }] }, echo()),
      frame({ nextHeader: 17, extensions: [{ kind: 'fragment', fragmentOffset: 0, moreFragments: true, identification: 5 }] }, new Uint8Array(24)),
      frame({ nextHeader: 58, extensions: [{ kind: 'routing', routingType: 4, segmentsLeft: 0, data: new Uint8Array(4) }] }, echo()),
      buildEthernet(
        { destination: Uint8Array.of(0x33, 0x33, 0xff, 0, 0, 0x0a), source: parseMAC(PEER_MAC), etherType: ETHERTYPE_IPV6 },
        buildIPv6({ source: ip6('fe80::b'), destination: ip6('ff02::1:ff00:a'), nextHeader: 58, hopLimit: 255 }, buildIcmpV6({ kind: 'neighborSolicitation', target: ip6(US), options: [{ kind: 'sourceLinkAddress', address: parseMAC(PEER_MAC) }] }, ip6('fe80::b'), ip6('ff02::1:ff00:a'))),
      ),
      buildEthernet(
        { destination: Uint8Array.of(0x33, 0x33, 0, 0, 0, 1), source: parseMAC(PEER_MAC), etherType: ETHERTYPE_IPV6 },
        buildIPv6({ source: ip6('fe80::b'), destination: ip6('ff02::1'), nextHeader: 58, hopLimit: 255 }, buildIcmpV6({ kind: 'routerAdvertisement', curHopLimit: 64, routerLifetime: 600, options: [{ kind: 'prefixInformation', prefixLength: 64, onLink: true, autonomous: true, validLifetime: 100, preferredLifetime: 50, prefix: ip6('2001:db8::') }, { kind: 'rdnss', lifetime: 100, servers: [ip6('2001:db8::53')] }, { kind: 'mtu', mtu: 1400 }] }, ip6('fe80::b'), ip6('ff02::1'))),
      ),
    ];
    // An MLDv2 query and a Packet Too Big quoting one of our datagrams.
    seeds.push(
      frame({ nextHeader: 58, src: 'fe80::b', dst: 'ff02::1', hopLimit: 1, extensions: [{ kind: 'hopByHop', options: [{ type: 5, data: Uint8Array.of(0, 0) }] }] }, buildIcmpV6({ kind: 'raw', type: 130, code: 0, rest: 1000 << 16, body: new Uint8Array(20) }, ip6('fe80::b'), ip6('ff02::1'))),
      frame({ nextHeader: 58 }, buildIcmpV6({ kind: 'packetTooBig', mtu: 1300, invoking: buildIPv6({ source: ip6(US), destination: ip6('fd00::77'), nextHeader: 17, hopLimit: 64 }, udp(7000, 53, new Uint8Array(1400), US, 'fd00::77')) }, ip6(PEER), ip6(US))),
    );
    const inject = (bytes: Uint8Array): void => {
      h.inject(bytes);
      h.out();
      h.all.length = 0;
    };
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.nat(), { maxLength: 8 }), fc.nat(), (k, flips, cut) => {
        const f = seeds[k]!.slice();
        for (const x of flips) xorAt(f, 14 + (x % (f.length - 14)), 1 << (x % 8));
        inject(f);
        inject(f.subarray(0, 14 + (cut % (f.length - 13))));
      }),
      { numRuns: 3000, seed: 42 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (body) => {
        const f = new Uint8Array(14 + 40 + body.length);
        f.set(seeds[0]!.subarray(0, 54));
        f.set(body, 54);
        f[18] = body.length >> 8;
        f[19] = body.length & 0xff;
        f[20] = body[0] ?? 0; // any next header
        inject(f);
      }),
      { numRuns: 2000, seed: 43 },
    );
    h.clock.advance(120_000);
    expect(h.stack.stats.internalErrors).toBe(0);
  });
});
