import { describe, expect, it } from 'vitest';
import { ChannelEndpoint } from '../../src/link/channel.js';
import type { LinkEndpoint, NetworkDispatcher, WireFormat } from '../../src/link/endpoint.js';
import { FaultEndpoint, gilbertElliottMeanLoss, type FaultConfig } from '../../src/link/fault.js';
import { ManualClock } from '../../src/core/clock.js';
import { PacketBuffer } from '../../src/core/packet.js';
import { EthernetEndpoint } from '../../src/link/ethernet.js';
import { SnifferEndpoint } from '../../src/link/sniffer.js';
import { Wire } from '../../src/link/wire.js';
import { LinkType, PcapWriter } from '../../src/pcap/writer.js';
import { FakeDispatcher, ipId, ipv4Bytes, ipv4Packet, readPcap } from './helpers.js';

/** An endpoint that records what reaches it and when. */
class Sink implements LinkEndpoint {
  readonly mtu = 1500;
  readonly maxHeaderLength = 0;
  readonly linkAddress = new Uint8Array(0);
  readonly capabilities = 0;
  readonly wireFormat: WireFormat = 'ip';
  isAttached = false;
  pkts: PacketBuffer[] = [];
  times: number[] = [];
  count = 0;
  record = true;
  constructor(private readonly clock: ManualClock) {}
  attach(d: NetworkDispatcher | null): void {
    this.isAttached = d !== null;
  }
  writePackets(pkts: readonly PacketBuffer[]): number {
    this.count += pkts.length;
    if (this.record) {
      for (const p of pkts) {
        this.pkts.push(p);
        this.times.push(this.clock.now());
      }
    }
    return pkts.length;
  }
  close(): void {}
}

function rig(config: Omit<FaultConfig, never> & { seed?: number; inbound?: FaultConfig } = {}) {
  const clock = new ManualClock();
  const sink = new Sink(clock);
  const fault = new FaultEndpoint(sink, { clock, seed: 1, ...config });
  return { clock, sink, fault };
}

const within = (x: number, target: number, tol: number) => {
  expect(x).toBeGreaterThanOrEqual(target - tol);
  expect(x).toBeLessThanOrEqual(target + tol);
};

describe('FaultEndpoint', () => {
  it('forwards endpoint properties and passes everything untouched when unconfigured', () => {
    const { sink, fault } = rig();
    expect(fault.mtu).toBe(1500);
    expect(fault.wireFormat).toBe('ip');
    const p = ipv4Packet(1);
    expect(fault.writePackets([p])).toBe(1);
    expect(sink.pkts[0]).toBe(p);
    expect(fault.stats).toMatchObject({ offered: 1, delivered: 1, lost: 0 });
  });

  it('rejects bad configuration', () => {
    expect(() => rig({ loss: 1.5 })).toThrow(/EINVAL/);
    expect(() => rig({ delayMs: -1 })).toThrow(/EINVAL/);
    expect(() => rig({ gilbertElliott: { p: 2, r: 0.1 } })).toThrow(/EINVAL/);
    expect(() => rig({ limit: 0 })).toThrow(/EINVAL/);
  });

  it('loses 10% +- 0.5% of 100k packets at loss 0.1; lost packets still count as accepted', () => {
    const { sink, fault } = rig({ loss: 0.1 });
    sink.record = false;
    const p = ipv4Packet(1);
    const batch = [p, p, p, p, p, p, p, p, p, p];
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) accepted += fault.writePackets(batch);
    const s = fault.stats;
    expect(s.offered).toBe(100_000);
    expect(accepted).toBe(100_000);
    within(s.lost / s.offered, 0.1, 0.005);
    expect(sink.count).toBe(s.offered - s.lost);
    expect(s.delivered).toBe(sink.count);
  });

  it('duplicates at the configured rate, a clean copy right after its original', () => {
    const { sink, fault } = rig({ duplicate: 0.05 });
    const p = ipv4Packet(5, 0);
    for (let i = 0; i < 100_000; i++) fault.writePackets([p]);
    const s = fault.stats;
    within(s.duplicated / s.offered, 0.05, 0.005);
    expect(sink.count).toBe(s.offered + s.duplicated);
    const ref = Buffer.from(p.view());
    let dups = 0;
    let bad = 0;
    for (let i = 0; i < sink.pkts.length; i++) {
      const q = sink.pkts[i]!;
      if (q === p) continue;
      dups++;
      if (sink.pkts[i - 1] !== p || q.data === p.data || !ref.equals(q.view())) bad++;
    }
    expect(dups).toBe(s.duplicated);
    expect(bad).toBe(0);
  });

  it('corrupts one bit of a private copy at the configured rate', () => {
    const { sink, fault } = rig({ corrupt: 0.05 });
    const original = ipv4Packet(77, 100);
    const pristine = original.data.slice();
    for (let i = 0; i < 100_000; i++) fault.writePackets([original]);
    const s = fault.stats;
    within(s.corrupted / s.offered, 0.05, 0.005);
    expect(original.data).toEqual(pristine); // the caller's buffer is never touched
    let changed = 0;
    const ref = original.view();
    const bitHit = new Array<number>(ref.length * 8).fill(0);
    for (const p of sink.pkts) {
      if (p === original) continue;
      changed++;
      const v = p.view();
      let bits = 0;
      for (let k = 0; k < v.length; k++) {
        let x = v[k]! ^ ref[k]!;
        if (x) for (let b = 0; b < 8; b++) if (x & (1 << b)) bitHit[k * 8 + b]!++;
        while (x) {
          bits += x & 1;
          x >>>= 1;
        }
      }
      expect(bits).toBe(1);
    }
    expect(changed).toBe(s.corrupted);
    // Flips spread over the whole packet (1024 bit positions, ~5000 flips).
    expect(bitHit.filter((n) => n > 0).length).toBeGreaterThan(900);
  });

  it('Gilbert-Elliott loss matches its stationary mean and comes in bursts', () => {
    const ge = { p: 0.01, r: 0.1 };
    const { sink, fault } = rig({ gilbertElliott: ge });
    sink.record = false;
    const lostFlags: boolean[] = [];
    const one = [ipv4Packet(1, 0)];
    for (let i = 0; i < 200_000; i++) {
      const before = sink.count;
      fault.writePackets(one);
      lostFlags.push(sink.count === before);
    }
    const s = fault.stats;
    const mean = gilbertElliottMeanLoss(ge);
    expect(mean).toBeCloseTo(0.01 / 0.11, 10);
    within(s.burstLost / s.offered, mean, 0.01);
    // Mean burst length ~ 1/r = 10 with lossBad = 1.
    let bursts = 0;
    for (let i = 0; i < lostFlags.length; i++) if (lostFlags[i] && !lostFlags[i - 1]) bursts++;
    within(s.burstLost / bursts, 10, 1.5);

    const soft = { p: 0.05, r: 0.2, lossGood: 0.01, lossBad: 0.5 };
    const r2 = rig({ gilbertElliott: soft, seed: 9 });
    r2.sink.record = false;
    for (let i = 0; i < 200_000; i++) r2.fault.writePackets(one);
    within(r2.fault.stats.burstLost / r2.fault.stats.offered, gilbertElliottMeanLoss(soft), 0.01);
  });

  it('rate limiting: N bytes at R bit/s take N*8/R seconds of clock time', () => {
    const rate = 1_000_000;
    const { clock, sink, fault } = rig({ rateBps: rate });
    const n = 100;
    const pkts = Array.from({ length: n }, (_, i) => ipv4Packet(i, 972)); // 1000 bytes each
    expect(fault.writePackets(pkts)).toBe(n);
    expect(sink.count).toBe(0);
    expect(clock.pendingTimers).toBe(1);
    clock.runUntilIdle();
    expect(sink.count).toBe(n);
    const perPacket = (1000 * 8 * 1000) / rate; // 8 ms
    const total = (n * 1000 * 8 * 1000) / rate; // 800 ms
    expect(Math.abs(sink.times[n - 1]! - total)).toBeLessThanOrEqual(perPacket);
    sink.times.forEach((t, i) => expect(t).toBeCloseTo((i + 1) * perPacket, 9));
    expect(sink.pkts.map((p) => ipId(p.view()))).toEqual(pkts.map((_, i) => i));

    // Sending slower than the rate: no queueing, each packet takes its own serialization time.
    clock.advance(1000);
    const t0 = clock.now();
    fault.writePackets([ipv4Packet(1, 972)]);
    clock.advance(20);
    fault.writePackets([ipv4Packet(2, 972)]);
    clock.runUntilIdle();
    expect(sink.times.slice(-2)).toEqual([t0 + 8, t0 + 28]);
  });

  it('rate limiting tail-drops beyond the queue limit and counts it', () => {
    const { clock, sink, fault } = rig({ rateBps: 1_000_000, limit: 10 });
    const pkts = Array.from({ length: 25 }, (_, i) => ipv4Packet(i, 100));
    expect(fault.writePackets(pkts)).toBe(10);
    expect(fault.stats.queueDropped).toBe(15);
    expect(fault.outbound.inFlight).toBe(10);
    clock.runUntilIdle();
    expect(sink.pkts.map((p) => ipId(p.view()))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('delay with jitter: uniform within bounds when packets are sparse', () => {
    const { clock, sink, fault } = rig({ delayMs: 50, jitterMs: 10 });
    const sent: number[] = [];
    const p = ipv4Packet(1, 0);
    for (let i = 0; i < 4000; i++) {
      sent.push(clock.now());
      fault.writePackets([p]);
      clock.advance(25); // > 2 * jitter: order keeping never binds
    }
    clock.runUntilIdle();
    expect(sink.count).toBe(4000);
    const hist = new Array<number>(4).fill(0);
    sink.times.forEach((t, k) => {
      const d = t - sent[k]!;
      expect(d).toBeGreaterThanOrEqual(40 - 1e-9);
      expect(d).toBeLessThanOrEqual(60 + 1e-9);
      hist[Math.min(3, Math.floor((d - 40) / 5))]!++;
    });
    // Uniform: each 5 ms quarter holds ~1000 of 4000.
    for (const h of hist) within(h, 1000, 120);
  });

  it('delay with jitter keeps order and bounds under dense traffic, on one timer', () => {
    const { clock, sink, fault } = rig({ delayMs: 50, jitterMs: 10, limit: 100_000 });
    const sent: number[] = [];
    for (let i = 0; i < 5000; i++) {
      sent.push(clock.now());
      fault.writePackets([ipv4Packet(i, 0)]);
      if (i === 500) expect(clock.pendingTimers).toBe(1);
      clock.advance(0.1);
    }
    clock.runUntilIdle();
    expect(sink.count).toBe(5000);
    sink.pkts.forEach((p, k) => {
      expect(ipId(p.view())).toBe(k); // order kept
      const d = sink.times[k]! - sent[k]!;
      expect(d).toBeGreaterThanOrEqual(40 - 1e-9);
      expect(d).toBeLessThanOrEqual(60 + 1e-9);
    });
  });

  it('plain delay is exact', () => {
    const { clock, sink, fault } = rig({ delayMs: 25 });
    fault.writePackets([ipv4Packet(1)]);
    clock.advance(5);
    fault.writePackets([ipv4Packet(2)]);
    clock.advanceTo(24.9);
    expect(sink.count).toBe(0);
    clock.runUntilIdle();
    expect(sink.times).toEqual([25, 30]);
  });

  it('reorders about the configured share of packets; nothing is lost', () => {
    const { clock, sink, fault } = rig({ reorder: 0.1, reorderDelayMs: 5 });
    for (let i = 0; i < 10_000; i++) {
      fault.writePackets([ipv4Packet(i, 0)]);
      clock.advance(1);
    }
    clock.runUntilIdle();
    const s = fault.stats;
    expect(sink.count).toBe(10_000);
    within(s.reordered / s.offered, 0.1, 0.01);
    // Each held-back packet is overtaken by the ones sent during its extra 5 ms.
    let late = 0;
    let seen = -1;
    for (let k = 0; k < sink.pkts.length; k++) {
      const id = ipId(sink.pkts[k]!.view());
      if (id < seen) late++;
      seen = Math.max(seen, id);
    }
    expect(late).toBe(s.reordered);
    // In-order packets pass at once (no delay configured).
    expect(s.delayed).toBe(s.reordered);
  });

  it('impairs the inbound direction when configured', () => {
    const clock = new ManualClock();
    const ch = new ChannelEndpoint();
    const fault = new FaultEndpoint(ch, { clock, seed: 3, inbound: { loss: 0.5, delayMs: 2, limit: 20_000 } });
    const d = new FakeDispatcher();
    d.record = false;
    fault.attach(d);
    expect(ch.isAttached).toBe(true);
    for (let i = 0; i < 10_000; i++) ch.inject(0x0800, ipv4Packet(1, 0));
    expect(d.count).toBe(0);
    clock.advance(2);
    within(d.count / 10_000, 0.5, 0.02);
    expect(fault.inbound.stats.delivered).toBe(d.count);
    expect(fault.stats.offered).toBe(0); // outbound untouched
    fault.writePackets([ipv4Packet(2)]);
    expect(ch.queued).toBe(1);
  });

  const everything: FaultConfig = {
    loss: 0.05,
    gilbertElliott: { p: 0.01, r: 0.3 },
    duplicate: 0.03,
    corrupt: 0.03,
    delayMs: 3,
    jitterMs: 2,
    reorder: 0.05,
    reorderDelayMs: 4,
    rateBps: 10_000_000,
  };

  function trace(seed: number): string[] {
    const { clock, sink, fault } = rig({ ...everything, seed });
    for (let i = 0; i < 3000; i++) {
      fault.writePackets([ipv4Packet(i, i % 200)]);
      clock.advance(0.25);
    }
    clock.runUntilIdle();
    return sink.pkts.map((p, k) => `${sink.times[k]!.toFixed(6)} ${Buffer.from(p.view()).toString('hex')}`);
  }

  it('same seed -> identical output; different seed -> different output', () => {
    const a = trace(7);
    const b = trace(7);
    const c = trace(8);
    expect(a.length).toBeGreaterThan(2500);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('close discards packets in flight and cancels its timer', () => {
    const { clock, sink, fault } = rig({ delayMs: 10 });
    fault.writePackets([ipv4Packet(1), ipv4Packet(2)]);
    expect(clock.pendingTimers).toBe(1);
    fault.close();
    expect(clock.pendingTimers).toBe(0);
    clock.advance(20);
    expect(sink.count).toBe(0);
    expect(fault.writePackets([ipv4Packet(3)])).toBe(0);
  });

  it('stacks: NIC -> Ethernet -> Sniffer -> Fault -> Wire, with a plain Ethernet peer', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock, latencyMs: 1 });
    const writer = PcapWriter.inMemory({ linkType: LinkType.ETHERNET });
    const fault = new FaultEndpoint(wire.a, { clock, seed: 5, loss: 0.5 });
    const sniff = new SnifferEndpoint(fault, { clock, writer });
    const ea = new EthernetEndpoint(sniff, { linkAddress: new Uint8Array([2, 0, 0, 0, 0, 1]) });
    const eb = new EthernetEndpoint(wire.b, { linkAddress: new Uint8Array([2, 0, 0, 0, 0, 2]) });
    const da = new FakeDispatcher();
    const db = new FakeDispatcher();
    ea.attach(da);
    eb.attach(db);
    expect(ea.maxHeaderLength).toBe(14);
    for (let i = 0; i < 200; i++) {
      const p = ipv4Packet(i);
      p.remoteLinkAddress = eb.linkAddress;
      ea.writePackets([p]);
    }
    clock.advance(1);
    // The sniffer sits above the fault: it saw all 200; about half crossed.
    expect(readPcap(writer.bytes()).records.length).toBe(200);
    expect(db.count).toBe(200 - fault.stats.lost);
    within(db.count, 100, 25);
    expect(db.received[0]!.bytes).toEqual(ipv4Bytes(ipId(db.received[0]!.bytes)));
    // Replies come back through the fault's (unimpaired) inbound side and the sniffer.
    eb.writePackets([ipv4Packet(999)]);
    clock.advance(1);
    expect(da.count).toBe(1);
    expect(readPcap(writer.bytes()).records.length).toBe(201);
  });
});
