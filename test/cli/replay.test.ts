import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PcapReader } from '../../src/pcap/index.js';
import { Network } from '../../src/sim/index.js';
import { capture, concat, haveCaptures, pcapHeader, pcapRecord } from '../helpers/captures.js';
import { tunstack } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-cli-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!haveCaptures())('tunstack replay', () => {
  it('matching answers: exit 0, report on stdout, answers in --out', () => {
    const out = join(dir, 'answers.pcap');
    const r = tunstack(['replay', capture('test_ethernet.pcap'), '--as', '10.1.1.1', '--serve-captured', '--out', out]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('tcp 10.1.1.2:44644 -> 10.1.1.1:80: captured 378 bytes, stack 378 bytes: match');
    expect(r.stdout).toContain('result: ok');
    expect(PcapReader.open(out).readAll().length).toBeGreaterThanOrEqual(4);
  });

  it('differing answers: exit 1 and the mismatch; --json gives the report', () => {
    const r = tunstack(['replay', capture('test_ethernet.pcap'), '--as', '10.1.1.1', '--gate', '20', '--fast']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/mismatch: tcp 10\.1\.1\.2:44644 -> 10\.1\.1\.1:80: 0 bytes served, 378 captured/);
    const j = tunstack(['replay', capture('test_dns.pcap'), '--as', '95.211.92.14', '--json', '--tun']);
    expect(j.status).toBe(0);
    const report = JSON.parse(j.stdout) as { injected: number; icmp: { liveErrors: number }; ok: boolean };
    expect(report).toMatchObject({ injected: 7, ok: true, icmp: { liveErrors: 7 } });
  });

  it('usage errors exit 2; --help exits 0', () => {
    expect(tunstack(['replay', '--help']).stdout).toMatch(/^Usage: tunstack replay FILE --as/);
    for (const args of [
      ['replay', capture('test_dns.pcap')],
      ['replay', '--as', '1.2.3.4'],
      ['replay', 'x.pcap', '--as', '1.2.3.4', '--checksums', 'maybe'],
      ['replay', 'x.pcap', '--as', '1.2.3.4', '--speed', '0'],
      ['replay', 'x.pcap', '--as', '1.2.3.4', '--speed', '2', '--fast'],
      ['replay', 'x.pcap', '--as', '1.2.3.4', '--what'],
    ]) {
      const r = tunstack(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('Usage: tunstack replay');
    }
  });

  it('unsupported link types and unknown hosts fail with exit 1 and say why', () => {
    const wifi = join(dir, 'wifi.pcap');
    writeFileSync(wifi, concat(pcapHeader(true, false, 65535, 127), pcapRecord(true, 1, 0, new Uint8Array(40))));
    const r = tunstack(['replay', wifi, '--as', '10.0.0.1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/frame 1: unsupported link type 127 \(IEEE 802\.11 radiotap\)/);
    const u = tunstack(['replay', capture('test_dns.pcap'), '--as', '10.9.9.9']);
    expect(u.status).toBe(1);
    expect(u.stderr).toMatch(/10\.9\.9\.9 not in the capture \(its hosts: 109\.194\.160\.4, 95\.211\.92\.14/);
  });
});

describe('tunstack replay progress', () => {
  it('reports progress on stderr for long replays', async () => {
    // 3000 datagrams to a closed port, captured at the receiver.
    const net = new Network({ seed: 41, ipv6: false });
    const a = net.host('a');
    const b = net.host('b');
    net.link(a, b);
    const path = join(dir, 'flood.pcap');
    net.capture(b, path, {});
    await net.runUntil(a.ping(b));
    const s = a.stack.udp();
    for (let i = 0; i < 1500; i++) {
      s.send(new Uint8Array(8), 9999, b.address);
      net.runSync(net.now + 1);
    }
    net.close();
    const r = tunstack(['replay', path, '--as', b.address, '--fast']);
    expect(r.stderr).toMatch(/replay: \d+\.\d s, capture time \d+\.\d s, frame \d+\/\d+ \(\d+%\), \d+ injected, \d+ answers/);
    expect(r.stderr).toMatch(/\(100%\)/);
    expect(r.stdout).toContain('1502 injected'); // a's ARP request, the ping and 1500 datagrams
    // Replayed as fast as possible, the stack's ICMP rate limit (burst 50) shows against the
    // capture's 1500 port unreachables (sent 1 ms apart): a note, not a mismatch.
    expect(r.stdout).toMatch(/errors captured 1500, stack 5\d/);
    expect(r.stdout).toMatch(/note: the role host sent 1500 ICMP errors in the capture, the stack 5\d/);
    expect(r.status).toBe(0);
    // At the original timing, the stack keeps up with the capture.
    const timed = tunstack(['replay', path, '--as', b.address, '--quiet']);
    expect(timed.stdout).toMatch(/errors captured 1500, stack 1500/);
    expect(timed.stderr).toBe('');
  });
});
