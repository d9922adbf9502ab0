import { describe, expect, it } from 'vitest';
import { ManualClock, Stack, parseMAC } from '../../src/index.js';
import { PcapWriter, LinkType } from '../../src/pcap/index.js';
import { Wire } from '../../src/link/wire.js';
import { EthernetEndpoint } from '../../src/link/ethernet.js';
import { SnifferEndpoint } from '../../src/link/sniffer.js';
import type { IPv4Protocol } from '../../src/network/ipv4.js';
import type { ArpProtocol } from '../../src/network/arp.js';
import { dissect, haveTshark } from '../helpers/tshark.js';

function twoHosts(opts: { latencyMs?: number; mtuA?: number; mtuB?: number; sniff?: PcapWriter } = {}) {
  const clock = new ManualClock();
  const wire = new Wire({ clock, latencyMs: opts.latencyMs ?? 0, mtu: 1500 });
  const a = new Stack({ clock, seed: 1 });
  const b = new Stack({ clock, seed: 2 });
  const lowerA = opts.sniff ? new SnifferEndpoint(wire.a, { clock, writer: opts.sniff }) : wire.a;
  const nicA = a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(lowerA, { linkAddress: parseMAC('02:00:00:00:00:01') }) });
  const nicB = b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:00:02') }) });
  if (opts.mtuA) nicA.mtu = opts.mtuA;
  if (opts.mtuB) nicB.mtu = opts.mtuB;
  nicA.addAddress('10.0.0.1/24');
  nicB.addAddress('10.0.0.2/24');
  return { clock, wire, a, b, nicA, nicB };
}

describe('two stacks on a wire', () => {
  it('resolves ARP and answers ping both ways', async () => {
    const { clock, a, b, nicA } = twoHosts({ latencyMs: 5 });
    const p = a.ping('10.0.0.2', { timeoutMs: 1000 });
    clock.advance(100);
    const r = await p;
    expect(r.from).toBe('10.0.0.2');
    // B's gratuitous ARP (sent when its address was added) reaches A at t=5 and resolves A's
    // pending entry (RFC 826 merge) before the solicited reply would at t=10: echo out at 5, back at 15.
    expect(r.rttMs).toBe(15);
    expect(r.ttl).toBe(64);
    const arpA = a.networkProtocol(0x0806) as ArpProtocol;
    expect(arpA.cache(nicA).lookup(Uint8Array.of(10, 0, 0, 2))).toEqual(parseMAC('02:00:00:00:00:02'));
    const p2 = b.ping('10.0.0.1');
    clock.advance(100);
    expect((await p2).rttMs).toBe(10); // b learned a's MAC from a's request
  });

  it('fails a ping with EHOSTUNREACH after three unanswered ARP requests one second apart', async () => {
    const { clock, a, nicA } = twoHosts();
    const p = a.ping('10.0.0.99', { timeoutMs: 10_000 });
    let outcome = 'pending';
    p.then(() => (outcome = 'replied'), (e: { code: string }) => (outcome = e.code));
    // Linux: mcast_solicit=3 probes, retrans_time 1 s, then "Destination Host Unreachable".
    clock.advance(2999);
    await Promise.resolve();
    expect(outcome).toBe('pending');
    clock.advance(1);
    await Promise.resolve();
    await Promise.resolve();
    expect(outcome).toBe('EHOSTUNREACH');
    const arp = a.networkProtocol(0x0806) as ArpProtocol;
    expect(arp.stats.requestsSent).toBe(3);
    expect(arp.cache(nicA).stats.failed).toBe(1);
    // A ping to a silent but resolvable host still times out.
    const p2 = a.ping('10.0.0.2', { timeoutMs: 500 });
    const r2 = p2.then(() => 'replied', (e: { code: string }) => e.code);
    clock.advance(1000);
    expect(await r2).toBe('replied');
  });

  it('sends UDP both ways and reports port unreachable to a connected socket', () => {
    const { a, b } = twoHosts();
    const server = b.udp();
    server.bind('10.0.0.2', 5353);
    const client = a.udp();
    client.bind(null, 0);
    client.send(new TextEncoder().encode('hello'), 5353, '10.0.0.2');
    const m = server.recv();
    expect(m && new TextDecoder().decode(m.data)).toBe('hello');
    expect(m!.address).toBe('10.0.0.1');
    expect(m!.port).toBe(client.localPort);
    server.send(new TextEncoder().encode('world'), m!.port, m!.address);
    expect(new TextDecoder().decode(client.recv()!.data)).toBe('world');

    const c2 = a.udp();
    c2.connect('10.0.0.2', 9);
    let err: string | null = null;
    c2.on('error', (e) => (err = e.code));
    c2.send(new Uint8Array(4));
    expect(err).toBe('ECONNREFUSED');
    expect((b.networkProtocol(0x0800) as IPv4Protocol).stats.icmp.destUnreachableSent).toBe(1);
  });

  it('fragments a 60 KB datagram and reassembles it', () => {
    const { a, b } = twoHosts({ mtuA: 1500 });
    const server = b.udp();
    server.bind(null, 7000);
    const data = new Uint8Array(60_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const c = a.udp();
    c.send(data, 7000, '10.0.0.2');
    const m = server.recv();
    expect(m?.data.length).toBe(60_000);
    expect(Buffer.from(m!.data).equals(Buffer.from(data))).toBe(true);
    const ipA = a.networkProtocol(0x0800) as IPv4Protocol;
    expect(ipA.stats.fragmentsCreated).toBe(Math.ceil(60_008 / 1480));
    expect((b.networkProtocol(0x0800) as IPv4Protocol).reassembler.stats.reassembled).toBe(1);
  });

  it.skipIf(!haveTshark())('puts packets on the wire that tshark dissects cleanly', async () => {
    const w = PcapWriter.inMemory({ linkType: LinkType.ETHERNET });
    const { clock, a, b } = twoHosts({ sniff: w });
    const p = a.ping('10.0.0.2');
    clock.advance(10);
    await p;
    const s = b.udp();
    s.bind(null, 53);
    a.udp().send(new Uint8Array(3000), 53, '10.0.0.2');
    a.udp().send(new Uint8Array(10), 54, '10.0.0.2');
    const frames: Uint8Array[] = [];
    // Re-read the in-memory pcap through tshark directly.
    const bytes = w.bytes();
    expect(bytes.length).toBeGreaterThan(24);
    void frames;
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const dir = mkdtempSync('/tmp/ts-');
    writeFileSync(`${dir}/x.pcap`, bytes);
    const out = execFileSync('tshark', ['-n', '-r', `${dir}/x.pcap`, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-e', 'frame.protocols', '-e', '_ws.expert.severity', '-e', 'ip.checksum.status', '-e', 'icmp.type'], { encoding: 'utf8' });
    const lines = out.trim().split('\n');
    // ARP req, ARP reply, echo req, echo reply, 3 fragments... Dissected without errors.
    expect(lines.length).toBeGreaterThanOrEqual(8);
    for (const l of lines) {
      const [, sev] = l.split('\t');
      for (const s of (sev ?? '').split(',').filter(Boolean)) expect(Number(s)).toBeLessThan(0x00600000);
    }
    expect(out).toContain('arp');
    void dissect;
  });
});
