/**
 * Congestion control sanity: CUBIC (RFC 9438) and Reno (RFC 5681) on their own with a scripted
 * ACK clock, and end to end: slow start grows cwnd, one lost segment makes CUBIC reduce to 0.7
 * of its window and Reno to half of the flight, and CUBIC climbs back to W_max around t = K.
 */
import { describe, expect, it } from 'vitest';
import { CUBIC_BETA, CUBIC_C, Cubic, Reno, type CcHost } from '../../src/transport/tcp/index.js';
import type { LinkEndpoint, NetworkDispatcher } from '../../src/link/endpoint.js';
import type { PacketBuffer } from '../../src/core/packet.js';
import { ManualClock, Stack, Wire, type TcpProtocol } from '../../src/index.js';

const MSS = 1000;

function host(cwndSegs: number, ssthreshSegs: number, srtt = 100): CcHost & { cwnd: number; ssthresh: number } {
  return { cwnd: cwndSegs * MSS, ssthresh: ssthreshSegs * MSS, sndMss: MSS, srtt };
}

/** One RTT of ACKs: one per segment of the current window, at time `now`. */
function ackRound(cc: Cubic | Reno, h: CcHost, now: number): void {
  const n = Math.floor(h.cwnd / MSS);
  for (let i = 0; i < n; i++) cc.onAck(h, MSS, now);
}

describe('CUBIC (RFC 9438)', () => {
  it('reduces to beta = 0.7 on loss and records W_max (with fast convergence)', () => {
    const cc = new Cubic();
    const h = host(100, 50);
    expect(cc.onLoss(h)).toBeCloseTo(70 * MSS, 6);
    expect(cc.wMax).toBe(100);
    h.cwnd = 90 * MSS;
    expect(cc.onLoss(h)).toBeCloseTo(63 * MSS, 6);
    // Fast convergence: a loss below the last W_max lowers it further.
    expect(cc.wMax).toBeCloseTo((90 * (1 + CUBIC_BETA)) / 2, 6);
  });

  it('grows along W_cubic and reaches W_max at t = K (concave, then convex)', () => {
    const cc = new Cubic();
    const h = host(100, 1000, 100);
    h.ssthresh = cc.onLoss(h);
    h.cwnd = h.ssthresh;
    const k = Math.cbrt((100 * (1 - CUBIC_BETA)) / CUBIC_C);
    const samples: number[] = [];
    let t = 0;
    for (; t <= 8000; t += 100) {
      ackRound(cc, h, t);
      samples.push(h.cwnd / MSS);
    }
    expect(cc.k).toBeCloseTo(k, 6);
    // At t = K (about 4.2 s) cwnd is at W_max (one RTT of look-ahead included).
    const atK = samples[Math.round((k * 1000) / 100)]!;
    expect(atK).toBeGreaterThan(97);
    expect(atK).toBeLessThan(104);
    // Concave before K: growth per RTT shrinks; convex after: it grows again.
    const d = (i: number): number => samples[i + 1]! - samples[i]!;
    expect(d(2)).toBeGreaterThan(d(30));
    expect(d(70)).toBeGreaterThan(d(45));
    expect(samples[samples.length - 1]!).toBeGreaterThan(110);
  });

  it('never grows more than 1.5x per RTT and keeps at least the Reno-friendly rate', () => {
    const cc = new Cubic();
    const h = host(10, 5, 1000);
    h.ssthresh = cc.onLoss(h);
    h.cwnd = h.ssthresh;
    let prev = h.cwnd;
    for (let t = 0; t < 60_000; t += 1000) {
      ackRound(cc, h, t);
      expect(h.cwnd).toBeLessThanOrEqual(prev * 1.5 + 1e-6);
      expect(h.cwnd).toBeGreaterThan(prev);
      prev = h.cwnd;
    }
  });
});

describe('Reno (RFC 5681)', () => {
  it('doubles in slow start, adds one MSS per RTT in congestion avoidance, halves the flight on loss', () => {
    const cc = new Reno();
    const h = host(10, 40);
    ackRound(cc, h, 0);
    expect(h.cwnd / MSS).toBe(20);
    ackRound(cc, h, 100);
    expect(h.cwnd / MSS).toBe(40);
    ackRound(cc, h, 200);
    expect(h.cwnd / MSS).toBe(41);
    ackRound(cc, h, 300);
    expect(h.cwnd / MSS).toBe(42);
    expect(cc.onLoss(h, 42 * MSS)).toBe(21 * MSS);
    expect(cc.onLoss(h, 1 * MSS)).toBe(2 * MSS);
  });
});

/** A link that drops chosen outbound data segments (by count of segments with payload). */
class DropSome implements LinkEndpoint {
  dataSeen = 0;
  constructor(
    readonly inner: LinkEndpoint,
    readonly drop: Set<number>,
  ) {}
  get mtu(): number {
    return this.inner.mtu;
  }
  get maxHeaderLength(): number {
    return this.inner.maxHeaderLength;
  }
  get linkAddress(): Uint8Array {
    return this.inner.linkAddress;
  }
  get capabilities(): number {
    return this.inner.capabilities;
  }
  get wireFormat(): 'ip' | 'ethernet' {
    return this.inner.wireFormat;
  }
  get isAttached(): boolean {
    return this.inner.isAttached;
  }
  attach(d: NetworkDispatcher | null): void {
    this.inner.attach(d);
  }
  writePackets(pkts: readonly PacketBuffer[]): number {
    const keep: PacketBuffer[] = [];
    for (const p of pkts) {
      const ihl = (p.data[p.start]! & 15) * 4;
      const total = (p.data[p.start + 2]! << 8) | p.data[p.start + 3]!;
      const thl = (p.data[p.start + ihl + 12]! >>> 4) * 4;
      if (total - ihl - thl > 0 && this.drop.has(++this.dataSeen)) continue;
      keep.push(p);
    }
    return this.inner.writePackets(keep) + (pkts.length - keep.length);
  }
  close(): void {
    this.inner.close();
  }
}

function lossRun(cc: 'cubic' | 'reno'): { before: number; after: number; ssthresh: number; grew: boolean; samples: number[] } {
  const clock = new ManualClock();
  const wire = new Wire({ clock, latencyMs: 10, mtu: 1500, wireFormat: 'ip', queueLength: 1 << 16 });
  const a = new Stack({ clock, seed: 1 });
  const b = new Stack({ clock, seed: 2 });
  a.createNIC({ name: 'eth0', endpoint: new DropSome(wire.a, new Set([300])) }).addAddress('10.0.0.1/24');
  b.createNIC({ name: 'eth0', endpoint: wire.b }).addAddress('10.0.0.2/24');
  a.requireTransport<TcpProtocol>(6).congestionControl = cc;
  const l = b.tcp({ receiveBufferSize: 8 << 20 });
  l.bind(null, 80);
  l.listen();
  const c = a.tcp();
  c.connect('10.0.0.2', 80);
  clock.advance(30);
  const s = l.accept()!;
  const buf = new Uint8Array(1 << 16);
  const samples: number[] = [];
  let before = 0;
  let ssthresh = 0;
  let after = 0;
  const tcpA = a.requireTransport<TcpProtocol>(6);
  for (let t = 0; t < 3000; t++) {
    // Keep the send buffer full (never application-limited).
    while (c.write(buf) > 0);
    while (s.readChunk() !== null);
    const i = c.info();
    samples.push(i.cwnd);
    if (tcpA.stats.fastRetransmits > 0 && ssthresh === 0) {
      ssthresh = i.ssthresh;
      before = i.priorCwnd;
    }
    if (ssthresh !== 0 && after === 0 && i.caState === 'open') after = i.cwnd;
    clock.advance(1);
  }
  expect(tcpA.stats.fastRetransmits).toBe(1);
  expect(tcpA.stats.rtoExpirations).toBe(0);
  return { before, after, ssthresh, grew: samples[samples.length - 1]! > after, samples };
}

describe('end to end: one lost segment', () => {
  it('CUBIC: slow start grows, the loss takes cwnd to 0.7 of its value, then it grows again', () => {
    const r = lossRun('cubic');
    expect(r.samples[0]).toBe(14480);
    expect(r.before).toBeGreaterThan(20 * 14480);
    expect(r.ssthresh / r.before).toBeGreaterThan(0.68);
    expect(r.ssthresh / r.before).toBeLessThan(0.72);
    expect(r.after).toBeLessThanOrEqual(r.ssthresh);
    expect(r.grew).toBe(true);
  });

  it('Reno: the loss halves the flight', () => {
    const r = lossRun('reno');
    expect(r.ssthresh / r.before).toBeGreaterThan(0.45);
    expect(r.ssthresh / r.before).toBeLessThan(0.52);
    expect(r.grew).toBe(true);
  });
});
