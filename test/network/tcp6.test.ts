/**
 * TCP over IPv6: bulk data both ways through a faulty Ethernet link (NDP resolution included),
 * and through a router whose next hop has a smaller MTU (Packet Too Big lowers the path MTU and
 * the segment size). sha256 of what was written equals what was read.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  EthernetEndpoint,
  ManualClock,
  Stack,
  Wire,
  parseIP,
  parseMAC,
  type IPv6Protocol,
  type TcpEndpoint,
} from '../../src/index.js';
import { FaultEndpoint, type FaultConfig } from '../../src/link/fault.js';
import { threeNodes } from './helpers.js';

/** A deterministic byte stream, hashed as it is produced. */
class Source {
  private x: number;
  private readonly chunk = new Uint8Array(64 * 1024);
  private filled = 0;
  private off = 0;
  produced = 0;
  readonly hash = createHash('sha256');
  constructor(
    seed: number,
    readonly total: number,
  ) {
    this.x = seed >>> 0 || 1;
  }

  /** Write what the endpoint takes; true when all is written. */
  pump(ep: TcpEndpoint): boolean {
    for (;;) {
      if (this.off === this.filled) {
        if (this.produced >= this.total) return true;
        const n = Math.min(this.chunk.length, this.total - this.produced);
        let x = this.x;
        for (let i = 0; i < n; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          this.chunk[i] = x;
        }
        this.x = x;
        this.filled = n;
        this.off = 0;
        this.produced += n;
        this.hash.update(this.chunk.subarray(0, n));
      }
      const n = ep.write(this.chunk.subarray(this.off, this.filled));
      this.off += n;
      if (this.off < this.filled) return false;
    }
  }
}

class Sink {
  readonly hash = createHash('sha256');
  received = 0;
  drain(ep: TcpEndpoint): void {
    for (let c = ep.readChunk(); c !== null; c = ep.readChunk()) {
      this.hash.update(c);
      this.received += c.length;
    }
  }
}

function accept(clock: ManualClock, listener: TcpEndpoint): TcpEndpoint {
  for (let i = 0; i < 120_000; i++) {
    const s = listener.accept();
    if (s !== null) return s;
    clock.advance(1);
  }
  throw new Error('not accepted');
}

/** Both directions at once until both ends have read everything; returns the hashes. */
function transfer(clock: ManualClock, client: TcpEndpoint, server: TcpEndpoint, bytes: number, seed: number) {
  const srcA = new Source(seed * 2 + 1, bytes);
  const srcB = new Source(seed * 2 + 2, bytes);
  const sinkA = new Sink();
  const sinkB = new Sink();
  let doneA = false;
  let doneB = false;
  const t0 = clock.now();
  for (let guard = 0; guard < 20_000_000; guard++) {
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
    if (d === Infinity || d - t0 > 3_600_000) break;
    clock.advanceTo(Math.max(d, clock.now()));
  }
  return {
    ab: [srcA.hash.digest('hex'), sinkB.hash.digest('hex')],
    ba: [srcB.hash.digest('hex'), sinkA.hash.digest('hex')],
    receivedA: sinkA.received,
    receivedB: sinkB.received,
  };
}

const MiB = 1 << 20;

describe('TCP over IPv6', () => {
  it('moves 8 MiB each way intact over a lossy, reordering, duplicating, corrupting Ethernet link (NDP on it too)', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock, queueLength: 65536 });
    const fault: FaultConfig = { delayMs: 2, loss: 0.02, reorder: 0.02, reorderDelayMs: 5, duplicate: 0.01, corrupt: 0.005, jitterMs: 1 };
    const fa = new FaultEndpoint(wire.a, { clock, seed: 101, limit: 100000, ...fault });
    const fb = new FaultEndpoint(wire.b, { clock, seed: 102, limit: 100000, ...fault });
    const a = new Stack({ clock, seed: 61 });
    const b = new Stack({ clock, seed: 62 });
    const na = a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(fa, { linkAddress: parseMAC('02:00:00:00:00:01') }) });
    const nb = b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(fb, { linkAddress: parseMAC('02:00:00:00:00:02') }) });
    na.addAddress('fd00::1/64');
    nb.addAddress('fd00::2/64');
    clock.advance(5000); // DAD
    expect(na.hasAddress(parseIP('fd00::1'))).toBe(true);
    const listener = b.tcp({ family: 6 });
    listener.bind(null, 80);
    listener.listen(16);
    const client = a.tcp({ family: 6 });
    client.connect('fd00::2', 80);
    const server = accept(clock, listener);
    const r = transfer(clock, client, server, 8 * MiB, 3);
    expect(r.receivedB).toBe(8 * MiB);
    expect(r.receivedA).toBe(8 * MiB);
    expect(r.ab[1]).toBe(r.ab[0]);
    expect(r.ba[1]).toBe(r.ba[0]);
    expect(fa.stats.lost).toBeGreaterThan(100);
    expect(fa.stats.corrupted).toBeGreaterThan(10);
    const ip6 = a.requireNetwork<IPv6Protocol>(0x86dd);
    expect(ip6.stats.ndp.nsSent).toBeGreaterThan(0);
    expect(a.stats.internalErrors + b.stats.internalErrors).toBe(0);
  });

  it('through a router with a 1280-byte next hop: Packet Too Big lowers the path MTU and the transfer completes', () => {
    // B's link says 1500 (so B advertises an MSS of 1440), the router's side of it 1280.
    const t = threeNodes({ mtuRouterB: 1280, latencyMs: 1 });
    const listener = t.b.tcp({ family: 6 });
    listener.bind(null, 8080);
    listener.listen(4);
    const client = t.a.tcp({ family: 6 });
    client.connect('fd00:2::2', 8080);
    const server = accept(t.clock, listener);
    const r = transfer(t.clock, client, server, MiB, 9);
    expect(r.ab[1]).toBe(r.ab[0]);
    expect(r.ba[1]).toBe(r.ba[0]);
    const ipA = t.a.requireNetwork<IPv6Protocol>(0x86dd);
    const ipB = t.b.requireNetwork<IPv6Protocol>(0x86dd);
    const ipR = t.r.requireNetwork<IPv6Protocol>(0x86dd);
    expect(ipR.stats.tooBigForwarded).toBeGreaterThan(0);
    expect(ipA.pathMtu(parseIP('fd00:2::2'), 1500)).toBe(1280);
    expect(ipA.stats.icmp.packetTooBigReceived).toBeGreaterThan(0);
    // B -> A leaves the router by its 1500-byte side: full-size segments, no Packet Too Big.
    expect(ipB.stats.icmp.packetTooBigReceived).toBe(0);
    expect(ipB.pathMtu(parseIP('fd00:1::2'), 1500)).toBe(1500);
  });
});
