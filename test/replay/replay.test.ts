import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseIPv4 } from '../../src/core/address.js';
import { decodeQuestion, encodeAnswer } from '../../src/headers/dns.js';
import { PcapReader } from '../../src/pcap/index.js';
import { decodeFrame, replay, replayDevice, type ReplayProgress } from '../../src/replay/index.js';
import type { Stack } from '../../src/adapters/stack.js';
import type { TcpEndpoint } from '../../src/transport/tcp/endpoint.js';
import { capture, haveCaptures } from '../helpers/captures.js';
import { haveTshark } from '../helpers/tshark.js';
import { tsharkFields, tsharkFollow, tsharkProblems } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const withCaptures = haveCaptures();
const withTshark = withCaptures && haveTshark();

/** A tunstack HTTP server that answers any request on :80 with `response`, then closes. */
function serveBytes(stack: Stack, response: Uint8Array, delayMs = 0): void {
  const l = stack.tcp();
  l.bind(null, 80);
  l.listen();
  const serve = (c: TcpEndpoint): void => {
    let req = '';
    c.on('readable', () => {
      for (let d = c.read(); d !== null; d = c.read()) req += Buffer.from(d).toString('latin1');
      if (req.includes('\r\n\r\n') && req !== 'answered') {
        req = 'answered';
        const send = (): void => {
          if (c.state !== 'ESTABLISHED' && c.state !== 'CLOSE_WAIT') return; // the peer gave up
          c.write(response);
          c.shutdown();
        };
        if (delayMs > 0) stack.clock.setTimeout(send, delayMs);
        else send();
      }
    });
    c.on('end', () => c.close());
  };
  l.on('connection', (c) => {
    if (c) serve(c);
    for (let x = l.accept(); x !== null; x = l.accept()) serve(x);
  });
}

describe.skipIf(!withCaptures)('replay of gopacket test_ethernet.pcap (HTTP), tunstack as the server 10.1.1.1', () => {
  it.skipIf(!withTshark)('a tunstack server serving the captured content reproduces the captured response bytes', async () => {
    const path = capture('test_ethernet.pcap');
    const truth = tsharkFollow(path); // what the real server sent, reassembled by tshark
    expect(truth.server.length).toBe(378);
    const out = join(dir, 'http.pcap');
    const r = await replay(path, { as: '10.1.1.1', out, record: 'both', setup: (stack) => serveBytes(stack, truth.server) });
    expect(r.tcp).toHaveLength(1);
    expect(r.tcp[0]).toMatchObject({ client: '10.1.1.2:44644', server: '10.1.1.1:80', status: 'compared', capturedBytes: 378, liveBytes: 378, match: true, liveFin: true });
    expect(r.ok).toBe(true);
    expect(r.injected).toBe(5);
    expect(r.fromRole).toBe(5);
    expect(r.gateTimeouts).toBe(0);
    expect(r.resolutionsAnswered).toBe(1); // the stack's ARP for 10.1.1.2
    // tshark on what was written: clean, and the same bytes as the original server's.
    expect(tsharkProblems(out)).toEqual([]);
    expect(Buffer.from(tsharkFollow(out).server).equals(Buffer.from(truth.server))).toBe(true);
    expect(Buffer.from(tsharkFollow(out).client).equals(Buffer.from(truth.client))).toBe(true);
    const http = tsharkFields(out, ['http.response.code', 'http.location']).filter((f) => f[0] !== '');
    expect(http).toEqual([['302', 'http://10.1.1.1/login.asp']]);
    // The injected segments acknowledge the live server's sequence numbers: no tshark complaints
    // about ACKs of unseen segments.
    const analysis = tsharkFields(out, ['tcp.analysis.ack_lost_segment', 'tcp.analysis.out_of_order', 'tcp.analysis.retransmission']).flat().filter(Boolean);
    expect(analysis).toEqual([]);
  });

  it('--serve-captured plays the captured server turn by turn; answers only by default', async () => {
    const out = join(dir, 'served.pcap');
    const r = await replay(capture('test_ethernet.pcap'), { as: '10.1.1.1', serveCaptured: true, out });
    expect(r.ok).toBe(true);
    expect(r.tcp[0]).toMatchObject({ match: true, liveBytes: 378 });
    const recs = PcapReader.open(out).readAll();
    expect(recs).toHaveLength(r.answers);
    // Every recorded frame comes from the stack, with the role host's MAC.
    for (const f of recs) expect(Buffer.from(f.data.subarray(6, 12)).toString('hex')).toBe('c4393a02a92a');
    if (haveTshark()) expect(tsharkProblems(out)).toEqual([]);
  });

  it('with nothing listening the stack resets the connection, and the report says mismatch', async () => {
    const out = join(dir, 'rst.pcap');
    const r = await replay(capture('test_ethernet.pcap'), { as: '10.1.1.1', out, gateTimeoutMs: 50 });
    expect(r.ok).toBe(false);
    expect(r.tcp[0]).toMatchObject({ liveBytes: 0, capturedBytes: 378, match: false, firstDifference: 0 });
    expect(r.mismatches.join('\n')).toMatch(/0 bytes served, 378 captured/);
    const recs = PcapReader.open(out).readAll();
    const rst = recs.filter((f) => f.data.length >= 54 && f.data[23] === 6 && (f.data[47]! & 0x04) !== 0);
    expect(rst.length).toBeGreaterThanOrEqual(1);
  });

  it('a slow server holds the client segments back until it has sent what they acknowledge', async () => {
    const path = capture('test_ethernet.pcap');
    const response = PcapReader.open(path)
      .readAll()
      .map((f, i) => decodeFrame(f.linkType, f.data, i + 1))
      .filter((s) => s.srcPort === 80);
    const recs = PcapReader.open(path).readAll();
    const bytes = Buffer.concat(response.map((s) => recs[s.frame - 1]!.data.subarray(s.payloadOffset, s.payloadOffset + s.payloadLength)));
    expect(bytes.length).toBe(378);
    const r = await replay(path, { as: '10.1.1.1', setup: (s) => serveBytes(s, bytes, 200) });
    expect(r.ok).toBe(true);
    expect(r.gateTimeouts).toBe(0);
    // The capture lasts 6.3 ms; the waits for the server push the replay past 200 ms.
    expect(r.elapsedMs - 2000).toBeGreaterThan(200);
    const impatient = await replay(path, { as: '10.1.1.1', setup: (s) => serveBytes(s, bytes, 200), gateTimeoutMs: 10 });
    expect(impatient.gateTimeouts).toBeGreaterThan(0);
  });

  it('keeps the original timing, scaled by speed, or none with fast', async () => {
    const path = capture('test_ethernet.pcap');
    const base = await replay(path, { as: '10.1.1.1', serveCaptured: true, tailMs: 0 });
    const twice = await replay(path, { as: '10.1.1.1', serveCaptured: true, tailMs: 0, speed: 2 });
    const fast = await replay(path, { as: '10.1.1.1', serveCaptured: true, tailMs: 0, fast: true });
    // The last injected frame (the client's FIN) is 5.654 ms after the first.
    expect(base.elapsedMs).toBeCloseTo(5.654, 2);
    expect(twice.elapsedMs).toBeCloseTo(5.654 / 2, 2);
    expect(fast.elapsedMs).toBeLessThan(1);
    for (const r of [base, twice, fast]) expect(r.ok).toBe(true);
    // Answers carry virtual time that starts at the capture's first timestamp.
    const out = join(dir, 'timing.pcap');
    await replay(path, { as: '10.1.1.1', serveCaptured: true, out, record: 'both' });
    const orig = PcapReader.open(path).readAll();
    const recs = PcapReader.open(out).readAll();
    const us = (ns: bigint): number => Number(ns / 1000n);
    expect(Math.abs(us(recs[0]!.timestampNs) - us(orig[0]!.timestampNs))).toBeLessThanOrEqual(1);
    const injectedTimes = recs.filter((f) => f.data[26] === 10 && f.data[29] === 2).map((f) => us(f.timestampNs));
    const capturedTimes = orig.filter((f) => f.data[29] === 2).map((f) => us(f.timestampNs));
    expect(injectedTimes).toHaveLength(capturedTimes.length);
    injectedTimes.forEach((t, i) => expect(Math.abs(t - capturedTimes[i]!)).toBeLessThanOrEqual(1));
  });

  it('replays through a virtual TAP device as through a NIC', async () => {
    const path = capture('test_ethernet.pcap');
    const dev = replayDevice(path);
    expect(dev.isTap).toBe(true);
    const out = join(dir, 'tap.pcap');
    const r = await replay(path, { as: '10.1.1.1', device: dev, serveCaptured: true, out });
    expect(r.ok).toBe(true);
    expect(r.tcp[0]).toMatchObject({ match: true, liveBytes: 378 });
    expect(dev.nic.addresses.map((a) => `${a.address.join('.')}/${a.prefixLength}`)).toContain('10.1.1.1/32');
    expect(Buffer.from(dev.mac).toString('hex')).toBe('c4393a02a92a');
    dev.close();
    if (haveTshark()) expect(tsharkProblems(out)).toEqual([]);
  });

  it('reports progress', async () => {
    const seen: ReplayProgress[] = [];
    await replay(capture('test_ethernet.pcap'), { as: '10.1.1.1', serveCaptured: true, progressEvery: 4, onProgress: (p) => seen.push(p) });
    expect(seen.map((p) => p.frame)).toEqual([4, 8, 10]);
    expect(seen.every((p) => p.frames === 10)).toBe(true);
    expect(seen[2]!.injected).toBe(5);
  });

  it('paces on the wall clock with realtime', async () => {
    const t0 = performance.now();
    const r = await replay(capture('test_ethernet.pcap'), { as: '10.1.1.1', serveCaptured: true, realtime: true, tailMs: 5 });
    expect(r.ok).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(6);
    expect(r.elapsedMs).toBeGreaterThanOrEqual(6);
  });
});

describe.skipIf(!withCaptures)('replay of gopacket test_dns.pcap, tunstack as the resolver 95.211.92.14', () => {
  it.skipIf(!withTshark)('answers every query with an ICMP port unreachable quoting it, after ARP', async () => {
    const out = join(dir, 'dns-unreach.pcap');
    const r = await replay(capture('test_dns.pcap'), { as: '95.211.92.14', out });
    expect(r.injected).toBe(7);
    expect(r.unrelated).toBe(3); // the queries to 95.211.92.15
    expect(r.icmp.liveErrors).toBe(7);
    expect(r.resolutionsAnswered).toBe(7);
    expect(r.ok).toBe(true); // the captured resolver did not answer within the capture either
    expect(tsharkProblems(out)).toEqual([]);
    const rows = tsharkFields(out, ['icmp.type', 'icmp.code', 'ip.src', 'ip.dst', 'udp.dstport', 'dns.id', 'arp.opcode']);
    const icmp = rows.filter((f) => f[0] === '3');
    expect(icmp).toHaveLength(7);
    const queries = tsharkFields(capture('test_dns.pcap'), ['ip.src', 'ip.dst', 'dns.id']).filter((f) => f[1] === '95.211.92.14');
    icmp.forEach((f, i) => {
      expect(f[1]).toBe('3'); // port unreachable
      expect(f[2]).toBe('95.211.92.14,' + queries[i]![0]); // outer source, quoted source
      expect(f[3]).toBe(`${queries[i]![0]},95.211.92.14`);
      expect(f[4]).toBe('53');
      expect(f[5]).toBe(queries[i]![2]); // the quoted query's DNS id
    });
    expect(rows.filter((f) => f[6] === '1')).toHaveLength(7); // ARP requests for each client
  });

  it.skipIf(!withTshark)('with a DNS server set up, answers each query; the report notes the capture had no answers', async () => {
    const out = join(dir, 'dns-answers.pcap');
    const r = await replay(capture('test_dns.pcap'), {
      as: '95.211.92.14',
      out,
      setup: (stack) => {
        const s = stack.dgram.createSocket('udp4');
        s.on('message', (msg, rinfo) => s.send(encodeAnswer(msg, decodeQuestion(msg).type === 1 ? parseIPv4('192.0.2.1') : null), rinfo.port, rinfo.address));
        s.bind(53);
      },
    });
    expect(r.udp.map((u) => u.liveReplies)).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(r.ok).toBe(false);
    expect(r.mismatches).toHaveLength(7);
    const answers = tsharkFields(out, ['dns.flags.response', 'dns.id', 'dns.a', 'dns.flags.rcode']).filter((f) => f[0] === '1');
    const ids = tsharkFields(capture('test_dns.pcap'), ['ip.dst', 'dns.id']).filter((f) => f[0] === '95.211.92.14').map((f) => f[1]);
    expect(answers.map((a) => a[1])).toEqual(ids);
    expect(answers.filter((a) => a[2] === '192.0.2.1')).toHaveLength(6); // 6 A queries, 1 AAAA (NXDOMAIN)
    expect(answers.filter((a) => a[3] === '3')).toHaveLength(1);
    expect(tsharkProblems(out)).toEqual([]);
  });

  it('fails clearly for an address that is not in the capture', async () => {
    await expect(replay(capture('test_dns.pcap'), { as: '192.0.2.99' })).rejects.toThrow(/192\.0\.2\.99 not in the capture/);
    await expect(replay(capture('test_dns.pcap'), { as: [] })).rejects.toThrow(/at least one address/);
  });
});

describe('replay of captures made by the simulator', () => {
  it('pings over IPv4 and IPv6 (ARP and NDP answered for the stack) reproduce the echo replies', async () => {
    const { Network } = await import('../../src/sim/index.js');
    const net = new Network({ seed: 21 });
    const a = net.host('a');
    const b = net.host('b');
    net.link(a, b, { latencyMs: 1 });
    const path = join(dir, 'pings.pcap');
    net.capture(b, path);
    for (let i = 0; i < 3; i++) await net.runUntil(a.ping(b));
    for (let i = 0; i < 2; i++) await net.runUntil(a.ping6(b));
    net.close();
    const out = join(dir, 'pings-out.pcap');
    const r = await replay(path, { as: [b.address, b.address6], out });
    expect(r.icmp.echoRequestsIn).toBe(5);
    expect(r.icmp.capturedEchoReplies).toBe(5);
    expect(r.icmp.liveEchoReplies).toBe(5);
    expect(r.ok).toBe(true);
    if (haveTshark()) {
      expect(tsharkProblems(out)).toEqual([]);
      const replies = tsharkFields(out, ['icmp.type', 'icmpv6.type']).filter((f) => f[0] === '0' || f[1] === '129');
      expect(replies).toHaveLength(5);
    }
  });

  it('an HTTP-like exchange over IPv6 replays against the served capture', async () => {
    const { Network } = await import('../../src/sim/index.js');
    const net = new Network({ seed: 22 });
    const client = net.host('client');
    const server = net.host('server');
    net.link(client, server, { latencyMs: 2 });
    const path = join(dir, 'v6.pcap');
    net.capture(server, path);
    const body = Buffer.alloc(20_000, 'x');
    const l = server.stack.tcp({ family: 6 });
    l.bind(null, 8080);
    l.listen();
    const serve = (c: TcpEndpoint): void => {
      c.on('readable', () => {
        for (let d = c.read(); d !== null; d = c.read()) {
          c.write(Buffer.concat([Buffer.from('HTTP/1.0 200 OK\r\n\r\n'), body]));
          c.shutdown();
        }
      });
      c.on('end', () => c.close());
    };
    l.on('connection', (c) => {
      if (c) serve(c);
      for (let x = l.accept(); x !== null; x = l.accept()) serve(x);
    });
    const c = client.stack.tcp({ family: 6 });
    let got = 0;
    const done = new Promise<void>((resolve) => {
      c.on('readable', () => {
        for (let d = c.read(); d !== null; d = c.read()) got += d.length;
      });
      c.on('end', () => {
        c.close();
        resolve();
      });
    });
    c.on('connect', () => c.write(Buffer.from('GET / HTTP/1.0\r\n\r\n')));
    c.connect(server.address6, 8080);
    await net.runUntil(done);
    await net.runUntilIdle(10_000);
    net.close();
    expect(got).toBe(19 + 20_000);
    const r = await replay(path, { as: server.address6, serveCaptured: true });
    expect(r.tcp).toHaveLength(1);
    expect(r.tcp[0]).toMatchObject({ status: 'compared', capturedBytes: 20_019, liveBytes: 20_019, match: true });
    expect(r.ok).toBe(true);
    expect(r.resolutionsAnswered).toBeGreaterThanOrEqual(1); // a neighbour advertisement for the client
  });
});

describe('replay errors name the frame', () => {
  it.skipIf(!withCaptures)('a capture cut in the middle of frame 4', async () => {
    const bytes = readFileSync(capture('test_ethernet.pcap'));
    // Header 24, then records of 16 + 74, 16 + 74, 16 + 66, 16 + 138: cut inside the fourth.
    const cut = join(dir, 'cut.pcap');
    writeFileSync(cut, bytes.subarray(0, 24 + 90 + 90 + 82 + 40));
    await expect(replay(cut, { as: '10.1.1.1' })).rejects.toThrow(/frame 4: corrupt capture: truncated/);
  });

  it('an unsupported link type', async () => {
    const { pcapHeader, pcapRecord, concat } = await import('../helpers/captures.js');
    const path = join(dir, 'wifi.pcap');
    writeFileSync(path, concat(pcapHeader(true, false, 65535, 105), pcapRecord(true, 1, 0, new Uint8Array(30))));
    await expect(replay(path, { as: '10.0.0.1' })).rejects.toThrow(/frame 1: unsupported link type 105 \(IEEE 802\.11\)/);
  });

  it('not a capture at all', async () => {
    const path = join(dir, 'text.pcap');
    writeFileSync(path, 'hello, this is not a pcap file at all');
    await expect(replay(path, { as: '10.0.0.1' })).rejects.toThrow(/frame 1: corrupt capture/);
    await expect(replay(join(dir, 'missing.pcap'), { as: '10.0.0.1' })).rejects.toThrow(/no such file/);
  });
});
