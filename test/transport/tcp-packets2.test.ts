/**
 * Packet-level TCP tests, part 2: SYN cookies and a SYN flood, TIME_WAIT and its reuse,
 * simultaneous open and close, and the timers (retransmission with backoff, zero-window probes,
 * keepalive, delayed ACKs) read off the ManualClock.
 */
import { describe, expect, it } from 'vitest';
import { TcpEndpoint } from '../../src/index.js';
import { haveTshark } from '../helpers/tshark.js';
import { A, F, P, R, RawPeer, S, flagNames, tsharkFields, type OutSeg } from './helpers/raw-peer.js';

function listen(p: RawPeer, port = 80, backlog = 128): TcpEndpoint {
  const l = p.stack.tcp();
  l.bind(null, port);
  l.listen(backlog);
  return l;
}

describe('SYN queue overflow: SYN cookies', () => {
  it('sends a cookie when the SYN queue is full and accepts the ACK that returns it', () => {
    const p = new RawPeer();
    const l = listen(p, 80, 1);
    p.send({ sport: 40001, seq: 100, flags: S, mss: 1460 });
    const normal = p.recv()!;
    expect(flagNames(normal.flags)).toBe('SA');
    expect(p.tcp.connectionCount).toBe(1);
    p.send({ sport: 40002, seq: 7000, flags: S, mss: 1460, wscale: 6, sackOk: true, ts: [1234, 0] });
    const cookie = p.recv()!;
    expect(flagNames(cookie.flags)).toBe('SA');
    expect(cookie.ack).toBe(7001);
    expect(cookie.mss).toBe(1460);
    expect(cookie.wscale).toBe(7);
    expect(cookie.sackOk).toBe(true);
    // Window scale (6) and SACK (0x10) travel in the low 6 bits of our timestamp.
    expect(cookie.tsVal & 0x3f).toBe(6 | 0x10);
    expect(cookie.tsEcr).toBe(1234);
    expect(p.tcp.stats.synCookiesSent).toBe(1);
    expect(p.tcp.connectionCount).toBe(1); // no state kept for the cookie
    p.send({ sport: 40002, seq: 7001, ack: cookie.seq + 1, flags: A, window: 100, ts: [1235, cookie.tsVal] });
    expect(p.tcp.stats.synCookiesValidated).toBe(1);
    const c = l.accept()!;
    expect(c.remotePort).toBe(40002);
    expect(c.state).toBe('ESTABLISHED');
    const info = c.info();
    expect(info.mss).toBe(1460 - 12);
    expect(info.sndWscale).toBe(6);
    expect(info.sndWnd).toBe(100 << 6);
    expect(info.sack).toBe(true);
    // It works: data both ways.
    p.send({ sport: 40002, seq: 7001, ack: cookie.seq + 1, flags: A | P, window: 100, ts: [1236, cookie.tsVal], payload: new TextEncoder().encode('hi') });
    expect(new TextDecoder().decode(c.read()!)).toBe('hi');
  });

  it('encodes the MSS from the table and resets a forged cookie', () => {
    const p = new RawPeer();
    listen(p, 80, 0);
    p.send({ sport: 40003, seq: 1, flags: S, mss: 1350 });
    const ck = p.recv()!;
    expect(ck.ts).toBe(false);
    expect(ck.wscale).toBe(-1); // nothing the cookie cannot carry
    p.send({ sport: 40003, seq: 2, ack: ck.seq + 1_000_001, flags: A });
    const r = p.recv()!;
    expect(flagNames(r.flags)).toBe('R');
    expect(p.tcp.stats.synCookiesFailed).toBe(1);
    p.send({ sport: 40003, seq: 2, ack: ck.seq + 1, flags: A, window: 65535 });
    expect(p.tcp.stats.synCookiesValidated).toBe(1);
    // 1350 falls to the 1300 entry of the table.
    expect(p.tcp.stats.currEstab).toBe(1);
  });

  it('refuses a cookie older than the validity period', () => {
    const p = new RawPeer();
    listen(p, 80, 0);
    p.send({ sport: 40003, seq: 1, flags: S, mss: 1460 });
    const ck = p.recv()!;
    p.clock.advance(4 * 60_000);
    p.send({ sport: 40003, seq: 2, ack: ck.seq + 1, flags: A });
    expect(flagNames(p.recv()!.flags)).toBe('R');
  });

  it('survives a flood of 100k SYNs with bounded state and still serves a real client', () => {
    const p = new RawPeer();
    p.keep = false;
    const l = listen(p, 80, 64);
    for (let i = 0; i < 100_000; i++) {
      p.send({ src: Uint8Array.of(10, 0, 0, 3 + (i % 250)), sport: 1024 + (i % 60000), seq: i * 7919, flags: S, mss: 1460 });
      if ((i & 1023) === 1023) p.ch.drain();
    }
    p.ch.drain();
    expect(p.tcp.connectionCount).toBeLessThanOrEqual(64);
    expect(p.tcp.stats.synCookiesSent).toBeGreaterThan(99_000);
    const heapNow = process.memoryUsage().heapUsed;
    // A legitimate client.
    p.send({ sport: 55555, seq: 42, flags: S, mss: 1460, sackOk: true, ts: [1, 0], wscale: 7 });
    const sa = p.recv()!;
    expect(flagNames(sa.flags)).toBe('SA');
    p.send({ sport: 55555, seq: 43, ack: sa.seq + 1, flags: A, ts: [2, sa.tsVal], window: 1000 });
    const c = l.accept()!;
    expect(c.remotePort).toBe(55555);
    c.write(new TextEncoder().encode('served'));
    const d = p.recv()!;
    expect(new TextDecoder().decode(d.payload)).toBe('served');
    // Embryonic connections time out; nothing grows.
    p.clock.advance(120_000);
    p.ch.drain();
    expect(p.tcp.connectionCount).toBe(1);
    expect(process.memoryUsage().heapUsed - heapNow).toBeLessThan(64 << 20);
  });
});

describe('TIME_WAIT', () => {
  /** Server side closes first: it ends in TIME_WAIT. */
  function activeCloseByServer(p: RawPeer) {
    const l = listen(p);
    const h = p.handshakeIn({ ts: false });
    const c = l.accept()!;
    let closed = false;
    c.on('close', () => (closed = true));
    c.close();
    const fin = p.recv()!;
    expect(flagNames(fin.flags)).toBe('FA');
    expect(c.state).toBe('FIN_WAIT_1');
    p.send({ seq: h.peerNxt, ack: fin.seq + 1, flags: A });
    expect(c.state).toBe('FIN_WAIT_2');
    p.send({ seq: h.peerNxt, ack: fin.seq + 1, flags: F | A });
    const last = p.recv()!;
    expect(flagNames(last.flags)).toBe('A');
    expect(last.ack).toBe(h.peerNxt + 1);
    expect(closed).toBe(true);
    expect(c.state).toBe('CLOSED');
    expect(p.tcp.stats.timeWaitCount).toBe(1);
    return { l, c, fin, ...h };
  }

  it('re-ACKs a retransmitted FIN and expires after 2MSL (settable)', () => {
    const p = new RawPeer();
    p.tcp.timeWaitMs = 10_000;
    const { fin, peerNxt } = activeCloseByServer(p);
    p.clock.advance(6000);
    p.send({ seq: peerNxt, ack: fin.seq + 1, flags: F | A });
    const again = p.recv()!;
    expect([flagNames(again.flags), again.seq, again.ack]).toEqual(['A', fin.seq + 1, peerNxt + 1]);
    // 2MSL restarted at t=6000: still there just before 16 s, gone at 16 s.
    p.clock.advance(9999);
    expect(p.tcp.stats.timeWaitCount).toBe(1);
    p.clock.advance(1);
    expect(p.tcp.stats.timeWaitCount).toBe(0);
    expect(p.tcp.stats.timeWaitExpired).toBe(1);
    // Now the tuple is unknown: RST.
    p.send({ seq: peerNxt + 1, ack: fin.seq + 1, flags: A });
    expect(flagNames(p.recv()!.flags)).toBe('R');
  });

  it('lets a new SYN with a higher sequence number reuse the 4-tuple (ISN = snd_nxt + 65537)', () => {
    const p = new RawPeer();
    const { fin, peerNxt } = activeCloseByServer(p);
    // An old duplicate SYN (lower sequence number) only gets an ACK.
    p.send({ seq: peerNxt - 500, flags: S });
    const ack = p.recv()!;
    expect(flagNames(ack.flags)).toBe('A');
    expect(ack.ack).toBe(peerNxt + 1);
    p.send({ seq: peerNxt + 100_000, flags: S, mss: 1460 });
    const sa = p.recv()!;
    expect(flagNames(sa.flags)).toBe('SA');
    expect(sa.seq).toBe((fin.seq + 1 + 65537) >>> 0);
    expect(sa.ack).toBe(peerNxt + 100_001);
    expect(p.tcp.stats.timeWaitReused).toBe(1);
    expect(p.tcp.stats.timeWaitCount).toBe(0);
  });

  it('a RST in window kills the record', () => {
    const p = new RawPeer();
    const { peerNxt } = activeCloseByServer(p);
    p.send({ seq: peerNxt + 1, flags: R });
    expect(p.tcp.stats.timeWaitCount).toBe(0);
    expect(p.tcp.stats.timeWaitKilled).toBe(1);
  });

  it('holds the port against bind() unless reuseAddress is set (SO_REUSEADDR)', () => {
    const p = new RawPeer();
    const { l } = activeCloseByServer(p);
    l.close();
    expect(() => p.stack.tcp().bind(null, 80)).toThrow(/EADDRINUSE/);
    const again = p.stack.tcp();
    again.bind(null, 80, { reuseAddress: true });
    again.listen();
    expect(again.state).toBe('LISTEN');
  });

  it.skipIf(!haveTshark())('tshark finds no errors in close and reuse', () => {
    const p = new RawPeer();
    const { peerNxt } = activeCloseByServer(p);
    p.send({ seq: peerNxt + 100_000, flags: S, mss: 1460 });
    p.recv();
    const d = tsharkFields(p.packets, ['tcp.flags']);
    expect(d.errors).toEqual([]);
  });
});

describe('simultaneous open and close', () => {
  it('goes SYN_SENT -> SYN_RECEIVED -> ESTABLISHED on crossing SYNs', () => {
    const p = new RawPeer();
    const c = p.stack.tcp();
    let connected = false;
    c.on('connect', () => (connected = true));
    c.connect('10.0.0.1', 80);
    const syn = p.recv()!;
    expect(flagNames(syn.flags)).toBe('S');
    const port = syn.sport;
    p.send({ sport: 80, dport: port, seq: 9000, flags: S, mss: 1460, wscale: 2, sackOk: true, ts: [50, 0] });
    expect(c.state).toBe('SYN_RECEIVED');
    const sa = p.recv()!;
    expect(flagNames(sa.flags)).toBe('SA');
    expect([sa.seq, sa.ack]).toEqual([syn.seq, 9001]);
    expect(sa.wscale).toBe(7);
    expect(sa.tsEcr).toBe(50);
    p.send({ sport: 80, dport: port, seq: 9000, ack: syn.seq + 1, flags: S | A, mss: 1460, wscale: 2, sackOk: true, ts: [51, sa.tsVal], window: 5000 });
    expect(c.state).toBe('ESTABLISHED');
    expect(connected).toBe(true);
    expect(c.info().sndWnd).toBe(5000); // unscaled on a SYN
    expect(c.info().sndWscale).toBe(2);
    c.write(new Uint8Array([1, 2, 3]));
    const d = p.recvAll().find((s) => s.payload.length > 0)!;
    expect([d.seq, d.ack]).toEqual([syn.seq + 1, 9001]);
  });

  it('goes FIN_WAIT_1 -> CLOSING -> TIME_WAIT on crossing FINs', () => {
    const p = new RawPeer();
    const l = listen(p);
    const h = p.handshakeIn({ ts: false });
    const c = l.accept()!;
    c.close();
    const fin = p.recv()!;
    p.send({ seq: h.peerNxt, ack: fin.seq, flags: F | A });
    expect(c.state).toBe('CLOSING');
    const ack = p.recv()!;
    expect([flagNames(ack.flags), ack.ack]).toEqual(['A', h.peerNxt + 1]);
    p.send({ seq: h.peerNxt + 1, ack: fin.seq + 1, flags: A });
    expect(c.state).toBe('CLOSED');
    expect(p.tcp.stats.timeWaitCount).toBe(1);
  });
});

/** Active open from our stack to the raw peer, with an RTT of `rtt` ms. */
function activeOpen(p: RawPeer, rtt: number, opts: { ts?: boolean; window?: number } = {}) {
  const c = p.stack.tcp();
  c.connect('10.0.0.1', 80);
  const syn = p.recv()!;
  p.clock.advance(rtt);
  const ts = opts.ts ?? false;
  p.send({ sport: 80, dport: syn.sport, seq: 500, ack: syn.seq + 1, flags: S | A, mss: 1460, ...(ts ? { ts: [7, syn.tsVal] as [number, number] } : {}), window: opts.window ?? 65535 });
  expect(c.state).toBe('ESTABLISHED');
  const ack = p.recv()!;
  expect(flagNames(ack.flags)).toBe('A');
  return { c, syn, port: syn.sport, iss: syn.seq, peerNxt: 501 };
}

describe('retransmission timing (RFC 6298, Linux floor 200 ms)', () => {
  it('retransmits a SYN at 1, 3, 7, 15, 31, 63 s and fails with ETIMEDOUT at 127 s', () => {
    const p = new RawPeer();
    const c = p.stack.tcp();
    let err = '';
    let errAt = 0;
    c.on('error', (e) => {
      err = e.code;
      errAt = p.clock.now();
    });
    c.connect('10.0.0.1', 80);
    const first = p.recv()!;
    expect(first.at).toBe(0);
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      const s = p.waitSeg(200_000, 100)!;
      expect(s.seq).toBe(first.seq);
      expect(flagNames(s.flags)).toBe('S');
      times.push(s.at);
    }
    expect(times).toEqual([1000, 3000, 7000, 15000, 31000, 63000]);
    p.clock.advance(100_000);
    expect(err).toBe('ETIMEDOUT');
    expect(errAt).toBe(127_000);
    expect(p.recv()).toBeNull();
    expect(p.tcp.stats.attemptFails).toBe(1);
  });

  it('backs off the data RTO from SRTT + max(4 RTTVAR, 200) and gives up after tcp_retries2', () => {
    const p = new RawPeer();
    p.tcp.retries2 = 4;
    const { c, iss } = activeOpen(p, 100);
    expect(c.info().rttMs).toBe(100);
    expect(c.info().rtoMs).toBe(300);
    let err = '';
    c.on('error', (e) => (err = e.code));
    const t0 = p.clock.now();
    c.write(new Uint8Array(100));
    const d0 = p.recv()!;
    expect([d0.seq, d0.payload.length]).toEqual([iss + 1, 100]);
    const at: number[] = [];
    for (let i = 0; i < 4; i++) {
      const s = p.waitSeg(100_000)!;
      expect(s.seq).toBe(iss + 1);
      at.push(s.at - t0);
    }
    expect(at).toEqual([300, 900, 2100, 4500]);
    expect(c.info().backoff).toBe(4);
    p.clock.advance(4800);
    expect(err).toBe('ETIMEDOUT');
    expect(p.tcp.stats.rtoExpirations).toBe(4);
    expect(p.tcp.stats.abortOnTimeout).toBe(1);
  });

  it('honours TCP_USER_TIMEOUT instead of the retry count', () => {
    const p = new RawPeer();
    const { c } = activeOpen(p, 100);
    c.setUserTimeout(1000);
    let errAt = -1;
    c.on('error', (e) => {
      expect(e.code).toBe('ETIMEDOUT');
      errAt = p.clock.now();
    });
    const t0 = p.clock.now();
    c.write(new Uint8Array(10));
    p.clock.advance(10_000);
    // First retransmission at 300 ms starts the clock; the timeout fires on the first RTO past 1 s.
    expect(errAt - t0).toBe(2100);
  });

  it('resets the backoff when new data is acknowledged', () => {
    const p = new RawPeer();
    const { c, iss, port } = activeOpen(p, 100);
    c.write(new Uint8Array(10));
    p.recv();
    p.waitSeg(1000); // retransmission at 300
    expect(c.info().backoff).toBe(1);
    p.send({ sport: 80, dport: port, seq: 501, ack: iss + 11, flags: A });
    expect(c.info().backoff).toBe(0);
    expect(c.info().cwnd).toBeGreaterThan(0);
  });
});

describe('zero-window probes', () => {
  it('probes a closed window at RTO with exponential backoff, and sends when it opens', () => {
    const p = new RawPeer();
    const { c, iss, port } = activeOpen(p, 100, { window: 0 });
    const t0 = p.clock.now();
    c.write(new Uint8Array(50));
    expect(p.recv()).toBeNull();
    const at: number[] = [];
    for (let i = 0; i < 4; i++) {
      const s = p.waitSeg(100_000)!;
      // Linux's probe: an old sequence number, no data.
      expect([flagNames(s.flags), s.seq, s.payload.length]).toEqual(['A', iss, 0]);
      at.push(s.at - t0);
      p.send({ sport: 80, dport: port, seq: 501, ack: iss + 1, flags: A, window: 0 });
    }
    expect(at).toEqual([300, 900, 2100, 4500]);
    expect(p.tcp.stats.zeroWindowProbes).toBe(4);
    p.send({ sport: 80, dport: port, seq: 501, ack: iss + 1, flags: A, window: 1000 });
    const d = p.recv()!;
    expect([d.seq, d.payload.length]).toEqual([iss + 1, 50]);
  });
});

describe('keepalive', () => {
  it('probes after idle, every interval, then resets with ETIMEDOUT after count probes', () => {
    const p = new RawPeer();
    const { c, iss, port } = activeOpen(p, 10);
    let err = '';
    c.on('error', (e) => (err = e.code));
    const t0 = p.clock.now();
    c.setKeepAlive(true, 1000, 200, 3);
    const probes: OutSeg[] = [];
    for (let i = 0; i < 3; i++) probes.push(p.waitSeg(5000)!);
    expect(probes.map((s) => s.at - t0)).toEqual([1000, 1200, 1400]);
    for (const s of probes) expect([flagNames(s.flags), s.seq, s.payload.length]).toEqual(['A', iss, 0]);
    const rst = p.waitSeg(5000)!;
    expect(rst.at - t0).toBe(1600);
    expect(flagNames(rst.flags)).toBe('RA');
    expect(err).toBe('ETIMEDOUT');
    void port;
  });

  it('an answered probe keeps the connection', () => {
    const p = new RawPeer();
    const { c, iss, port } = activeOpen(p, 10);
    c.setKeepAlive(true, 1000, 200, 2);
    for (let i = 0; i < 5; i++) {
      const s = p.waitSeg(5000)!;
      expect(s.seq).toBe(iss);
      p.send({ sport: 80, dport: port, seq: 501, ack: iss + 1, flags: A });
    }
    expect(c.state).toBe('ESTABLISHED');
    expect(p.tcp.stats.keepAliveProbes).toBe(5);
  });

  it.skipIf(!haveTshark())('tshark sees keep-alives and zero-window probes, no errors', () => {
    const p = new RawPeer();
    const { c, port, iss } = activeOpen(p, 10, { window: 0 });
    c.write(new Uint8Array(5));
    const s = p.waitSeg(5000)!;
    p.send({ sport: 80, dport: port, seq: 501, ack: iss + 1, flags: A, window: 100 });
    p.recv();
    c.setKeepAlive(true, 1000, 200, 2);
    p.send({ sport: 80, dport: port, seq: 501, ack: iss + 6, flags: A, window: 100 });
    p.waitSeg(5000);
    const d = tsharkFields(p.packets, ['tcp.analysis.keep_alive', 'tcp.analysis.zero_window_probe', 'tcp.seq_raw']);
    expect(d.errors).toEqual([]);
    expect(d.rows.some((r) => (r['tcp.analysis.keep_alive'] ?? []).length > 0)).toBe(true);
    void s;
  });
});

describe('delayed ACKs', () => {
  it('ACKs quickly at the start, then every second full segment, and a lone segment after 40 ms', () => {
    const p = new RawPeer();
    const l = listen(p);
    const h = p.handshakeIn({ ts: false });
    const c = l.accept()!;
    let seq = h.peerNxt;
    const seg = (): OutSeg[] => {
      p.send({ seq, ack: h.ourIsn + 1, flags: A, payload: new Uint8Array(1000) });
      seq += 1000;
      while (c.read() !== null);
      return p.recvAll();
    };
    // 16 quick ACKs.
    for (let i = 0; i < 16; i++) expect(seg().length).toBe(1);
    // Then one ACK per two full segments.
    expect(seg().length).toBe(0);
    const two = seg();
    expect(two.length).toBe(1);
    expect(two[0]!.ack).toBe(seq);
    // A lone segment: ACKed by the delayed-ACK timer 40 ms later.
    const t = p.clock.now();
    expect(seg().length).toBe(0);
    const late = p.waitSeg(500)!;
    expect(late.at - t).toBe(40);
    expect(late.ack).toBe(seq);
    expect(p.tcp.stats.delayedAcks).toBe(1);
  });
});

describe('out-of-order data, SACK and D-SACK', () => {
  it('keeps out-of-order data, SACKs it, reports duplicates and merges when the hole fills', () => {
    const p = new RawPeer();
    const l = listen(p);
    const h = p.handshakeIn({ ts: true });
    const c = l.accept()!;
    const s0 = h.peerNxt;
    const data = new Uint8Array(3000);
    for (let i = 0; i < data.length; i++) data[i] = i;
    const send = (off: number, len: number): void =>
      p.send({ seq: s0 + off, ack: h.ourIsn + 1, flags: A, ts: [200, 0], payload: data.subarray(off, off + len) });
    send(2000, 1000);
    let a = p.recv()!;
    expect(a.ack).toBe(s0);
    expect(a.sack).toEqual([[s0 + 2000, s0 + 3000]]);
    send(0, 1000);
    a = p.recv()!;
    expect(a.ack).toBe(s0 + 1000);
    expect(a.sack).toEqual([[s0 + 2000, s0 + 3000]]);
    send(0, 1000); // duplicate: D-SACK first
    a = p.recv()!;
    expect(a.sack).toEqual([[s0, s0 + 1000], [s0 + 2000, s0 + 3000]]);
    send(500, 2000); // overlaps both sides, fills the hole
    a = p.recv()!;
    expect(a.ack).toBe(s0 + 3000);
    const got = new Uint8Array(3000);
    let n = 0;
    for (let r = c.read(); r; r = c.read()) {
      got.set(r, n);
      n += r.length;
    }
    expect(n).toBe(3000);
    expect(got).toEqual(data);
    expect(p.tcp.stats.oooSegs).toBe(1);
  });

  it.skipIf(!haveTshark())('tshark reads the SACK blocks and timestamps as sent', () => {
    const p = new RawPeer();
    listen(p);
    const h = p.handshakeIn({ ts: true });
    p.send({ seq: h.peerNxt + 1000, ack: h.ourIsn + 1, flags: A, ts: [300, 0], payload: new Uint8Array(500) });
    const a = p.recv()!;
    const d = tsharkFields(p.packets, ['tcp.options.sack_le', 'tcp.options.sack_re', 'tcp.options.timestamp.tsval', 'tcp.options.timestamp.tsecr']);
    expect(d.errors).toEqual([]);
    const r = d.rows[d.rows.length - 1]!;
    expect(r['tcp.options.sack_le']).toEqual([String(h.peerNxt + 1000)]);
    expect(r['tcp.options.sack_re']).toEqual([String(h.peerNxt + 1500)]);
    expect(r['tcp.options.timestamp.tsval']).toEqual([String(a.tsVal)]);
    // RFC 7323 4.3: an out-of-order segment does not update TS.Recent; the handshake's value is echoed.
    expect(r['tcp.options.timestamp.tsecr']).toEqual(['101']);
  });
});

describe('windows and closing timers', () => {
  it('advertises its window scaled by the shift it announced, and shrinks it as data queues', () => {
    const p = new RawPeer();
    const l = listen(p);
    const h = p.handshakeIn({ ts: false, wscale: 7 });
    const c = l.accept()!;
    p.send({ seq: h.peerNxt, ack: h.ourIsn + 1, flags: A, payload: new Uint8Array(1000) });
    const a = p.recv()!;
    // 128 KiB receive buffer, shift 7: (131072 - 1000) >> 7 = 1016 (rounded down to the granularity).
    expect(a.window).toBe((131072 - 1000) >> 7);
    expect(c.info().rcvWscale).toBe(7);
  });

  it('an orphaned FIN_WAIT_2 connection goes away after finTimeoutMs', () => {
    const p = new RawPeer();
    p.tcp.finTimeoutMs = 5000;
    const l = listen(p);
    const h = p.handshakeIn({ ts: false });
    const c = l.accept()!;
    let closedAt = -1;
    c.on('close', () => (closedAt = p.clock.now()));
    const t0 = p.clock.now();
    c.close();
    const fin = p.recv()!;
    p.send({ seq: h.peerNxt, ack: fin.seq + 1, flags: A });
    expect(c.state).toBe('FIN_WAIT_2');
    p.clock.advance(4999);
    expect(c.state).toBe('FIN_WAIT_2');
    p.clock.advance(1);
    expect(c.state).toBe('CLOSED');
    expect(closedAt - t0).toBe(5000);
    expect(p.tcp.connectionCount).toBe(0);
  });

  it('retransmits its FIN in LAST_ACK until it is acknowledged', () => {
    const p = new RawPeer();
    const l = listen(p);
    const h = p.handshakeIn({ ts: false });
    const c = l.accept()!;
    p.send({ seq: h.peerNxt, ack: h.ourIsn + 1, flags: F | A });
    expect(c.state).toBe('CLOSE_WAIT');
    p.recv(); // ACK of the FIN
    c.close();
    expect(c.state).toBe('LAST_ACK');
    const fin = p.recv()!;
    expect(flagNames(fin.flags)).toBe('FA');
    const again = p.waitSeg(5000)!;
    expect([flagNames(again.flags), again.seq]).toEqual(['FA', fin.seq]);
    p.send({ seq: h.peerNxt + 1, ack: fin.seq + 1, flags: A });
    expect(c.state).toBe('CLOSED');
    expect(p.tcp.connectionCount).toBe(0);
  });

  it('a RST to an embryonic connection removes it quietly; the listener stays', () => {
    const p = new RawPeer();
    const l = listen(p);
    p.send({ seq: 100, flags: S });
    const sa = p.recv()!;
    expect(p.tcp.connectionCount).toBe(1);
    p.send({ seq: 101, flags: R });
    expect(p.tcp.connectionCount).toBe(0);
    expect(l.state).toBe('LISTEN');
    expect(p.recv()).toBeNull();
    void sa;
  });
});
