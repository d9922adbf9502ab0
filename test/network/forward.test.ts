import { describe, expect, it } from 'vitest';
import { formatIP, parseIP, type IPv4Protocol, type IPv6Protocol, type Stack } from '../../src/index.js';
import { buildIPv4, buildIPv6, buildUdp } from '../../src/headers/index.js';
import { haveTshark } from '../helpers/tshark.js';
import { pcapWriter, threeNodes, tsharkFields } from './helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function v4(s: Stack): IPv4Protocol {
  return s.requireNetwork<IPv4Protocol>(0x0800);
}
function v6(s: Stack): IPv6Protocol {
  return s.requireNetwork<IPv6Protocol>(0x86dd);
}

/** Rows of tshark fields; asserts a clean dissection (checksums verified, no warnings). */
function clean(pcap: Uint8Array, fields: string[]): string[][] {
  const d = tsharkFields(pcap, fields);
  expect(d.expert).toEqual([]);
  return d.rows;
}

describe('a router between two hosts', () => {
  it('forwards ping and UDP both ways over IPv4 and IPv6, decrementing TTL and hop limit', async () => {
    const w1 = pcapWriter();
    const w2 = pcapWriter();
    const t = threeNodes({ sniff1: w1, sniff2: w2, latencyMs: 1 });
    const p4 = t.a.ping('10.0.2.2');
    const p6 = t.a.ping('fd00:2::2');
    t.clock.advance(100);
    expect(await p4).toMatchObject({ from: '10.0.2.2', ttl: 63 });
    expect(await p6).toMatchObject({ from: 'fd00:2::2', ttl: 63 });
    for (const [addr, fam] of [['10.0.2.2', 4], ['fd00:2::2', 6]] as const) {
      const server = t.b.udp({ family: fam });
      server.bind(null, 5000 + fam);
      const client = t.a.udp({ family: fam });
      client.send(enc.encode(`hello v${fam}`), 5000 + fam, addr);
      t.clock.advance(10);
      const m = server.recv()!;
      expect(dec.decode(m.data)).toBe(`hello v${fam}`);
      expect(m.address).toBe(fam === 4 ? '10.0.1.2' : 'fd00:1::2');
      server.send(enc.encode('back'), m.port, m.address);
      t.clock.advance(10);
      expect(dec.decode(client.recv()!.data)).toBe('back');
    }
    expect(v4(t.r).stats.forwarded).toBe(4);
    expect(v6(t.r).stats.forwarded).toBe(4);
    if (haveTshark()) {
      // On the B side everything A sent arrives with TTL / hop limit 63.
      const rows = clean(w2.bytes(), ['ip.src', 'ip.ttl', 'ipv6.src', 'ipv6.hlim', 'icmp.type', 'icmpv6.type', 'udp.srcport']);
      const fromA4 = rows.filter((r) => r[0] === '10.0.1.2');
      const fromA6 = rows.filter((r) => r[2] === 'fd00:1::2');
      expect(fromA4.length).toBe(2);
      expect(fromA6.length).toBe(2);
      for (const r of fromA4) expect(r[1]).toBe('63');
      for (const r of fromA6) expect(r[3]).toBe('63');
    }
  });

  it('sends Time Exceeded when the TTL / hop limit runs out, and ping reports it', async () => {
    const w1 = pcapWriter();
    const t = threeNodes({ sniff1: w1 });
    const e4 = t.a.ping('10.0.2.2', { ttl: 1 }).catch((e: Error & { code: string }) => `${e.code} ${e.message}`);
    const e6 = t.a.ping('fd00:2::2', { ttl: 1 }).catch((e: Error & { code: string }) => `${e.code} ${e.message}`);
    t.clock.advance(100);
    expect(await e4).toMatch(/^EHOSTUNREACH .*10\.0\.1\.1/);
    expect(await e6).toMatch(/^EHOSTUNREACH .*time exceeded: hop limit from fd00:1::1/);
    // TTL 2 gets through.
    const ok = t.a.ping('fd00:2::2', { ttl: 2 });
    t.clock.advance(100);
    expect((await ok).ttl).toBe(63);
    // A connected UDP socket hears about it as EHOSTUNREACH.
    const s = t.a.udp({ family: 6 });
    s.ttl = 1;
    s.connect('fd00:2::2', 9);
    const errs: string[] = [];
    s.on('error', (e) => errs.push(e.code));
    s.send(new Uint8Array(4));
    t.clock.advance(10);
    expect(errs).toEqual(['EHOSTUNREACH']);
    expect(v4(t.r).stats.ttlExceeded).toBe(1);
    expect(v6(t.r).stats.hopLimitExceeded).toBe(2);
    if (haveTshark()) {
      const rows = clean(w1.bytes(), ['icmp.type', 'icmp.code', 'ip.src', 'icmpv6.type', 'icmpv6.code', 'ipv6.src', 'icmpv6.checksum.status']);
      // Time Exceeded (code 0) from the router's address on A's side, quoting A's datagram.
      expect(rows).toContainEqual(['11,8', '0,0', '10.0.1.1,10.0.1.2', '', '', '', '']);
      const te6 = rows.filter((r) => r[3]!.split(',')[0] === '3');
      expect(te6).toHaveLength(2);
      for (const r of te6) {
        expect(r[4]!.split(',')[0]).toBe('0');
        expect(r[5]).toBe('fd00:1::1,fd00:1::2');
        expect(r[6]!.split(',')[0]).toBe('1');
      }
    }
  });

  it('IPv4: fragments at the router for a smaller next-hop MTU, and B reassembles', () => {
    const w2 = pcapWriter();
    const t = threeNodes({ mtuB: 1000, sniff2: w2 });
    const server = t.b.udp();
    server.bind(null, 7000);
    const data = new Uint8Array(1400).map((_, i) => i * 13);
    t.a.udp().send(data, 7000, '10.0.2.2');
    const m = server.recv()!;
    expect(Buffer.from(m.data).equals(Buffer.from(data))).toBe(true);
    expect(v4(t.r).stats.fragmentsCreated).toBe(2);
    expect(v4(t.b).reassembler.stats.reassembled).toBe(1);
    if (haveTshark()) {
      const rows = clean(w2.bytes(), ['ip.flags.mf', 'ip.frag_offset', 'ip.len', 'ip.ttl', 'udp.length']);
      const frags = rows.filter((r) => r[2] !== '' && r[0] !== '');
      expect(frags.map((r) => r.slice(0, 4))).toEqual([
        ['1', '0', '996', '63'],
        ['0', '122', '452', '63'], // tshark shows the offset in 8-byte units
      ]);
    }
  });

  it('IPv4 with DF: Fragmentation Needed with the MTU, and the sender\'s path MTU drops', async () => {
    const w1 = pcapWriter();
    const t = threeNodes({ mtuB: 1000, sniff1: w1 });
    const e = t.a.ping('10.0.2.2', { size: 1200, dontFragment: true }).catch((x: { code: string }) => x.code);
    t.clock.advance(100);
    expect(await e).toBe('EMSGSIZE');
    expect(v4(t.a).pathMtu(parseIP('10.0.2.2'), 1500)).toBe(1000);
    expect(v4(t.r).stats.fragmentationFailed).toBe(1);
    if (haveTshark()) {
      const rows = clean(w1.bytes(), ['icmp.type', 'icmp.code', 'icmp.mtu', 'ip.ttl']);
      // The quoted datagram is as it arrived (TTL 64, before the decrement).
      expect(rows).toContainEqual(['3,8', '4,0', '1000', '64,64']);
    }
  });

  it('IPv6: Packet Too Big from the router; the sender learns the path MTU and fragments at the source', async () => {
    const w1 = pcapWriter();
    const w2 = pcapWriter();
    const t = threeNodes({ mtuB: 1280, sniff1: w1, sniff2: w2 });
    const server = t.b.udp({ family: 6 });
    server.bind(null, 7000);
    const client = t.a.udp({ family: 6 });
    client.connect('fd00:2::2', 7000);
    const errs: string[] = [];
    client.on('error', (e) => errs.push(e.message));
    const data = new Uint8Array(1400).map((_, i) => i * 7);
    client.send(data);
    expect(server.recv()).toBeNull(); // the first one is lost, as with Linux
    expect(errs).toEqual(['EMSGSIZE: message too long (path MTU 1280)']);
    expect(v6(t.a).pathMtu(parseIP('fd00:2::2'), 1500)).toBe(1280);
    client.send(data);
    const m = server.recv()!;
    expect(Buffer.from(m.data).equals(Buffer.from(data))).toBe(true);
    expect(v6(t.a).stats.fragmentsCreated).toBe(2);
    expect(v6(t.r).stats.tooBigForwarded).toBe(1);
    // Routers never fragment IPv6; a ping of 1400 bytes that may not be fragmented fails at the source now.
    await expect(t.a.ping('fd00:2::2', { size: 1400, dontFragment: true })).rejects.toMatchObject({ code: 'EMSGSIZE' });
    if (haveTshark()) {
      const r1 = clean(w1.bytes(), ['icmpv6.type', 'icmpv6.mtu', 'icmpv6.checksum.status', 'ipv6.src']);
      expect(r1.filter((r) => r[0]!.startsWith('2')).map((r) => r.slice(1))).toEqual([['1280', '1', 'fd00:1::1,fd00:1::2']]);
      const r2 = clean(w2.bytes(), ['ipv6.fraghdr.ident', 'ipv6.fraghdr.offset', 'ipv6.fraghdr.more', 'ipv6.plen', 'ipv6.hlim', 'udp.checksum.status']);
      const frags = r2.filter((r) => r[0] !== '');
      expect(frags).toHaveLength(2);
      expect(frags[0]![0]).toBe(frags[1]![0]); // one identification
      expect(frags.map((r) => r.slice(1, 5))).toEqual([
        ['0', '1', '1240', '63'],
        ['154', '0', '184', '63'], // offset 1232 in 8-byte units
      ]);
      expect(frags[1]![5]).toBe('1'); // tshark reassembled the datagram and found its UDP checksum good
    }
  });

  it('answers Destination Unreachable when the router has no route', async () => {
    const t = threeNodes();
    const e4 = t.a.ping('192.0.2.1').catch((x: { code: string }) => x.code);
    const e6 = t.a.ping('2001:db8::1').catch((x: { code: string }) => x.code);
    t.clock.advance(100);
    expect(await e4).toBe('ENETUNREACH');
    expect(await e6).toBe('ENETUNREACH');
  });

  it('addresses of the router\'s other NIC are its own (weak host), not forwarded', async () => {
    const t = threeNodes();
    const p = t.a.ping('10.0.2.1');
    const q = t.a.ping('fd00:2::1');
    t.clock.advance(100);
    expect((await p).ttl).toBe(64);
    expect((await q).ttl).toBe(64);
    expect(v4(t.r).stats.forwarded).toBe(0);
    expect(v6(t.r).stats.forwarded).toBe(0);
  });

  it('does not forward link-local, martian, loopback or broadcast traffic', () => {
    const t = threeNodes();
    t.clock.advance(3000); // link-local addresses pass DAD
    const raw4 = t.a.raw({ family: 4, protocol: 17 });
    const udp = (src: string, dst: string) => buildUdp({ srcPort: 1, dstPort: 2, pseudoHeader: { src: parseIP(src), dst: parseIP(dst) } }, new Uint8Array(4));
    const fwd = () => v4(t.r).stats.forwarded;
    // Link-local destination and source (RFC 3927), 0/8 and loopback.
    for (const [src, dst] of [['10.0.1.2', '169.254.1.1'], ['169.254.9.9', '10.0.2.2'], ['10.0.1.2', '127.0.0.1'], ['10.0.1.2', '0.1.2.3']] as const) {
      t.a.nic('eth0')!.spoofing = true;
      const before = v4(t.r).stats.forwardDropped;
      try {
        raw4.send(buildIPv4({ src: parseIP(src), dst: parseIP(dst), protocol: 17 }, udp(src, dst)));
      } catch {
        // the sender may refuse a route to a martian itself; then nothing reaches the router
        continue;
      }
      expect(v4(t.r).stats.forwardDropped, `${src} -> ${dst}`).toBe(before + 1);
    }
    // A directed broadcast to B's subnet.
    raw4.send(buildIPv4({ src: parseIP('10.0.1.2'), dst: parseIP('10.0.2.255'), protocol: 17 }, udp('10.0.1.2', '10.0.2.255')));
    expect(fwd()).toBe(0);
    // IPv6: a link-local source gets Destination Unreachable (beyond scope); nothing is forwarded.
    const raw6 = t.a.raw({ family: 6, protocol: 58 });
    const lla = t.nicA.addresses.find((a) => a.address[0] === 0xfe)!.address;
    raw6.send(buildIPv6({ source: lla, destination: parseIP('fd00:2::2'), nextHeader: 59, hopLimit: 64 }));
    const ll6 = v6(t.r).stats;
    expect(ll6.forwardDropped).toBe(1);
    expect(ll6.icmp.destUnreachableSent).toBe(1);
    expect(ll6.forwarded).toBe(0);
    // A host without forwarding drops what is not for it.
    t.r.forwarding = false;
    const p = t.a.ping('fd00:2::2', { timeoutMs: 100 }).catch((x: { code: string }) => x.code);
    t.clock.advance(200);
    return p.then((code) => {
      expect(code).toBe('ETIMEDOUT');
      expect(v6(t.r).stats.notForUs).toBeGreaterThan(0);
      expect(formatIP(lla).startsWith('fe80::')).toBe(true);
    });
  });
});
