import { describe, expect, it } from 'vitest';
import { Trampoline } from '../../src/core/queue.js';
import { Wire } from '../../src/link/wire.js';
import { ManualClock } from '../../src/core/clock.js';
import { PacketType } from '../../src/core/packet.js';
import { FakeDispatcher, ipId, ipv4Packet } from './helpers.js';

describe('Wire', () => {
  it('delivers synchronously both ways with zero latency, handing the packet over with reset offsets', () => {
    const wire = new Wire({ wireFormat: 'ip' });
    const da = new FakeDispatcher();
    const db = new FakeDispatcher();
    wire.a.attach(da);
    wire.b.attach(db);
    const p = ipv4Packet(1);
    p.linkHeaderStart = p.start;
    p.networkHeaderStart = p.start;
    p.nicId = 5;
    p.packetType = PacketType.Outgoing;
    const bytes = p.toBytes();
    expect(wire.a.writePackets([p])).toBe(1);
    expect(db.received.length).toBe(1);
    const r = db.received[0]!;
    expect(r.pkt).toBe(p); // ownership handed over, not copied
    expect(r.bytes).toEqual(bytes);
    expect(r.protocol).toBe(0x0800);
    expect(r.linkHeaderStart).toBe(-1);
    expect(r.pkt.networkHeaderStart).toBe(-1);
    expect(r.pkt.nicId).toBe(0);
    expect(r.packetType).toBe(PacketType.Host);
    expect(da.received.length).toBe(0);

    expect(wire.b.writePackets([ipv4Packet(2), ipv4Packet(3)])).toBe(2);
    expect(da.received.map((x) => ipId(x.bytes))).toEqual([2, 3]);
    expect(wire.stats.aToB).toMatchObject({ sent: 1, delivered: 1, sentBytes: 60, deliveredBytes: 60, dropped: 0 });
    expect(wire.stats.bToA).toMatchObject({ sent: 2, delivered: 2, dropped: 0 });
  });

  it('has the documented end properties', () => {
    const mac = new Uint8Array([2, 0, 0, 0, 0, 1]);
    const wire = new Wire({ linkAddressA: mac, mtu: 9000 });
    expect(wire.a.wireFormat).toBe('ethernet');
    expect(wire.a.linkAddress).toEqual(mac);
    expect(wire.b.linkAddress.length).toBe(0);
    expect(wire.b.mtu).toBe(9000);
    expect(() => new Wire({ latencyMs: 5 })).toThrow(/EINVAL/);
    expect(() => new Wire({ latencyMs: -1, clock: new ManualClock() })).toThrow(/EINVAL/);
  });

  it('runs a 100k-hop ping-pong at constant stack depth', () => {
    const wire = new Wire({ wireFormat: 'ip' });
    const da = new FakeDispatcher();
    const db = new FakeDispatcher();
    da.record = db.record = false;
    let depth = 0;
    let maxDepth = 0;
    let hops = 0;
    const bounce = (from: typeof wire.a) => (_proto: number, pkt: import('../../src/core/packet.js').PacketBuffer) => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
      hops++;
      // Reuse the received packet as the reply (ownership is ours now).
      if (hops < 100_000) from.writePackets([pkt]);
      depth--;
    };
    da.onPacket = bounce(wire.a);
    db.onPacket = bounce(wire.b);
    wire.a.attach(da);
    wire.b.attach(db);
    wire.a.writePackets([ipv4Packet(1)]);
    expect(hops).toBe(100_000);
    expect(db.count).toBe(50_000);
    expect(da.count).toBe(50_000);
    expect(maxDepth).toBe(1);
  });

  it('orders deliveries FIFO: a whole batch crosses before the replies it causes', () => {
    const wire = new Wire({ wireFormat: 'ip' });
    const log: string[] = [];
    const da = new FakeDispatcher();
    const db = new FakeDispatcher();
    da.onPacket = (_p, pkt) => log.push(`A<-${ipId(pkt.view())}`);
    db.onPacket = (_p, pkt) => {
      const id = ipId(pkt.view());
      log.push(`B<-${id}`);
      wire.b.writePackets([ipv4Packet(id + 100)]);
    };
    wire.a.attach(da);
    wire.b.attach(db);
    wire.a.writePackets([ipv4Packet(1), ipv4Packet(2)]);
    expect(log).toEqual(['B<-1', 'B<-2', 'A<-101', 'A<-102']);
  });

  it('a shared trampoline keeps depth constant across a chain of wires', () => {
    const tr = new Trampoline(64);
    const w1 = new Wire({ wireFormat: 'ip', trampoline: tr });
    const w2 = new Wire({ wireFormat: 'ip', trampoline: tr });
    // A --w1-- R --w2-- B ; R forwards both ways, B echoes, A echoes: a loop of 4 hops.
    let depth = 0;
    let maxDepth = 0;
    let n = 0;
    const mk = (fn: (pkt: import('../../src/core/packet.js').PacketBuffer) => void) => {
      const d = new FakeDispatcher();
      d.record = false;
      d.onPacket = (_p, pkt) => {
        depth++;
        maxDepth = Math.max(maxDepth, depth);
        if (++n < 10_000) fn(pkt);
        depth--;
      };
      return d;
    };
    w1.a.attach(mk((p) => w1.a.writePackets([p])));
    w1.b.attach(mk((p) => w2.a.writePackets([p])));
    w2.a.attach(mk((p) => w1.b.writePackets([p])));
    w2.b.attach(mk((p) => w2.b.writePackets([p])));
    w1.a.writePackets([ipv4Packet(1)]);
    expect(n).toBe(10_000);
    expect(maxDepth).toBe(1);
  });

  it('honours latency exactly on the ManualClock, with one timer per direction', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock, latencyMs: 10, wireFormat: 'ip' });
    const db = new FakeDispatcher();
    const da = new FakeDispatcher();
    const times: [number, number][] = [];
    db.onPacket = (_p, pkt) => {
      times.push([ipId(pkt.view()), clock.now()]);
      wire.b.writePackets([ipv4Packet(ipId(pkt.view()) + 1000)]);
    };
    da.onPacket = (_p, pkt) => times.push([ipId(pkt.view()), clock.now()]);
    wire.a.attach(da);
    wire.b.attach(db);
    wire.a.writePackets([ipv4Packet(1)]);
    clock.advance(3);
    wire.a.writePackets([ipv4Packet(2), ipv4Packet(3)]);
    clock.advance(0.5);
    wire.a.writePackets([ipv4Packet(4)]);
    expect(db.count).toBe(0);
    expect(wire.a.inFlight).toBe(4);
    expect(clock.pendingTimers).toBe(1);
    clock.advanceTo(9.999);
    expect(db.count).toBe(0);
    clock.runUntilIdle();
    expect(times).toEqual([
      [1, 10],
      [2, 13],
      [3, 13],
      [4, 13.5],
      [1001, 20],
      [1002, 23],
      [1003, 23],
      [1004, 23.5],
    ]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('bounds packets in flight and counts drops per direction', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock, latencyMs: 1, queueLength: 3, wireFormat: 'ip' });
    const db = new FakeDispatcher();
    wire.b.attach(db);
    const pk = [1, 2, 3, 4, 5].map((i) => ipv4Packet(i));
    expect(wire.a.writePackets(pk)).toBe(3);
    expect(wire.stats.aToB.dropped).toBe(2);
    clock.advance(1);
    expect(db.received.map((r) => ipId(r.bytes))).toEqual([1, 2, 3]);
    // A detached receiver: counted as dropped on delivery.
    wire.b.attach(null);
    wire.a.writePackets([ipv4Packet(6)]);
    clock.advance(1);
    expect(wire.stats.aToB.dropped).toBe(3);
    expect(wire.stats.aToB.delivered).toBe(3);
  });

  it('a closed end drops what is written to it and what is in flight from it', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock, latencyMs: 5, wireFormat: 'ip' });
    const db = new FakeDispatcher();
    wire.b.attach(db);
    wire.a.writePackets([ipv4Packet(1)]);
    wire.a.close();
    expect(wire.a.writePackets([ipv4Packet(2)])).toBe(0);
    clock.advance(10);
    expect(db.count).toBe(0);
    expect(wire.stats.aToB.dropped).toBe(2);
  });
});
