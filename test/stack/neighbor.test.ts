/**
 * The neighbour cache's garbage collection and queue bounds, driven directly with a recording
 * prober on a ManualClock: which entries a forced gc takes and in what order, what the periodic
 * pass takes, the per-entry and cache-wide byte caps, and that every dropped packet's borrowed
 * bytes are returned.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock, NeighborCache, NeighborState, PacketBuffer, Random, type NeighborConfig } from '../../src/index.js';
import { type NeighborProber } from '../../src/stack/neighbor.js';
import { QUEUED_PACKET_OVERHEAD as O } from '../../src/stack/neighbor.js';

const MAC = Uint8Array.of(2, 0, 0, 0, 0, 9);

function ip(n: number): Uint8Array {
  return Uint8Array.of(198, 18, n >> 8, n & 0xff);
}

interface Rig {
  clock: ManualClock;
  cache: NeighborCache;
  transmitted: string[];
  failed: string[];
  released: string[];
  /** A packet of `size` buffer bytes named `name`; its lease records its release. */
  pkt(name: string, size?: number): PacketBuffer;
}

function rig(config: Partial<NeighborConfig>): Rig {
  const clock = new ManualClock();
  const transmitted: string[] = [];
  const failed: string[] = [];
  const released: string[] = [];
  const names = new WeakMap<PacketBuffer, string>();
  const prober: NeighborProber = {
    sendSolicit: () => {},
    transmit: (p) => transmitted.push(names.get(p)!),
    resolutionFailed: (_t, dropped) => failed.push(...dropped.map((p) => names.get(p)!)),
  };
  const cache = new NeighborCache(clock, new Random(1), prober, config);
  return {
    clock,
    cache,
    transmitted,
    failed,
    released,
    pkt(name, size = 100) {
      const p = new PacketBuffer(new Uint8Array(size));
      p.addFrag(new Uint8Array(0), { release: () => released.push(name) });
      names.set(p, name);
      return p;
    },
  };
}

const reachable = { solicited: true, override: true, create: true };
const stale = { solicited: false, override: true, create: true };

function present(c: NeighborCache): number[] {
  return c
    .entriesSnapshot()
    .map((e) => (e.address[2]! << 8) | e.address[3]!)
    .sort((a, b) => a - b);
}

describe('neighbour cache gc (gc_thresh1/2/3 = 2/4/8)', () => {
  const cfg = { gcThresh1: 2, gcThresh2: 4, gcThresh3: 8, retransTimeMs: 1e6, baseReachableTimeMs: 1e8 };

  it('a forced gc takes INCOMPLETE, then STALE, then DELAY, then REACHABLE entries older than 5 s, oldest first; never static ones', () => {
    const r = rig(cfg);
    const c = r.cache;
    // t=0: a static entry and two reachable ones (1, 2).
    c.addStatic(ip(100), MAC);
    c.update(ip(1), MAC, reachable);
    c.update(ip(2), MAC, reachable);
    // t=1: incomplete 10 (two packets queued), stale 20, delay 30 (a stale entry used once).
    r.clock.advance(1);
    c.send(ip(10), r.pkt('a'));
    c.send(ip(10), r.pkt('b'));
    c.update(ip(20), MAC, stale);
    c.update(ip(30), MAC, stale);
    c.send(ip(30), r.pkt('to30'));
    expect(c.state(ip(30))).toBe(NeighborState.Delay);
    // t=2: incomplete 11, stale 21 (8 entries: the cache is at gc_thresh3).
    r.clock.advance(1);
    c.send(ip(11), r.pkt('c'));
    c.update(ip(21), MAC, stale);
    expect(c.size).toBe(8);
    expect(c.stats.forcedGcRuns).toBe(0); // above gc_thresh2, but within 5 s of the cache's start
    // t=6000: reachable 2 is confirmed again; a new entry needs room: shrink to gc_thresh2 (4).
    r.clock.advance(5998);
    c.confirm(ip(2));
    c.update(ip(40), MAC, reachable);
    expect(c.stats.forcedGcRuns).toBe(1);
    // Four went: both incomplete (older first), both stale; delay 30, reachable 1 (older than
    // 5 s) stayed, as there was no need for them.
    expect(present(c)).toEqual([1, 2, 30, 40, 100]);
    expect(c.stats).toMatchObject({ entriesEvicted: 4, evictedIncomplete: 2, evictedStale: 2, evictedReachable: 0, entriesRefused: 0 });
    // Their queued packets were dropped silently (no EHOSTUNREACH), their loans returned.
    expect(c.stats).toMatchObject({ queueDropsEvicted: 3, queuedDropped: 3, queuedPackets: 0, queuedBytes: 0 });
    expect(r.failed).toEqual([]);
    expect(r.released.sort()).toEqual(['a', 'b', 'c']);

    // Fill up again with fresh reachable entries (5 s have not passed: no forced gc at 4..7).
    for (const n of [41, 42, 43]) c.update(ip(n), MAC, reachable);
    expect(c.size).toBe(8);
    // t=12000: all but the static entry are older than 5 s; 30 (DELAY, by now PROBE) goes first,
    // then the reachable ones oldest first: 1 (t=0), then 2 and 40 (t=6000, in creation order).
    r.clock.advance(6000);
    c.update(ip(50), MAC, stale);
    expect(present(c)).toEqual([41, 42, 43, 50, 100]);
    expect(c.stats).toMatchObject({ forcedGcRuns: 2, entriesEvicted: 8, evictedStale: 3, evictedReachable: 3 });

    // Nothing collectable: only fresh reachable entries and the static one, and the cache full.
    for (const n of [41, 42, 43, 50]) c.confirm(ip(n));
    for (const n of [60, 61, 62]) c.update(ip(n), MAC, reachable);
    expect(c.size).toBe(8);
    c.send(ip(70), r.pkt('refused'));
    expect(c.stats.entriesRefused).toBe(1);
    expect(c.state(ip(70))).toBeNull();
    expect(r.failed).toEqual(['refused']); // EHOSTUNREACH to its sender, as Linux's table overflow
    expect(r.released).toContain('refused');
    expect(present(c)).toContain(100);
  });

  it('the periodic pass (at gc_thresh1 or more, every gc_interval) takes STALE entries unused for gc_stale_time', () => {
    const r = rig(cfg);
    const c = r.cache;
    c.update(ip(1), MAC, stale);
    c.update(ip(2), MAC, stale);
    r.clock.advance(30_000);
    c.update(ip(3), MAC, stale);
    c.update(ip(4), MAC, reachable);
    r.clock.advance(31_000); // 1 and 2 are 61 s old, 3 is 31 s old
    c.update(ip(5), MAC, stale);
    expect(c.stats.periodicGcRuns).toBeGreaterThanOrEqual(1);
    expect(present(c)).toEqual([3, 4, 5]);
    expect(c.stats).toMatchObject({ entriesEvicted: 2, evictedStale: 2 });
  });
});

describe('neighbour cache queue bounds', () => {
  it('caps bytes per entry and across the cache, dropping the oldest packet first, and hands back what fails', () => {
    const u = 3000 + O; // what a 3000-byte packet is charged
    const r = rig({ maxQueuedBytesPerEntry: 3 * u + 1000, maxQueuedBytesTotal: 8 * u + 1000, maxQueuedPerEntry: 64 });
    const c = r.cache;
    for (const n of ['A0', 'A1', 'A2', 'A3']) c.send(ip(1), r.pkt(n, 3000));
    // Four do not fit in one entry: A0 went for A3.
    expect(r.released).toEqual(['A0']);
    expect(c.stats).toMatchObject({ queueDropsEntryFull: 1, queuedPackets: 3, queuedBytes: 3 * u });
    for (const n of ['B0', 'B1', 'B2']) c.send(ip(2), r.pkt(n, 3000));
    for (const n of ['C0', 'C1']) c.send(ip(3), r.pkt(n, 3000));
    expect(c.stats.queuedBytes).toBe(8 * u);
    // A ninth does not fit in the cache: the oldest packet in the whole cache (A1) goes.
    c.send(ip(3), r.pkt('C2', 3000));
    expect(r.released).toEqual(['A0', 'A1']);
    expect(c.stats).toMatchObject({ queueDropsTotalFull: 1, queuedPackets: 8, queuedBytes: 8 * u });
    // A packet bigger than a cap is dropped at once, without pushing anything out.
    c.send(ip(4), r.pkt('huge', 4 * u));
    expect(r.released).toEqual(['A0', 'A1', 'huge']);
    expect(c.stats).toMatchObject({ queueDropsEntryFull: 2, queuedPackets: 8, queuedBytes: 8 * u });
    // A resolves: its two remaining packets go out in order.
    c.update(ip(1), MAC, reachable);
    expect(r.transmitted).toEqual(['A2', 'A3']);
    expect(c.stats).toMatchObject({ queuedPackets: 6, queuedBytes: 6 * u });
    // The others fail (3 probes, 1 s apart): their packets are handed back for EHOSTUNREACH,
    // then their loans returned.
    r.clock.advance(3000);
    expect(r.failed).toEqual(['B0', 'B1', 'B2', 'C0', 'C1', 'C2']);
    expect(c.stats).toMatchObject({ queuedPackets: 0, queuedBytes: 0, queueDropsFailed: 6, queuedDropped: 9 });
    expect(r.released.sort()).toEqual(['A0', 'A1', 'B0', 'B1', 'B2', 'C0', 'C1', 'C2', 'huge']);
  });

  it('counts a packet by its buffer and fragments, and keeps the packet-count cap', () => {
    const r = rig({ maxQueuedPerEntry: 2 });
    const c = r.cache;
    const p = r.pkt('x', 500);
    p.addFrag(new Uint8Array(700));
    c.send(ip(1), p);
    expect(c.stats.queuedBytes).toBe(1200 + O);
    c.send(ip(1), r.pkt('y', 100));
    c.send(ip(1), r.pkt('z', 100));
    expect(r.released).toEqual(['x']);
    expect(c.stats).toMatchObject({ queuedPackets: 2, queuedBytes: 2 * (100 + O), queueDropsEntryFull: 1 });
    c.clear();
    expect(c.stats).toMatchObject({ queuedPackets: 0, queuedBytes: 0 });
    expect(r.released.sort()).toEqual(['x', 'y', 'z']);
  });

  it('keeps its cache-wide FIFO proportional to what is queued under a steady stream of drops', () => {
    const r = rig({ maxQueuedBytesTotal: 20 * (1000 + O) });
    const c = r.cache;
    for (let i = 0; i < 20_000; i++) c.send(ip(1 + (i % 5)), r.pkt(`p${i}`, 1000));
    expect(c.stats).toMatchObject({ queuedPackets: 20, queueDropsTotalFull: 20_000 - 20 });
    // Internal, but the bound is the point: the records of packets gone do not pile up.
    const fifo = (c as unknown as { fifo: unknown[] }).fifo;
    expect(fifo.length).toBeLessThanOrEqual(1024 + 2 * 20 + 256);
  });

  it('gives a waiting small packet its own bytes (it would pin a shared 64 KiB slab), contents and offsets intact', () => {
    const out: PacketBuffer[] = [];
    const c = new NeighborCache(new ManualClock(), new Random(1), { sendSolicit: () => {}, transmit: (p) => out.push(p), resolutionFailed: () => {} });
    const p = PacketBuffer.alloc(100);
    p.data.fill(7, p.start, p.end);
    const [start, end] = [p.start, p.end];
    expect(p.data.buffer.byteLength).toBeGreaterThan(p.data.byteLength); // from the slab
    c.send(ip(1), p);
    expect(c.stats.queuedBytes).toBe(p.data.byteLength + O);
    c.update(ip(1), MAC, reachable);
    expect(out).toEqual([p]);
    expect(p.data.buffer.byteLength).toBe(p.data.byteLength);
    expect([p.start, p.end]).toEqual([start, end]);
    expect(p.view().every((b) => b === 7)).toBe(true);
  });
});

describe('neighbour solicitation rate limit', () => {
  it("sends every new entry's first solicitation; retransmissions draw from the bucket", () => {
    const r = rig({ solicitRate: 1, solicitBurst: 2 });
    const c = r.cache;
    for (let n = 1; n <= 5; n++) c.send(ip(n), r.pkt(`p${n}`));
    expect(c.stats).toMatchObject({ solicitsSent: 5, solicitsRateLimited: 0 });
    r.clock.advance(1000); // second probes: the bucket (still full: 2) lets two go
    expect(c.stats).toMatchObject({ solicitsSent: 7, solicitsRateLimited: 3 });
  });
});
