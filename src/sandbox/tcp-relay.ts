/**
 * The sandbox's TCP relay: guest connections are terminated by tunstack (the TCP forwarder on a
 * promiscuous, spoofing NIC) and relayed to host sockets opened with Node's `net`; host
 * connections to published ports are relayed into the guest.
 *
 * A guest SYN becomes a host `connect()` to the (mapped) destination; only when that succeeds is
 * the guest's SYN answered (SYN-ACK), so the guest sees the real outcome: a refused host connect
 * is a RST (ECONNREFUSED), an unreachable or silent one leaves the guest's SYN unanswered.
 *
 * Bounded: connects in flight (the forwarder's pending limit), established flows (`maxFlows`;
 * beyond it new SYNs are refused with a RST), and data in flight per flow (the TCP windows on
 * the guest side, Node's stream backpressure on the host side: a side that cannot take more
 * stops the other from reading).
 *
 * With the native shim the connect is its `tcpConnect` (the fd then becomes a `net.Socket`): a
 * local destination's outcome is known when the call returns, so the SYN is answered in the turn
 * it arrived in; answering before the host connect would gain nothing there and would make a
 * refused port a reset after the handshake.
 *
 * Over 800 lines because the relay, its host reader and its flow share per-socket state through
 * module-level listener functions (no closure per flow, for the memory of 10,000 idle flows);
 * they change together.
 */
import { isIP, connect as netConnect, Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { tryParseIPv4, tryParseIPv6 } from '../core/address.js';
import { errnoName, nativeBinding, type NativeBinding, type PollerHandle } from '../host/native.js';
import { BLOCK_SIZE, takeBlock, type BufferLease, type SendBlock } from '../transport/tcp/buffers.js';
import type { TcpEndpoint, TcpEndpointSink } from '../transport/tcp/endpoint.js';
import { TcpForwarder, type TcpForwardRequest } from '../transport/tcp/forwarder.js';
import type { TcpMemory } from '../transport/tcp/memory.js';
import type { TcpProtocol } from '../transport/tcp/protocol.js';
import type { Timer } from '../core/clock.js';
import { FdHub, FdSocket, fdStreamNative, type FdOwner, type FdReader, type FdStreamNative } from './fd-stream.js';

export interface TcpRelayStats {
  /** Guest connection attempts taken (host connects started). */
  connects: number;
  /** Host connects that succeeded, refused, failed otherwise (unreachable, timeout). */
  connected: number;
  refused: number;
  failed: number;
  /** Guest SYNs refused because `maxFlows` flows were open, or the destination is not relayed. */
  overLimit: number;
  notRelayed: number;
  /** Flows open now, most at once, finished. */
  active: number;
  peak: number;
  closed: number;
  /** Inbound (published port) connections taken. */
  inbound: number;
  /** Flows whose host sent data before the guest's handshake completed (read early, sent at once). */
  hostFirst: number;
  bytesToHost: number;
  bytesToGuest: number;
}

/** Where a guest connection goes on the host: [host, port], or null to refuse it. */
export type DestinationMap = (family: 4 | 6, address: string, port: number) => string | null;

export interface TcpRelayOptions {
  map: DestinationMap;
  /** Flows open at once (default 65536). */
  maxFlows?: number;
  /** Host connects in flight (default 1024; more guest SYNs are dropped until some finish). */
  maxConnecting?: number;
  /** A host connect that takes longer is abandoned (default 20 s; the guest's SYN goes unanswered). */
  connectTimeoutMs?: number;
  /** Serve SYNs from this NIC only. */
  nic?: number | string;
  /** Host connects leave from this source address, by family (--outbound-addr); default the kernel's choice. */
  outbound?: Outbound;
  /**
   * Make host connects with the native shim's connect(2) (default true where the addon has it):
   * a connect to a local address (the gateway's loopback) is decided inside that call, so the
   * guest's SYN is answered in the same turn, and the socket is handed to Node by its fd. False:
   * Node's net.connect for every connect.
   */
  nativeConnect?: boolean;
  /**
   * Relay a native connect's fd on its own (read/writev/shutdown on the fd, one epoll set for all
   * of them: src/sandbox/fd-stream.ts) instead of handing it to a `net.Socket` (default true where
   * the addon has the calls; a flow then costs no Node socket).
   */
  fdStreams?: boolean;
}

/** Source addresses for host sockets, by IP version. */
export interface Outbound {
  v4?: string;
  v6?: string;
}

export class TcpRelay {
  readonly stats: TcpRelayStats = {
    connects: 0,
    connected: 0,
    refused: 0,
    failed: 0,
    overLimit: 0,
    notRelayed: 0,
    active: 0,
    peak: 0,
    closed: 0,
    inbound: 0,
    hostFirst: 0,
    bytesToHost: 0,
    bytesToGuest: 0,
  };
  readonly forwarder: TcpForwarder;
  private readonly flows = new Set<TcpFlow>();
  /** Host connects in flight: Node sockets, or native connects waiting for their fd to be writable. */
  private readonly connecting = new Set<{ destroy(): void }>();
  /** The shim, when host connects go through it (see TcpRelayOptions.nativeConnect). */
  private readonly native: NativeConnect | null;
  private readonly connectOut = new Int32Array(1);
  private readonly maxFlows: number;
  private readonly connectTimeoutMs: number;
  private closed = false;
  /** The epoll set of the native connects' sockets (made with the first), or null. */
  private hub: FdHub | null = null;
  /** Called as each flow opens (the sandbox's memory guard recomputes its budget then). */
  onFlow: (() => void) | null = null;

  constructor(
    private readonly proto: TcpProtocol,
    private readonly options: TcpRelayOptions,
  ) {
    this.maxFlows = options.maxFlows ?? 65536;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 20_000;
    this.native = options.nativeConnect === false ? null : nativeConnectBinding();
    this.forwarder = new TcpForwarder(proto, (req) => this.onRequest(req), {
      maxPending: options.maxConnecting ?? 1024,
      pendingTimeoutMs: this.connectTimeoutMs + 5_000,
      ...(options.nic !== undefined ? { nic: options.nic } : {}),
    });
  }

  /** @internal The TCP memory budget (the readers charge their blocks to it). */
  get memory(): TcpMemory {
    return this.proto.memory;
  }

  /** Open flows. */
  get flowCount(): number {
    return this.flows.size;
  }

  /** Bytes waiting in the guest endpoints' send buffers (written by the relay, not yet acknowledged). */
  get queuedToGuest(): number {
    let n = 0;
    for (const f of this.flows) n += f.queued;
    return n;
  }

  /** Relay an established guest endpoint and a host socket to each other (published ports). */
  adopt(ep: TcpEndpoint, sock: Socket): void {
    this.stats.inbound++;
    this.start(ep, sock);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.forwarder.close();
    for (const s of this.connecting) s.destroy();
    this.connecting.clear();
    for (const f of [...this.flows]) f.abort();
    // Sockets answered but not yet relayed (the guest's handshake pending), or ending.
    this.hub?.close();
  }

  private onRequest(req: TcpForwardRequest): void {
    const host = this.options.map(req.family, req.localAddress, req.localPort);
    if (host === null) {
      this.stats.notRelayed++;
      req.reject();
      return;
    }
    if (this.flows.size + this.connecting.size >= this.maxFlows) {
      this.stats.overLimit++;
      req.reject();
      return;
    }
    this.stats.connects++;
    const reader = new HostReader(this, req);
    const from = isIP(host) === 6 ? this.options.outbound?.v6 : this.options.outbound?.v4;
    if (this.native !== null && this.connectNative(this.native, req, host, from, reader)) return;
    const sock: RelaySocket = netConnect({
      host,
      port: req.localPort,
      ...(from !== undefined ? { localAddress: from } : {}),
      allowHalfOpen: true,
      noDelay: true,
      onread: { buffer: reader.gen(), callback: onSockRead },
    });
    sock[READER] = reader;
    reader.sock = sock;
    // Module-level listeners (no closure per flow): they find the flow through the socket.
    sock.on('close', onSockClose);
    sock.on('end', onSockEnd);
    sock.on('error', onConnectError);
    sock.once('connect', onSockConnect);
    this.connecting.add(sock);
    // The connect timeout on the stack's clock (a Node socket timeout would stay allocated).
    reader.timer = this.proto.stack.clock.setTimeout(() => reader.connectFailed(null), this.connectTimeoutMs);
  }

  /** @internal A host connect failed (refused, unreachable, timed out: err null). */
  connectFailed(reader: HostReader, err: Error | null): void {
    const sock = reader.sock!;
    const req = reader.req;
    reader.req = null;
    reader.timer?.cancel();
    reader.timer = null;
    if (!this.connecting.delete(sock) || req === null) return;
    sock.destroy();
    this.refuse(req, (err as { code?: string } | null)?.code);
  }

  /** A host connect failed with `code`: refused (RST to the guest) or otherwise (the SYN is dropped). */
  private refuse(req: TcpForwardRequest, code: string | undefined): void {
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET') {
      this.stats.refused++;
      req.reject();
    } else {
      this.stats.failed++;
      req.drop();
    }
  }

  /** @internal A host connect succeeded: answer the guest's SYN, then relay. */
  connected(reader: HostReader): void {
    const sock = reader.sock!;
    const req = reader.req;
    reader.timer?.cancel();
    reader.timer = null;
    if (!this.connecting.delete(sock) || req === null) return;
    // Errors from now on show as 'close' (with hadError); until the flow exists they are ignored.
    sock.removeListener('error', onConnectError);
    sock.on('error', ignore);
    this.accept(reader, sock, req);
  }

  /** The host socket is connected: answer the guest's SYN and relay once its handshake completes. */
  private accept(reader: HostReader, sock: Socket | FdSocket, req: TcpForwardRequest): void {
    this.stats.connected++;
    if (this.closed || req.settled) {
      reader.req = null;
      sock.destroy();
      return;
    }
    // The host may speak first (a banner, or a whole reply and FIN): that is read while the
    // guest's handshake completes (up to EARLY_MAX bytes) and sent as soon as it has.
    req.accept().then(
      (ep) => {
        reader.req = null;
        if (this.closed || sock.destroyed) {
          ep.abort();
          sock.destroy();
          return;
        }
        this.start(ep, sock, reader);
      },
      () => {
        reader.req = null;
        sock.destroy();
      },
    );
  }

  /**
   * The host connect through the shim: a local destination's outcome is known when tcpConnect
   * returns (connected: the SYN-ACK goes to the guest now; refused: a RST), one elsewhere comes
   * when the fd turns writable. False when the destination or source is no IP literal (Node's
   * connect takes it then).
   */
  private connectNative(n: NativeConnect, req: TcpForwardRequest, host: string, from: string | undefined, reader: HostReader): boolean {
    const addr = parseAddress(host);
    const src = from === undefined ? null : parseAddress(from);
    if (addr === null || (from !== undefined && (src === null || src.length !== addr.length))) return false;
    const fd = n.tcpConnect(addr, req.localPort, src, this.connectOut);
    if (fd < 0) {
      reader.req = null;
      this.refuse(req, errnoName(fd));
      return true;
    }
    if (this.connectOut[0] === 1) {
      this.adoptFd(n, req, fd, reader);
      return true;
    }
    // In progress: wait for the fd to be writable (or the timeout), then ask how it went.
    let poller: PollerHandle | null = null;
    const stop = (): boolean => {
      if (!this.connecting.delete(pending)) return false;
      reader.timer?.cancel();
      reader.timer = null;
      if (poller !== null) n.pollerClose(poller);
      return true;
    };
    const pending = {
      destroy: (): void => {
        if (!stop()) return;
        n.close(fd);
        reader.req = null;
        reader.close();
      },
    };
    const settle = (): void => {
      const r = n.tcpConnectResult(fd);
      if (r === -ERR_INPROGRESS || !stop()) return;
      if (r < 0) {
        n.close(fd);
        reader.req = null;
        reader.close();
        this.refuse(req, errnoName(r));
        return;
      }
      this.adoptFd(n, req, fd, reader);
    };
    const h = n.pollerCreate(fd, 0, settle, null, null, 0, 0);
    if (typeof h === 'number' || n.pollerStart(h, POLL_WRITABLE) < 0) {
      if (typeof h !== 'number') n.pollerClose(h);
      n.close(fd);
      reader.req = null;
      reader.close();
      this.stats.failed++;
      req.drop();
      return true;
    }
    poller = h;
    this.connecting.add(pending);
    reader.timer = this.proto.stack.clock.setTimeout(() => {
      pending.destroy();
      this.stats.failed++;
      req.drop();
    }, this.connectTimeoutMs);
    return true;
  }

  /**
   * The connected fd is relayed on its own (an FdSocket in the relay's epoll set) or becomes a
   * Node socket, read by `reader` (should Node refuse it, the SYN is dropped).
   */
  private adoptFd(n: NativeConnect, req: TcpForwardRequest, fd: number, reader: HostReader): void {
    if (n.fd !== null && this.options.fdStreams !== false) {
      if (this.hub === null) {
        try {
          this.hub = new FdHub(n.fd);
        } catch {
          n.fd = null;
        }
      }
      if (this.hub !== null) {
        reader.fd = fd;
        reader.peek = true;
        this.accept(reader, this.hub.open(fd, reader), req);
        return;
      }
    }
    let sock: RelaySocket;
    try {
      const opts: SocketConstructorOpts & { onread: OnReadOpts } = {
        fd,
        allowHalfOpen: true,
        onread: { buffer: reader.gen(), callback: onSockRead },
      };
      sock = new Socket(opts);
    } catch {
      n.close(fd);
      reader.req = null;
      reader.close();
      this.stats.failed++;
      req.drop();
      return;
    }
    sock[READER] = reader;
    reader.sock = sock;
    reader.fd = fd;
    reader.peek = true;
    sock.on('close', onSockClose);
    sock.on('end', onSockEnd);
    sock.on('error', ignore);
    this.accept(reader, sock, req);
  }

  private start(ep: TcpEndpoint, sock: Socket | FdSocket, reader: HostReader | null = null): void {
    const f = new TcpFlow(this, ep, sock, reader);
    this.flows.add(f);
    const s = this.stats;
    s.active = this.flows.size;
    if (s.active > s.peak) s.peak = s.active;
    this.onFlow?.();
    f.begin();
  }

  /** @internal */
  finished(f: TcpFlow): void {
    if (this.flows.delete(f)) {
      this.stats.closed++;
      this.stats.active = this.flows.size;
    }
  }
}

/** The shim's calls a native host connect uses. */
type NativeConnect = Required<Pick<NativeBinding, 'tcpConnect' | 'tcpConnectResult' | 'peekEnd'>> &
  Pick<NativeBinding, 'close' | 'pollerCreate' | 'pollerStart' | 'pollerClose'> & {
    /** The calls for relaying the fds on their own (null: an older addon; Node sockets then). */
    fd: FdStreamNative | null;
  };

/** The shim when it has the connect calls (an older or missing addon: null, Node's connect then). */
function nativeConnectBinding(): NativeConnect | null {
  const n = nativeBinding();
  if (n === null || n.tcpConnect === undefined || n.tcpConnectResult === undefined || n.peekEnd === undefined) return null;
  const { tcpConnect, tcpConnectResult } = n;
  peekEnd = n.peekEnd.bind(n);
  return {
    tcpConnect: tcpConnect.bind(n),
    tcpConnectResult: tcpConnectResult.bind(n),
    peekEnd,
    close: n.close.bind(n),
    pollerCreate: n.pollerCreate.bind(n),
    pollerStart: n.pollerStart.bind(n),
    pollerClose: n.pollerClose.bind(n),
    fd: fdStreamNative(n),
  };
}

/** The shim's peekEnd (set with the native connect; the readers of its sockets use it). */
let peekEnd: ((fd: number) => number) | null = null;

/** EINPROGRESS (Linux). */
const ERR_INPROGRESS = 115;
/** pollerStart's writable event. */
const POLL_WRITABLE = 4;

/** The last literals parsed (a relay's connects mostly go to one or two host addresses). */
const parsed = new Map<string, Uint8Array | null>();

/** An IP literal's bytes (4 or 16; shared: not to be changed), or null. */
function parseAddress(a: string): Uint8Array | null {
  const hit = parsed.get(a);
  if (hit !== undefined) return hit;
  const v = isIP(a);
  const r = v === 4 ? tryParseIPv4(a) : v === 6 ? tryParseIPv6(a) : null;
  if (parsed.size >= 16) parsed.clear();
  parsed.set(a, r);
  return r;
}

/** The relay's per-socket state, found from Node's listeners (which are shared, not per flow). */
const READER = Symbol('tunstack.hostReader');
const FLOW = Symbol('tunstack.flow');
type RelaySocket = Socket & { [READER]?: HostReader; [FLOW]?: TcpFlow };

function ignore(): void {}

function onSockConnect(this: RelaySocket): void {
  const r = this[READER];
  r?.relay.connected(r);
}

function onConnectError(this: RelaySocket, err: Error): void {
  const r = this[READER];
  r?.relay.connectFailed(r, err);
}

function onSockEnd(this: RelaySocket): void {
  const f = this[FLOW];
  if (f !== undefined) f.onHostEnd();
  else {
    const r = this[READER];
    if (r !== undefined) r.ended = true;
  }
}

function onSockClose(this: RelaySocket, hadError: boolean): void {
  this[READER]?.close();
  this[FLOW]?.onHostClose(hadError);
}

/** Node's onread callback, called on the socket: no function per flow. */
function onSockRead(this: RelaySocket, n: number): boolean {
  const r = this[READER];
  return r === undefined ? false : r.got(n);
}

function onSockDrain(this: RelaySocket): void {
  this[FLOW]?.onDrain();
}

function onSockData(this: RelaySocket, b: Buffer): void {
  this[FLOW]?.fromHost(b, null);
}

/** Reads wanted from a block at least this big; a fuller block is left for a fresh one. */
const READ_MIN = 16384;
/** A read this big switches a socket to reading into its own blocks; one this small, back. */
const BULK_READ = 16384;
const SMALL_READ = 2048;
/**
 * Host bytes read before the guest's handshake completes; beyond this (or beyond one read while
 * the TCP budget is spent) the socket waits.
 */
const EARLY_MAX = 65536;
/**
 * Where sockets that are not moving bulk data read: one buffer for all of them, whose bytes are
 * copied out before the read callback returns (reads are never concurrent on this thread).
 */
const LANDING = new Uint8Array(BLOCK_SIZE);
/**
 * The landing buffer as lent to a socket whose flow paused (send buffer full or TCP memory
 * spent): the read that resumes it takes at most this much, which bounds what 1000 waking flows
 * add at once when the endpoint must take a read whole.
 */
const LANDING_PARKED = LANDING.subarray(0, 4096);
/**
 * The landing buffer as lent to a socket not (yet) reading in bulk: a read that fills it makes the
 * socket a bulk reader. Every socket is handed its buffer before its read comes, when the budget
 * may still have room: this bounds what a read decided earlier adds over the limit per socket.
 */
const LANDING_SMALL = LANDING.subarray(0, BULK_READ);

/**
 * Reads a host socket (Node's `onread`). Node asks for the next buffer right after each read, so
 * every open socket always has one on loan: an idle or chatty socket borrows the shared landing
 * buffer (its reads are copied out, and 10,000 idle flows hold no buffer each); once a read is
 * big (bulk), the socket reads straight into pooled send blocks whose filled ranges become the
 * endpoint's send buffer as they are: no copy in JS and no allocation per read. A block is charged
 * to the TCP memory budget from the moment it is taken (the send buffer's range takes the charge
 * over), and none is taken while the budget is spent: then reads land in the shared buffer, 4 KiB
 * at most, so every socket's buffer on loan, decided before its read comes, adds little over the
 * limit.
 */
class HostReader implements FdReader {
  private blk: SendBlock | null = null;
  /** The block is charged to the TCP budget by this reader (no range of it handed on yet). */
  private view: Uint8Array = LANDING_SMALL;
  /** The flow paused on the last read: the next read lands in the shared buffer. */
  /** Reads that came before the flow was set up (with a block reference when from one). */
  private early: Array<[Uint8Array, SendBlock | null]> | null = null;
  private earlyBytes = 0;
  private flow: TcpFlow | null = null;
  /** The host's FIN was read (or is next: see peekEnd). */
  /**
   * The socket's fd, for a socket from a native connect: after a short read the reader asks the
   * shim's peekEnd whether the FIN is next, so that a reply and the FIN after it go to the guest
   * in one segment (libuv would see the FIN only one poll later).
   */
  fd = -1;
  /** Flags, one bit each (accessors below). */
  private bits = 0;

  private get charged(): boolean {
    return (this.bits & 1) !== 0;
  }

  private set charged(v: boolean) {
    this.bits = v ? this.bits | 1 : this.bits & ~1;
  }

  private get bulk(): boolean {
    return (this.bits & 2) !== 0;
  }

  private set bulk(v: boolean) {
    this.bits = v ? this.bits | 2 : this.bits & ~2;
  }

  /** The flow paused on the last read: the next read lands in the shared buffer. */
  private get parked(): boolean {
    return (this.bits & 4) !== 0;
  }

  private set parked(v: boolean) {
    this.bits = v ? this.bits | 4 : this.bits & ~4;
  }

  /** The host's FIN was read (or is next: see peek). */
  get ended(): boolean {
    return (this.bits & 8) !== 0;
  }

  set ended(v: boolean) {
    this.bits = v ? this.bits | 8 : this.bits & ~8;
  }

  /** fd is from the shim: peek for the FIN after a short read. */
  get peek(): boolean {
    return (this.bits & 16) !== 0;
  }

  set peek(v: boolean) {
    this.bits = v ? this.bits | 16 : this.bits & ~16;
  }

  /** The host socket; the guest's request until it is answered; the connect timeout. */
  sock: RelaySocket | null = null;
  req: TcpForwardRequest | null;
  timer: Timer | null = null;
  /**
   * Node's onread buffer function for a Node socket (Node calls it with no receiver, so it is one
   * per reader; an FdSocket needs none). A bound method: an arrow would be named by tsx's loader
   * (defineProperty), which gives each one a 256-byte property store.
   */
  gen(): () => Uint8Array {
    return this.buffer.bind(this);
  }

  constructor(
    readonly relay: TcpRelay,
    req: TcpForwardRequest,
  ) {
    this.req = req;
  }

  /** @internal The connect timed out. */
  connectFailed(err: Error | null): void {
    this.relay.connectFailed(this, err);
  }

  buffer(): Uint8Array {
    let b = this.blk;
    const fresh = b === null || BLOCK_SIZE - b.fill < READ_MIN;
    // The budget is spent: no new block (it would be one more 64 KiB per waiting socket), and
    // reads take at most the small landing part, so the data each socket adds over the limit is
    // bounded by that, not by a block.
    const spent = this.relay.memory.allocated + BLOCK_SIZE > this.relay.memory.high;
    if (!this.bulk || this.parked || (fresh && spent)) {
      this.dropBlock();
      return (this.view = this.parked || spent ? LANDING_PARKED : LANDING_SMALL);
    }
    if (fresh) {
      this.dropBlock();
      b = this.blk = takeBlock();
      // Charged while the reader holds it; the send buffer's range takes the charge over.
      this.relay.memory.charge(BLOCK_SIZE);
      this.charged = true;
    }
    return (this.view = b!.b.subarray(b!.fill));
  }

  private dropBlock(): void {
    if (this.charged) {
      this.charged = false;
      this.relay.memory.charge(-BLOCK_SIZE);
    }
    this.blk?.release();
    this.blk = null;
  }

  got(n: number): boolean {
    let v: Uint8Array;
    let lease: SendBlock | null = null;
    if (this.view === LANDING_SMALL || this.view === LANDING_PARKED) {
      v = LANDING.slice(0, n);
      if (n >= BULK_READ) this.bulk = true;
    } else {
      const b = this.blk!;
      v = this.view.subarray(0, n);
      b.fill = v.byteOffset - b.b.byteOffset + n;
      lease = b.retain();
      if (n < SMALL_READ) this.bulk = false;
      if (this.charged) {
        this.charged = false;
        this.relay.memory.charge(-BLOCK_SIZE);
      }
    }
    // A short read with the FIN right behind it: the end goes with these bytes.
    const end = this.peek && n < this.view.length && !this.ended && peekEnd!(this.fd) === 1;
    if (end) this.ended = true;
    if (this.flow === null) {
      (this.early ??= []).push([v, lease]);
      this.earlyBytes += n;
      // Not charged until the flow takes them: once the budget is spent, one read is all (a new
      // flow's early reads are what each of 1000 flows opening under a full budget adds beyond it).
      return this.earlyBytes < EARLY_MAX && this.relay.memory.allocated + BLOCK_SIZE <= this.relay.memory.high;
    }
    const more = this.flow.fromHost(v, lease, end);
    // Paused: the next buffer is (a small part of) the landing one, so that no half-filled block
    // stays pinned while the flow waits (1000 waiting flows, 64 MiB); the send buffer keeps its
    // ranges.
    this.parked = !more;
    return more;
  }

  /** Hand reads made before the flow existed to it; true if there were any. */
  attach(f: TcpFlow): boolean {
    this.flow = f;
    const early = this.early;
    this.early = null;
    this.earlyBytes = 0;
    if (early === null) return false;
    // When the host's FIN came too, it goes with the last of them.
    early.forEach(([v, lease], i) => f.fromHost(v, lease, this.ended && i === early.length - 1));
    return early.length > 0;
  }

  /** The socket is closed: no more reads into the block. */
  close(): void {
    this.fd = -1;
    this.peek = false;
    this.dropBlock();
    this.timer?.cancel();
    this.timer = null;
    const early = this.early;
    this.early = null;
    if (early !== null) for (const [, lease] of early) lease?.release();
  }
}

/**
 * One relayed connection. Guest to host: chunks read from the endpoint are written to the socket
 * (corked, so a burst is one writev); when the socket's buffer is full, reading stops and the
 * guest's window closes. Host to guest: what the socket reads goes into the endpoint's send
 * buffer without a copy; when that is over its bound the socket pauses until the endpoint is
 * writable again. Half-closes pass through both ways; a reset on either side resets the other.
 */
class TcpFlow implements FdOwner, TcpEndpointSink {
  /** The flow's flags, one bit each (accessors below): eight booleans would take a slot each. */
  private bits = 0;
  /** The socket is paused because the endpoint's send buffer is full. */

  constructor(
    private readonly relay: TcpRelay,
    private readonly ep: TcpEndpoint,
    private readonly sock: Socket | FdSocket,
    private readonly reader: HostReader | null,
  ) {}

  private get hostBlocked(): boolean {
    return (this.bits & 1) !== 0;
  }

  private set hostBlocked(v: boolean) {
    this.bits = v ? this.bits | 1 : this.bits & ~1;
  }

  private get reading(): boolean {
    return (this.bits & 2) !== 0;
  }

  private set reading(v: boolean) {
    this.bits = v ? this.bits | 2 : this.bits & ~2;
  }

  private get endAfterRead(): boolean {
    return (this.bits & 4) !== 0;
  }

  private set endAfterRead(v: boolean) {
    this.bits = v ? this.bits | 4 : this.bits & ~4;
  }

  private get hostPaused(): boolean {
    return (this.bits & 8) !== 0;
  }

  private set hostPaused(v: boolean) {
    this.bits = v ? this.bits | 8 : this.bits & ~8;
  }

  private get hostEnded(): boolean {
    return (this.bits & 16) !== 0;
  }

  private set hostEnded(v: boolean) {
    this.bits = v ? this.bits | 16 : this.bits & ~16;
  }

  private get guestEnded(): boolean {
    return (this.bits & 32) !== 0;
  }

  private set guestEnded(v: boolean) {
    this.bits = v ? this.bits | 32 : this.bits & ~32;
  }

  private get shutDown(): boolean {
    return (this.bits & 64) !== 0;
  }

  private set shutDown(v: boolean) {
    this.bits = v ? this.bits | 64 : this.bits & ~64;
  }

  private get done(): boolean {
    return (this.bits & 128) !== 0;
  }

  private set done(v: boolean) {
    this.bits = v ? this.bits | 128 : this.bits & ~128;
  }

  get queued(): number {
    return this.ep.writableLength;
  }

  /** @internal TcpEndpointSink: the endpoint's events. */
  epReadable(): void {
    this.toHost();
  }

  /** @internal */
  epEnd(): void {
    this.onGuestEnd();
  }

  /** @internal */
  epWritable(): void {
    this.toGuest();
  }

  /** @internal */
  epError(): void {
    this.onGuestReset();
  }

  /** @internal */
  epClose(): void {
    this.finish();
  }

  begin(): void {
    const { ep, sock } = this;
    // The endpoint calls the flow directly (no listener records or closures per flow).
    ep.sink = this;
    if (sock instanceof FdSocket) sock.owner = this;
    else {
      const s: RelaySocket = sock;
      s[FLOW] = this;
      sock.on('drain', onSockDrain);
    }
    if (this.reader !== null) {
      if (this.reader.attach(this)) this.relay.stats.hostFirst++;
    } else if (!(sock instanceof FdSocket)) {
      // An inbound (published port) socket: its 'end' and 'close' go to the flow too.
      sock.on('data', onSockData);
      sock.on('end', onSockEnd);
      sock.on('error', ignore);
      sock.on('close', onSockClose);
    }
    if (this.reader?.ended) {
      // The host's reply and FIN came during the handshake: both go out now.
      this.hostEnded = true;
      this.shutGuest();
    }
    if (!this.hostPaused) sock.resume();
    // Data (and a FIN) that came with the handshake.
    this.toHost();
    if (ep.readEnded) this.onGuestEnd();
  }

  /** @internal The host's FIN. */
  onHostEnd(): void {
    this.hostEnded = true;
    this.shutGuest();
  }

  /** @internal The host socket closed: unless after its FIN, the guest's side is reset. */
  onHostClose(hadError: boolean): void {
    if (hadError || !this.hostEnded) this.abort();
  }

  /** @internal The host socket can take more. */
  onDrain(): void {
    this.hostBlocked = false;
    this.toHost();
  }

  /** @internal The guest reset the connection: reset the host side too. */
  onGuestReset(): void {
    if (!this.sock.destroyed) this.sock.resetAndDestroy();
  }

  abort(): void {
    if (this.done) return;
    this.ep.abort();
    if (!this.sock.destroyed) this.sock.destroy();
    this.finish();
  }

  /** @internal */
  toHost(): void {
    if (this.hostBlocked || this.reading || this.sock.destroyed) return;
    const { ep, sock } = this;
    // readChunk may emit 'end' (the last chunk before the guest's FIN): the socket is ended only
    // after that chunk is written.
    this.reading = true;
    let c = ep.readChunk();
    if (c === null) {
      this.reading = false;
      return;
    }
    sock.cork();
    let n = 0;
    while (c !== null) {
      n += c.length;
      if (!sock.write(c)) {
        this.hostBlocked = true;
        break;
      }
      c = ep.readChunk();
    }
    sock.uncork();
    // An FdSocket whose kernel buffer took part of the batch: it reports when it drains.
    if (sock instanceof FdSocket && sock.outBytes > 0) this.hostBlocked = true;
    this.reading = false;
    this.relay.stats.bytesToHost += n;
    if (this.endAfterRead) {
      this.endAfterRead = false;
      this.onGuestEnd();
    }
  }

  /** @internal */
  onGuestEnd(): void {
    if (this.guestEnded) return;
    if (this.reading) {
      this.endAfterRead = true;
      return;
    }
    this.guestEnded = true;
    if (!this.sock.destroyed) this.sock.end();
    if (this.shutDown) this.ep.close();
  }

  /**
   * Host bytes (owned: a fresh 'data' buffer or a block range) into the guest's send buffer;
   * `end`: the host's FIN follows them (it goes out with their last segment).
   */
  fromHost(b: Uint8Array, lease: BufferLease | null, end = false): boolean {
    let more: boolean;
    end &&= !this.shutDown;
    try {
      more = this.ep.writeOwned(b, lease, end);
    } catch {
      this.abort();
      return false;
    }
    if (end) {
      // As shutGuest, the FIN already queued.
      this.hostEnded = true;
      this.shutDown = true;
      if (this.guestEnded) this.ep.close();
    }
    this.relay.stats.bytesToGuest += b.length;
    if (!more && !this.hostPaused) {
      this.hostPaused = true;
      this.sock.pause();
    }
    return more;
  }

  /** @internal */
  toGuest(): void {
    if (!this.hostPaused) return;
    this.hostPaused = false;
    if (!this.hostEnded && !this.sock.destroyed) this.sock.resume();
  }

  private shutGuest(): void {
    if (this.shutDown) return;
    this.shutDown = true;
    try {
      if (this.guestEnded) this.ep.close();
      else this.ep.shutdown();
    } catch {
      this.abort();
    }
  }

  /** @internal */
  finish(): void {
    if (this.done) return;
    this.done = true;
    if (!this.sock.destroyed) {
      // Graceful on the guest side: let what the host socket still buffers go out.
      if (this.guestEnded && this.shutDown) this.sock.end();
      else this.sock.destroy();
    }
    this.relay.finished(this);
  }
}
