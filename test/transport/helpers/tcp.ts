/** Shared setup of the TCP tests: two stacks joined by a wire (optionally through a FaultEndpoint). */
import { ManualClock, Stack, type TcpEndpoint, type TcpProtocol } from '../../../src/index.js';
import { Wire } from '../../../src/link/wire.js';
import { FaultEndpoint, type FaultConfig } from '../../../src/link/fault.js';
import type { LinkEndpoint } from '../../../src/link/endpoint.js';

export interface Pair {
  clock: ManualClock;
  wire: Wire;
  a: Stack;
  b: Stack;
  tcpA: TcpProtocol;
  tcpB: TcpProtocol;
  faultA: FaultEndpoint | null;
  faultB: FaultEndpoint | null;
  tap: Tap | null;
}

export interface PairOptions {
  mtu?: number;
  latencyMs?: number;
  seed?: number;
  /** Impairment of A's outbound and B's outbound directions. */
  faultAtoB?: FaultConfig;
  faultBtoA?: FaultConfig;
  capabilities?: number;
  queueLength?: number;
  /** Record A's packets (both directions) in `tap.packets`. */
  tap?: boolean;
}

/** Stack A (10.0.0.1) and stack B (10.0.0.2) on an IP wire. */
export function pair(o: PairOptions = {}): Pair {
  const clock = new ManualClock();
  const wire = new Wire({
    clock,
    latencyMs: o.latencyMs ?? 0,
    mtu: o.mtu ?? 1500,
    wireFormat: 'ip',
    capabilities: o.capabilities ?? 0,
    queueLength: o.queueLength ?? 65536,
  });
  const seed = o.seed ?? 1;
  const a = new Stack({ clock, seed });
  const b = new Stack({ clock, seed: seed + 1000 });
  let epA: LinkEndpoint = wire.a;
  let epB: LinkEndpoint = wire.b;
  let faultA: FaultEndpoint | null = null;
  let faultB: FaultEndpoint | null = null;
  if (o.faultAtoB) epA = faultA = new FaultEndpoint(wire.a, { clock, seed: seed * 7 + 1, limit: 100000, ...o.faultAtoB });
  if (o.faultBtoA) epB = faultB = new FaultEndpoint(wire.b, { clock, seed: seed * 7 + 2, limit: 100000, ...o.faultBtoA });
  const tap = o.tap ? new Tap(epA) : null;
  a.createNIC({ name: 'eth0', endpoint: tap ?? epA }).addAddress('10.0.0.1/24');
  b.createNIC({ name: 'eth0', endpoint: epB }).addAddress('10.0.0.2/24');
  return { clock, wire, a, b, tcpA: a.requireTransport<TcpProtocol>(6), tcpB: b.requireTransport<TcpProtocol>(6), faultA, faultB, tap };
}

/** A listener on B:port and a connected client from A; runs the clock until accepted. */
export function connectPair(p: Pair, port = 80): { client: TcpEndpoint; server: TcpEndpoint; listener: TcpEndpoint } {
  const listener = p.b.tcp();
  listener.bind(null, port);
  listener.listen(128);
  const client = p.a.tcp();
  client.connect('10.0.0.2', port);
  let server: TcpEndpoint | null = null;
  for (let i = 0; i < 60_000 && server === null; i++) {
    server = listener.accept();
    if (server === null) p.clock.advance(1);
  }
  if (server === null) throw new Error('not accepted');
  return { client, server, listener };
}

/** Deterministic pseudo-random bytes. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
  }
  return out;
}

/** A link endpoint that records the bytes of every packet passing in either direction. */
export class Tap implements LinkEndpoint {
  readonly packets: Uint8Array[] = [];
  private upper: import('../../../src/link/endpoint.js').NetworkDispatcher | null = null;
  constructor(readonly inner: LinkEndpoint) {}
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
    return this.upper !== null;
  }
  attach(d: import('../../../src/link/endpoint.js').NetworkDispatcher | null): void {
    this.upper = d;
    this.inner.attach(
      d === null
        ? null
        : {
            deliverNetworkPacket: (proto, pkt) => {
              this.packets.push(pkt.toBytes());
              this.upper?.deliverNetworkPacket(proto, pkt);
            },
          },
    );
  }
  /** Outbound packets that carried scatter-gather fragments (joined for `packets`). */
  sgPackets = 0;
  writePackets(pkts: readonly import('../../../src/core/packet.js').PacketBuffer[]): number {
    for (const p of pkts) {
      if (p.frags !== null) this.sgPackets++;
      this.packets.push(p.toBytes());
    }
    return this.inner.writePackets(pkts);
  }
  close(): void {
    this.inner.close();
  }
}
