/**
 * PacketBuffer's scatter-gather fragments: the length counts them, anything that needs contiguous
 * bytes (view, toBytes, clone, truncate, a receiver after a link) gets them joined in order, and
 * each fragment's lease is released exactly once, when joined or when the link says it is done.
 */
import { describe, expect, it } from 'vitest';
import { PacketBuffer } from '../../src/core/packet.js';
import { resetForReceive } from '../../src/core/queue.js';

function counting(): { released: number; release(): void } {
  return {
    released: 0,
    release(): void {
      this.released++;
    },
  };
}

function fragPacket(): { pkt: PacketBuffer; want: Uint8Array; leases: Array<{ released: number }> } {
  const pkt = PacketBuffer.alloc(4, 32);
  pkt.data.set([1, 2, 3, 4], pkt.start);
  const leases = [counting(), counting()];
  pkt.addFrag(Uint8Array.of(5, 6, 7), leases[0]!);
  pkt.addFrag(new Uint8Array(0));
  pkt.addFrag(Uint8Array.of(8, 9), leases[1]!);
  return { pkt, want: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9), leases };
}

describe('PacketBuffer scatter-gather fragments', () => {
  it('length counts fragments; view joins them after the head and releases every lease once', () => {
    const { pkt, want, leases } = fragPacket();
    expect(pkt.length).toBe(9);
    expect(pkt.end - pkt.start).toBe(4);
    const start = pkt.start;
    expect(pkt.view()).toEqual(want);
    expect(pkt.start).toBe(start); // headroom kept: headers can still be prepended
    expect(pkt.frags).toBeNull();
    expect(leases.map((l) => l.released)).toEqual([1, 1]);
    pkt.releaseFrags();
    pkt.linearize();
    expect(leases.map((l) => l.released)).toEqual([1, 1]);
    pkt.prepend(2);
    expect(pkt.length).toBe(11);
  });

  it('toBytes, clone and truncate see the whole packet', () => {
    const a = fragPacket();
    expect(a.pkt.toBytes()).toEqual(a.want);
    const b = fragPacket();
    const c = b.pkt.clone();
    expect(c.view()).toEqual(b.want);
    expect(b.pkt.view()).toEqual(b.want);
    const d = fragPacket();
    d.pkt.truncate(6);
    expect(d.pkt.view()).toEqual(d.want.subarray(0, 6));
  });

  it('releaseFrags releases without joining (the link wrote them out)', () => {
    const { pkt, leases } = fragPacket();
    pkt.releaseFrags();
    expect(leases.map((l) => l.released)).toEqual([1, 1]);
    expect(pkt.length).toBe(9);
  });

  it('a packet crossing a queue (wire, loopback) arrives contiguous', () => {
    const { pkt, want } = fragPacket();
    resetForReceive(pkt);
    expect(pkt.frags).toBeNull();
    expect(pkt.data.subarray(pkt.start, pkt.end)).toEqual(want);
  });
});
