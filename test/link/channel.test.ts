import { describe, expect, it } from 'vitest';
import { ChannelEndpoint } from '../../src/link/channel.js';
import { LinkCapability } from '../../src/link/endpoint.js';
import { PacketBuffer } from '../../src/core/packet.js';
import { FakeDispatcher, ipId, ipv4Packet } from './helpers.js';

describe('ChannelEndpoint', () => {
  it('has the documented defaults', () => {
    const ch = new ChannelEndpoint();
    expect(ch.mtu).toBe(1500);
    expect(ch.queueLength).toBe(1024);
    expect(ch.wireFormat).toBe('ip');
    expect(ch.capabilities).toBe(LinkCapability.None);
    expect(ch.linkAddress.length).toBe(0);
    expect(ch.maxHeaderLength).toBe(0);
    const tap = new ChannelEndpoint({ wireFormat: 'ethernet', mtu: 9000, linkAddress: new Uint8Array(6) });
    expect(tap.wireFormat).toBe('ethernet');
    expect(tap.mtu).toBe(9000);
    tap.setMTU(1280);
    expect(tap.mtu).toBe(1280);
    expect(() => tap.setMTU(0)).toThrow(/EINVAL/);
  });

  it('bounds the outbound queue at 1024 and counts drops', () => {
    const ch = new ChannelEndpoint();
    const pkts: PacketBuffer[] = [];
    for (let i = 0; i < 1100; i++) pkts.push(ipv4Packet(i));
    expect(ch.writePackets(pkts.slice(0, 1000))).toBe(1000);
    expect(ch.writePackets(pkts.slice(1000))).toBe(24);
    expect(ch.queued).toBe(1024);
    expect(ch.stats.txPackets).toBe(1024);
    expect(ch.stats.txDropped).toBe(76);
    expect(ch.stats.txBytes).toBe(1024 * 60);
    // FIFO order, and the dropped ones are the last 76.
    expect(ipId(ch.read()!.view())).toBe(0);
    const batch = ch.readBatch(10);
    expect(batch.map((p) => ipId(p.view()))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(ch.queued).toBe(1013);
    // Room again: one more write fits.
    expect(ch.writePackets([ipv4Packet(5000)])).toBe(1);
    expect(ch.drain()).toBe(1014);
    expect(ch.queued).toBe(0);
    expect(ch.read()).toBeNull();
    expect(ch.readBatch(5)).toEqual([]);
  });

  it('fires a readable notification on every enqueue, not on drops', () => {
    const ch = new ChannelEndpoint({ queueLength: 4 });
    let cb = 0;
    let ev = 0;
    const queuedAtEvent: number[] = [];
    ch.onReadable = () => cb++;
    ch.on('readable', () => {
      ev++;
      queuedAtEvent.push(ch.queued);
    });
    ch.writePackets([ipv4Packet(1), ipv4Packet(2), ipv4Packet(3)]);
    expect(cb).toBe(3);
    expect(ev).toBe(3);
    expect(queuedAtEvent).toEqual([1, 2, 3]);
    ch.writePackets([ipv4Packet(4), ipv4Packet(5), ipv4Packet(6)]);
    expect(cb).toBe(4);
    expect(ev).toBe(4);
    expect(ch.stats.txDropped).toBe(2);
  });

  it('a reader draining from the readable callback sees every packet once', () => {
    const ch = new ChannelEndpoint({ queueLength: 2 });
    const got: number[] = [];
    ch.onReadable = () => {
      for (let p = ch.read(); p; p = ch.read()) got.push(ipId(p.view()));
    };
    const pkts = Array.from({ length: 10 }, (_, i) => ipv4Packet(i));
    expect(ch.writePackets(pkts)).toBe(10);
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(ch.stats.txDropped).toBe(0);
  });

  it('delivers injected packets to the dispatcher, and counts them dropped when detached', () => {
    const ch = new ChannelEndpoint();
    const pkt = ipv4Packet(7);
    expect(ch.inject(0x0800, pkt)).toBe(false);
    expect(ch.stats.rxDropped).toBe(1);
    const d = new FakeDispatcher();
    ch.attach(d);
    expect(ch.isAttached).toBe(true);
    expect(ch.inject(0x0800, pkt)).toBe(true);
    expect(ch.injectBytes(ipv4Packet(8).toBytes())).toBe(true);
    expect(d.received.length).toBe(2);
    expect(d.received[0]!.protocol).toBe(0x0800);
    expect(d.received[0]!.pkt).toBe(pkt);
    expect(d.received[1]!.protocol).toBe(0);
    expect(ipId(d.received[1]!.bytes)).toBe(8);
    expect(ch.stats.rxPackets).toBe(2);
    expect(ch.stats.rxBytes).toBe(120);
    ch.attach(null);
    expect(ch.inject(0x0800, pkt)).toBe(false);
    expect(ch.stats.rxDropped).toBe(2);
  });

  it('after close, drops and counts writes and injects', () => {
    const ch = new ChannelEndpoint();
    const d = new FakeDispatcher();
    ch.attach(d);
    ch.writePackets([ipv4Packet(1)]);
    ch.close();
    expect(ch.queued).toBe(0);
    expect(ch.writePackets([ipv4Packet(2)])).toBe(0);
    expect(ch.stats.txDropped).toBe(1);
    ch.attach(d);
    expect(ch.isAttached).toBe(false);
    expect(ch.inject(0x0800, ipv4Packet(3))).toBe(false);
    expect(d.received.length).toBe(0);
  });
});
