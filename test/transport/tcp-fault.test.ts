/**
 * Two stacks on a Wire with a FaultEndpoint on each side (seeded loss, reordering, duplication,
 * corruption, delay): bulk data both ways at once, sha256 of what was written equal to what
 * was read at the other end, on a ManualClock driven from timer to timer.
 */
import { createHash, type Hash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { FaultConfig } from '../../src/link/fault.js';
import { Random, type TcpEndpoint } from '../../src/index.js';
import { haveTshark } from '../helpers/tshark.js';
import { tsharkFields } from './helpers/raw-peer.js';
import { connectPair, pair, pattern, type Pair } from './helpers/tcp.js';

/** A deterministic byte stream (xorshift32), generated in chunks. */
class Source {
  private x: number;
  readonly chunk = new Uint8Array(64 * 1024);
  private filled = 0;
  private off = 0;
  produced = 0;
  readonly hash: Hash = createHash('sha256');
  constructor(
    seed: number,
    readonly total: number,
  ) {
    this.x = seed >>> 0 || 1;
  }

  private refill(): void {
    const n = Math.min(this.chunk.length, this.total - this.produced);
    let x = this.x;
    const c = this.chunk;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      c[i] = x;
    }
    this.x = x;
    this.filled = n;
    this.off = 0;
    this.produced += n;
    this.hash.update(c.subarray(0, n));
  }

  /** Write as much as the endpoint takes; true when everything has been written. */
  pump(ep: TcpEndpoint): boolean {
    for (;;) {
      if (this.off === this.filled) {
        if (this.produced >= this.total) return true;
        this.refill();
      }
      const n = ep.write(this.chunk.subarray(this.off, this.filled));
      this.off += n;
      if (this.off < this.filled) return false;
    }
  }
}

class Sink {
  readonly hash: Hash = createHash('sha256');
  received = 0;
  drain(ep: TcpEndpoint): void {
    for (let c = ep.readChunk(); c !== null; c = ep.readChunk()) {
      this.hash.update(c);
      this.received += c.length;
    }
  }
}

interface Result {
  ab: [string, string];
  ba: [string, string];
  receivedA: number;
  receivedB: number;
  virtualMs: number;
  pair: Pair;
  client: TcpEndpoint;
  server: TcpEndpoint;
}

function run(bytes: number, seed: number, fault: FaultConfig, delayMs = 2, tap = false, isn?: number): Result {
  const p = pair({
    seed,
    faultAtoB: { delayMs, ...fault },
    faultBtoA: { delayMs, ...fault },
    tap,
  });
  if (isn !== undefined) {
    // Both ends start just below 2^32 so that sequence numbers wrap early in the transfer.
    p.tcpA.isn = () => isn;
    p.tcpB.isn = () => (isn + 12345) >>> 0;
  }
  const { client, server } = connectPair(p);
  const srcA = new Source(seed * 2 + 1, bytes);
  const srcB = new Source(seed * 2 + 2, bytes);
  const sinkA = new Sink();
  const sinkB = new Sink();
  let doneA = false;
  let doneB = false;
  const clock = p.clock;
  const t0 = clock.now();
  for (let guard = 0; guard < 50_000_000; guard++) {
    if (!doneA && srcA.pump(client)) {
      doneA = true;
      client.shutdown();
    }
    if (!doneB && srcB.pump(server)) {
      doneB = true;
      server.shutdown();
    }
    sinkA.drain(client);
    sinkB.drain(server);
    if (client.readEnded && server.readEnded && doneA && doneB) break;
    const d = clock.nextDeadline();
    if (d === Infinity) break;
    clock.advanceTo(Math.max(d, clock.now()));
    if (clock.now() - t0 > 3_600_000) break;
  }
  // Let the closing handshakes finish.
  for (let i = 0; i < 100_000 && (client.state !== 'CLOSED' || server.state !== 'CLOSED'); i++) {
    const d = clock.nextDeadline();
    if (d === Infinity || d - t0 > 3_600_000) break;
    clock.advanceTo(Math.max(d, clock.now()));
  }
  return {
    ab: [srcA.hash.digest('hex'), sinkB.hash.digest('hex')],
    ba: [srcB.hash.digest('hex'), sinkA.hash.digest('hex')],
    receivedA: sinkA.received,
    receivedB: sinkB.received,
    virtualMs: clock.now() - t0,
    pair: p,
    client,
    server,
  };
}

const MiB = 1 << 20;

describe('bulk transfer over a faulty link, both directions at once', () => {
  const harsh: FaultConfig = { loss: 0.03, reorder: 0.02, reorderDelayMs: 6, duplicate: 0.01, corrupt: 0.005, jitterMs: 1 };

  it('moves 64 MiB each way intact through 3% loss, reordering, duplication, corruption and delay', () => {
    const size = 64 * MiB;
    const r = run(size, 1, harsh);
    expect(r.receivedB).toBe(size);
    expect(r.receivedA).toBe(size);
    expect(r.ab[1]).toBe(r.ab[0]);
    expect(r.ba[1]).toBe(r.ba[0]);
    const sa = r.pair.tcpA.stats;
    const sb = r.pair.tcpB.stats;
    // The impairments happened and were handled by the mechanisms meant for them.
    expect(r.pair.faultA!.stats.lost).toBeGreaterThan(1000);
    expect(r.pair.faultA!.stats.corrupted).toBeGreaterThan(100);
    expect(sb.inCsumErrors).toBeGreaterThan(50);
    expect(sa.retransSegs).toBeGreaterThan(1000);
    expect(sa.sackRecoveries + sb.sackRecoveries).toBeGreaterThan(100);
    expect(sb.dsackSent).toBeGreaterThan(10);
    // Lost retransmissions are found from SACKs, not left to the retransmission timer.
    expect(sa.lostRetransmits + sb.lostRetransmits).toBeGreaterThan(10);
    expect(sa.rtoExpirations + sb.rtoExpirations).toBeLessThan(50);
    expect(sa.inErrs).toBeGreaterThan(0);
    // Both sides closed; the one whose FIN went first holds the 4-tuple in TIME_WAIT.
    expect([r.client.state, r.server.state]).toEqual(['CLOSED', 'CLOSED']);
    expect(sa.timeWaitCount + sb.timeWaitCount).toBeGreaterThanOrEqual(1);
  });

  const losses = [0.01, 0.02, 0.05, 0.08, 0.1, 0.04, 0.06, 0.03];
  losses.forEach((loss, k) => {
    const seed = k + 2;
    it(`seed ${seed}: 8 MiB each way with ${loss * 100}% loss`, () => {
      const r = run(8 * MiB, seed, { loss, reorder: 0.03, reorderDelayMs: 5, duplicate: 0.02, corrupt: 0.01, jitterMs: seed % 2 }, 1 + (seed % 3));
      expect(r.ab[1]).toBe(r.ab[0]);
      expect(r.ba[1]).toBe(r.ba[0]);
      expect(r.receivedA).toBe(8 * MiB);
      expect(r.receivedB).toBe(8 * MiB);
    });
  });

  it('is deterministic: the same seeds give the same run, packet for packet', () => {
    const once = (): string => {
      const r = run(512 * 1024, 77, { loss: 0.04, reorder: 0.03, duplicate: 0.02, corrupt: 0.01, jitterMs: 1 }, 2, true);
      const h = createHash('sha256');
      for (const pkt of r.pair.tap!.packets) h.update(pkt);
      return `${r.virtualMs} ${JSON.stringify(r.pair.tcpA.stats)} ${JSON.stringify(r.pair.tcpB.stats)} ${h.digest('hex')}`;
    };
    expect(once()).toBe(once());
  });

  it('wraps sequence numbers past 2^32 on both sides through loss and reordering', () => {
    const r = run(4 * MiB, 41, { loss: 0.03, reorder: 0.03, reorderDelayMs: 4, duplicate: 0.01 }, 2, false, 0xffff0000);
    expect(r.ab[1]).toBe(r.ab[0]);
    expect(r.ba[1]).toBe(r.ba[0]);
    expect(r.receivedA).toBe(4 * MiB);
    expect(r.pair.tcpA.stats.sackRecoveries).toBeGreaterThan(5);
  });

  it('survives burst loss (Gilbert-Elliott)', () => {
    const r = run(8 * MiB, 21, { gilbertElliott: { p: 0.01, r: 0.3, lossBad: 0.8 }, duplicate: 0.005 }, 3);
    expect(r.ab[1]).toBe(r.ab[0]);
    expect(r.ba[1]).toBe(r.ba[0]);
    expect(r.pair.faultA!.stats.burstLost).toBeGreaterThan(100);
  });

  it.skipIf(!haveTshark())('tshark finds every segment of a lossy exchange well formed, checksums right', () => {
    const r = run(300_000, 31, { loss: 0.05, reorder: 0.05, reorderDelayMs: 4, duplicate: 0.02 }, 2, true);
    expect(r.ab[1]).toBe(r.ab[0]);
    const pkts = r.pair.tap!.packets;
    expect(pkts.length).toBeGreaterThan(300);
    const d = tsharkFields(pkts, ['tcp.options.sack_le', 'tcp.options.wscale.shift', 'tcp.analysis.retransmission', 'tcp.analysis.duplicate_ack']);
    expect(d.errors).toEqual([]);
    expect(d.rows.filter((x) => (x['tcp.options.sack_le'] ?? []).length > 0).length).toBeGreaterThan(10);
    expect(d.rows.filter((x) => (x['tcp.analysis.retransmission'] ?? []).length > 0).length).toBeGreaterThan(5);
    expect(d.rows[0]!['tcp.options.wscale.shift']).toEqual(['7']);
  });

  it('60 random mixes of impairment and options deliver both ways intact', () => {
    const fails: string[] = [];
    for (let seed = 1; seed <= 60; seed++) {
      const r = new Random(seed * 97);
      const cfg: FaultConfig = {
        loss: r.float() * 0.2,
        reorder: r.float() * 0.3,
        reorderDelayMs: 1 + r.below(20),
        duplicate: r.float() * 0.1,
        corrupt: r.float() * 0.05,
        delayMs: r.below(10),
        jitterMs: r.below(3),
      };
      const p = pair({ seed, faultAtoB: cfg, faultBtoA: { ...cfg, loss: r.float() * 0.2 } });
      if (r.chance(0.3)) {
        p.tcpA.sack = false;
        p.tcpB.sack = false;
      }
      if (r.chance(0.3)) p.tcpA.timestamps = false;
      if (r.chance(0.3)) p.tcpA.congestionControl = 'reno';
      const { client, server } = connectPair(p);
      const size = 20_000 + r.below(200_000);
      const a = pattern(size, seed);
      const b = pattern(size + 7, seed + 1);
      let oa = 0;
      let ob = 0;
      const ra: Uint8Array[] = [];
      const rb: Uint8Array[] = [];
      for (let i = 0; i < 1_000_000; i++) {
        if (oa < a.length) oa += client.write(a.subarray(oa));
        else if (client.state === 'ESTABLISHED' || client.state === 'CLOSE_WAIT') client.shutdown();
        if (ob < b.length) ob += server.write(b.subarray(ob));
        else if (server.state === 'ESTABLISHED' || server.state === 'CLOSE_WAIT') server.shutdown();
        for (let c = client.readChunk(); c; c = client.readChunk()) ra.push(c.slice());
        for (let c = server.readChunk(); c; c = server.readChunk()) rb.push(c.slice());
        if (client.readEnded && server.readEnded) break;
        const d = p.clock.nextDeadline();
        if (d === Infinity || d > 3_600_000) break;
        p.clock.advanceTo(Math.max(d, p.clock.now()));
      }
      const okAB = Buffer.concat(rb).equals(Buffer.from(a));
      const okBA = Buffer.concat(ra).equals(Buffer.from(b));
      if (!okAB || !okBA) fails.push(`seed ${seed} ${JSON.stringify(cfg)}: ${okAB} ${okBA}`);
    }
    expect(fails).toEqual([]);
  });

  it('NewReno without SACK, and Reno congestion control, also deliver intact', () => {
    const p0 = run(2 * MiB, 11, { loss: 0.02, reorder: 0.01, duplicate: 0.01 });
    expect(p0.ab[1]).toBe(p0.ab[0]);
    const p = pair({ seed: 12, faultAtoB: { delayMs: 2, loss: 0.03 }, faultBtoA: { delayMs: 2, loss: 0.03 } });
    p.tcpA.sack = false;
    p.tcpB.sack = false;
    p.tcpA.congestionControl = 'reno';
    const { client, server } = connectPair(p);
    expect(client.info().sack).toBe(false);
    expect(client.congestionControl).toBe('reno');
    const src = new Source(5, 4 * MiB);
    const sink = new Sink();
    let done = false;
    for (let i = 0; i < 10_000_000; i++) {
      if (!done && src.pump(client)) {
        done = true;
        client.shutdown();
      }
      sink.drain(server);
      if (server.readEnded) break;
      const d = p.clock.nextDeadline();
      if (d === Infinity) break;
      p.clock.advanceTo(Math.max(d, p.clock.now()));
    }
    expect(sink.received).toBe(4 * MiB);
    expect(sink.hash.digest('hex')).toBe(src.hash.digest('hex'));
    expect(p.tcpA.stats.renoRecoveries).toBeGreaterThan(10);
    expect(p.tcpA.stats.sackRecoveries).toBe(0);
  });
});
