import { describe, expect, it } from 'vitest';
import {
  EventMask,
  IFF_ATTACH_QUEUE,
  IFF_DETACH_QUEUE,
  IFF_MULTI_QUEUE,
  IFF_NO_PI,
  IFF_TUN,
  TUNGETIFF,
  TUNSETQUEUE,
  type Stack,
  type TunDevice,
} from '../../src/index.js';
import { drain, echoRequest, errno, newStack } from './helpers.js';

const FLAGS = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE;

function mq(stack: Stack, n: number): TunDevice[] {
  const devs: TunDevice[] = [];
  for (let i = 0; i < n; i++) {
    const d = stack.openTun();
    d.setIff({ name: 'mq0', flags: FLAGS });
    d.up();
    devs.push(d);
  }
  devs[0]!.addAddress('10.0.0.1/24');
  return devs;
}

/** Send `per` datagrams on each of `flows` flows (distinct destination address/port). */
const senders = new WeakMap<Stack, ReturnType<Stack['udp']>>();
function sendFlows(stack: Stack, flows: number, per: number): void {
  // One socket per stack, so a flow (source port included) is the same on every call.
  let s = senders.get(stack);
  if (!s) {
    s = stack.udp();
    s.bind(null, 5555);
    senders.set(stack, s);
  }
  for (let k = 0; k < per; k++) {
    for (let f = 0; f < flows; f++) s.send(Uint8Array.of(f, k), 1000 + f, `10.0.0.${2 + (f % 50)}`);
  }
}

/** For each queue, the flow keys (dst addr:port) of the packets read from it. */
function flowsByQueue(devs: TunDevice[]): string[][] {
  return devs.map((d) => (d.attached ? drain(d) : []).map((p) => `${p[19]}:${(p[22]! << 8) | p[23]!}`));
}

describe('tun device: multi-queue', () => {
  it('spreads flows over queues by flow hash, keeping each flow on one queue, reproducibly', () => {
    const run = () => {
      const { stack } = newStack(11);
      const devs = mq(stack, 4);
      const events = [0, 0, 0, 0];
      devs.forEach((d, i) => d.on('readable', () => events[i]!++));
      sendFlows(stack, 64, 3);
      const counts = devs.map((d) => d.queue!.length);
      expect(counts.reduce((a, b) => a + b)).toBe(192);
      expect(events).toEqual(counts); // each open hears only its own queue
      const byQueue = flowsByQueue(devs);
      return { counts, byQueue };
    };
    const a = run();
    // Every queue gets some flows, none gets all.
    for (const c of a.counts) {
      expect(c).toBeGreaterThan(0);
      expect(c).toBeLessThan(192);
    }
    // A flow's packets all land on one queue.
    const owner = new Map<string, number>();
    a.byQueue.forEach((keys, q) => {
      for (const k of keys) {
        if (owner.has(k)) expect(owner.get(k), k).toBe(q);
        owner.set(k, q);
      }
    });
    expect(owner.size).toBe(64);
    // Same seed, same spread.
    expect(run()).toEqual(a);
  });

  it('the queue chosen matches TunEndpoint.queueIndexFor over the packet bytes', () => {
    const { stack } = newStack(3);
    const devs = mq(stack, 3);
    sendFlows(stack, 20, 1);
    const ep = devs[0]!.endpoint!;
    devs.forEach((d, q) => {
      for (const p of drain(d)) expect(ep.queueIndexFor(p)).toBe(q);
    });
  });

  it('TUNSETQUEUE detaches a queue (purged, reads EAGAIN, writes go in, out of the rotation) and attaches it back', () => {
    const { stack } = newStack(5);
    const devs = mq(stack, 3);
    const [a, b, c] = devs as [TunDevice, TunDevice, TunDevice];
    sendFlows(stack, 30, 1);
    const before = devs.map((d) => d.queue!.length);
    expect(before[1]).toBeGreaterThan(0);
    let detached = 0;
    b.on('detached', () => detached++);
    expect(b.ioctl(TUNSETQUEUE, { flags: IFF_DETACH_QUEUE })).toBe(0);
    expect(detached).toBe(1);
    expect(b.endpoint!.activeQueueCount).toBe(2);
    expect(b.queue!.length).toBe(0);
    expect(b.queue!.stats.discarded).toBe(before[1]);
    // As Linux: TUNGETIFF shows IFF_DETACH_QUEUE, reads find nothing, writes go in, poll: writable.
    expect(b.ioctl(TUNGETIFF).flags & IFF_DETACH_QUEUE).toBe(IFF_DETACH_QUEUE);
    expect(errno(() => b.read())).toBe('EAGAIN');
    expect(b.write(echoRequest())).toBe(echoRequest().length);
    expect(b.readiness(EventMask.Readable | EventMask.Writable)).toBe(EventMask.Writable);
    expect(errno(() => b.ioctl(TUNSETQUEUE, { flags: IFF_DETACH_QUEUE }))).toBe('EINVAL');
    drain(a);
    drain(c);
    sendFlows(stack, 30, 1);
    expect(b.queue!.length).toBe(0);
    expect(a.queue!.length + c.queue!.length).toBe(30);
    drain(a);
    drain(c);
    expect(errno(() => a.ioctl(TUNSETQUEUE, { flags: IFF_ATTACH_QUEUE }))).toBe('EINVAL'); // not detached
    b.ioctl(TUNSETQUEUE, IFF_ATTACH_QUEUE);
    expect(b.attached).toBe(true);
    sendFlows(stack, 30, 1);
    expect(devs.map((d) => d.queue!.length)).toEqual(before); // the original spread again
    expect(errno(() => b.ioctl(TUNSETQUEUE, { flags: 0 }))).toBe('EINVAL');
  });

  it('drops (and counts) outbound packets when every queue is detached', () => {
    const { stack } = newStack();
    const devs = mq(stack, 2);
    for (const d of devs) d.setQueue(IFF_DETACH_QUEUE);
    sendFlows(stack, 5, 1);
    const ep = devs[0]!.endpoint!;
    expect(ep.stats.txNoQueue).toBe(5);
    expect(ep.stats.txPackets).toBe(0);
    // Still referenced: the interface stays until both close.
    devs[0]!.close();
    expect(stack.nic('mq0')).toBeDefined();
    devs[1]!.close();
    expect(stack.nic('mq0')).toBeUndefined();
  });

  it('each queue is bounded on its own, and closing an open removes its queue', () => {
    const { stack } = newStack(2);
    const devs = mq(stack, 2);
    const s = stack.udp();
    // One flow: everything on one queue, which overflows at 1024 while the other stays empty.
    for (let i = 0; i < 1100; i++) s.send(Uint8Array.of(1), 7, '10.0.0.2');
    const lens = devs.map((d) => d.queue!.length).sort((x, y) => x - y);
    expect(lens).toEqual([0, 1024]);
    expect(devs[0]!.endpoint!.stats.txQueueFull).toBe(76);
    const full = devs.find((d) => d.queue!.length === 1024)!;
    const other = devs.find((d) => d !== full)!;
    full.close();
    expect(other.endpoint!.queueCount).toBe(1);
    s.send(Uint8Array.of(1), 7, '10.0.0.2');
    expect(other.queue!.length).toBe(1);
  });

  it('TUNSETQUEUE on a single-queue interface: EINVAL', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    t.setIff({ flags: IFF_TUN });
    t.up();
    expect(errno(() => t.ioctl(TUNSETQUEUE, { flags: IFF_DETACH_QUEUE }))).toBe('EINVAL');
    expect(errno(() => t.ioctl(TUNSETQUEUE, { flags: IFF_ATTACH_QUEUE }))).toBe('EINVAL');
  });
});
