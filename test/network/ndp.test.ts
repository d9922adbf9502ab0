import { describe, expect, it } from 'vitest';
import {
  ChannelEndpoint,
  EthernetEndpoint,
  ManualClock,
  NeighborState,
  Stack,
  Wire,
  formatIP,
  formatMAC,
  parseMAC,
  type IPv6Protocol,
} from '../../src/index.js';
import { setIcmpV6Checksum } from '../../src/headers/index.js';
import { haveTshark } from '../helpers/tshark.js';
import { attach, pcapWriter, tsharkFields } from './helpers.js';
import { HOST_MAC, PEER_MAC, decode, icmpFrame, ip6, ofType, pcapOf, tapHost, type TapHost } from './frames.js';

const LL = 'fe80::ff:fe00:a'; // fe80:: + modified EUI-64 of 02:00:00:00:00:0a
const PEER_LL = 'fe80::ff:fe00:b';
const SN = 'ff02::1:ff00:a'; // its solicited-node group

const NS = 135;
const NA = 136;
const RS = 133;
const RA = 134;
const MLDV2_REPORT = 143;

/** tshark must dissect every frame without warnings and find every ICMPv6 checksum good. */
function judge(frames: Uint8Array[]): string[][] {
  const d = tsharkFields(pcapOf(frames), ['icmpv6.type', 'icmpv6.checksum.status']);
  expect(d.expert).toEqual([]);
  for (const row of d.rows) if (row[0] !== '') expect(row[1]).toBe('1');
  return d.rows;
}

function afterDad(h: TapHost): void {
  h.clock.advance(3000);
  h.out();
}

describe('NDP on one NIC, packet by packet', () => {
  it('brings up fe80::EUI-64 as tentative, reports its solicited-node group, probes, then solicits routers', () => {
    const h = tapHost();
    expect(h.nic.addresses.map((a) => formatIP(a.address))).toEqual([LL]);
    expect(h.nic.addressInfo(ip6(LL))!.state).toBe('tentative');
    expect(h.nic.hasAddress(ip6(LL))).toBe(false);
    expect(h.ip6.isMember(h.nic, ip6('ff02::1'))).toBe(true);
    expect(h.ip6.isMember(h.nic, ip6(SN))).toBe(true);
    expect(h.out()).toEqual([]); // nothing goes out synchronously while the NIC is created

    h.clock.advance(1000);
    const first = h.out();
    const ns = ofType(first, NS);
    const reports = ofType(first, MLDV2_REPORT);
    expect(ns).toHaveLength(1);
    expect(reports.length).toBeGreaterThanOrEqual(1);
    // RFC 4862 5.4.2: the report for the solicited-node group goes out before the probe.
    expect(first.findIndex((f) => decode(f).icmp?.type === MLDV2_REPORT)).toBeLessThan(first.findIndex((f) => decode(f).icmp?.type === NS));
    const probe = ns[0]!;
    expect(probe).toMatchObject({ ethDst: '33:33:ff:00:00:0a', ethSrc: HOST_MAC, src: '::', dst: SN, hopLimit: 255, flowLabel: 0, extensions: 0 });
    expect(formatIP(probe.icmp!.targetAddress)).toBe(LL);
    expect(probe.icmp!.code).toBe(0);
    // Only a Nonce option (RFC 7527, as Linux), never a source link-layer address from ::.
    expect(probe.options.map((o) => o.type)).toEqual([14]);
    expect(probe.options[0]!.data).toHaveLength(6);
    const rep = reports[0]!;
    expect(rep).toMatchObject({ ethDst: '33:33:00:00:00:16', src: '::', dst: 'ff02::16', hopLimit: 1, extensions: 1, routerAlert: 0 });
    expect(rep.icmp!.mldV2RecordCount).toBe(1);
    expect(rep.payload[8]).toBe(4); // CHANGE_TO_EXCLUDE {}: join
    expect(formatIP(rep.payload.slice(12, 28))).toBe(SN);

    h.clock.advance(1000);
    expect(h.nic.addressInfo(ip6(LL))!.state).toBeUndefined(); // preferred
    expect(h.nic.hasAddress(ip6(LL))).toBe(true);
    const rs = ofType(h.out(), RS);
    expect(rs).toHaveLength(1);
    expect(rs[0]).toMatchObject({ ethDst: '33:33:00:00:00:02', src: LL, dst: 'ff02::2', hopLimit: 255 });
    expect(rs[0]!.options).toEqual([{ type: 1, data: parseMAC(HOST_MAC) }]);
    // Two more solicitations 4 s apart, then silence.
    h.clock.advance(20_000);
    expect(ofType(h.out(), RS)).toHaveLength(2);
    expect(h.ip6.stats.ndp.dadSucceeded).toBe(1);
    expect(h.ip6.stats.ndp.rsSent).toBe(3);
    if (haveTshark()) {
      const rows = judge(h.all);
      expect(rows.map((r) => r[0]).filter((t) => t === '135' || t === '133')).toEqual(['135', '133', '133', '133']);
    }
  });

  it('answers a multicast NS with S, O and its link address; a unicast NS with S only (as Linux)', () => {
    const h = tapHost();
    afterDad(h);
    h.nic.addAddress('fd00::a/64', { nodad: true });
    h.out();
    h.inject(
      icmpFrame(
        { kind: 'neighborSolicitation', target: ip6('fd00::a'), options: [{ kind: 'sourceLinkAddress', address: parseMAC(PEER_MAC) }] },
        { source: ip6('fd00::b'), destination: ip6('ff02::1:ff00:a') },
      ),
    );
    const [na] = ofType(h.out(), NA);
    expect(na).toMatchObject({ ethDst: PEER_MAC, ethSrc: HOST_MAC, src: 'fd00::a', dst: 'fd00::b', hopLimit: 255 });
    expect(na!.icmp!.solicitedFlag).toBe(true);
    expect(na!.icmp!.overrideFlag).toBe(true);
    expect(na!.icmp!.routerFlag).toBe(false);
    expect(formatIP(na!.icmp!.targetAddress)).toBe('fd00::a');
    expect(na!.options).toEqual([{ type: 2, data: parseMAC(HOST_MAC) }]);
    // The soliciter is learned as STALE; answering used it (STALE -> DELAY).
    const cache = h.ip6.cache(h.nic);
    expect(formatMAC(cache.lookup(ip6('fd00::b'))!)).toBe(PEER_MAC);
    expect(cache.state(ip6('fd00::b'))).toBe(NeighborState.Delay);

    h.inject(icmpFrame({ kind: 'neighborSolicitation', target: ip6('fd00::a') }, { source: ip6('fd00::b'), destination: ip6('fd00::a') }));
    const [na2] = ofType(h.out(), NA);
    expect(na2!.dst).toBe('fd00::b');
    expect(na2!.icmp!.solicitedFlag).toBe(true);
    expect(na2!.icmp!.overrideFlag).toBe(false);
    expect(na2!.options).toEqual([]);
    // DELAY -> PROBE after 5 s: a unicast NS to the cached link address.
    h.clock.advance(5000);
    const [probe] = ofType(h.out(), NS);
    expect(probe).toMatchObject({ ethDst: PEER_MAC, src: 'fd00::a', dst: 'fd00::b' });
    expect(probe!.options).toEqual([{ type: 1, data: parseMAC(HOST_MAC) }]);
    if (haveTshark()) judge(h.all);
  });

  it('a router (forwarding) sets R in its NAs', () => {
    const h = tapHost({ stack: { forwarding: true } });
    afterDad(h);
    h.inject(
      icmpFrame(
        { kind: 'neighborSolicitation', target: ip6(LL), options: [{ kind: 'sourceLinkAddress', address: parseMAC(PEER_MAC) }] },
        { source: ip6(PEER_LL), destination: ip6(SN) },
      ),
    );
    const [na] = ofType(h.out(), NA);
    expect(na!.icmp!.routerFlag).toBe(true);
    expect(h.ip6.isMember(h.nic, ip6('ff02::2'))).toBe(false); // all-routers is joined by router mode
  });

  it('resolves a neighbour: NS to the solicited-node group, the NA flushes the queued datagram, REACHABLE, then STALE', () => {
    const h = tapHost();
    afterDad(h);
    h.nic.addAddress('fd00::a/64', { nodad: true });
    h.out();
    const sock = h.stack.udp({ family: 6 });
    sock.send(new TextEncoder().encode('hi'), 9, 'fd00::b');
    const [ns] = ofType(h.out(), NS);
    expect(ns).toMatchObject({ ethDst: '33:33:ff:00:00:0b', src: 'fd00::a', dst: 'ff02::1:ff00:b', hopLimit: 255 });
    expect(formatIP(ns!.icmp!.targetAddress)).toBe('fd00::b');
    expect(ns!.options).toEqual([{ type: 1, data: parseMAC(HOST_MAC) }]);
    const cache = h.ip6.cache(h.nic);
    expect(cache.state(ip6('fd00::b'))).toBe(NeighborState.Incomplete);
    h.inject(
      icmpFrame(
        { kind: 'neighborAdvertisement', solicited: true, override: true, target: ip6('fd00::b'), options: [{ kind: 'targetLinkAddress', address: parseMAC(PEER_MAC) }] },
        { source: ip6('fd00::b'), destination: ip6('fd00::a') },
      ),
    );
    const out = h.out();
    expect(out).toHaveLength(1);
    const udp = decode(out[0]!);
    expect(udp).toMatchObject({ ethDst: PEER_MAC, src: 'fd00::a', dst: 'fd00::b', protocol: 17 });
    expect(cache.state(ip6('fd00::b'))).toBe(NeighborState.Reachable);
    h.clock.advance(45_001); // reachable time is 30 s x [0.5, 1.5)
    expect(cache.state(ip6('fd00::b'))).toBe(NeighborState.Stale);
    // An unsolicited NA with a new address and O clear does not replace a STALE entry's address.
    h.inject(
      icmpFrame(
        { kind: 'neighborAdvertisement', solicited: false, override: false, target: ip6('fd00::b'), options: [{ kind: 'targetLinkAddress', address: parseMAC('02:00:00:00:00:0c') }] },
        { source: ip6('fd00::b'), destination: ip6('ff02::1') },
      ),
    );
    expect(formatMAC(cache.lookup(ip6('fd00::b'))!)).toBe(PEER_MAC);
    // With O set it does, and the entry stays STALE.
    h.inject(
      icmpFrame(
        { kind: 'neighborAdvertisement', solicited: false, override: true, target: ip6('fd00::b'), options: [{ kind: 'targetLinkAddress', address: parseMAC('02:00:00:00:00:0c') }] },
        { source: ip6('fd00::b'), destination: ip6('ff02::1') },
      ),
    );
    expect(formatMAC(cache.lookup(ip6('fd00::b'))!)).toBe('02:00:00:00:00:0c');
    expect(cache.state(ip6('fd00::b'))).toBe(NeighborState.Stale);
    if (haveTshark()) judge(h.all);
  });

  it('gives up after three solicitations and reports the address unreachable to the sender', () => {
    const h = tapHost();
    afterDad(h);
    h.nic.addAddress('fd00::a/64', { nodad: true });
    const sock = h.stack.udp({ family: 6 });
    sock.connect('fd00::99', 7);
    const errors: string[] = [];
    sock.on('error', (e) => errors.push(e.code));
    sock.send(new Uint8Array(8));
    h.clock.advance(3500);
    expect(ofType(h.out(), NS).filter((d) => formatIP(d.icmp!.targetAddress) === 'fd00::99')).toHaveLength(3);
    expect(errors).toEqual(['EHOSTUNREACH']);
  });

  it('DAD: an NA for the tentative address makes it dadfailed and unusable', () => {
    const h = tapHost();
    afterDad(h);
    h.nic.addAddress('fd00::a/64');
    expect(h.nic.addressInfo(ip6('fd00::a'))!.state).toBe('tentative');
    const states: string[] = [];
    h.nic.on('address-state', (a) => states.push(`${formatIP(a.address)} ${a.state ?? 'preferred'}`));
    h.clock.advance(1000); // the probe is out
    expect(ofType(h.out(), NS).map((d) => formatIP(d.icmp!.targetAddress))).toContain('fd00::a');
    h.inject(
      icmpFrame(
        { kind: 'neighborAdvertisement', override: true, target: ip6('fd00::a'), options: [{ kind: 'targetLinkAddress', address: parseMAC(PEER_MAC) }] },
        { source: ip6('fd00::a'), destination: ip6('ff02::1') },
      ),
    );
    expect(states).toEqual(['fd00::a dadfailed']);
    h.clock.advance(5000);
    expect(h.nic.addressInfo(ip6('fd00::a'))!.state).toBe('dadfailed');
    expect(h.nic.hasAddress(ip6('fd00::a'))).toBe(false);
    expect(h.ip6.stats.ndp.dadFailed).toBe(1);
    // Packets to it are dropped, not answered.
    h.out();
    h.inject(icmpFrame({ kind: 'echoRequest', identifier: 1, sequence: 1 }, { source: ip6('fd00::b'), destination: ip6('fd00::a') }));
    expect(h.out()).toEqual([]);
    expect(() => h.stack.udp({ family: 6 }).bind('fd00::a', 5)).toThrow(expect.objectContaining({ code: 'EADDRNOTAVAIL' }));
  });

  it('DAD: another node probing for the same tentative address is a duplicate; our own looped probe is not', () => {
    const h = tapHost();
    afterDad(h);
    h.nic.addAddress('fd00::a/64');
    h.clock.advance(1000);
    const [own] = ofType(h.out(), NS);
    // Our probe reflected back (same nonce): not a conflict.
    h.inject(icmpFrame({ kind: 'raw', type: NS, code: 0, body: own!.payload.slice(4) }, { source: ip6('::'), destination: ip6(SN) }, HOST_MAC));
    expect(h.nic.addressInfo(ip6('fd00::a'))!.state).toBe('tentative');
    // Another node's probe (different nonce): duplicate.
    h.inject(
      icmpFrame(
        { kind: 'neighborSolicitation', target: ip6('fd00::a'), options: [{ kind: 'raw', type: 14, data: Uint8Array.of(1, 2, 3, 4, 5, 6) }] },
        { source: ip6('::'), destination: ip6(SN) },
      ),
    );
    expect(h.nic.addressInfo(ip6('fd00::a'))!.state).toBe('dadfailed');
  });

  it('defends an assigned address against another node\'s probe with an NA to all-nodes', () => {
    const h = tapHost();
    afterDad(h);
    h.inject(icmpFrame({ kind: 'neighborSolicitation', target: ip6(LL) }, { source: ip6('::'), destination: ip6(SN) }));
    const [na] = ofType(h.out(), NA);
    expect(na).toMatchObject({ ethDst: '33:33:00:00:00:01', src: LL, dst: 'ff02::1', hopLimit: 255 });
    expect(na!.icmp!.solicitedFlag).toBe(false);
    expect(na!.icmp!.overrideFlag).toBe(true);
    expect(na!.options).toEqual([{ type: 2, data: parseMAC(HOST_MAC) }]);
    expect(h.nic.addressInfo(ip6(LL))!.state).toBeUndefined();
    if (haveTshark()) judge(h.all);
  });

  it('drops NDP that fails RFC 4861 validation', () => {
    const h = tapHost();
    afterDad(h);
    const before = h.ip6.stats.ndp.invalid;
    const sll = [{ kind: 'sourceLinkAddress' as const, address: parseMAC(PEER_MAC) }];
    // Hop limit 254 (it crossed a router).
    h.inject(icmpFrame({ kind: 'neighborSolicitation', target: ip6(LL), options: sll }, { source: ip6(PEER_LL), destination: ip6(SN), hopLimit: 254 }));
    // From :: with a source link-layer address.
    h.inject(icmpFrame({ kind: 'neighborSolicitation', target: ip6(LL), options: sll }, { source: ip6('::'), destination: ip6(SN) }));
    // An option of length 0 (RFC 4861 4.6: discard).
    const zero = icmpFrame({ kind: 'neighborSolicitation', target: ip6(LL), options: sll }, { source: ip6(PEER_LL), destination: ip6(SN) });
    zero[14 + 40 + 24 + 1] = 0;
    setIcmpV6Checksum(zero, 54, zero.length - 54, zero, zero, 22, 38);
    h.inject(zero);
    // A multicast link-layer address in the SLLA.
    h.inject(icmpFrame({ kind: 'neighborSolicitation', target: ip6(LL), options: [{ kind: 'sourceLinkAddress', address: parseMAC('33:33:00:00:00:01') }] }, { source: ip6(PEER_LL), destination: ip6(SN) }));
    // A multicast target.
    h.inject(icmpFrame({ kind: 'neighborSolicitation', target: ip6('ff02::1'), options: sll }, { source: ip6(PEER_LL), destination: ip6(SN) }));
    // A solicited NA to a multicast destination.
    h.inject(icmpFrame({ kind: 'neighborAdvertisement', solicited: true, target: ip6(PEER_LL) }, { source: ip6(PEER_LL), destination: ip6('ff02::1') }));
    // An RA from a global address.
    h.inject(icmpFrame({ kind: 'routerAdvertisement', curHopLimit: 64, routerLifetime: 1800 }, { source: ip6('fd00::1'), destination: ip6('ff02::1') }));
    expect(h.out().map((f) => decode(f))).toEqual([]);
    expect(h.ip6.stats.ndp.invalid - before).toBe(7);
    expect(h.ip6.stack.routes.all.some((r) => r.prefixLength === 0)).toBe(false);
  });

  it('hosts learn from a Router Advertisement: SLAAC address, default route, prefix route, RDNSS, MTU and hop limit', () => {
    const h = tapHost();
    afterDad(h);
    const events: string[] = [];
    h.ip6.on('dns-servers', (_n, s) => events.push(`dns ${s.join(',')}`));
    h.ip6.on('router-advertisement', (_n, ra) => events.push(`ra ${ra.router} ${ra.lifetimeSec}`));
    h.inject(
      icmpFrame(
        {
          kind: 'routerAdvertisement',
          curHopLimit: 42,
          routerLifetime: 1800,
          reachableTime: 20_000,
          retransTimer: 500,
          options: [
            { kind: 'sourceLinkAddress', address: parseMAC(PEER_MAC) },
            { kind: 'mtu', mtu: 1400 },
            { kind: 'prefixInformation', prefixLength: 64, onLink: true, autonomous: true, validLifetime: 86400, preferredLifetime: 14400, prefix: ip6('2001:db8:1::') },
            { kind: 'rdnss', lifetime: 600, servers: [ip6('2001:db8:1::53')] },
          ],
        },
        { source: ip6(PEER_LL), destination: ip6('ff02::1') },
      ),
    );
    const slaac = '2001:db8:1::ff:fe00:a';
    expect(h.nic.addressInfo(ip6(slaac))).toMatchObject({ prefixLength: 64, state: 'tentative' });
    expect(events).toEqual(['dns 2001:db8:1::53', `ra ${PEER_LL} 1800`]);
    expect(h.ip6.ndp.dnsServers(h.nic)).toEqual(['2001:db8:1::53']);
    expect(h.ip6.ndp.defaultRouters(h.nic)).toEqual([PEER_LL]);
    expect(h.ip6.linkMtu(h.nic)).toBe(1400);
    expect(h.ip6.hopLimit(h.nic)).toBe(42);
    const cache = h.ip6.cache(h.nic);
    expect(cache.config.baseReachableTimeMs).toBe(20_000);
    expect(cache.config.retransTimeMs).toBe(500);
    expect(formatMAC(cache.lookup(ip6(PEER_LL))!)).toBe(PEER_MAC);
    const routes = h.stack.routes.all.filter((r) => r.destination.length === 16);
    expect(routes.map((r) => `${formatIP(r.destination)}/${r.prefixLength} ${r.gateway ? formatIP(r.gateway) : '-'} ${r.metric}`)).toEqual(
      expect.arrayContaining(['2001:db8:1::/64 - 256', `::/0 ${PEER_LL} 1024`]),
    );
    // DAD (retrans timer now 500 ms) then the address is used as the source for the prefix.
    h.clock.advance(2000);
    expect(h.nic.addressInfo(ip6(slaac))!.state).toBeUndefined();
    expect(formatIP(h.stack.findRoute('2001:db8:99::1').localAddress)).toBe(slaac);
    expect(formatIP(h.stack.findRoute('2001:db8:99::1').nextHop)).toBe(PEER_LL);
    // Preferred lifetime ends: deprecated; valid lifetime ends: removed with the routes.
    h.clock.advance(14_400_000);
    expect(h.nic.addressInfo(ip6(slaac))!.state).toBe('deprecated');
    h.clock.advance(86_400_000);
    expect(h.nic.addressInfo(ip6(slaac))).toBeUndefined();
    expect(h.ip6.ndp.dnsServers(h.nic)).toEqual([]);
    expect(h.stack.routes.all.filter((r) => r.destination.length === 16 && r.prefixLength < 64)).toEqual([]);
    expect(events.at(-1)).toBe('dns ');
  });

  it('the two-hour rule: an RA cannot cut a valid lifetime below two hours', () => {
    const h = tapHost();
    afterDad(h);
    const pi = (valid: number) =>
      icmpFrame(
        {
          kind: 'routerAdvertisement',
          curHopLimit: 64,
          routerLifetime: 0,
          options: [{ kind: 'prefixInformation', prefixLength: 64, onLink: false, autonomous: true, validLifetime: valid, preferredLifetime: 0, prefix: ip6('2001:db8:2::') }],
        },
        { source: ip6(PEER_LL), destination: ip6('ff02::1') },
      );
    h.inject(pi(86_400));
    h.inject(pi(60)); // ignored down to 2 h
    h.clock.advance(7_199_000);
    expect(h.nic.addressInfo(ip6('2001:db8:2::ff:fe00:a'))).toBeDefined();
    h.clock.advance(2000);
    expect(h.nic.addressInfo(ip6('2001:db8:2::ff:fe00:a'))).toBeUndefined();
    // No on-link flag: no prefix route; lifetime 0: no default router.
    expect(h.stack.routes.all.filter((r) => r.destination.length === 16 && r.metric >= 256)).toEqual([]);
  });

  it('router mode answers an RS with an RA carrying the prefix, RDNSS, MTU and its link address', () => {
    const h = tapHost();
    afterDad(h);
    h.ip6.ndp.startRouter(h.nic, { prefixes: ['fd00:1::/64'], dnsServers: ['fd00:1::53'], mtu: 1400, maxIntervalMs: 600_000 });
    expect(h.ip6.isMember(h.nic, ip6('ff02::2'))).toBe(true);
    h.clock.advance(1);
    const [ra0] = ofType(h.out(), RA); // the first unsolicited RA goes out at once
    expect(ra0).toMatchObject({ ethDst: '33:33:00:00:00:01', src: LL, dst: 'ff02::1', hopLimit: 255 });
    h.clock.advance(5000);
    h.out();
    h.inject(icmpFrame({ kind: 'routerSolicitation', options: [{ kind: 'sourceLinkAddress', address: parseMAC(PEER_MAC) }] }, { source: ip6(PEER_LL), destination: ip6('ff02::2') }));
    h.clock.advance(500);
    const [ra] = ofType(h.out(), RA);
    expect(ra).toBeDefined();
    const m = ra!.icmp!;
    expect(m.curHopLimit).toBe(64);
    expect(m.routerLifetime).toBe(1800);
    expect(m.managedFlag).toBe(false);
    expect(ra!.options.map((o) => o.type)).toEqual([1, 5, 3, 25]);
    expect(ra!.options[0]!.data).toEqual(parseMAC(HOST_MAC));
    const pi = ra!.options[2]!.data;
    expect(pi[0]).toBe(64); // prefix length
    expect(pi[1]).toBe(0xc0); // L and A
    expect(formatIP(pi.slice(14, 30))).toBe('fd00:1::');
    expect(formatIP(ra!.options[3]!.data.slice(6, 22))).toBe('fd00:1::53');
    // The soliciter was learned from its SLLA.
    expect(formatMAC(h.ip6.cache(h.nic).lookup(ip6(PEER_LL))!)).toBe(PEER_MAC);
    // A second RS right after: at most one multicast RA per 3 s.
    h.inject(icmpFrame({ kind: 'routerSolicitation' }, { source: ip6('::'), destination: ip6('ff02::2') }));
    h.clock.advance(2000);
    expect(ofType(h.out(), RA)).toHaveLength(0);
    h.clock.advance(1000);
    expect(ofType(h.out(), RA)).toHaveLength(1);
    // Periodic: the first three at most 16 s apart.
    h.clock.advance(16_000);
    expect(ofType(h.out(), RA).length).toBeGreaterThanOrEqual(1);
    h.ip6.ndp.stopRouter(h.nic);
    const [last] = ofType(h.out(), RA);
    expect(last!.icmp!.routerLifetime).toBe(0);
    if (haveTshark()) {
      const d = tsharkFields(pcapOf(h.all), ['icmpv6.type', 'icmpv6.checksum.status', 'icmpv6.opt.prefix', 'icmpv6.opt.rdnss', 'icmpv6.opt.mtu']);
      expect(d.expert).toEqual([]);
      const ras = d.rows.filter((r) => r[0] === '134');
      expect(ras.length).toBeGreaterThanOrEqual(3);
      for (const r of ras) expect(r.slice(1)).toEqual(['1', 'fd00:1::', 'fd00:1::53', '1400']);
    }
  });

  it('answers MLDv2 and MLDv1 queries for its groups', () => {
    const h = tapHost();
    afterDad(h);
    h.clock.advance(5000);
    h.out();
    h.inject(icmpFrame({ kind: 'raw', type: 130, code: 0, rest: 1000 << 16, body: new Uint8Array(20) }, { source: ip6(PEER_LL), destination: ip6('ff02::1'), hopLimit: 1 }));
    h.clock.advance(1000);
    const [rep] = ofType(h.out(), MLDV2_REPORT);
    expect(rep).toMatchObject({ src: LL, dst: 'ff02::16', hopLimit: 1, routerAlert: 0 });
    expect(rep!.icmp!.mldV2RecordCount).toBe(1);
    expect(rep!.payload[8]).toBe(2); // MODE_IS_EXCLUDE
    expect(formatIP(rep!.payload.slice(12, 28))).toBe(SN);
    // An MLDv1 query (24 bytes): MLDv1 reports to the group, and v1 mode for joins.
    h.inject(icmpFrame({ kind: 'raw', type: 130, code: 0, rest: 1000 << 16, body: new Uint8Array(16) }, { source: ip6(PEER_LL), destination: ip6('ff02::1'), hopLimit: 1 }));
    h.clock.advance(1000);
    const [v1] = ofType(h.out(), 131);
    expect(v1).toMatchObject({ ethDst: '33:33:ff:00:00:0a', src: LL, dst: SN, hopLimit: 1, routerAlert: 0 });
    h.ip6.joinGroup(h.nic, ip6('ff05::1:3'));
    h.clock.advance(1000);
    expect(ofType(h.out(), 131).map((d) => d.dst)).toEqual(['ff05::1:3']);
    h.ip6.leaveGroup(h.nic, ip6('ff05::1:3'));
    h.clock.advance(1000);
    expect(ofType(h.out(), 132).map((d) => d.dst)).toEqual(['ff02::2']);
    if (haveTshark()) {
      const d = tsharkFields(pcapOf(h.all), ['icmpv6.type', 'icmpv6.checksum.status', 'icmpv6.mldr.mar.record_type', 'icmpv6.mldr.mar.multicast_address']);
      expect(d.expert).toEqual([]);
      expect(d.rows.filter((r) => r[0] === '143').map((r) => r.slice(1))).toContainEqual(['1', '2', SN]);
    }
  });

  it('a NIC that goes down and up runs DAD again and announces its groups again', () => {
    const h = tapHost();
    h.clock.advance(20_000);
    h.out();
    h.nic.disable();
    expect(h.nic.addressInfo(ip6(LL))!.state).toBe('tentative');
    h.nic.enable();
    expect(h.nic.addresses).toHaveLength(1); // the link-local address is not added twice
    h.clock.advance(3000);
    const f = h.out();
    expect(ofType(f, NS).map((d) => formatIP(d.icmp!.targetAddress))).toEqual([LL]);
    const reps = ofType(f, MLDV2_REPORT);
    expect(reps.length).toBeGreaterThan(0);
    expect(formatIP(reps[0]!.payload.slice(12, 28))).toBe(SN);
    expect(h.nic.addressInfo(ip6(LL))!.state).toBeUndefined();
    expect(ofType(f, RS)).toHaveLength(1);
  });

  it('NICs without link-layer resolution (TUN) skip NDP: no link-local, no DAD, nothing sent', () => {
    const clock = new ManualClock();
    const stack = new Stack({ clock, seed: 3 });
    const ch = new ChannelEndpoint({ wireFormat: 'ip', mtu: 1500 });
    const nic = stack.createNIC({ name: 'tun0', endpoint: ch });
    nic.addAddress('fd00::1/64');
    expect(nic.addresses.map((a) => [formatIP(a.address), a.state])).toEqual([['fd00::1', undefined]]);
    clock.advance(10_000);
    expect(ch.queued).toBe(0);
  });
});

describe('NDP between stacks on a wire', () => {
  it('a host autoconfigures from a router-mode stack and pings it; tshark reads the capture cleanly', async () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock, latencyMs: 1 });
    const w = pcapWriter();
    const gw = new Stack({ clock, seed: 21, forwarding: true });
    const host = new Stack({ clock, seed: 22 });
    const gnic = attach(gw, wire.a, '02:00:00:00:00:01', { clock, sniff: w });
    const hnic = attach(host, wire.b, '02:00:00:00:00:02', { clock });
    gnic.addAddress('fd00:1::1/64');
    const gip = gw.requireNetwork<IPv6Protocol>(0x86dd);
    const hip = host.requireNetwork<IPv6Protocol>(0x86dd);
    gip.ndp.startRouter(gnic, { prefixes: ['fd00:1::/64'], dnsServers: ['fd00:1::1'] });
    clock.advance(10_000);
    const addr = 'fd00:1::ff:fe00:2';
    expect(hnic.hasAddress(ip6(addr))).toBe(true);
    expect(hip.ndp.dnsServers(hnic)).toEqual(['fd00:1::1']);
    expect(hip.ndp.defaultRouters(hnic)).toEqual(['fe80::ff:fe00:1']);
    const p = host.ping('fd00:1::1');
    clock.advance(100);
    const r = await p;
    expect(r.from).toBe('fd00:1::1');
    // Off-link destinations go through the router learned from the RA.
    const q = host.ping('2001:db8::1').catch((e: { code: string }) => e.code);
    clock.advance(2000);
    expect(await q).toBe('ENETUNREACH'); // the router has no route: Destination Unreachable (no route)
    if (haveTshark()) {
      const d = tsharkFields(w.bytes(), ['icmpv6.type', 'icmpv6.checksum.status', 'ipv6.src']);
      expect(d.expert).toEqual([]);
      const types = new Set(d.rows.map((x) => x[0]!.split(',')[0]));
      for (const t of ['133', '134', '135', '136', '143', '128', '129', '1']) expect(types).toContain(t);
      for (const row of d.rows) if (row[0] !== '') expect(row[1]!.split(',')[0]).toBe('1');
    }
  });

  it('DAD detects a duplicate address between two stacks', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock });
    const a = new Stack({ clock, seed: 1 });
    const b = new Stack({ clock, seed: 2 });
    const na = attach(a, wire.a, '02:00:00:00:00:01', { clock });
    const nb = attach(b, wire.b, '02:00:00:00:00:02', { clock });
    clock.advance(3000);
    na.addAddress('fd00::5/64');
    clock.advance(3000);
    expect(na.addressInfo(ip6('fd00::5'))!.state).toBeUndefined();
    nb.addAddress('fd00::5/64');
    clock.advance(3000);
    expect(nb.addressInfo(ip6('fd00::5'))!.state).toBe('dadfailed');
    expect(na.addressInfo(ip6('fd00::5'))!.state).toBeUndefined();
    void EthernetEndpoint;
  });
});
