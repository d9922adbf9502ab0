import { describe, expect, it } from 'vitest';
import {
  ChannelEndpoint,
  EthernetEndpoint,
  ManualClock,
  Stack,
  Wire,
  parseIPv4,
  parseMAC,
  type IPv4Protocol,
} from '../../src/index.js';
import { IPv4Header, IcmpV4Header, buildIPv4, buildIcmpV4DestUnreachable, buildIcmpV4Echo, buildUdp } from '../../src/headers/index.js';
import { xorAt } from '../helpers/bytes.js';

/** A stack whose NIC is an IP-only channel: the test injects packets and reads what comes out. */
function channelHost(seed = 1) {
  const clock = new ManualClock();
  const stack = new Stack({ clock, seed });
  const link = new ChannelEndpoint({ mtu: 1500 });
  const nic = stack.createNIC({ name: 'tun0', endpoint: link });
  nic.addAddress('10.1.0.1/24');
  const ip = stack.networkProtocol(0x0800) as IPv4Protocol;
  const out = (): Uint8Array[] => {
    const pkts: Uint8Array[] = [];
    for (let p = link.read(); p; p = link.read()) pkts.push(p.toBytes());
    return pkts;
  };
  return { clock, stack, link, nic, ip, out };
}

const A = parseIPv4('10.1.0.2');
const B = parseIPv4('10.1.0.1');

function udpDatagram(payloadLen: number, dstPort = 9999): Uint8Array {
  const payload = new Uint8Array(payloadLen).map((_, i) => i & 0xff);
  return buildUdp({ srcPort: 1234, dstPort, pseudoHeader: { src: A, dst: B } }, payload);
}

/** IPv4 fragments of `transport` with the given (offset, length) cuts. */
function fragments(transport: Uint8Array, cuts: Array<[number, number]>, id = 0x4242, ttl = 64): Uint8Array[] {
  return cuts.map(([off, len]) =>
    buildIPv4(
      { src: A, dst: B, protocol: 17, id, ttl, fragmentOffset: off, moreFragments: off + len < transport.length },
      transport.subarray(off, off + len),
    ),
  );
}

describe('IPv4 receive', () => {
  it('reassembles out-of-order fragments and delivers the datagram', () => {
    const { stack, link, ip } = channelHost();
    const sock = stack.udp();
    sock.bind(null, 9999);
    const dg = udpDatagram(3000);
    for (const f of fragments(dg, [[2960, 48], [0, 1480], [1480, 1480]]).reverse()) link.injectBytes(f);
    const m = sock.recv();
    expect(m?.data.length).toBe(3000);
    expect(ip.reassembler.stats.reassembled).toBe(1);
  });

  it('drops a datagram whose fragments overlap (RFC 5722) and ignores an exact duplicate', () => {
    const { stack, link, ip } = channelHost();
    const sock = stack.udp();
    sock.bind(null, 9999);
    const dg = udpDatagram(3000);
    const [f0, f1, f2] = fragments(dg, [[0, 1480], [1480, 1480], [2960, 48]]);
    link.injectBytes(f0!);
    link.injectBytes(f0!); // duplicate: ignored
    link.injectBytes(fragments(dg, [[1000, 1000]])[0]!); // overlaps f0: whole datagram discarded
    link.injectBytes(f1!);
    link.injectBytes(f2!);
    expect(sock.recv()).toBeNull();
    expect(ip.reassembler.stats.duplicatesIgnored).toBe(1);
    expect(ip.reassembler.stats.overlapsDropped).toBe(1);
  });

  it('times out an incomplete datagram after 30 s and sends ICMP time exceeded (reassembly) quoting the first fragment', () => {
    const { clock, link, ip, out } = channelHost();
    const dg = udpDatagram(3000);
    const [f0] = fragments(dg, [[0, 1480]]);
    link.injectBytes(f0!);
    clock.advance(29_999);
    expect(out()).toEqual([]);
    clock.advance(1);
    const sent = out();
    expect(sent).toHaveLength(1);
    const h = new IPv4Header(sent[0]!);
    expect(h.isValid() && h.checksumValid()).toBe(true);
    expect([...h.dst]).toEqual([...A]);
    const icmp = new IcmpV4Header(sent[0]!, h.headerLength);
    expect([icmp.type, icmp.code]).toEqual([11, 1]);
    expect(icmp.checksumValid()).toBe(true);
    // The quote starts with the first fragment's IP header (ID 0x4242).
    expect(new IPv4Header(icmp.data).id).toBe(0x4242);
    expect(ip.reassembler.stats.timeouts).toBe(1);
    expect(ip.reassembler.memoryUsed).toBe(0);
  });

  it('does not answer a timed-out datagram whose first fragment never came', () => {
    const { clock, link, out } = channelHost();
    const [, f1] = fragments(udpDatagram(3000), [[0, 1480], [1480, 1480]]);
    link.injectBytes(f1!);
    clock.advance(31_000);
    expect(out()).toEqual([]);
  });

  it('drops bad headers and counts them, never throwing', () => {
    const { link, ip } = channelHost();
    const good = buildIPv4({ src: A, dst: B, protocol: 17, id: 1 }, udpDatagram(10));
    const badSum = good.slice();
    xorAt(badSum, 10, 1);
    const badLen = good.slice();
    badLen[3] = 10; // total length < header length
    const martian = buildIPv4({ src: parseIPv4('224.0.0.5'), dst: B, protocol: 17 }, udpDatagram(10));
    for (const p of [badSum, badLen, martian, good.subarray(0, 10)]) link.injectBytes(p);
    expect(ip.stats.invalidChecksum).toBe(1);
    expect(ip.stats.malformedReceived).toBe(2);
    expect(ip.stats.invalidSource).toBe(1);
  });

  it('answers UDP to a closed port with port unreachable, and an unknown protocol with protocol unreachable', () => {
    const { link, out } = channelHost();
    link.injectBytes(buildIPv4({ src: A, dst: B, protocol: 17, id: 2 }, udpDatagram(10, 7777)));
    link.injectBytes(buildIPv4({ src: A, dst: B, protocol: 253, id: 3 }, new Uint8Array(8)));
    const sent = out().map((p) => new IcmpV4Header(p, 20));
    expect(sent.map((i) => [i.type, i.code])).toEqual([[3, 3], [3, 2]]);
  });

  it('rate-limits ICMP errors (burst 50, then 1000/s)', () => {
    const { clock, link, ip, out } = channelHost();
    const probe = buildIPv4({ src: A, dst: B, protocol: 17, id: 2 }, udpDatagram(10, 7777));
    for (let i = 0; i < 200; i++) link.injectBytes(probe);
    expect(out()).toHaveLength(50);
    expect(ip.stats.icmp.rateLimited).toBe(150);
    clock.advance(10); // 10 ms refills 10 tokens
    for (let i = 0; i < 20; i++) link.injectBytes(probe);
    expect(out()).toHaveLength(10);
  });

  it('accepts packets for foreign addresses only in promiscuous mode', () => {
    const { stack, link, nic, ip } = channelHost();
    const sock = stack.udp();
    sock.bind(null, 9999);
    const foreign = parseIPv4('192.0.2.55');
    const pkt = buildIPv4({ src: A, dst: foreign, protocol: 17 }, buildUdp({ srcPort: 1, dstPort: 9999, pseudoHeader: { src: A, dst: foreign } }, new Uint8Array(4)));
    link.injectBytes(pkt);
    expect(sock.recv()).toBeNull();
    expect(ip.stats.notForUs).toBe(1);
    nic.promiscuous = true;
    link.injectBytes(pkt);
    const m = sock.recv();
    expect(m?.localAddress).toBe('192.0.2.55');
  });

  it('sends from a foreign source address only in spoofing mode', () => {
    const { stack, nic, out } = channelHost();
    expect(() => stack.udp().bind('192.0.2.9', 53)).toThrow(expect.objectContaining({ code: 'EADDRNOTAVAIL' }));
    nic.spoofing = true;
    const s = stack.udp();
    s.bind('192.0.2.9', 53);
    s.send(new Uint8Array(3), 4000, '10.1.0.2');
    const h = new IPv4Header(out()[0]!);
    expect(h.src.join('.')).toBe('192.0.2.9');
  });
});

describe('IPv4 send', () => {
  it('uses the socket TTL and fragments to the NIC MTU; DF on an oversize datagram is EMSGSIZE', async () => {
    const { stack, nic, out } = channelHost();
    nic.mtu = 576;
    const s = stack.udp();
    s.ttl = 5;
    s.send(new Uint8Array(1200), 4000, '10.1.0.2');
    const frags = out().map((p) => new IPv4Header(p));
    expect(frags.map((h) => h.totalLength)).toEqual([572, 572, 124]);
    expect(frags.every((h) => h.ttl === 5 && h.checksumValid() && h.id === frags[0]!.id)).toBe(true);
    expect(frags.map((h) => [h.fragmentOffset, h.moreFragments])).toEqual([[0, true], [552, true], [1104, false]]);
    const ip = stack.networkProtocol(0x0800) as IPv4Protocol;
    await expect(stack.ping('10.1.0.2', { size: 1000, dontFragment: true })).rejects.toMatchObject({ code: 'EMSGSIZE' });
    expect(ip.stats.fragmentsCreated).toBe(3);
  });

  it('applies a path MTU learned from fragmentation-needed to later sends (RFC 1191)', async () => {
    const { stack, link, ip, out } = channelHost();
    const s = stack.udp();
    s.send(new Uint8Array(1400), 4000, '10.1.0.2');
    const sent = out()[0]!;
    // A router on the way says: next-hop MTU 1000 (quoting our datagram's header + 8 bytes).
    const icmp = buildIcmpV4DestUnreachable(4, sent.subarray(0, 28), { mtu: 1000 });
    link.injectBytes(buildIPv4({ src: parseIPv4('10.1.0.254'), dst: B, protocol: 1 }, icmp));
    expect(ip.pathMtu(A, 1500)).toBe(1000);
    s.send(new Uint8Array(1400), 4000, '10.1.0.2');
    expect(out().map((p) => new IPv4Header(p).totalLength)).toEqual([996, 452]); // 1408 bytes: 976 + 432
    await expect(stack.ping('10.1.0.2', { size: 1200, dontFragment: true })).rejects.toMatchObject({ code: 'EMSGSIZE' });
  });

  it('learns from fragmentation-needed only about what one of its sockets or pings sent; 68 becomes 552 (RFC 5927, min_pmtu)', () => {
    const { stack, link, ip, out } = channelHost();
    const s = stack.udp();
    s.bind(null, 5000);
    s.send(new Uint8Array(1400), 4000, '10.1.0.2');
    const sent = out()[0]!;
    const fragNeeded = (quoted: Uint8Array, mtu: number): boolean =>
      link.injectBytes(buildIPv4({ src: parseIPv4('10.1.0.254'), dst: B, protocol: 1 }, buildIcmpV4DestUnreachable(4, quoted.subarray(0, 28), { mtu })));
    // From a source port no socket has: ignored.
    const otherPort = sent.slice();
    otherPort[20] = 0x30;
    otherPort[21] = 0x39;
    fragNeeded(otherPort, 1000);
    // About an echo request no ping is waiting for: ignored.
    fragNeeded(buildIPv4({ src: B, dst: A, protocol: 1 }, buildIcmpV4Echo({ ident: 77, sequence: 1, dataLength: 1372 })), 1000);
    expect(ip.stats.icmp.errorsReceived).toBe(2);
    expect(ip.pathMtu(A, 1500)).toBe(1500);
    // About the socket's own datagram: believed, and clamped to 552.
    fragNeeded(sent, 68);
    expect(ip.pathMtu(A, 1500)).toBe(552);
  });

  it('gives ENETUNREACH without a route and stops using a removed NIC', async () => {
    const { stack, nic } = channelHost();
    await expect(stack.ping('192.0.2.1')).rejects.toMatchObject({ code: 'ENETUNREACH' });
    stack.removeNIC(nic.id);
    expect(stack.nic('tun0')).toBeUndefined();
    expect(() => stack.udp().send(new Uint8Array(1), 1, '10.1.0.2')).toThrow(expect.objectContaining({ code: 'ENETUNREACH' }));
  });

  it('drops inbound traffic on a disabled NIC and counts it', () => {
    const { link, nic } = channelHost();
    nic.disable();
    link.injectBytes(buildIPv4({ src: A, dst: B, protocol: 17 }, udpDatagram(4)));
    expect(nic.stats.rxDroppedDisabled).toBe(1);
  });
});

describe('TTL across a router', () => {
  function threeNodes() {
    const clock = new ManualClock();
    const left = new Wire({ clock, latencyMs: 1 });
    const right = new Wire({ clock, latencyMs: 1 });
    const h1 = new Stack({ clock, seed: 1 });
    const r = new Stack({ clock, seed: 2, forwarding: true });
    const h2 = new Stack({ clock, seed: 3 });
    const mac = (n: number) => parseMAC(`02:00:00:00:00:${n.toString(16).padStart(2, '0')}`);
    h1.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(left.a, { linkAddress: mac(1) }) }).addAddress('10.0.1.2/24');
    r.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(left.b, { linkAddress: mac(2) }) }).addAddress('10.0.1.1/24');
    r.createNIC({ name: 'eth1', endpoint: new EthernetEndpoint(right.a, { linkAddress: mac(3) }) }).addAddress('10.0.2.1/24');
    h2.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(right.b, { linkAddress: mac(4) }) }).addAddress('10.0.2.2/24');
    h1.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.1.1', nic: 'eth0' });
    h2.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.2.1', nic: 'eth0' });
    return { clock, h1, r, h2 };
  }

  it('forwards with TTL decremented, and reports TTL expiry to the sender', async () => {
    const { clock, h1, h2 } = threeNodes();
    const ok = h1.ping('10.0.2.2');
    clock.advance(50);
    const res = await ok;
    expect(res.ttl).toBe(63); // h2 replied with 64, the router took one
    const sink = h2.udp();
    sink.bind(null, 5000);
    const s = h1.udp();
    s.ttl = 2;
    s.send(new Uint8Array(8), 5000, '10.0.2.2');
    clock.advance(10);
    expect(sink.recv()).not.toBeNull();
    const dying = h1.ping('10.0.2.2', { ttl: 1 });
    const outcome = dying.then(() => 'replied', (e: { code: string; message: string }) => `${e.code}: ${e.message}`);
    clock.advance(50);
    expect(await outcome).toMatch(/^EHOSTUNREACH: .*time to live exceeded \(from 10\.0\.1\.1\)/);
  });
});
