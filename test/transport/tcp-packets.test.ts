/**
 * Packet-level TCP tests: crafted segments go into a NIC, and the exact segments the stack sends
 * back are checked (flags, sequence and acknowledgment numbers, window, options), with timing read
 * from the ManualClock. tshark dissects the exchanges where it is installed.
 */
import { describe, expect, it } from 'vitest';
import { TcpEndpoint, type TunstackError } from '../../src/index.js';
import { haveTshark } from '../helpers/tshark.js';
import { A, F, P, PEER, R, RawPeer, S, flagNames, tsharkFields, US } from './helpers/raw-peer.js';

function listen(p: RawPeer, port = 80, backlog = 128): TcpEndpoint {
  const l = p.stack.tcp();
  l.bind(null, port);
  l.listen(backlog);
  return l;
}

describe('RST for segments to a closed port (RFC 9293 3.10.7.1)', () => {
  it('answers a SYN with RST,ACK (seq 0, ack = SEG.SEQ + SEG.LEN)', () => {
    const p = new RawPeer();
    p.send({ seq: 5000, flags: S, mss: 1460 });
    const r = p.recv()!;
    expect(flagNames(r.flags)).toBe('RA');
    expect(r.seq).toBe(0);
    expect(r.ack).toBe(5001);
    expect(r.window).toBe(0);
    expect(r.hl).toBe(20);
    expect([r.sport, r.dport, r.src, r.dst]).toEqual([80, 40000, '10.0.0.2', '10.0.0.1']);
    expect(p.recv()).toBeNull();
  });

  it('counts data and FIN in SEG.LEN for a segment without ACK', () => {
    const p = new RawPeer();
    p.send({ seq: 0xfffffffe, flags: F | P, payload: new Uint8Array(10) });
    const r = p.recv()!;
    expect(flagNames(r.flags)).toBe('RA');
    expect(r.ack).toBe((0xfffffffe + 11) >>> 0);
  });

  it('answers a segment carrying ACK with RST, seq = SEG.ACK, no ACK flag', () => {
    const p = new RawPeer();
    p.send({ seq: 1, ack: 0xdeadbeef, flags: A | P, payload: new Uint8Array(3) });
    const r = p.recv()!;
    expect(flagNames(r.flags)).toBe('R');
    expect(r.seq).toBe(0xdeadbeef);
    expect(r.ack).toBe(0);
  });

  it('never answers a RST', () => {
    const p = new RawPeer();
    p.send({ seq: 1, flags: R });
    p.send({ seq: 1, ack: 2, flags: R | A });
    expect(p.recv()).toBeNull();
    expect(p.tcp.stats.outRsts).toBe(0);
  });

  it.skipIf(!haveTshark())('tshark agrees on the resets', () => {
    const p = new RawPeer();
    p.send({ seq: 5000, flags: S, mss: 1460 });
    p.recv();
    p.send({ seq: 1, ack: 77, flags: A });
    p.recv();
    const d = tsharkFields(p.packets, ['tcp.flags.reset', 'tcp.flags.ack', 'tcp.seq_raw', 'tcp.ack_raw']);
    expect(d.errors).toEqual([]);
    expect(d.rows[1]!['tcp.flags.reset']).toEqual(['1']);
    expect(d.rows[1]!['tcp.flags.ack']).toEqual(['1']);
    expect(d.rows[1]!['tcp.ack_raw']).toEqual(['5001']);
    expect(d.rows[3]!['tcp.flags.ack']).toEqual(['0']);
    expect(d.rows[3]!['tcp.seq_raw']).toEqual(['77']);
  });
});

describe('passive open', () => {
  it('answers a SYN with a SYN-ACK carrying MSS, SACK-permitted, timestamps and window scale', () => {
    const p = new RawPeer();
    const l = listen(p);
    p.send({ seq: 1000, flags: S, mss: 1400, wscale: 5, sackOk: true, ts: [555, 0], window: 29200 });
    const sa = p.recv()!;
    expect(flagNames(sa.flags)).toBe('SA');
    expect(sa.ack).toBe(1001);
    expect(sa.mss).toBe(1460); // our MTU 1500 - 40
    expect(sa.sackOk).toBe(true);
    expect(sa.ts).toBe(true);
    expect(sa.tsEcr).toBe(555);
    expect(sa.wscale).toBe(7); // 6 MiB bound
    expect(sa.window).toBe(65535); // never scaled on a SYN
    expect(p.tcp.stats.passiveOpens).toBe(1);
    expect(l.accept()).toBeNull();
    let announced: TcpEndpoint | null = null;
    l.on('connection', (c) => (announced = c));
    p.send({ seq: 1001, ack: sa.seq + 1, flags: A, window: 1000, ts: [556, sa.tsVal] });
    expect(announced).not.toBeNull();
    const c = announced! as TcpEndpoint;
    expect(c.state).toBe('ESTABLISHED');
    expect(c.remoteAddress).toBe('10.0.0.1');
    expect(c.remotePort).toBe(40000);
    const info = c.info();
    expect(info.sndWnd).toBe(1000 << 5);
    expect(info.mss).toBe(1400 - 12);
    expect(info.sack && info.timestamps).toBe(true);
    expect(p.tcp.stats.currEstab).toBe(1);
  });

  it('offers only what the SYN offered, and uses MSS 536 when the SYN has none', () => {
    const p = new RawPeer();
    const l = listen(p);
    p.send({ seq: 1, flags: S });
    const sa = p.recv()!;
    expect(sa.sackOk).toBe(false);
    expect(sa.ts).toBe(false);
    expect(sa.wscale).toBe(-1);
    expect(sa.mss).toBe(1460);
    expect(sa.hl).toBe(24);
    p.send({ seq: 2, ack: sa.seq + 1, flags: A, window: 65535 });
    const c = l.accept()!;
    expect(c.info().mss).toBe(536);
    expect(c.info().rcvWscale).toBe(0);
    // Data goes out in 536-byte segments; Nagle holds the short tail while data is unacknowledged.
    c.write(new Uint8Array(2000));
    const segs = p.recvAll();
    expect(segs.map((s) => s.payload.length)).toEqual([536, 536, 536]);
    p.send({ seq: 2, ack: segs[2]!.seq + 536, flags: A, window: 65535 });
    const tail = p.recvAll();
    expect(tail.map((s) => s.payload.length)).toEqual([392]);
    expect(tail[0]!.flags & P).toBe(P);
  });

  it('retransmits the SYN-ACK on a retransmitted SYN and on its timer (1 s, doubling)', () => {
    const p = new RawPeer();
    listen(p);
    p.send({ seq: 1, flags: S, mss: 1460 });
    const first = p.recv()!;
    p.send({ seq: 1, flags: S, mss: 1460 });
    const again = p.recv()!;
    expect(again.seq).toBe(first.seq);
    expect(flagNames(again.flags)).toBe('SA');
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = p.waitSeg(100_000, 10)!;
      expect(s.seq).toBe(first.seq);
      times.push(s.at);
    }
    expect(times).toEqual([1000, 3000, 7000, 15000, 31000]);
    // tcp_synack_retries = 5: the embryonic connection is dropped at 63 s.
    p.clock.advance(40_000);
    expect(p.recvAll()).toEqual([]);
    expect(p.tcp.connectionCount).toBe(0);
  });

  it('resets an ACK whose number is wrong for the SYN-ACK', () => {
    const p = new RawPeer();
    listen(p);
    p.send({ seq: 1, flags: S });
    const sa = p.recv()!;
    p.send({ seq: 2, ack: sa.seq + 5, flags: A });
    const r = p.recv()!;
    expect(flagNames(r.flags)).toBe('R');
    expect(r.seq).toBe((sa.seq + 5) >>> 0);
  });

  it.skipIf(!haveTshark())('tshark reads the SYN-ACK options as sent', () => {
    const p = new RawPeer();
    listen(p);
    p.send({ seq: 1000, flags: S, mss: 1400, wscale: 5, sackOk: true, ts: [555, 0] });
    const sa = p.recv()!;
    const d = tsharkFields(p.packets, ['tcp.options.mss_val', 'tcp.options.wscale.shift', 'tcp.options.sack_perm', 'tcp.options.timestamp.tsval', 'tcp.options.timestamp.tsecr', 'tcp.window_size_value']);
    expect(d.errors).toEqual([]);
    const r = d.rows[1]!;
    expect(r['tcp.options.mss_val']).toEqual(['1460']);
    expect(r['tcp.options.wscale.shift']).toEqual(['7']);
    expect(r['tcp.options.sack_perm']!.length).toBe(1);
    expect(r['tcp.options.timestamp.tsval']).toEqual([String(sa.tsVal)]);
    expect(r['tcp.options.timestamp.tsecr']).toEqual(['555']);
    expect(r['tcp.window_size_value']).toEqual(['65535']);
  });
});

/** An established connection from the raw peer to a listener on `p`; returns the server side. */
function established(p: RawPeer, opts: Parameters<RawPeer['handshakeIn']>[0] = {}) {
  const l = listen(p);
  const h = p.handshakeIn(opts);
  const c = l.accept()!;
  expect(c.state).toBe('ESTABLISHED');
  return { l, c, ...h };
}

describe('RST and SYN acceptance in synchronized states (RFC 5961)', () => {
  it('resets on an exact RST, with ECONNRESET', () => {
    const p = new RawPeer();
    const { c, peerNxt } = established(p, { ts: false });
    const errors: string[] = [];
    let closed = false;
    c.on('error', (e: TunstackError) => errors.push(e.code));
    c.on('close', () => (closed = true));
    p.send({ seq: peerNxt, flags: R });
    expect(errors).toEqual(['ECONNRESET']);
    expect(closed).toBe(true);
    expect(c.state).toBe('CLOSED');
    expect(p.tcp.stats.estabResets).toBe(1);
    expect(p.tcp.stats.currEstab).toBe(0);
    expect(p.recv()).toBeNull();
  });

  it('answers an in-window inexact RST with a challenge ACK and stays up', () => {
    const p = new RawPeer();
    const { c, peerNxt, ourIsn } = established(p, { ts: false });
    p.send({ seq: peerNxt + 100, flags: R });
    const ch = p.recv()!;
    expect(flagNames(ch.flags)).toBe('A');
    expect(ch.seq).toBe(ourIsn + 1);
    expect(ch.ack).toBe(peerNxt);
    expect(c.state).toBe('ESTABLISHED');
    expect(p.tcp.stats.challengeAcks).toBe(1);
  });

  it('ignores a RST outside the window', () => {
    const p = new RawPeer();
    const { c, peerNxt } = established(p, { ts: false });
    p.send({ seq: peerNxt + 10_000_000, flags: R });
    p.send({ seq: peerNxt - 5, flags: R });
    expect(p.recv()).toBeNull();
    expect(c.state).toBe('ESTABLISHED');
    expect(p.tcp.stats.rstsIgnored).toBe(2);
  });

  it('answers a SYN in ESTABLISHED with a challenge ACK, rate limited', () => {
    const p = new RawPeer();
    p.tcp.challengeAckLimit = 2;
    const { c, peerNxt, ourIsn } = established(p, { ts: false });
    for (let i = 0; i < 3; i++) p.send({ seq: peerNxt + 7, flags: S });
    const acks = p.recvAll();
    expect(acks.length).toBe(2);
    for (const a of acks) {
      expect(flagNames(a.flags)).toBe('A');
      expect([a.seq, a.ack]).toEqual([ourIsn + 1, peerNxt]);
    }
    expect(p.tcp.stats.challengeAcks).toBe(2);
    expect(p.tcp.stats.challengeAcksSuppressed).toBe(1);
    expect(c.state).toBe('ESTABLISHED');
    p.clock.advance(1000);
    p.send({ seq: peerNxt + 7, flags: S });
    expect(p.recvAll().length).toBe(1);
  });

  it('ACKs (and drops) a segment acknowledging data never sent', () => {
    const p = new RawPeer();
    const { c, peerNxt, ourIsn } = established(p, { ts: false });
    p.send({ seq: peerNxt, ack: ourIsn + 5000, flags: A | P, payload: new Uint8Array(5) });
    const r = p.recv()!;
    expect(flagNames(r.flags)).toBe('A');
    expect(r.ack).toBe(peerNxt);
    expect(c.readableLength).toBe(0);
  });

  it.skipIf(!haveTshark())('tshark finds no errors in the exchange', () => {
    const p = new RawPeer();
    const { peerNxt } = established(p, { ts: true });
    p.send({ seq: peerNxt + 100, flags: R });
    p.recv();
    p.send({ seq: peerNxt, flags: R });
    const d = tsharkFields(p.packets, ['tcp.flags']);
    expect(d.errors).toEqual([]);
  });
});

void US;
void PEER;

describe('sending rules', () => {
  /** Active open from our stack to the raw peer (no timestamps), RTT `rtt`. */
  function activeOpen(p: RawPeer, rtt = 10, window = 65535) {
    const c = p.stack.tcp();
    c.connect('10.0.0.1', 80);
    const syn = p.recv()!;
    p.clock.advance(rtt);
    p.send({ sport: 80, dport: syn.sport, seq: 500, ack: syn.seq + 1, flags: S | A, mss: 1000, window });
    p.recv(); // ACK
    return { c, iss: syn.seq, port: syn.sport };
  }

  it('resets a SYN-ACK whose ACK does not cover our SYN (RFC 9293 3.10.7.3)', () => {
    const p = new RawPeer();
    const c = p.stack.tcp();
    c.connect('10.0.0.1', 80);
    const syn = p.recv()!;
    p.send({ sport: 80, dport: syn.sport, seq: 500, ack: syn.seq + 77, flags: S | A });
    const r = p.recv()!;
    expect([flagNames(r.flags), r.seq]).toEqual(['R', (syn.seq + 77) >>> 0]);
    expect(c.state).toBe('SYN_SENT');
  });

  it('sends the initial window (10 segments), then waits for ACKs', () => {
    const p = new RawPeer();
    const { c } = activeOpen(p);
    c.write(new Uint8Array(30_000));
    const segs = p.recvAll();
    expect(segs.length).toBe(10);
    expect(segs.every((s) => s.payload.length === 1000)).toBe(true);
  });

  it('setNoDelay sends small writes at once; Nagle holds them while data is unacknowledged', () => {
    const p = new RawPeer();
    const { c, iss, port } = activeOpen(p);
    c.write(new Uint8Array(10));
    c.write(new Uint8Array(10));
    c.write(new Uint8Array(10));
    expect(p.recvAll().map((s) => s.payload.length)).toEqual([10]);
    p.send({ sport: 80, dport: port, seq: 501, ack: iss + 11, flags: A });
    expect(p.recvAll().map((s) => s.payload.length)).toEqual([20]);
    c.setNoDelay(true);
    c.write(new Uint8Array(5));
    c.write(new Uint8Array(5));
    expect(p.recvAll().map((s) => s.payload.length)).toEqual([5, 5]);
  });

  it('sender SWS avoidance: no small segment into a small window until half the largest window', () => {
    const p = new RawPeer();
    const { c, iss, port } = activeOpen(p, 10, 4000);
    c.write(new Uint8Array(4000));
    expect(p.recvAll().length).toBe(4);
    // The window shrinks to 300 bytes past what was sent: less than a segment and less than half
    // the largest window seen (4000): nothing goes out.
    c.write(new Uint8Array(2000));
    p.send({ sport: 80, dport: port, seq: 501, ack: iss + 4001, flags: A, window: 300 });
    expect(p.recvAll()).toEqual([]);
    p.send({ sport: 80, dport: port, seq: 501, ack: iss + 4001, flags: A, window: 2000 });
    expect(p.recvAll().map((s) => s.payload.length)).toEqual([1000, 1000]);
  });

  it('restarts from the initial window after an idle period longer than the RTO (RFC 5681 4.1)', () => {
    const p = new RawPeer();
    const { c, iss, port } = activeOpen(p, 10);
    // Grow cwnd with a few ACKed rounds.
    let una = iss + 1;
    for (let r = 0; r < 3; r++) {
      c.write(new Uint8Array(40_000));
      for (let k = 0; k < 5; k++) {
        const segs = p.recvAll();
        for (const s of segs) una = Math.max(una, s.seq + s.payload.length);
        p.send({ sport: 80, dport: port, seq: 501, ack: una, flags: A, window: 65535 });
      }
    }
    for (let k = 0; k < 60; k++) {
      const segs = p.recvAll();
      if (segs.length === 0) break;
      for (const s of segs) una = Math.max(una, s.seq + s.payload.length);
      p.send({ sport: 80, dport: port, seq: 501, ack: una, flags: A, window: 65535 });
    }
    expect(c.info().cwnd).toBeGreaterThan(20_000);
    p.clock.advance(5000);
    c.write(new Uint8Array(60_000));
    expect(p.recvAll().length).toBe(10);
    expect(c.info().cwnd).toBe(10_000);
  });
});

describe('initial sequence numbers (RFC 6528)', () => {
  it('follow a 4 microsecond clock per 4-tuple, differ between tuples, and repeat for a seed', () => {
    const isnAt = (seed: number, port: number, advance: number): number => {
      const p = new RawPeer(seed);
      p.clock.advance(advance);
      const c = p.stack.tcp();
      c.bind('10.0.0.2', port);
      c.connect('10.0.0.1', 80);
      return p.recv()!.seq;
    };
    const a0 = isnAt(3, 40000, 0);
    const a1 = isnAt(3, 40000, 1);
    const a2 = isnAt(3, 40000, 1000);
    expect((a1 - a0) >>> 0).toBe(250);
    expect((a2 - a0) >>> 0).toBe(250_000);
    // Another tuple: an unrelated offset; another secret: another value.
    expect((isnAt(3, 40001, 0) - a0) >>> 0).not.toBe(0);
    expect(isnAt(4, 40000, 0)).not.toBe(a0);
    expect(isnAt(3, 40000, 0)).toBe(a0);
  });
});
