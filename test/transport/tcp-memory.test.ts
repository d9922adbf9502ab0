/**
 * The stack-wide TCP memory budget (Linux's tcp_mem): many connections whose receivers stop
 * reading stay within the hard limit on both stacks, pressure is entered and left, and every
 * connection completes intact once the readers resume.
 */
import { describe, expect, it } from 'vitest';
import { type TcpEndpoint } from '../../src/index.js';
import { BLOCK_SIZE } from '../../src/transport/tcp/buffers.js';
import { connectPair, pair, pattern } from './helpers/tcp.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('tcp memory budget', () => {
  it('limits: EINVAL on bad levels, one figure sets the others in Linux proportions', () => {
    const p = pair();
    const m = p.tcpA.memory;
    expect(() => m.setLimits({ low: 10, pressure: 5, high: 20 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => m.setLimits({ high: -1 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => m.setLimits({ high: Number.NaN })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    m.setLimits({ high: 6 * MiB });
    expect(m.limits).toEqual({ low: 3 * MiB, pressure: 4 * MiB, high: 6 * MiB });
    m.setLimits({ low: 1 * MiB });
    expect(m.limits).toEqual({ low: 1 * MiB, pressure: 4 * MiB, high: 6 * MiB });
  });

  it('250 never-reading connections stay within the hard limit; all complete intact after reads resume', () => {
    const N = 250;
    const SIZE = 192 * KiB;
    const HIGH = 4 * MiB;
    const p = pair({ latencyMs: 1 });
    for (const t of [p.tcpA, p.tcpB]) t.memory.setLimits({ low: 2 * MiB, pressure: 3 * MiB, high: HIGH });
    const conns: { client: TcpEndpoint; server: TcpEndpoint; data: Uint8Array; off: number; got: Uint8Array[] }[] = [];
    for (let i = 0; i < N; i++) {
      const { client, server, listener } = connectPair(p, 1000 + i);
      listener.close();
      const c = { client, server, data: pattern(SIZE, i + 1), off: 0, got: [] as Uint8Array[] };
      const push = (): void => {
        while (c.off < SIZE) {
          const n = client.write(c.data.subarray(c.off));
          if (n === 0) break;
          c.off += n;
        }
      };
      client.on('writable', push);
      push();
      conns.push(c);
    }
    // What a connection may hold beyond the limit: the send block it has, or its receive
    // minimum plus one segment.
    const slackA = N * (BLOCK_SIZE + 2 * 128);
    const slackB = N * (p.tcpB.rmemMin + 1460 + 3 * 128);
    let maxA = 0;
    let maxB = 0;
    const held = (): { a: number; b: number } => {
      let a = 0;
      let b = 0;
      for (const c of conns) {
        a += c.client.writableLength;
        b += c.server.readableLength + c.server.info().oooQueued;
      }
      return { a, b };
    };
    for (let t = 0; t < 3000; t++) {
      p.clock.advance(1);
      const h = held();
      maxA = Math.max(maxA, h.a, p.tcpA.memory.allocated);
      maxB = Math.max(maxB, h.b, p.tcpB.memory.allocated);
      expect(p.tcpA.memory.allocated).toBeGreaterThanOrEqual(h.a);
      expect(p.tcpB.memory.allocated).toBeGreaterThanOrEqual(h.b);
    }
    // Without a budget the receivers held 128 KiB each (32 MiB), the senders the other 16 MiB.
    expect(maxA).toBeLessThanOrEqual(HIGH + slackA);
    expect(maxB).toBeLessThanOrEqual(HIGH + slackB);
    expect(p.tcpB.memory.allocated).toBeGreaterThan(p.tcpB.memory.pressure);
    for (const t of [p.tcpA, p.tcpB]) {
      expect(t.memory.underPressure).toBe(true);
      expect(t.stats.memoryPressure).toBe(1);
      expect(t.stats.memoryPressures).toBeGreaterThanOrEqual(1);
    }
    expect(p.tcpA.stats.sndMemRefusals).toBeGreaterThan(0);
    expect(p.tcpB.stats.rcvMemDrops).toBeGreaterThan(0);
    // Under pressure the windows stop opening: nobody offers more than four segments ahead.
    for (const c of conns.slice(0, 10)) expect(c.server.info().rcvBuf).toBeLessThanOrEqual(p.tcpB.rmemDefault);

    // Readers resume.
    for (const c of conns) {
      const read = (): void => {
        for (let d = c.server.read(); d !== null; d = c.server.read()) c.got.push(d.slice());
      };
      c.server.on('readable', read);
      read();
    }
    const done = (): boolean => conns.every((c) => c.got.reduce((n, g) => n + g.length, 0) === SIZE);
    for (let t = 0; t < 400_000 && !done(); t++) {
      p.clock.advance(2);
      maxA = Math.max(maxA, p.tcpA.memory.allocated);
      maxB = Math.max(maxB, p.tcpB.memory.allocated);
    }
    expect(done()).toBe(true);
    for (const c of conns) expect(Buffer.concat(c.got).equals(Buffer.from(c.data))).toBe(true);
    expect(maxA).toBeLessThanOrEqual(HIGH + slackA);
    expect(maxB).toBeLessThanOrEqual(HIGH + slackB);
    // Everything acknowledged and read: nothing is charged, pressure is over.
    p.clock.advance(1000);
    for (const t of [p.tcpA, p.tcpB]) {
      expect(t.memory.allocated).toBe(0);
      expect(t.stats.memoryAllocated).toBe(0);
      expect(t.memory.underPressure).toBe(false);
      expect(t.stats.memoryPressure).toBe(0);
    }
    for (const c of conns) {
      c.client.close();
      c.server.close();
    }
  }, 120_000);

  it('out-of-order queues are pruned first when the limit is reached; the senders resend what was reneged', () => {
    const N = 16;
    const SIZE = 512 * KiB;
    const HIGH = 256 * KiB;
    const p = pair({ latencyMs: 2, faultAtoB: { loss: 0.03 } });
    p.tcpB.memory.setLimits({ low: 64 * KiB, pressure: 128 * KiB, high: HIGH });
    const conns: { client: TcpEndpoint; server: TcpEndpoint; data: Uint8Array; off: number; got: Uint8Array[] }[] = [];
    for (let i = 0; i < N; i++) {
      const { client, server, listener } = connectPair(p, 2000 + i);
      listener.close();
      const c = { client, server, data: pattern(SIZE, 100 + i), off: 0, got: [] as Uint8Array[] };
      const push = (): void => {
        while (c.off < SIZE) {
          const n = client.write(c.data.subarray(c.off));
          if (n === 0) break;
          c.off += n;
        }
      };
      const read = (): void => {
        for (let d = server.read(); d !== null; d = server.read()) c.got.push(d.slice());
      };
      client.on('writable', push);
      server.on('readable', read);
      push();
      conns.push(c);
    }
    const slack = N * (p.tcpB.rmemMin + 1460 + 3 * 128);
    let maxB = 0;
    const done = (): boolean => conns.every((c) => c.got.reduce((n, g) => n + g.length, 0) === SIZE);
    for (let t = 0; t < 600_000 && !done(); t++) {
      p.clock.advance(1);
      maxB = Math.max(maxB, p.tcpB.memory.allocated);
    }
    expect(done()).toBe(true);
    for (const c of conns) expect(Buffer.concat(c.got).equals(Buffer.from(c.data))).toBe(true);
    expect(maxB).toBeLessThanOrEqual(HIGH + slack);
    expect(p.tcpB.stats.ofoPruned).toBeGreaterThan(0);
    expect(p.tcpB.stats.memoryPressures).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('under pressure the receive buffer stays at its default and the window opens at most four segments ahead', () => {
    const p = pair({ latencyMs: 10 });
    p.tcpB.memory.setLimits({ low: 64 * KiB, pressure: 100 * KiB, high: 64 * MiB });
    // A connection whose reader never reads keeps stack B under pressure.
    const hog = connectPair(p, 81);
    hog.client.write(new Uint8Array(256 * KiB));
    for (let i = 0; i < 200; i++) p.clock.advance(1);
    expect(p.tcpB.memory.underPressure).toBe(true);
    const { client, server } = connectPair(p);
    const data = pattern(1 * MiB, 3);
    const got: Uint8Array[] = [];
    let off = 0;
    let maxWnd = 0;
    for (let i = 0; i < 20_000 && off < data.length + 1; i++) {
      if (off < data.length) off += client.write(data.subarray(off));
      for (let d = server.read(); d !== null; d = server.read()) got.push(d.slice());
      p.clock.advance(1);
      // (After the first round trips: the window of the handshake is not clamped.)
      if (i > 100) maxWnd = Math.max(maxWnd, server.info().rcvWnd);
      if (off === data.length && got.reduce((n, g) => n + g.length, 0) === data.length) break;
    }
    expect(Buffer.concat(got).equals(Buffer.from(data))).toBe(true);
    const info = server.info();
    expect(info.rcvBuf).toBe(p.tcpB.rmemDefault);
    expect(maxWnd).toBeLessThanOrEqual(4 * info.advMss);
    expect(p.tcpB.stats.memoryPressures).toBe(1);
    // The hog reads: the pressure ends, and the window may open again.
    for (let d = hog.server.read(); d !== null; d = hog.server.read());
    p.clock.advance(1);
    expect(p.tcpB.memory.underPressure).toBe(false);
  });
});
