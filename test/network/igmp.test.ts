/**
 * IGMP host side and UDP multicast, packet by packet: a stack on an Ethernet channel the test
 * reads and writes (as a querier and as other hosts would), checked field by field through
 * tunstack's own decoder and then by tshark (every IGMP message it dissects, checksums included).
 */
import { describe, expect, it } from 'vitest';
import {
  formatIPv4,
  parseIPv4,
  parseMAC,
  type IPv4Protocol,
  type Stack,
} from '../../src/index.js';
import { ETHERTYPE_IPV4, IGMPV3_ALLOW_NEW_SOURCES, IGMPV3_BLOCK_OLD_SOURCES, IGMPV3_CHANGE_TO_EXCLUDE, IGMPV3_CHANGE_TO_INCLUDE, IGMPV3_MODE_IS_EXCLUDE, IGMPV3_MODE_IS_INCLUDE, IGMP_MEMBERSHIP_QUERY, IGMP_V2_LEAVE_GROUP, IGMP_V2_MEMBERSHIP_REPORT, buildEthernet, buildIPv4, buildIgmpV3Query, buildUdp, encodeIgmpV2, parseIgmp, type IgmpMessage } from '../../src/headers/index.js';
import { haveTshark } from '../helpers/tshark.js';

const noTshark = !haveTshark();
if (noTshark) console.warn('test/network/igmp.test.ts: the tshark dissection test is skipped: tshark missing (Debian package tshark)');
import { PEER_MAC, pcapOf, tapHost, type TapHost } from './frames.js';
import { tsharkFields } from './helpers.js';

const ME = '198.18.5.2';
const QUERIER = '198.18.5.1';
const OTHER = '198.18.5.3';
const GROUP = '239.1.2.3';

function host(): TapHost & { ip4: IPv4Protocol } {
  const h = tapHost({ seed: 11 });
  h.nic.addAddress(`${ME}/24`);
  h.clock.advance(10);
  h.out();
  return { ...h, ip4: h.stack.requireNetwork<IPv4Protocol>(ETHERTYPE_IPV4) };
}

interface IgmpFrame {
  ethDst: string;
  src: string;
  dst: string;
  ttl: number;
  tos: number;
  df: boolean;
  routerAlert: boolean;
  msg: IgmpMessage;
}

function igmpFrames(frames: Uint8Array[]): IgmpFrame[] {
  const out: IgmpFrame[] = [];
  for (const f of frames) {
    if (((f[12]! << 8) | f[13]!) !== ETHERTYPE_IPV4 || f[14 + 9] !== 2) continue;
    const hl = (f[14]! & 0x0f) * 4;
    const msg = parseIgmp(f, 14 + hl, ((f[16]! << 8) | f[17]!) - hl);
    if (msg === null) throw new Error('tunstack sent a malformed IGMP message');
    out.push({
      ethDst: Array.from(f.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':'),
      src: formatIPv4(f, 14 + 12),
      dst: formatIPv4(f, 14 + 16),
      ttl: f[14 + 8]!,
      tos: f[14 + 1]!,
      df: (f[14 + 6]! & 0x40) !== 0,
      routerAlert: hl === 24 && f[14 + 20] === 148 && f[14 + 21] === 4,
      msg,
    });
  }
  return out;
}

function records(fr: IgmpFrame): Array<{ type: number; group: string; sources: string[] }> {
  if (fr.msg.kind !== 'v3-report') throw new Error(`not a v3 report: ${fr.msg.kind}`);
  return fr.msg.records.map((r) => ({ type: r.type, group: formatIPv4(r.group), sources: r.sources.map((s) => formatIPv4(s)).sort() }));
}

function ipFrame(src: string, dst: string, protocol: number, payload: Uint8Array, ttl = 1, routerAlert = false): Uint8Array {
  const d = parseIPv4(dst);
  const ethDst = (d[0]! & 0xf0) === 0xe0 ? Uint8Array.of(1, 0, 0x5e, d[1]! & 0x7f, d[2]!, d[3]!) : parseMAC('02:00:00:00:00:0a');
  const ip = buildIPv4({ src: parseIPv4(src), dst: d, protocol, ttl, ...(routerAlert ? { options: Uint8Array.of(148, 4, 0, 0) } : {}) }, payload);
  return buildEthernet({ destination: ethDst, source: parseMAC(PEER_MAC), etherType: ETHERTYPE_IPV4 }, ip);
}

function query(maxRespMs: number, group = '0.0.0.0', sources: string[] = []): Uint8Array {
  const dst = group === '0.0.0.0' ? '224.0.0.1' : group;
  return ipFrame(QUERIER, dst, 2, buildIgmpV3Query({ group: parseIPv4(group), sources: sources.map(parseIPv4), maxRespMs }), 1, true);
}

function v2Message(type: number, maxRespTenths: number, group: string, dst = group === '0.0.0.0' ? '224.0.0.1' : group): Uint8Array {
  const b = new Uint8Array(8);
  encodeIgmpV2(b, 0, type, maxRespTenths, parseIPv4(group));
  return ipFrame(QUERIER, dst, 2, b, 1, true);
}

function udpTo(src: string, group: string, port: number, text: string): Uint8Array {
  const s = parseIPv4(src);
  const g = parseIPv4(group);
  return ipFrame(src, group, 17, buildUdp({ srcPort: 5000, dstPort: port, pseudoHeader: { src: s, dst: g } }, new TextEncoder().encode(text)), 8);
}

/** Let the dgram surface emit its queued events. */
function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** A host with a socket on port 5000 joined to GROUP (any source) and to 232.1.1.1 from .7, its state-change reports sent. */
function joinedHost(): { h: ReturnType<typeof host>; s: ReturnType<Stack['dgram']['createSocket']> } {
  const h = host();
  const s = h.stack.dgram.createSocket('udp4');
  s.bind(5000);
  s.addMembership(GROUP);
  s.addSourceSpecificMembership('198.18.5.7', '232.1.1.1');
  collect(h, 3000);
  return { h, s };
}

function collect(h: TapHost, ms: number, step = 10): IgmpFrame[] {
  const got: IgmpFrame[] = [];
  for (let t = 0; t < ms; t += step) {
    h.clock.advance(step);
    got.push(...igmpFrames(h.out()));
  }
  return got;
}

describe('IGMPv3 host', () => {
  it('reports a join at once as TO_EX {} and again within the unsolicited interval, then a leave as TO_IN {}', () => {
    const h = host();
    const s = h.stack.dgram.createSocket('udp4');
    s.bind(5353);
    s.addMembership(GROUP);
    const join = collect(h, 3000);
    expect(join.length).toBe(2); // robustness 2
    for (const f of join) {
      expect(f.dst).toBe('224.0.0.22');
      expect(f.ethDst).toBe('01:00:5e:00:00:16');
      expect(f.src).toBe(ME);
      expect(f.ttl).toBe(1);
      expect(f.tos).toBe(0xc0);
      expect(f.df).toBe(true);
      expect(f.routerAlert).toBe(true);
      expect(records(f)).toEqual([{ type: IGMPV3_CHANGE_TO_EXCLUDE, group: GROUP, sources: [] }]);
    }
    expect(h.ip4.igmp.groups(h.nic).map((g) => g.group)).toEqual(['224.0.0.1', GROUP]);
    s.dropMembership(GROUP);
    const leave = collect(h, 3000);
    expect(leave.map(records)).toEqual([
      [{ type: IGMPV3_CHANGE_TO_INCLUDE, group: GROUP, sources: [] }],
      [{ type: IGMPV3_CHANGE_TO_INCLUDE, group: GROUP, sources: [] }],
    ]);
    expect(h.ip4.igmp.groups(h.nic).map((g) => g.group)).toEqual(['224.0.0.1']);
    s.close();
  });

  it('source-specific joins: ALLOW and BLOCK as sources come and go, and the filter applies to datagrams', async () => {
    const h = host();
    const s = h.stack.dgram.createSocket('udp4');
    const got: string[] = [];
    s.on('message', (m, r) => got.push(`${r.address} ${m.toString()}`));
    s.bind(6000);
    s.addSourceSpecificMembership('198.18.5.7', '232.1.1.1');
    const first = collect(h, 3000);
    // INCLUDE {} to INCLUDE {7}: ALLOW (RFC 3376 5.1, as Linux sends for a source-specific join).
    expect(first.map(records)[0]).toEqual([{ type: IGMPV3_ALLOW_NEW_SOURCES, group: '232.1.1.1', sources: ['198.18.5.7'] }]);
    s.addSourceSpecificMembership('198.18.5.8', '232.1.1.1');
    const allow = collect(h, 3000);
    expect(allow.map(records)[0]).toEqual([{ type: IGMPV3_ALLOW_NEW_SOURCES, group: '232.1.1.1', sources: ['198.18.5.8'] }]);
    s.dropSourceSpecificMembership('198.18.5.7', '232.1.1.1');
    const block = collect(h, 3000);
    expect(block.map(records)[0]).toEqual([{ type: IGMPV3_BLOCK_OLD_SOURCES, group: '232.1.1.1', sources: ['198.18.5.7'] }]);
    h.inject(udpTo('198.18.5.7', '232.1.1.1', 6000, 'from-7'));
    h.inject(udpTo('198.18.5.8', '232.1.1.1', 6000, 'from-8'));
    h.inject(udpTo('198.18.5.8', '232.1.1.2', 6000, 'other-group'));
    h.clock.advance(1);
    await settle();
    expect(got).toEqual(['198.18.5.8 from-8']);
    expect(h.ip4.stats.multicastNotJoined).toBe(2);
    s.close();
  });

  it('merges the filters of several sockets (RFC 3376 3.2) and delivers by each socket\'s own filter', async () => {
    const h = host();
    const a = h.stack.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const b = h.stack.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const c = h.stack.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const got: string[] = [];
    a.on('message', (m) => got.push(`a ${m.toString()}`));
    b.on('message', (m) => got.push(`b ${m.toString()}`));
    c.on('message', (m) => got.push(`c ${m.toString()}`));
    a.bind(7000);
    b.bind(7000);
    c.bind(7000); // joins nothing: receives what the interface accepts (IP_MULTICAST_ALL)
    a.addSourceSpecificMembership('198.18.5.7', GROUP);
    collect(h, 3000);
    b.addMembership(GROUP);
    const change = collect(h, 3000);
    // INCLUDE {7} + EXCLUDE {} = EXCLUDE {}.
    expect(change.map(records)[0]).toEqual([{ type: IGMPV3_CHANGE_TO_EXCLUDE, group: GROUP, sources: [] }]);
    expect(h.ip4.igmp.groups(h.nic).find((g) => g.group === GROUP)).toEqual({ group: GROUP, mode: 'exclude', sources: [], users: 2 });
    h.inject(udpTo('198.18.5.9', GROUP, 7000, 'from-9'));
    h.clock.advance(1);
    await settle();
    expect(got.sort()).toEqual(['b from-9', 'c from-9']);
    for (const s of [a, b, c]) s.close();
  });

  it('answers a general query with current-state records within its maximum response time, a group query with that group, a group-and-source query with the sources it wants', () => {
    const { h, s } = joinedHost();
    h.inject(query(2000));
    const general = collect(h, 2100);
    expect(general.length).toBe(1);
    expect(records(general[0]!).sort((x, y) => x.group.localeCompare(y.group))).toEqual([
      { type: IGMPV3_MODE_IS_INCLUDE, group: '232.1.1.1', sources: ['198.18.5.7'] },
      { type: IGMPV3_MODE_IS_EXCLUDE, group: GROUP, sources: [] },
    ]);
    h.inject(query(500, GROUP));
    const one = collect(h, 600);
    expect(one.map(records)).toEqual([[{ type: IGMPV3_MODE_IS_EXCLUDE, group: GROUP, sources: [] }]]);
    h.inject(query(500, '232.1.1.1', ['198.18.5.7', '198.18.5.99']));
    const gs = collect(h, 600);
    expect(gs.map(records)).toEqual([[{ type: IGMPV3_MODE_IS_INCLUDE, group: '232.1.1.1', sources: ['198.18.5.7'] }]]);
    // A group it has not joined: no answer.
    h.inject(query(500, '239.9.9.9'));
    expect(collect(h, 600)).toEqual([]);
    expect(h.ip4.igmp.stats.queriesReceived).toBe(4);
    s.close();
  });

  it('falls back to IGMPv2 after a v2 query: v2 reports to the group, suppressed by another host\'s report, Leave from the last reporter, back to v3 after 260 s', () => {
    const h = host();
    const s = h.stack.dgram.createSocket('udp4');
    s.bind(5000);
    s.addMembership(GROUP);
    collect(h, 3000);
    h.inject(v2Message(IGMP_MEMBERSHIP_QUERY, 10, '0.0.0.0')); // 1 s
    const v2 = collect(h, 1100);
    expect(v2.length).toBe(1);
    expect(v2[0]!.dst).toBe(GROUP);
    expect(v2[0]!.msg).toMatchObject({ kind: 'report', version: 2 });
    // Another member answers first: ours is suppressed.
    h.inject(v2Message(IGMP_MEMBERSHIP_QUERY, 100, '0.0.0.0')); // 10 s
    h.clock.advance(1);
    const other = new Uint8Array(8);
    encodeIgmpV2(other, 0, IGMP_V2_MEMBERSHIP_REPORT, 0, parseIPv4(GROUP));
    h.inject(ipFrame(OTHER, GROUP, 2, other, 1, true));
    expect(collect(h, 10_100)).toEqual([]);
    expect(h.ip4.igmp.stats.reportsSuppressed).toBe(1);
    // Not the last reporter: no Leave. Join again (reporter), then leave: a Leave to 224.0.0.2.
    s.dropMembership(GROUP);
    expect(collect(h, 100)).toEqual([]);
    s.addMembership(GROUP);
    const rejoin = collect(h, 100);
    expect(rejoin[0]!.msg).toMatchObject({ kind: 'report', version: 2 });
    s.dropMembership(GROUP);
    const leave = collect(h, 100);
    expect(leave.length).toBe(1);
    expect(leave[0]!.dst).toBe('224.0.0.2');
    expect(leave[0]!.msg.kind).toBe('leave');
    expect(h.ip4.igmp.stats.leavesSent).toBe(1);
    // 260 s after the last v2 query, joins are v3 again.
    h.clock.advance(260_000);
    s.addMembership(GROUP);
    const v3 = collect(h, 100);
    expect(v3[0]!.msg.kind).toBe('v3-report');
    s.close();
    void IGMP_V2_LEAVE_GROUP;
  });

  it('loops multicast back to members on this host unless setMulticastLoopback(false); TTL 1 unless setMulticastTTL', async () => {
    const h = host();
    const rx = h.stack.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const got: string[] = [];
    rx.on('message', (m) => got.push(m.toString()));
    rx.bind(9000);
    rx.addMembership(GROUP);
    collect(h, 3000);
    const tx = h.stack.dgram.createSocket('udp4');
    tx.send('one', 9000, GROUP);
    h.clock.advance(1);
    const frames = h.out().filter((f) => f[14 + 9] === 17);
    expect(frames.length).toBe(1);
    expect(frames[0]![14 + 8]).toBe(1); // TTL
    expect(Array.from(frames[0]!.subarray(0, 6))).toEqual([1, 0, 0x5e, 1, 2, 3]);
    expect(tx.setMulticastTTL(16)).toBe(16);
    expect(tx.setMulticastLoopback(false)).toBe(false);
    tx.send('two', 9000, GROUP);
    h.clock.advance(1);
    const frames2 = h.out().filter((f) => f[14 + 9] === 17);
    expect(frames2[0]![14 + 8]).toBe(16);
    h.clock.advance(1);
    await settle();
    expect(got).toEqual(['one']);
    rx.close();
    tx.close();
  });

  it('errors as Node\'s dgram does', () => {
    const h = host();
    const s = h.stack.dgram.createSocket('udp4');
    s.addMembership(GROUP); // an unbound socket is bound first, as libuv does
    expect(s.address().port).toBeGreaterThan(0);
    const codeOf = (fn: () => void): string => {
      try {
        fn();
        return 'ok';
      } catch (e) {
        return (e as { code: string }).code;
      }
    };
    expect(codeOf(() => s.addMembership(GROUP))).toBe('EADDRINUSE');
    expect(codeOf(() => s.dropMembership('239.1.1.9'))).toBe('EADDRNOTAVAIL');
    expect(codeOf(() => s.addMembership('10.1.1.1'))).toBe('EINVAL');
    expect(codeOf(() => s.addMembership('239.1.1.3', '10.9.9.9'))).toBe('ENODEV');
    expect(codeOf(() => s.setMulticastTTL(300))).toBe('EINVAL');
    expect(codeOf(() => s.setMulticastTTL('x' as unknown as number))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => s.setMulticastInterface('10.9.9.9'))).toBe('EADDRNOTAVAIL');
    expect(codeOf(() => s.setMulticastInterface(ME))).toBe('ok');
    expect(codeOf(() => s.addSourceSpecificMembership('198.18.5.1', '232.1.1.1'))).toBe('ok');
    expect(codeOf(() => s.addSourceSpecificMembership('198.18.5.1', '232.1.1.1'))).toBe('EADDRNOTAVAIL');
    expect(codeOf(() => s.dropSourceSpecificMembership('198.18.5.2', '232.1.1.1'))).toBe('EADDRNOTAVAIL');
    expect(codeOf(() => (s.addMembership as unknown as () => void)())).toBe('ERR_MISSING_ARGS');
    let i = 0;
    let code = 'ok';
    for (; i < 25 && code === 'ok'; i++) code = codeOf(() => s.addMembership(`239.2.0.${i}`));
    expect(code).toBe('ENOBUFS');
    expect(i - 1).toBe(18); // 20 memberships per socket, two held already
    s.close();
    expect(codeOf(() => s.addMembership(GROUP))).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING');
  });

  it('drops malformed IGMP and counts it; never reports 224.0.0.1', () => {
    const h = host();
    const bad = new Uint8Array(8);
    encodeIgmpV2(bad, 0, IGMP_MEMBERSHIP_QUERY, 10, parseIPv4('0.0.0.0'));
    bad[3]! ^= 0xff;
    h.inject(ipFrame(QUERIER, '224.0.0.1', 2, bad, 1, true));
    const short = ipFrame(QUERIER, '224.0.0.1', 2, new Uint8Array(4), 1, true);
    h.inject(short);
    const counted = buildIgmpV3Query({ maxRespMs: 1000 });
    counted[11] = 200; // 200 sources in a 12-byte query
    h.inject(ipFrame(QUERIER, '224.0.0.1', 2, counted, 1, true));
    h.inject(query(1000));
    expect(collect(h, 1100)).toEqual([]); // no group but 224.0.0.1: nothing to report
    expect(h.ip4.igmp.stats.invalid).toBe(3);
    expect(h.ip4.igmp.stats.queriesReceived).toBe(1);
  });

  it.skipIf(noTshark)('tshark dissects every IGMP message tunstack sent, checksums valid', () => {
    const { h, s } = joinedHost();
    h.inject(query(1000));
    collect(h, 1100);
    h.inject(v2Message(IGMP_MEMBERSHIP_QUERY, 10, '0.0.0.0'));
    collect(h, 1100);
    s.dropMembership(GROUP);
    collect(h, 100);
    const sent = h.all.filter((f) => f[6] === 0x02 && f[11] === 0x0a && f[14 + 9] === 2);
    expect(sent.length).toBeGreaterThanOrEqual(6);
    const d = tsharkFields(pcapOf(sent), ['igmp.version', 'igmp.type', 'igmp.checksum.status', 'igmp.record_type', 'igmp.maddr', 'ip.opt.ra']);
    expect(d.expert).toEqual([]);
    const mine = igmpFrames(sent);
    d.rows.forEach((row, i) => {
      const m = mine[i]!.msg;
      expect(row[2], `packet ${i + 1} checksum`).toBe('1');
      if (m.kind === 'v3-report') {
        expect(row[0]).toBe('3');
        expect(row[3]!.split(',').map(Number)).toEqual(m.records.map((r) => r.type));
        expect(row[4]!.split(',')).toEqual(m.records.map((r) => formatIPv4(r.group)));
      } else if (m.kind === 'report') {
        expect(row[0]).toBe('2');
        expect(row[1]).toBe('0x16');
      } else {
        expect(row[1]).toBe('0x17');
      }
      expect(row[5], 'router alert').not.toBe('');
    });
  });
});
