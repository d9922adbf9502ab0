/**
 * The endpoint's compact layout (issue 14: an idle relayed flow under 4 KiB): booleans packed in
 * one integer, sequence numbers held as signed 32-bit integers behind unsigned getters, and the
 * seldom-used state made on first use. Each field must still read back what was written, an idle
 * connection must hold no seldom-used state, and behaviour that moved (keepalive's idle time,
 * the handshake's RTT sample) must be what it was.
 */
import { describe, expect, it } from 'vitest';
import { TcpEndpoint } from '../../src/index.js';
import { A, RawPeer, S } from './helpers/raw-peer.js';
import { connectPair, pair, pattern } from './helpers/tcp.js';

/** Every boolean the endpoint packs into its bits (internal fields, reached by name). */
const FLAGS = [
  'hashed', 'portOwner', 'reuseAddress', 'txOffload', 'sgOn', 'sndBufLocked', 'finQueued', 'wantWritable', 'rcvBufLocked', 'finRcvd',
  'dsackPending', 'tsOn', 'sackOn', 'wsOn', 'rttInit', 'synRetransmitted', 'cwndLimited', 'ackNow', 'ackLater', 'noDelay',
  'keepAlive', 'userClosed', 'closeEmitted', 'inOutput', 'outputAgain', 'announce',
] as const;

/** Sequence-number fields (unsigned 32-bit to readers). */
const SEQS = ['iss', 'sndUna', 'sndNxt', 'sndMax', 'sndWl1', 'sndWl2', 'finSeq', 'irs', 'rcvNxt', 'rcvAdv', 'lastAckSent', 'tsRecent', 'tsOffset', 'rttSeq', 'recoveryPoint', 'highRxt'] as const;

type Fields = Record<string, unknown>;

describe('TcpEndpoint layout', () => {
  it('each packed boolean reads back alone: setting one changes no other', () => {
    const p = pair();
    const ep = p.a.tcp() as unknown as Fields;
    for (const f of FLAGS) ep[f] = false;
    for (const f of FLAGS) {
      ep[f] = true;
      for (const g of FLAGS) expect([g, ep[g]]).toEqual([g, g === f]);
      ep[f] = false;
    }
    for (const f of FLAGS) ep[f] = true;
    for (const f of FLAGS) expect([f, ep[f]]).toEqual([f, true]);
    // v6Only is one of the bits too, read-only after construction.
    expect(p.a.tcp({ family: 6, v6Only: true }).v6Only).toBe(true);
    expect(p.a.tcp({ family: 6 }).v6Only).toBe(false);
  });

  it('sequence numbers read back unsigned across the whole 32-bit range; oooFin and edgeSeq keep -1 for none', () => {
    const ep = pair().a.tcp() as unknown as Fields;
    const values = [0, 1, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff];
    for (const f of SEQS) {
      for (const v of values) {
        ep[f] = v;
        expect([f, ep[f]]).toEqual([f, v]);
      }
    }
    for (const f of ['oooFin', 'edgeSeq']) {
      expect([f, ep[f]]).toEqual([f, -1]);
      for (const v of values) {
        ep[f] = v;
        expect([f, ep[f]]).toEqual([f, v]);
      }
      ep[f] = -1;
      expect([f, ep[f]]).toEqual([f, -1]);
    }
  });

  it('an established idle connection holds no seldom-used state; data both ways, a listener and keepalive make it where needed', () => {
    const p = pair({ latencyMs: 0.3 });
    const { client, server, listener } = connectPair(p);
    const seldom = (e: TcpEndpoint): unknown => (e as unknown as Fields).seldom;
    expect(seldom(client)).toBeNull();
    expect(seldom(server)).toBeNull();
    expect(seldom(listener)).not.toBeNull(); // its backlog and accept queue
    // Plain data both ways (no loss, no retransmission) needs none of it either.
    const data = pattern(300_000);
    let got = 0;
    let off = 0;
    for (let i = 0; i < 10_000 && got < data.length; i++) {
      if (off < data.length) off += client.write(data.subarray(off));
      for (let c = server.readChunk(); c !== null; c = server.readChunk()) got += c.length;
      p.clock.advance(1);
    }
    expect(got).toBe(data.length);
    server.write(new Uint8Array(1000));
    p.clock.advance(100);
    expect(client.read()?.length).toBe(1000);
    expect(seldom(client)).toBeNull();
    expect(seldom(server)).toBeNull();
    expect(client.info()).toMatchObject({ totalRetrans: 0, bytesRetrans: 0, backoff: 0, retransmits: 0, priorCwnd: 0 });
    client.setKeepAlive(true, 1000);
    expect(seldom(client)).not.toBeNull();
  });

  it('keepalive counts its idle time from the last segment heard while it is on', () => {
    const p = new RawPeer();
    const c = p.stack.tcp();
    c.connect('10.0.0.1', 80);
    const syn = p.recv()!;
    p.send({ sport: 80, dport: syn.sport, seq: 500, ack: syn.seq + 1, flags: S | A, mss: 1460, window: 65535 });
    expect(c.state).toBe('ESTABLISHED');
    p.recv();
    const t0 = p.clock.now();
    c.setKeepAlive(true, 1000, 200, 3);
    p.clock.advance(600);
    // A window update heard 600 ms in: the first probe comes 1000 ms after it, not at 1000.
    p.send({ sport: 80, dport: syn.sport, seq: 501, ack: syn.seq + 1, flags: A, window: 60000 });
    const probe = p.waitSeg(5000)!;
    expect(probe.at - t0).toBe(1600);
    expect(probe.seq).toBe(syn.seq);
  });

  it('the handshake still takes its RTT sample (the SYN timed in rttTime) and leaves no timing behind', () => {
    const p = new RawPeer();
    const c = p.stack.tcp();
    c.connect('10.0.0.1', 80);
    const syn = p.recv()!;
    p.clock.advance(37);
    p.send({ sport: 80, dport: syn.sport, seq: 500, ack: syn.seq + 1, flags: S | A, mss: 1460, window: 65535 });
    expect(c.info().rttMs).toBe(37);
    expect((c as unknown as Fields).rttTime).toBe(-1);
  });
});
