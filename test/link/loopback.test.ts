import { describe, expect, it } from 'vitest';
import { LinkCapability } from '../../src/link/endpoint.js';
import { LoopbackEndpoint } from '../../src/link/loopback.js';
import { PacketType } from '../../src/core/packet.js';
import { FakeDispatcher, ipId, ipv4Packet } from './helpers.js';

describe('LoopbackEndpoint', () => {
  it('delivers what is written back inbound, metadata reset', () => {
    const lo = new LoopbackEndpoint();
    expect(lo.mtu).toBe(65536);
    expect(lo.wireFormat).toBe('ip');
    expect(lo.capabilities & LinkCapability.Loopback).toBe(LinkCapability.Loopback);
    const d = new FakeDispatcher();
    lo.attach(d);
    const pkt = ipv4Packet(42);
    pkt.networkHeaderStart = pkt.start;
    pkt.transportHeaderStart = pkt.start + 20;
    pkt.nicId = 3;
    pkt.packetType = PacketType.Outgoing;
    expect(lo.writePackets([pkt])).toBe(1);
    expect(d.received.length).toBe(1);
    const r = d.received[0]!;
    expect(r.protocol).toBe(0x0800);
    expect(ipId(r.bytes)).toBe(42);
    expect(r.pkt.networkHeaderStart).toBe(-1);
    expect(r.pkt.transportHeaderStart).toBe(-1);
    expect(r.pkt.nicId).toBe(0);
    expect(r.packetType).toBe(PacketType.Host);
    expect(lo.stats).toMatchObject({ txPackets: 1, rxPackets: 1, txBytes: 60, rxBytes: 60 });
  });

  it('queues writes made while delivering instead of recursing (100k-deep chain)', () => {
    const lo = new LoopbackEndpoint();
    const d = new FakeDispatcher();
    d.record = false;
    let depth = 0;
    let maxDepth = 0;
    const order: number[] = [];
    d.onPacket = (_p, pkt) => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
      const id = ipId(pkt.view());
      if (order.length < 20) order.push(id);
      if (d.count < 100_000) {
        // Send the received packet back out (it is ours now), with the next id.
        const next = (id + 1) & 0xffff;
        pkt.data[pkt.start + 4] = next >>> 8;
        pkt.data[pkt.start + 5] = next & 0xff;
        lo.writePackets([pkt]);
      }
      depth--;
    };
    lo.attach(d);
    lo.writePackets([ipv4Packet(0, 0)]);
    expect(d.count).toBe(100_000);
    expect(maxDepth).toBe(1);
    expect(order.slice(0, 5)).toEqual([0, 1, 2, 3, 4]);
  });

  it('bounds the re-entrancy queue and counts drops', () => {
    const lo = new LoopbackEndpoint({ queueLength: 8 });
    const d = new FakeDispatcher();
    let first = true;
    d.onPacket = () => {
      if (!first) return;
      first = false;
      const burst = Array.from({ length: 20 }, (_, i) => ipv4Packet(100 + i));
      expect(lo.writePackets(burst)).toBe(8);
    };
    lo.attach(d);
    lo.writePackets([ipv4Packet(1)]);
    expect(d.received.map((r) => ipId(r.bytes))).toEqual([1, 100, 101, 102, 103, 104, 105, 106, 107]);
    expect(lo.stats.txDropped).toBe(12);
  });

  it('drops and counts when detached or closed', () => {
    const lo = new LoopbackEndpoint();
    lo.writePackets([ipv4Packet(1)]);
    expect(lo.stats.rxDropped).toBe(1);
    lo.close();
    expect(lo.writePackets([ipv4Packet(2)])).toBe(0);
    expect(lo.stats.txDropped).toBe(1);
  });
});
