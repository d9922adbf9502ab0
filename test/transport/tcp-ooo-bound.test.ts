/**
 * The out-of-order queue is bounded (MAX_OOO_SEGMENTS holes' worth of segments). A segment that
 * arrives when the bound is reached and lies beyond every queued one is dropped: it must then be
 * neither SACKed nor reported as a duplicate (D-SACK), since the sender would skip data it must
 * resend; it is counted as dropped.
 */
import { describe, expect, it } from 'vitest';
import { MAX_OOO_SEGMENTS } from '../../src/transport/tcp/endpoint.js';
import { A, P, RawPeer, type OutSeg } from './helpers/raw-peer.js';

function covered(seg: OutSeg, start: number, end: number): boolean {
  return seg.sack.some(([l, r]) => ((start - l) >>> 0) < ((r - l) >>> 0) || ((end - 1 - l) >>> 0) < ((r - l) >>> 0));
}

describe('TCP out-of-order bound', () => {
  it(`drops segments past ${MAX_OOO_SEGMENTS} holes without SACKing or D-SACKing them, and counts them`, () => {
    const p = new RawPeer();
    const l = p.stack.tcp();
    l.bind(null, 80);
    l.listen(8);
    const { peerNxt, ourIsn } = p.handshakeIn({ ts: false, window: 65535 });
    const server = l.accept()!;
    server.receiveBufferSize = 4 << 20;
    p.recvAll();
    const stats = p.tcp.stats;
    const droppedBefore = stats.oooDropped;
    const dsackBefore = stats.dsackSent;
    const extra = 40;
    const byte = Uint8Array.of(0x5a);
    // One-byte segments with a one-byte hole before each: every one is a new SACK block.
    for (let i = 0; i < MAX_OOO_SEGMENTS + extra; i++) {
      const seq = (peerNxt + 2 * i + 1) >>> 0;
      p.send({ seq, ack: ourIsn + 1, flags: A | P, window: 1024, payload: byte });
      const acks = p.recvAll();
      expect(acks.length, `an ACK for segment ${i}`).toBeGreaterThan(0);
      const last = acks[acks.length - 1]!;
      expect(last.ack).toBe(peerNxt);
      if (i < MAX_OOO_SEGMENTS) {
        // Queued: reported first (RFC 2018: the block with the most recent segment leads).
        expect(last.sack[0], `segment ${i} SACKed`).toEqual([seq, (seq + 1) >>> 0]);
      } else {
        for (const a of acks) expect(covered(a, seq, seq + 1), `dropped segment ${i} SACKed: ${JSON.stringify(a.sack)}`).toBe(false);
      }
    }
    expect(stats.oooDropped - droppedBefore).toBe(extra);
    expect(stats.dsackSent - dsackBefore).toBe(0);
    // A real duplicate of a queued segment is still a D-SACK.
    const dupSeq = (peerNxt + 1) >>> 0;
    p.send({ seq: dupSeq, ack: ourIsn + 1, flags: A | P, window: 1024, payload: byte });
    const dup = p.recvAll().pop()!;
    expect(dup.sack[0]).toEqual([dupSeq, (dupSeq + 1) >>> 0]);
    expect(stats.dsackSent - dsackBefore).toBe(1);
    // Filling the holes delivers exactly the queued bytes, in order, and nothing dropped.
    for (let i = 0; i < MAX_OOO_SEGMENTS + extra; i++) {
      p.send({ seq: (peerNxt + 2 * i) >>> 0, ack: ourIsn + 1, flags: A | P, window: 1024, payload: Uint8Array.of(0x11) });
    }
    const acks = p.recvAll();
    // Everything up to the last queued segment is in; the first dropped one is the next hole.
    expect(acks[acks.length - 1]!.ack).toBe((peerNxt + 2 * MAX_OOO_SEGMENTS + 1) >>> 0);
    let got = 0;
    for (let c = server.read(); c !== null; c = server.read()) got += c.length;
    expect(got).toBe(2 * MAX_OOO_SEGMENTS + 1);
  });
});
