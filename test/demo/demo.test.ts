import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../src/demo/demo.js';
import { CHECKSUM_PREFS, haveTshark } from '../helpers/tshark.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tunstack demo', () => {
  it('is deterministic: two runs with the same seed write byte-identical pcaps', async () => {
    const r1 = await runDemo({ out: join(dir, 'one.pcap'), seed: 7 });
    const r2 = await runDemo({ out: join(dir, 'two.pcap'), seed: 7 });
    const a = readFileSync(join(dir, 'one.pcap'));
    const b = readFileSync(join(dir, 'two.pcap'));
    expect(a.length).toBeGreaterThan(24 + 16 * 300);
    expect(a.equals(b)).toBe(true);
    expect(r1).toEqual({ ...r2, pcap: r1.pcap });
    // A different seed changes the TAP's random MAC, the IP IDs, ports, sequence numbers and losses.
    await runDemo({ out: join(dir, 'three.pcap'), seed: 8 });
    expect(readFileSync(join(dir, 'three.pcap')).equals(a)).toBe(false);
  });

  it('does what it says: pings v4/v6 through the router, DNS over UDP, HTTP over TCP, through the TAP device and the lossy link', async () => {
    const r = await runDemo({ out: null, seed: 1 });
    expect(r.pings.map((p) => `${p.from}>${p.to}/${p.family}`)).toEqual([
      'alpha>beta/4',
      'alpha>beta/4',
      'alpha>beta/4',
      'beta>alpha/4',
      'alpha>beta/6',
      'alpha>beta/6',
      'beta>alpha/6',
    ]);
    expect(r.pings.every((p) => p.ttl === 63 && p.rttMs >= 4)).toBe(true); // one router, 4 x 1 ms
    expect(r.dns.map((d) => `${d.name} ${d.type} ${d.answer}`)).toEqual(['beta.demo. A 10.0.2.2', 'beta.demo. AAAA fd00:0:0:2::2', 'gamma.demo. A NXDOMAIN']);
    expect(r.http.map((h) => [h.path, h.status, h.bytes, h.intact])).toEqual([
      ['/', 200, 26, true],
      ['/data', 200, 200_000, true],
    ]);
    const [alpha, router, beta] = r.hosts;
    expect(router!.forwarded).toBeGreaterThan(200);
    expect(beta!.icmpEchoRequests).toBeGreaterThanOrEqual(5);
    expect(alpha!.icmpEchoRequests).toBeGreaterThanOrEqual(2);
    expect(beta!.udpIn).toBeGreaterThanOrEqual(3);
    expect(beta!.tcpSegsOut).toBeGreaterThan(140); // 200 kB in 1448-byte segments
    // Everything beta sent crossed the TAP device; what reached it is what the link did not lose.
    expect(r.tun.framesRead).toBe(r.lossyLink.toRouter.offered);
    expect(r.tun.framesWritten).toBe(r.lossyLink.toBeta.offered - r.lossyLink.toBeta.lost);
    expect(r.lossyLink.toBeta.lost + r.lossyLink.toRouter.lost).toBeGreaterThan(0);
    expect(alpha!.tcpRetransmits + beta!.tcpRetransmits).toBeGreaterThan(0);
  });

  it.skipIf(!haveTshark())('writes a capture tshark reads without malformed packets or checksum errors', async () => {
    const path = join(dir, 'check.pcap');
    const r = await runDemo({ out: path, seed: 3 });
    const fields = ['frame.protocols', '_ws.expert.severity', 'ip.checksum.status', 'icmp.checksum.status', 'udp.checksum.status', 'tcp.checksum.status', 'icmpv6.checksum.status', 'dns.a', 'dns.aaaa', 'http.response.code'];
    const out = execFileSync('tshark', ['-n', '-r', path, ...CHECKSUM_PREFS, '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=,', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(r.packetsCaptured);
    const count: Record<string, number> = { arp: 0, icmp: 0, icmpv6: 0, dns: 0, http: 0, tcp: 0 };
    for (const l of lines) {
      const [protos, sev, ...rest] = l.split('\t');
      expect(protos).not.toContain('malformed');
      for (const s of (sev ?? '').split(',').filter(Boolean)) expect(Number(s)).toBeLessThan(0x00800000); // no errors
      for (const c of rest.slice(0, 5)) for (const v of (c ?? '').split(',').filter(Boolean)) expect(v).toBe('1'); // 1 = good
      for (const p of Object.keys(count)) if (protos!.split(':').includes(p)) count[p]!++;
    }
    expect(count.arp).toBeGreaterThanOrEqual(4);
    expect(count.icmp).toBeGreaterThanOrEqual(16); // 4 echoes and replies, seen on both router interfaces
    expect(count.icmpv6).toBeGreaterThanOrEqual(12);
    expect(count.dns).toBeGreaterThanOrEqual(12);
    expect(count.tcp).toBeGreaterThan(280);
    expect(count.http).toBeGreaterThanOrEqual(4);
    expect(out).toContain('10.0.2.2');
    expect(lines.some((l) => l.split('\t')[8] === 'fd00:0:0:2::2')).toBe(true);
    expect(lines.filter((l) => l.split('\t')[9] === '200').length).toBeGreaterThanOrEqual(2);
  });
});
