import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFlow, renderLadder, renderSvg } from '../../src/replay/flow.js';
import { capture, haveCaptures } from '../helpers/captures.js';
import { haveTshark } from '../helpers/tshark.js';
import { tsharkFields } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let pythonOk: boolean | undefined;
function havePython(): boolean {
  if (pythonOk === undefined) {
    pythonOk = spawnSync('python3', ['-c', 'import xml.etree.ElementTree'], { stdio: 'ignore' }).status === 0;
    if (!pythonOk) console.warn('python3 not found: the SVG is not parsed by an XML parser');
  }
  return pythonOk;
}

/** Parse an SVG with Python's XML parser; returns the arrows' classes and the frame ids of packet groups. */
function parseSvg(svg: string): { arrows: string[]; packets: string[]; root: string } {
  const path = join(dir, `d${Math.random().toString(36).slice(2)}.svg`);
  writeFileSync(path, svg);
  const script = `
import sys, json, xml.etree.ElementTree as ET
ns = '{http://www.w3.org/2000/svg}'
root = ET.parse(sys.argv[1]).getroot()
arrows = [e.get('class') for e in root.iter() if (e.get('class') or '').split()[:1] == ['arrow']]
packets = [e.get('id') for e in root.iter(ns + 'g') if e.get('class') == 'packet']
heads = [e.get('marker-end') for e in root.iter() if (e.get('class') or '').startswith('arrow')]
assert all(h == 'url(#head)' for h in heads)
print(json.dumps({'arrows': arrows, 'packets': packets, 'root': root.tag}))
`;
  const r = spawnSync('python3', ['-c', script, path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`XML parse failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { arrows: string[]; packets: string[]; root: string };
}

const FLAG_LETTERS: Record<string, string> = { F: 'FIN', S: 'SYN', R: 'RST', P: 'PSH', A: 'ACK', U: 'URG', E: 'ECE', C: 'CWR' };

describe.skipIf(!haveCaptures())('flow diagrams of gopacket captures', () => {
  it.skipIf(!haveTshark())('test_ethernet.pcap: two columns, arrows each way with the flags and relative seq/ack/len tshark shows', () => {
    const d = buildFlow(capture('test_ethernet.pcap'));
    expect(d.columns).toEqual(['10.1.1.2', '10.1.1.1']);
    expect(d.events).toHaveLength(10);
    const truth = tsharkFields(capture('test_ethernet.pcap'), ['ip.src', 'tcp.flags.str', 'tcp.seq', 'tcp.ack', 'tcp.len', 'frame.time_relative']);
    d.events.forEach((e, i) => {
      const [src, flags, seq, ack, len, time] = truth[i]!;
      expect(d.columns[e.from]).toBe(src);
      expect(e.to).toBe(1 - e.from);
      const names = [...flags!].filter((c) => FLAG_LETTERS[c]).map((c) => FLAG_LETTERS[c]!);
      const ours = /^\[([^\]]*)\]/.exec(e.label)![1]!.split(', ');
      expect(new Set(ours)).toEqual(new Set(names));
      expect(e.label).toContain(` seq=${seq}`);
      if (names.includes('ACK')) expect(e.label).toContain(` ack=${ack}`);
      else expect(e.label).not.toContain('ack=');
      expect(e.label).toMatch(new RegExp(` len=${len}$`));
      expect(e.time).toBeCloseTo(Number(time), 6);
    });
    const text = renderLadder(d);
    const lines = text.split('\n');
    expect(lines[1]).toMatch(/^\s+10\.1\.1\.2\s+10\.1\.1\.1$/);
    const rows = lines.filter((l) => /^\s*\d+\s+\d+\.\d{6}\s+\|/.test(l));
    expect(rows).toHaveLength(10);
    // Client -> server arrows end in '>' at the right column, server -> client start with '<'.
    const left = lines[2]!.indexOf('|');
    const right = lines[2]!.lastIndexOf('|');
    rows.forEach((row, i) => {
      expect(row[left]).toBe('|');
      expect(row[right]).toBe('|');
      if (d.events[i]!.from === 0) expect(row[right - 1]).toBe('>');
      else expect(row[left + 1]).toBe('<');
    });
    expect(rows[0]).toContain('[SYN] seq=0 len=0');
    expect(rows[1]).toContain('[SYN, ACK] seq=0 ack=1 len=0');
    expect(rows[7]).toContain('[FIN, PSH, ACK] seq=24 ack=73 len=355');
  });

  it.skipIf(!haveTshark())('test_dns.pcap: a column per host, UDP arrows from client to resolver with the DNS question', () => {
    const d = buildFlow(capture('test_dns.pcap'));
    const truth = tsharkFields(capture('test_dns.pcap'), ['ip.src', 'ip.dst', 'udp.length', 'dns.qry.name', 'dns.id']);
    const hosts: string[] = [];
    for (const [s, t] of truth) for (const h of [s!, t!]) if (!hosts.includes(h)) hosts.push(h);
    expect(d.columns).toEqual(hosts);
    expect(d.columns).toHaveLength(11);
    d.events.forEach((e, i) => {
      const [src, dst, udpLen, name, id] = truth[i]!;
      expect([d.columns[e.from], d.columns[e.to]]).toEqual([src, dst]);
      expect(e.label).toBe(`UDP len=${Number(udpLen) - 8}`);
      expect(e.detail).toContain(`DNS query ${id}`);
      expect(e.detail).toContain(name);
    });
    const text = renderLadder(d);
    expect(text.split('\n').filter((l) => l.includes('UDP len='))).toHaveLength(10);
  });

  it.skipIf(!havePython())('the SVG is well-formed XML with one arrow element per packet', () => {
    for (const name of ['test_ethernet.pcap', 'test_dns.pcap', 'test_loopback.pcap']) {
      const d = buildFlow(capture(name));
      const svg = parseSvg(renderSvg(d));
      expect(svg.root).toBe('{http://www.w3.org/2000/svg}svg');
      expect(svg.arrows).toHaveLength(d.events.length);
      expect(svg.packets).toEqual(d.events.map((e) => `frame-${e.frame}`));
      expect(svg.arrows.every((c) => /^arrow (tcp|udp|icmp|icmpv6|arp)$/.test(c))).toBe(true);
    }
  });

  it('test_loopback.pcap (one host): columns per endpoint, relative numbers from mid-connection', () => {
    const d = buildFlow(capture('test_loopback.pcap'));
    expect(d.columns).toEqual(['[::1]:58799', '[::1]:8080', '[::1]:58806']);
    expect(d.events).toHaveLength(24);
    expect(d.events[0]!.label).toBe('[PSH, ACK] seq=1 ack=1 len=484');
    expect(d.events[1]!.label).toBe('[ACK] seq=1 ack=485 len=0');
    expect(d.events[16]!.label).toBe('[SYN] seq=0 len=0');
    const byHost = buildFlow(capture('test_loopback.pcap'), { columns: 'host' });
    expect(byHost.columns).toEqual(['::1']);
    expect(renderLadder(byHost)).toContain('<-> [PSH, ACK]');
  });
});

describe('flow of a simulated network', () => {
  it('shows ARP, ICMP and TCP between hosts, and escapes text in the SVG', async () => {
    const { Network } = await import('../../src/sim/index.js');
    const net = new Network({ seed: 31, ipv6: false });
    const a = net.host('a');
    const b = net.host('b');
    net.link(a, b, { latencyMs: 1 });
    const path = join(dir, 'sim.pcap');
    net.capture(a, path);
    await net.runUntil(a.ping(b));
    await net.runUntil(a.ping('10.0.1.99', { timeoutMs: 10 }).catch(() => null));
    net.close();
    const d = buildFlow(path, { title: 'a <&> b' });
    const labels = d.events.map((e) => e.label);
    expect(labels).toContain('ARP who-has 10.0.1.2');
    expect(labels).toContain('ARP 10.0.1.2 is-at 02:00:00:00:02:00');
    expect(labels.some((l) => /^ICMP echo request id=\d+ seq=1$/.test(l))).toBe(true);
    expect(labels.some((l) => /^ICMP echo reply id=\d+ seq=1$/.test(l))).toBe(true);
    expect(d.columns.slice(0, 2)).toEqual(['10.0.1.1', '10.0.1.2']);
    const svg = renderSvg(d);
    expect(svg).toContain('a &lt;&amp;&gt; b');
    if (havePython()) expect(parseSvg(svg).arrows).toHaveLength(d.events.length);
  });
});
