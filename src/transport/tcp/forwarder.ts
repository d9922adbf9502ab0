/**
 * TcpForwarder: connection requests for addresses and ports nobody listens on, decided later
 * (the role of gVisor's tcp.Forwarder, for a sandbox's NAT relay).
 *
 * A SYN that matches no connection, no TIME_WAIT record that takes it and no listener, arriving
 * on a NIC the forwarder serves, becomes a `TcpForwardRequest` handed to the callback with the
 * 4-tuple. Nothing is sent to the peer until the request is decided:
 *
 * - `accept()` sends the SYN-ACK (options negotiated from the SYN as a listener would) and
 *   resolves with the TcpEndpoint once the peer's ACK completes the handshake (rejects if it
 *   never does: RST from the peer, SYN-ACK retries exhausted). A relay calls it only after its
 *   host-side connect succeeded.
 * - `reject()` answers with a RST (the peer sees ECONNREFUSED, as from a closed port).
 * - `drop()` forgets the SYN silently (the peer times out, as behind a firewall).
 *
 * While a request is pending, retransmitted SYNs of the same 4-tuple are absorbed (a SYN with a
 * new sequence number replaces the stored one). Pending requests are bounded (`maxPending`):
 * beyond that SYNs are dropped and counted, so a half-open flood costs at most that many small
 * records; undecided requests expire after `pendingTimeoutMs` (on the stack's clock).
 */
import { TunstackError } from '../../core/errors.js';
import { formatIP } from '../../core/address.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, parseTcpOptions } from '../../headers/tcp.js';
import type { Timer } from '../../core/clock.js';
import type { NIC } from '../../stack/nic.js';
import type { NetworkInfo } from '../../stack/protocol.js';
import type { TcpEndpoint } from './endpoint.js';
import type { TcpProtocol } from './protocol.js';
import { Segment } from './segment.js';
import { LISTEN } from './types.js';

export interface TcpForwarderOptions {
  /** Undecided requests at most (default 1024); more SYNs are dropped and counted. */
  maxPending?: number;
  /** An undecided request is dropped after this long (default 30 s, stack clock). */
  pendingTimeoutMs?: number;
  /** Serve only SYNs arriving on this NIC (id or name); default every NIC. */
  nic?: number | string;
}

export interface TcpForwarderStats {
  /** Requests handed to the callback. */
  requests: number;
  /** Retransmitted SYNs absorbed while their request was pending. */
  synRetransmits: number;
  /** SYNs dropped because `maxPending` requests were waiting. */
  overflows: number;
  /** SYN+FIN segments discarded (Linux drops them in LISTEN). */
  synFinDropped: number;
  accepted: number;
  rejected: number;
  dropped: number;
  /** Requests nobody decided in time. */
  expired: number;
  /** Accepted requests whose handshake completed, and those that did not. */
  established: number;
  failed: number;
  /** The callback threw (the request is dropped). */
  callbackErrors: number;
}

export type TcpForwardHandler = (req: TcpForwardRequest) => void;

/** One connection request. Decide it once: accept, reject or drop. */
export class TcpForwardRequest {
  readonly family: 4 | 6;
  readonly nicId: number;
  /** The peer that sent the SYN. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Where the SYN was going. */
  readonly localAddress: string;
  readonly localPort: number;
  /** @internal */ readonly key: string;
  /** @internal The SYN's TCP header (options included). */
  syn: Uint8Array;
  /** @internal Source then destination address. */
  readonly addrs: Uint8Array;
  /** @internal */ timer: Timer | null = null;
  private decided = false;

  /** @internal */
  constructor(
    private readonly fwd: TcpForwarder,
    private readonly nic: NIC,
    seg: Segment,
    key: string,
  ) {
    const net = seg.net;
    const alen = net.family === 4 ? 4 : 16;
    this.family = net.family;
    this.nicId = nic.id;
    this.key = key;
    this.addrs = new Uint8Array(2 * alen);
    this.addrs.set(net.data.subarray(net.srcOffset, net.srcOffset + alen), 0);
    this.addrs.set(net.data.subarray(net.dstOffset, net.dstOffset + alen), alen);
    this.remoteAddress = formatIP(this.addrs.subarray(0, alen));
    this.localAddress = formatIP(this.addrs.subarray(alen));
    this.remotePort = seg.srcPort;
    this.localPort = seg.dstPort;
    this.syn = seg.data.slice(seg.off, seg.off + seg.hl);
  }

  /** True once accepted, rejected, dropped or expired. */
  get settled(): boolean {
    return this.decided;
  }

  /**
   * Complete the handshake: SYN-ACK now, the endpoint when the peer's ACK arrives. Rejects with
   * EINVAL when already decided, ECONNABORTED when the handshake does not complete.
   */
  accept(): Promise<TcpEndpoint> {
    if (!this.settle()) return Promise.reject(new TunstackError('EINVAL', 'connection request already decided', 'accept'));
    return this.fwd.acceptRequest(this, this.nic);
  }

  /** Answer with a RST (the peer's connect fails with ECONNREFUSED). */
  reject(): void {
    if (!this.settle()) return;
    this.fwd.rejectRequest(this, this.nic);
  }

  /** Forget the SYN without an answer. */
  drop(): void {
    if (!this.settle()) return;
    this.fwd.stats.dropped++;
  }

  /** @internal */
  settle(): boolean {
    if (this.decided) return false;
    this.decided = true;
    this.timer?.cancel();
    this.fwd.forget(this);
    return true;
  }

  /** @internal A Segment rebuilt from the stored SYN, for the protocol. */
  segment(nic: NIC): Segment {
    const seg = new Segment();
    const b = this.syn;
    const alen = this.family === 4 ? 4 : 16;
    seg.data = b;
    seg.off = 0;
    seg.hl = b.length;
    seg.srcPort = this.remotePort;
    seg.dstPort = this.localPort;
    seg.seq = ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0;
    seg.ack = 0;
    seg.flags = TCP_SYN;
    seg.wnd = (b[14]! << 8) | b[15]!;
    seg.plOff = b.length;
    seg.plLen = 0;
    if (b.length <= 20 || !parseTcpOptions(b, 20, b.length - 20, seg.opts)) seg.opts.clear();
    const addrs = this.addrs;
    const net: NetworkInfo = {
      family: this.family,
      nic,
      data: addrs,
      srcOffset: 0,
      dstOffset: alen,
      ttl: 64,
      tos: 0,
      multicastOrBroadcast: false,
      pseudoHeaderSum: () => 0,
    };
    seg.net = net;
    return seg;
  }
}

export class TcpForwarder {
  readonly stats: TcpForwarderStats = {
    requests: 0,
    synRetransmits: 0,
    overflows: 0,
    synFinDropped: 0,
    accepted: 0,
    rejected: 0,
    dropped: 0,
    expired: 0,
    established: 0,
    failed: 0,
    callbackErrors: 0,
  };
  private readonly pending = new Map<string, TcpForwardRequest>();
  private readonly maxPending: number;
  private readonly timeoutMs: number;
  private readonly nicId: number | null;
  /** The parent of accepted children: a listener that is not in the listener table. */
  private readonly parent: TcpEndpoint;
  private readonly waiting = new Map<TcpEndpoint, { resolve: (ep: TcpEndpoint) => void; reject: (e: Error) => void; onClose: () => void }>();
  private readonly early = new Set<TcpEndpoint>();
  private closed = false;

  /** Install on `proto` (replacing any forwarder there). */
  constructor(
    private readonly proto: TcpProtocol,
    private readonly handler: TcpForwardHandler,
    options: TcpForwarderOptions = {},
  ) {
    this.maxPending = options.maxPending ?? 1024;
    this.timeoutMs = options.pendingTimeoutMs ?? 30_000;
    this.nicId = options.nic === undefined ? null : proto.stack.getNIC(options.nic).id;
    const p = proto.createEndpoint();
    p.st = LISTEN; // never registered in the listener table
    p.acceptQueue = [];
    p.backlog = 0x7fffffff;
    p.on('connection', (child: TcpEndpoint) => this.established(child));
    this.parent = p;
    proto.forwarder = this;
  }

  /** Requests waiting for a decision. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Accepted requests whose handshake is still in progress. */
  get handshakingCount(): number {
    return this.waiting.size;
  }

  /** Uninstall; pending requests are dropped, handshakes in progress aborted. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.proto.forwarder === this) this.proto.forwarder = null;
    for (const r of [...this.pending.values()]) r.drop();
    for (const child of [...this.waiting.keys()]) child.abort();
  }

  /** @internal Called by the protocol for a segment nobody else wants. */
  offer(seg: Segment): boolean {
    if (this.closed) return false;
    const f = seg.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN);
    if (f !== TCP_SYN && f !== (TCP_SYN | TCP_FIN)) return false;
    const net = seg.net;
    const nic = net.nic;
    if (this.nicId !== null && nic.id !== this.nicId) return false;
    if (f !== TCP_SYN) {
      // As a Linux listener does: SYN+FIN is discarded, neither forwarded nor reset.
      this.stats.synFinDropped++;
      return true;
    }
    const alen = net.family === 4 ? 4 : 16;
    const key = tupleKey(net.data, net.srcOffset, net.dstOffset, alen, seg.srcPort, seg.dstPort);
    const existing = this.pending.get(key);
    if (existing !== undefined) {
      this.stats.synRetransmits++;
      // A new attempt (another ISN) replaces the SYN the answer will be built from.
      const s = existing.syn;
      const seq = ((seg.data[seg.off + 4]! << 24) | (seg.data[seg.off + 5]! << 16) | (seg.data[seg.off + 6]! << 8) | seg.data[seg.off + 7]!) >>> 0;
      if ((((s[4]! << 24) | (s[5]! << 16) | (s[6]! << 8) | s[7]!) >>> 0) !== seq) existing.syn = seg.data.slice(seg.off, seg.off + seg.hl);
      return true;
    }
    if (this.pending.size >= this.maxPending) {
      this.stats.overflows++;
      return true;
    }
    const req = new TcpForwardRequest(this, nic, seg, key);
    this.pending.set(key, req);
    this.stats.requests++;
    const t = this.proto.stack.clock.timer(() => {
      if (req.settle()) this.stats.expired++;
    });
    req.timer = t;
    t.schedule(this.timeoutMs);
    try {
      this.handler(req);
    } catch {
      this.stats.callbackErrors++;
      req.drop();
    }
    return true;
  }

  /** @internal */
  forget(req: TcpForwardRequest): void {
    if (this.pending.get(req.key) === req) this.pending.delete(req.key);
  }

  /** @internal */
  acceptRequest(req: TcpForwardRequest, nic: NIC): Promise<TcpEndpoint> {
    if (this.closed) return Promise.reject(new TunstackError('ECONNABORTED', 'forwarder closed', 'accept'));
    const seg = req.segment(nic);
    const alen = req.family === 4 ? 4 : 16;
    const proto = this.proto;
    if (proto.lookupTuple(req.addrs.subarray(alen), req.addrs.subarray(0, alen), req.localPort, req.remotePort) !== null) {
      return Promise.reject(new TunstackError('EADDRINUSE', 'the 4-tuple is in use', 'accept'));
    }
    // The handshake may complete (or fail) before acceptForwarded returns, when the link
    // delivers synchronously: `early` catches that.
    const child = proto.acceptForwarded(this.parent, seg);
    if (child === null) return Promise.reject(new TunstackError('ENETUNREACH', 'no route back to the peer', 'accept'));
    this.stats.accepted++;
    if (this.early.delete(child)) {
      this.stats.established++;
      return Promise.resolve(child);
    }
    if (child.state === 'CLOSED') {
      this.stats.failed++;
      return Promise.reject(new TunstackError('ECONNABORTED', 'the handshake did not complete', 'accept'));
    }
    return new Promise<TcpEndpoint>((resolve, reject) => {
      const onClose = (): void => {
        const w = this.waiting.get(child);
        if (w === undefined) return;
        this.waiting.delete(child);
        this.stats.failed++;
        w.reject(new TunstackError('ECONNABORTED', 'the handshake did not complete', 'accept'));
      };
      this.waiting.set(child, { resolve, reject, onClose });
      child.once('close', onClose);
    });
  }

  /** @internal */
  rejectRequest(req: TcpForwardRequest, nic: NIC): void {
    this.stats.rejected++;
    this.proto.rejectForwarded(req.segment(nic));
  }

  private established(child: TcpEndpoint): void {
    const w = this.waiting.get(child);
    if (w === undefined) {
      this.early.add(child);
      return;
    }
    this.waiting.delete(child);
    // Established: the listener (a closure for the flow's lifetime) is no longer needed.
    child.removeListener('close', w.onClose);
    this.stats.established++;
    w.resolve(child);
  }
}

const HEX = '0123456789abcdef';

/** "src|sport|dst|dport" in hex, one string per SYN (SYNs are not the hot path). */
function tupleKey(data: Uint8Array, srcOff: number, dstOff: number, alen: number, sport: number, dport: number): string {
  let s = '';
  for (let i = 0; i < alen; i++) s += HEX[data[srcOff + i]! >>> 4]! + HEX[data[srcOff + i]! & 15]!;
  s += `|${sport}|`;
  for (let i = 0; i < alen; i++) s += HEX[data[dstOff + i]! >>> 4]! + HEX[data[dstOff + i]! & 15]!;
  return `${s}|${dport}`;
}
