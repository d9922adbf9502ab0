/**
 * The sandbox's UDP relay. Datagrams from the guest that no tunstack socket wants reach the UDP
 * forwarder; each (guest address, guest port, destination, port) becomes a flow: a Node `dgram`
 * socket on the host that sends to the (mapped) destination, and a tunstack endpoint bound to the
 * original destination and connected to the guest (the NIC may spoof), which takes the flow's
 * later datagrams and sends the answers, so they come from where the guest sent to. Only answers
 * from the destination itself are passed back (a port-restricted NAT).
 *
 * Published UDP ports work the other way: one host socket per published port, and per host peer
 * a tunstack endpoint connected to the guest's port from the gateway address.
 *
 * Bounded: at most `maxFlows` flows (the least recently used one is closed to make room), each
 * closed after `idleMs` without traffic; the tunstack endpoints' receive queues are bounded.
 */
import { createSocket, type RemoteInfo, type Socket as NodeDgram } from 'node:dgram';
import { isIP } from 'node:net';
import type { Stack } from '../adapters/stack.js';
import type { UdpEndpoint, UdpForwardRequest, UdpProtocol } from '../transport/udp.js';
import type { DestinationMap, Outbound } from './tcp-relay.js';

export interface UdpRelayStats {
  /** Flows opened, open now, closed idle, closed to make room. */
  flows: number;
  active: number;
  idleClosed: number;
  evicted: number;
  /** Datagrams not relayed: the destination is not relayed (port unreachable to the guest). */
  notRelayed: number;
  datagramsToHost: number;
  datagramsToGuest: number;
  /** Answers from other sources than the flow's destination, dropped. */
  foreignDropped: number;
  sendErrors: number;
}

export interface UdpRelayOptions {
  map: DestinationMap;
  /** Flows at most (default 4096). */
  maxFlows?: number;
  /** A flow with no datagram either way for this long is closed (default 60 s). */
  idleMs?: number;
  /** Serve datagrams from this NIC only. */
  nicId?: number;
  /** Host sockets send from this source address, by family (--outbound-addr). */
  outbound?: Outbound;
}

interface Flow {
  key: string;
  guest: UdpEndpoint;
  host: NodeDgram;
  /** Where the host socket sends. */
  dstHost: string;
  dstPort: number;
  last: number;
  /** Published-port flows: the host peer answers go to. */
  peer: RemoteInfo | null;
}

export class UdpRelay {
  readonly stats: UdpRelayStats = {
    flows: 0,
    active: 0,
    idleClosed: 0,
    evicted: 0,
    notRelayed: 0,
    datagramsToHost: 0,
    datagramsToGuest: 0,
    foreignDropped: 0,
    sendErrors: 0,
  };
  /** Flows in least-recently-used order (a touch moves a flow to the end). */
  private readonly flows = new Map<string, Flow>();
  private readonly published: NodeDgram[] = [];
  private readonly maxFlows: number;
  private readonly idleMs: number;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly stack: Stack,
    proto: UdpProtocol,
    private readonly options: UdpRelayOptions,
  ) {
    this.maxFlows = options.maxFlows ?? 4096;
    this.idleMs = options.idleMs ?? 60_000;
    proto.forwarder = (req) => this.onDatagram(req);
    this.sweeper = setInterval(() => this.sweep(), Math.max(100, Math.min(this.idleMs / 4, 5_000)));
    this.sweeper.unref();
  }

  get flowCount(): number {
    return this.flows.size;
  }

  /**
   * Publish a host UDP port: datagrams to hostAddress:hostPort go to guest:guestPort, from the
   * gateway; answers go back to the sender.
   */
  async publish(hostAddress: string, hostPort: number, guest: string, guestPort: number, gateway: string): Promise<NodeDgram> {
    const fam = isIP(hostAddress) === 6 ? 'udp6' : 'udp4';
    const s = createSocket({ type: fam });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(hostPort, hostAddress, () => {
        s.removeListener('error', reject);
        resolve();
      });
    });
    s.on('error', () => {});
    s.on('message', (msg, rinfo) => {
      const key = `p|${hostAddress}|${hostPort}|${rinfo.address}|${rinfo.port}`;
      let f = this.flows.get(key);
      if (f === undefined) {
        const ep = this.stack.udp({ family: isIP(guest) === 6 ? 6 : 4 });
        try {
          ep.bind(gateway, 0);
          ep.connect(guest, guestPort);
        } catch {
          ep.close();
          this.stats.sendErrors++;
          return;
        }
        f = { key, guest: ep, host: s, dstHost: rinfo.address, dstPort: rinfo.port, last: 0, peer: rinfo };
        this.add(f);
      }
      this.touch(f);
      try {
        f.guest.send(msg);
        this.stats.datagramsToGuest++;
      } catch {
        this.stats.sendErrors++;
      }
    });
    this.published.push(s);
    return s;
  }

  /** Stop a port `publish` opened: its socket closes, and the flows it carried with it. */
  unpublish(s: NodeDgram): void {
    const i = this.published.indexOf(s);
    if (i < 0) return;
    this.published.splice(i, 1);
    for (const f of [...this.flows.values()]) if (f.host === s) this.remove(f);
    s.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    for (const f of [...this.flows.values()]) this.remove(f);
    for (const s of this.published) s.close();
  }

  private onDatagram(req: UdpForwardRequest): boolean {
    if (this.closed) return false;
    if (this.options.nicId !== undefined && req.nicId !== this.options.nicId) return false;
    const host = this.options.map(req.family, req.localAddress, req.localPort);
    if (host === null) {
      this.stats.notRelayed++;
      return false;
    }
    const key = `${req.remoteAddress}|${req.remotePort}|${req.localAddress}|${req.localPort}`;
    let f = this.flows.get(key);
    if (f === undefined) {
      const made = this.open(key, req, host);
      if (made === null) return true;
      f = made;
    }
    this.touch(f);
    this.toHost(f, req.data);
    return true;
  }

  private open(key: string, req: UdpForwardRequest, host: string): Flow | null {
    const ep = this.stack.udp({ family: req.family, reuseAddress: true });
    try {
      // Bound to the destination the guest used, connected to the guest: later datagrams of the
      // flow land here, answers leave from there.
      ep.bind(req.localAddress, req.localPort);
      ep.connect(req.remoteAddress, req.remotePort);
    } catch {
      ep.close();
      this.stats.sendErrors++;
      return null;
    }
    const v6 = isIP(host) === 6;
    const hs = createSocket({ type: v6 ? 'udp6' : 'udp4' });
    hs.on('error', () => {});
    const from = v6 ? this.options.outbound?.v6 : this.options.outbound?.v4;
    // Sends made while the bind is under way wait for it (dgram queues them).
    if (from !== undefined) hs.bind({ address: from, port: 0 });
    const f: Flow = { key, guest: ep, host: hs, dstHost: host, dstPort: req.localPort, last: 0, peer: null };
    hs.on('message', (msg, rinfo) => {
      if (rinfo.port !== f.dstPort || rinfo.address !== f.dstHost) {
        this.stats.foreignDropped++;
        return;
      }
      this.touch(f);
      try {
        ep.send(msg);
        this.stats.datagramsToGuest++;
      } catch {
        this.stats.sendErrors++;
      }
    });
    this.add(f);
    return f;
  }

  private add(f: Flow): void {
    while (this.flows.size >= this.maxFlows) {
      const oldest = this.flows.values().next().value as Flow;
      this.stats.evicted++;
      this.remove(oldest);
    }
    this.flows.set(f.key, f);
    this.stats.flows++;
    this.stats.active = this.flows.size;
    f.guest.on('readable', () => {
      for (let m = f.guest.recv(); m !== null; m = f.guest.recv()) {
        this.touch(f);
        this.toHost(f, m.data);
      }
    });
  }

  private toHost(f: Flow, data: Uint8Array): void {
    this.stats.datagramsToHost++;
    const to = f.peer ?? { address: f.dstHost, port: f.dstPort };
    f.host.send(data, to.port, to.address, (err) => {
      if (err) this.stats.sendErrors++;
    });
  }

  private touch(f: Flow): void {
    const now = Date.now();
    // Re-insert at most once a second: keeps the LRU order close without a Map write per datagram.
    if (now - f.last > 1000) {
      this.flows.delete(f.key);
      this.flows.set(f.key, f);
    }
    f.last = now;
  }

  private remove(f: Flow): void {
    if (!this.flows.delete(f.key)) return;
    this.stats.active = this.flows.size;
    f.guest.close();
    if (f.peer === null) f.host.close();
  }

  private sweep(): void {
    const limit = Date.now() - this.idleMs;
    for (const f of [...this.flows.values()]) {
      if (f.last > limit) continue;
      this.stats.idleClosed++;
      this.remove(f);
    }
  }
}
