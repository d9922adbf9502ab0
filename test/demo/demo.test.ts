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
    expect(a.length).toBeGreaterThan(24 + 16 * 18);
    expect(a.equals(b)).toBe(true);
    expect(r1).toEqual({ ...r2, pcap: r1.pcap });
    // A different seed changes the TAP's random MAC, the IP IDs and the ephemeral port.
    await runDemo({ out: join(dir, 'three.pcap'), seed: 8 });
    expect(readFileSync(join(dir, 'three.pcap')).equals(a)).toBe(false);
  });

  it('does what it says: ARP, pings both ways, a UDP exchange through the TAP device', async () => {
    const r = await runDemo({ out: null, seed: 1 });
    expect(r.pings).toHaveLength(6);
    expect(r.pings.every((p) => p.ttl === 64 && p.rttMs >= 2)).toBe(true);
    expect(r.udp.reply).toBe('10.0.0.2');
    const [alpha, beta] = r.hosts;
    expect(alpha!.icmpEchoRequests).toBe(3);
    expect(beta!.icmpEchoRequests).toBe(3);
    expect(beta!.arpRepliesSent).toBe(1);
    expect(r.tun.framesRead).toBe(r.wire.bToA);
    expect(r.tun.framesWritten).toBe(r.wire.aToB);
  });

  it.skipIf(!haveTshark())('writes a capture tshark reads without malformed packets or checksum errors', async () => {
    const path = join(dir, 'check.pcap');
    const r = await runDemo({ out: path, seed: 3 });
    const out = execFileSync('tshark', ['-n', '-r', path, ...CHECKSUM_PREFS, '-T', 'fields', '-e', 'frame.protocols', '-e', '_ws.expert.severity', '-e', 'ip.checksum.status', '-e', 'icmp.checksum.status', '-e', 'udp.checksum.status', '-e', 'dns.a', '-e', 'dns.qry.name'], { encoding: 'utf8' });
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(r.packetsCaptured);
    let arp = 0;
    let icmp = 0;
    let udp = 0;
    for (const l of lines) {
      const [protos, sev, ipc, icmpc, udpc] = l.split('\t');
      expect(protos).not.toContain('malformed');
      for (const s of (sev ?? '').split(',').filter(Boolean)) expect(Number(s)).toBeLessThan(0x00600000);
      if (ipc) expect(ipc).toBe('1'); // 1 = good (0 bad, 2 unverified)
      if (icmpc) expect(icmpc).toBe('1');
      if (udpc) expect(udpc).toBe('1');
      if (protos!.includes(':arp')) arp++;
      if (protos!.includes(':icmp')) icmp++;
      if (protos!.includes(':udp')) udp++;
    }
    expect(arp).toBeGreaterThanOrEqual(3);
    expect(icmp).toBe(12);
    expect(udp).toBe(2);
    // tshark decodes our DNS query and the answer's A record.
    expect(out).toContain('beta.demo');
    expect(lines.some((l) => l.split('\t')[5] === '10.0.0.2')).toBe(true);
  });
});
