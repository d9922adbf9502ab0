import { describe, expect, it } from 'vitest';
import {
  ManualClock,
  PacketType,
  Stack,
  Wire,
  parseIP,
  type IPv6Protocol,
} from '../../src/index.js';
import { buildIPv4, buildIPv6, buildIcmpV6, buildUdp } from '../../src/headers/index.js';
import { PcapReader } from '../../src/pcap/index.js';
import { haveTshark } from '../helpers/tshark.js';
import { attach, pcapWriter, threeNodes, tsharkFields } from './helpers.js';
import { pcapOf } from './frames.js';

function twoHosts(sniff?: ReturnType<typeof pcapWriter>) {
  const clock = new ManualClock();
  const wire = new Wire({ clock });
  const a = new Stack({ clock, seed: 41 });
  const b = new Stack({ clock, seed: 42 });
  const na = attach(a, wire.a, '02:00:00:00:00:01', { clock, ...(sniff ? { sniff } : {}) });
  const nb = attach(b, wire.b, '02:00:00:00:00:02', { clock });
  na.addAddress('10.0.0.1/24');
  nb.addAddress('10.0.0.2/24');
  na.addAddress('fd00::1/64', { nodad: true });
  nb.addAddress('fd00::2/64', { nodad: true });
  return { clock, a, b, na, nb };
}

describe('raw IP sockets', () => {
  it('receive a copy of every datagram of their protocol, IP header included, beside the transport', () => {
    const { a, b } = twoHosts();
    const r4 = b.raw({ family: 4, protocol: 17 });
    const r6 = b.raw({ family: 6, protocol: 17 });
    const rIcmp6 = b.raw({ family: 6, protocol: 58 });
    const u = b.udp();
    u.bind(null, 9);
    a.udp().send(Uint8Array.of(1, 2, 3), 9, '10.0.0.2');
    a.udp({ family: 6 }).send(Uint8Array.of(4), 9, 'fd00::2');
    expect(u.recv()!.data).toEqual(Uint8Array.of(1, 2, 3));
    const m4 = r4.recv()!;
    expect(m4).toMatchObject({ from: '10.0.0.1', to: '10.0.0.2' });
    expect(m4.data.length).toBe(20 + 8 + 3);
    expect(m4.data[0]).toBe(0x45);
    const m6 = r6.recv()!;
    expect(m6).toMatchObject({ from: 'fd00::1', to: 'fd00::2' });
    expect(m6.data.length).toBe(40 + 8 + 1);
    expect(m6.data[6]).toBe(17);
    expect(r4.recv()).toBeNull();
    void a.ping('fd00::2');
    const types: number[] = [];
    for (let m = rIcmp6.recv(); m !== null; m = rIcmp6.recv()) types.push(m.data[40]!);
    expect(types).toEqual([135, 128]); // A's neighbour solicitation, then its echo request
    r4.close();
    r6.close();
    rIcmp6.close();
    expect(b.rawInput).toBeNull();
  });

  it('send whole datagrams (IP_HDRINCL): length, checksum, id and source filled in; never fragmented', () => {
    const w = pcapWriter();
    const { a, b } = twoHosts(w);
    const u4 = b.udp();
    u4.bind(null, 40000);
    const u6 = b.udp({ family: 6 });
    u6.bind(null, 40001);
    const raw4 = a.raw({ family: 4, protocol: 255 });
    const dg = buildUdp({ srcPort: 41234, dstPort: 40000, pseudoHeader: { src: parseIP('10.0.0.1'), dst: parseIP('10.0.0.2') } }, Uint8Array.of(9, 9));
    const ip = buildIPv4({ src: parseIP('0.0.0.0'), dst: parseIP('10.0.0.2'), protocol: 17, id: 0, totalLength: 0 }, dg);
    raw4.send(ip);
    expect(u4.recv()).toMatchObject({ address: '10.0.0.1', port: 41234, data: Uint8Array.of(9, 9) });
    const raw6 = a.raw({ family: 6, protocol: 255 });
    const dg6 = buildUdp({ srcPort: 41235, dstPort: 40001, pseudoHeader: { src: parseIP('fd00::1'), dst: parseIP('fd00::2') } }, Uint8Array.of(7));
    raw6.send(buildIPv6({ source: parseIP('::'), destination: parseIP('fd00::2'), nextHeader: 17, hopLimit: 9, payloadLength: 0 }, dg6));
    expect(u6.recv()).toMatchObject({ address: 'fd00::1', port: 41235 });
    expect(() => raw4.send(buildIPv4({ src: parseIP('10.0.0.1'), dst: parseIP('10.0.0.2'), protocol: 17 }, new Uint8Array(1500)))).toThrow(
      expect.objectContaining({ code: 'EMSGSIZE' }),
    );
    expect(() => raw4.send(new Uint8Array(10))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    if (haveTshark()) {
      const d = tsharkFields(w.bytes(), ['ip.id', 'ip.len', 'ip.src', 'ipv6.src', 'ipv6.plen', 'ipv6.hlim', 'udp.srcport']);
      expect(d.expert).toEqual([]);
      const v4 = d.rows.find((r) => r[6] === '41234')!;
      expect(v4[0]).not.toBe('0x0000');
      expect(v4.slice(1, 3)).toEqual(['30', '10.0.0.1']);
      expect(d.rows.find((r) => r[6] === '41235')!.slice(3, 6)).toEqual(['fd00::1', '9', '9']);
    }
  });

  it('sendTo builds the header, and computes ICMPv6 checksums (as Linux does for raw ICMPv6)', async () => {
    const { clock, a } = twoHosts();
    const raw = a.raw({ family: 6, protocol: 58 });
    const req = buildIcmpV6({ kind: 'echoRequest', identifier: 0x4242, sequence: 1, data: Uint8Array.of(1) }, parseIP('::'), parseIP('::'));
    req[2] = 0; // any checksum: the stack computes it
    req[3] = 0;
    raw.sendTo(req, 'fd00::2');
    clock.advance(10);
    const replies: number[] = [];
    for (let m = raw.recv(); m !== null; m = raw.recv()) replies.push(m.data[40]!);
    expect(replies).toContain(129);
  });

  it('takes datagrams of a protocol no transport knows, so no Parameter Problem goes back', () => {
    const { a, b } = twoHosts();
    const raw = b.raw({ family: 6, protocol: 253 });
    const sender = a.raw({ family: 6, protocol: 253 });
    sender.sendTo(Uint8Array.of(1, 2, 3, 4), 'fd00::2');
    expect(raw.recv()!.data.length).toBe(44);
    expect(b.requireNetwork<IPv6Protocol>(0x86dd).stats.icmp.paramProblemSent).toBe(0);
    raw.close();
    sender.sendTo(Uint8Array.of(1, 2, 3, 4), 'fd00::2');
    expect(b.requireNetwork<IPv6Protocol>(0x86dd).stats.icmp.paramProblemSent).toBe(1);
  });

  it('bound receive queues drop and count', () => {
    const { a, b } = twoHosts();
    const raw = b.raw({ family: 4, protocol: 17, queueLength: 3 });
    for (let i = 0; i < 5; i++) a.udp().send(new Uint8Array(1), 9, '10.0.0.2');
    expect(raw.queued).toBe(3);
    expect(raw.stats).toMatchObject({ received: 3, dropped: 2 });
  });
});

describe('ping sockets', () => {
  for (const family of [4, 6] as const) {
    const dst = family === 4 ? '10.0.0.2' : 'fd00::2';
    it(`IPv${family}: echo requests get the socket's identifier and checksum; replies come back to it`, () => {
      const { a } = twoHosts();
      const s = a.pingSocket({ family });
      s.bind(null, 0x1234);
      const other = a.pingSocket({ family });
      const msg = new Uint8Array(8 + 4);
      msg[0] = family === 4 ? 8 : 128;
      msg[4] = 0xff; // an identifier the stack replaces
      msg[6] = 0;
      msg[7] = 5;
      msg.set([1, 2, 3, 4], 8);
      s.send(msg, dst);
      const r = s.recv()!;
      expect(r.address).toBe(dst);
      expect(r.ttl).toBe(64);
      expect(r.data[0]).toBe(family === 4 ? 0 : 129);
      expect((r.data[4]! << 8) | r.data[5]!).toBe(0x1234);
      expect(r.data[7]).toBe(5);
      expect(r.data.subarray(8)).toEqual(Uint8Array.of(1, 2, 3, 4));
      expect(other.recv()).toBeNull();
      // An unbound socket gets an ephemeral identifier.
      other.send(msg, dst);
      expect(other.id).not.toBe(0);
      expect(other.recv()).not.toBeNull();
      msg[0] = 13;
      expect(() => s.send(msg, dst)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      expect(() => a.pingSocket({ family }).bind(null, 0x1234)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    });
  }

  it('a connected ping socket hears ICMP errors (TTL exceeded at a router)', () => {
    const t = threeNodes();
    for (const [family, dst] of [[4, '10.0.2.2'], [6, 'fd00:2::2']] as const) {
      const s = t.a.pingSocket({ family });
      s.connect(dst);
      s.ttl = 1;
      const errs: string[] = [];
      s.on('error', (e) => errs.push(e.code));
      const msg = new Uint8Array(8);
      msg[0] = family === 4 ? 8 : 128;
      s.send(msg);
      t.clock.advance(10);
      expect(errs).toEqual(['EHOSTUNREACH']);
      s.ttl = 64;
      s.send(msg);
      t.clock.advance(10);
      expect(s.recv()!.ttl).toBe(63);
    }
  });
});

describe('packet taps', () => {
  it('see every frame in and out of a NIC, byte for byte what a sniffer on the link records', () => {
    const w = pcapWriter();
    const { clock, a, b, na } = twoHosts(w);
    const already = [...PcapReader.fromBytes(w.bytes())].length; // the gratuitous ARPs
    const tap = a.packetTap({ nic: 'eth0' });
    const all = a.packetTap();
    const p = a.ping('10.0.0.2');
    void a.ping('fd00::2');
    const u = b.udp({ family: 6 });
    u.bind(null, 9);
    a.udp({ family: 6 }).send(new Uint8Array(3000), 9, 'fd00::2');
    clock.advance(10);
    void p;
    const frames: Uint8Array[] = [];
    const dirs: string[] = [];
    for (let f = tap.recv(); f !== null; f = tap.recv()) {
      frames.push(f.data);
      dirs.push(f.outbound ? 'out' : 'in');
      expect(f.nicId).toBe(na.id);
      if (f.outbound) expect(f.packetType).toBe(PacketType.Outgoing);
    }
    const sniffed = [...PcapReader.fromBytes(w.bytes())].slice(already).map((r) => r.data);
    expect(frames.length).toBeGreaterThan(6);
    expect(frames).toEqual(sniffed);
    expect(dirs).toContain('in');
    expect(all.queued).toBe(frames.length);
    if (haveTshark()) expect(tsharkFields(pcapOf(frames), ['frame.len']).expert).toEqual([]);
    tap.close();
    all.close();
  });

  it('follow NICs added later when tapping the whole stack, and bound their queue', () => {
    const clock = new ManualClock();
    const s = new Stack({ clock, seed: 5 });
    const tap = s.packetTap({ queueLength: 2, direction: 'out' });
    const wire = new Wire({ clock });
    attach(s, wire.a, '02:00:00:00:00:09', { clock });
    clock.advance(5000); // DAD, MLD and router solicitations go out
    expect(tap.queued).toBe(2);
    expect(tap.stats.dropped).toBeGreaterThan(0);
    expect(tap.recv()!.outbound).toBe(true);
  });
});
