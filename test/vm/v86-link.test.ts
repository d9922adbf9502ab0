/**
 * V86Link against a fake v86 message bus (the real emulator is in v86.test.ts): the NIC's view is
 * copied before the stack keeps it, frames go to `net<id>-receive` at most `burst` per turn, the
 * rest wait in the port's bounded queue, and close unhooks both sides.
 */
import { describe, expect, it } from 'vitest';
import { TunstackError } from '../../src/core/errors.js';
import type { LinkEndpoint, NetworkDispatcher } from '../../src/link/endpoint.js';
import { PacketBuffer } from '../../src/core/packet.js';
import { FramePort } from '../../src/link/frame-port.js';
import { V86Link, type V86Bus } from '../../src/link/v86.js';

type Listener = (v: Uint8Array) => void;

/** The emulator's half of v86's bus pair: register/unregister listeners, send to the other half. */
class FakeBus implements V86Bus {
  readonly listeners = new Map<string, Listener[]>();
  readonly sent: Array<[string, Uint8Array]> = [];
  register(name: string, fn: Listener): void {
    this.listeners.set(name, [...(this.listeners.get(name) ?? []), fn]);
  }
  unregister(name: string, fn: Listener): void {
    this.listeners.set(name, (this.listeners.get(name) ?? []).filter((f) => f !== fn));
  }
  send(name: string, value: Uint8Array): void {
    this.sent.push([name, value]);
  }
  /** What the NIC does: hand a view of its memory to the `net<id>-send` listeners. */
  nicSends(name: string, view: Uint8Array): void {
    for (const fn of this.listeners.get(name) ?? []) fn(view);
  }
}

function attached(port: FramePort): Uint8Array[] {
  const got: Uint8Array[] = [];
  const d: NetworkDispatcher = { deliverNetworkPacket: (_p: number, pkt: PacketBuffer) => void got.push(pkt.toBytes()) } as unknown as NetworkDispatcher;
  (port as LinkEndpoint).attach(d);
  return got;
}

const frame = (n: number): Uint8Array => new Uint8Array(60).fill(n);

describe('V86Link', () => {
  it('copies the NIC view: the stack keeps the bytes the guest sent even when the NIC reuses its memory', async () => {
    const bus = new FakeBus();
    const port = new FramePort();
    const got = attached(port);
    const link = new V86Link({ bus }, port);
    const nicMemory = frame(1);
    bus.nicSends('net0-send', nicMemory);
    nicMemory.fill(9);
    // Not inside the NIC's send: the stack sees the frame on a microtask, after the emulator's run.
    expect(got).toHaveLength(0);
    await Promise.resolve();
    expect(got).toHaveLength(1);
    expect(got[0]![0]).toBe(1);
    expect(link.stats.framesIn).toBe(1);
    bus.nicSends('net0-send', new Uint8Array(10));
    await Promise.resolve();
    expect(link.stats.framesInDropped).toBe(1);
  });

  it('holds at most `pending` guest frames until the microtask; more are dropped and counted', async () => {
    const bus = new FakeBus();
    const port = new FramePort();
    const got = attached(port);
    const link = new V86Link({ bus }, port, { pending: 3 });
    for (let i = 0; i < 5; i++) bus.nicSends('net0-send', frame(i));
    expect(link.stats).toMatchObject({ framesIn: 5, framesInDropped: 2 });
    await Promise.resolve();
    expect(got.map((f) => f[0])).toEqual([0, 1, 2]);
    expect(() => new V86Link({ bus }, port, { pending: 0 })).toThrow(/pending/);
  });

  it('hands at most `burst` frames per turn to net<id>-receive; the rest wait and follow on later turns', async () => {
    const bus = new FakeBus();
    const port = new FramePort();
    attached(port);
    const turns: Array<() => void> = [];
    const link = new V86Link({ bus }, port, { id: 1, burst: 3, defer: (fn) => turns.push(fn) });
    port.writePackets(Array.from({ length: 8 }, (_, i) => PacketBuffer.wrap(frame(i))));
    expect(bus.sent.map(([n]) => n)).toEqual(['net1-receive', 'net1-receive', 'net1-receive']);
    expect(port.queued).toBe(5);
    while (turns.length) turns.shift()!();
    expect(bus.sent.map(([, f]) => f[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(link.stats).toMatchObject({ framesOut: 8, yields: 2 });
  });

  it('close unhooks the bus and the port, dropping frames not yet handed on; a bus-less emulator is refused with EINVAL', async () => {
    const bus = new FakeBus();
    const port = new FramePort();
    const got = attached(port);
    const link = new V86Link({ bus }, port);
    bus.nicSends('net0-send', frame(3));
    link.close();
    bus.nicSends('net0-send', frame(1));
    await Promise.resolve();
    expect(got).toHaveLength(0);
    port.writePackets([PacketBuffer.wrap(frame(2))]);
    expect(bus.sent).toHaveLength(0);
    expect(port.queued).toBe(1);
    expect(() => new V86Link({}, port)).toThrow(TunstackError);
    expect(() => new V86Link({ bus }, port, { burst: 0 })).toThrow(/burst/);
  });
});
