/**
 * The WebSocket transport of v86's network relay (`net_device: { type: 'ne2k', relay_url:
 * 'ws://HOST:PORT/' }`, the protocol of its `wsproxy`): one binary message per Ethernet frame,
 * both ways, no other framing. A WsFrameServer listens on HOST:PORT (any path) and gives each
 * connection a guest network:
 *
 * - 'per-connection' (default): each socket gets its own FramePort from `network()` (the CLI
 *   makes a SandboxNetwork on it), closed with the socket; guests never see each other.
 * - 'shared': every socket is a port of one learning switch in front of one FramePort: guests see
 *   each other's frames (broadcasts flood, unicasts go to the port that MAC was last seen on) and
 *   share one sandbox network (its DHCP server leases 10.0.2.100, .101, ...).
 *
 * Origins: a browser sends an Origin header and any page may open a WebSocket to a loopback port,
 * so a request with an Origin not in `allowOrigins` is refused (403) before the upgrade; '*'
 * allows every origin. Requests without an Origin (Node, wsproxy-like clients) are allowed.
 *
 * Bad input costs at most one frame of memory: a text message, a message shorter than an Ethernet
 * header, or one above the port's largest frame (MTU + 18; ws refuses it from its length field,
 * before buffering, so a 4 GiB length costs nothing) closes the connection with a log line; so does
 * a message left half sent for `idleTimeoutMs`, and a peer that reads nothing for `stallTimeoutMs`
 * while frames wait (the port's bounded queue drops and counts meanwhile). Timeouts run on the
 * given clock.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Clock, Timer } from '../core/clock.js';
import { ETHERNET_HEADER, type FramePort } from '../link/frame-port.js';

export type WsNetworkMode = 'per-connection' | 'shared';

/** A guest network for a connection: frames on `port`; `close()` when the connection ends. */
export interface WsGuestNetwork {
  port: FramePort;
  close(): void;
}

export interface WsFrameServerOptions {
  /**
   * Makes a guest network: once per connection ('per-connection') or once at construction
   * ('shared').
   */
  network: () => WsGuestNetwork;
  mode?: WsNetworkMode;
  clock: Clock;
  /** Origins allowed to connect (exact match, e.g. 'http://localhost:8080'; '*' any). Default none. */
  allowOrigins?: readonly string[];
  /** The largest frame taken from a guest (default 1518: MTU 1500 + 18); make it the port's `maxFrame`. */
  maxFrame?: number;
  /** Connections at once (default 8); more are refused with 503. */
  maxConnections?: number;
  log?: (line: string) => void;
  /** Close a connection whose message stays incomplete this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Close a connection that reads nothing this long while frames wait for it (default 30 s). */
  stallTimeoutMs?: number;
  /** Bytes buffered for a connection above which frames wait in the port (default 256 KiB). */
  writeBufferBytes?: number;
}

export interface WsFrameServerStats {
  connections: number;
  /** Bytes received from guests after the upgrade (WebSocket framing included). */
  bytesIn: number;
  /** Upgrades refused: origin not allowed, too many connections. */
  refusedOrigin: number;
  refusedBusy: number;
  framesIn: number;
  framesOut: number;
  /** Connections closed for a text message, a bad size, a half message, a peer that reads nothing. */
  badMessages: number;
  idleTimeouts: number;
  stallTimeouts: number;
  /** Shared mode: frames dropped because the destination port was full. */
  switchDropped: number;
}

/** One connection: its socket, timers and where its frames go. */
interface Conn {
  ws: WebSocket;
  idle: Timer;
  stall: Timer;
  /** Frames to the guest: false when its buffer is full. */
  deliver(frame: Uint8Array): boolean;
  blocked: boolean;
  onDrained: () => void;
}

const isMulticast = (f: Uint8Array): boolean => (f[0]! & 1) === 1;
const macKey = (f: Uint8Array, off: number): string => Array.from(f.subarray(off, off + 6), (b) => b.toString(16).padStart(2, '0')).join(':');

/**
 * Follows WebSocket frame boundaries in a client's bytes without keeping them (ws parses them):
 * `partial` is true while a frame or a fragmented message is incomplete. At most 14 bytes held.
 */
export class WsFrameTracker {
  private readonly header = new Uint8Array(14);
  private have = 0;
  /** Payload bytes of the current frame still to come (-1: reading a header). */
  private left = -1;
  /** A data frame without FIN was seen: the message goes on in later frames. */
  private fragmented = false;

  get partial(): boolean {
    return this.have > 0 || this.left > 0 || this.fragmented;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.left > 0) {
        const take = Math.min(this.left, chunk.length - i);
        this.left -= take;
        i += take;
        continue;
      }
      this.header[this.have++] = chunk[i++]!;
      const need = this.headerLength();
      if (need === 0 || this.have < need) continue;
      const h = this.header;
      const len7 = h[1]! & 0x7f;
      const len = len7 === 126 ? (h[2]! << 8) | h[3]! : len7 === 127 ? Number(new DataView(h.buffer).getBigUint64(2)) : len7;
      const opcode = h[0]! & 0x0f;
      if (opcode < 8) this.fragmented = (h[0]! & 0x80) === 0;
      this.have = 0;
      this.left = len;
    }
  }

  /** The current header's full length once its first two bytes are in (0 before). */
  private headerLength(): number {
    if (this.have < 2) return 0;
    const len7 = this.header[1]! & 0x7f;
    const mask = this.header[1]! & 0x80 ? 4 : 0;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + mask;
  }
}

export class WsFrameServer {
  readonly stats: WsFrameServerStats = { connections: 0, bytesIn: 0, refusedOrigin: 0, refusedBusy: 0, framesIn: 0, framesOut: 0, badMessages: 0, idleTimeouts: 0, stallTimeouts: 0, switchDropped: 0 };
  readonly mode: WsNetworkMode;
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<Conn>();
  private readonly log: (line: string) => void;
  private readonly idleMs: number;
  private readonly stallMs: number;
  private readonly highWater: number;
  private readonly maxConnections: number;
  private readonly maxFrame: number;
  private readonly origins: ReadonlySet<string>;
  /** Shared mode: the one network and which connection each guest MAC was last seen on. */
  private readonly shared: WsGuestNetwork | null = null;
  private readonly macs = new Map<string, Conn>();

  constructor(private readonly options: WsFrameServerOptions) {
    this.mode = options.mode ?? 'per-connection';
    this.log = options.log ?? (() => {});
    this.idleMs = options.idleTimeoutMs ?? 30_000;
    this.stallMs = options.stallTimeoutMs ?? 30_000;
    this.highWater = options.writeBufferBytes ?? 256 * 1024;
    this.maxConnections = options.maxConnections ?? 8;
    this.maxFrame = options.maxFrame ?? 1518;
    this.origins = new Set(options.allowOrigins ?? []);
    this.http = createServer((_req, res) => {
      res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket' });
      res.end('tunstack: a WebSocket frame relay (v86 relay_url)\n');
    });
    this.http.on('error', (e) => this.log(`ws server: ${e.message}`));
    this.http.on('clientError', (_e, socket) => socket.destroy());
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: this.maxFrame, clientTracking: false });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    if (this.mode === 'shared') {
      this.shared = options.network();
      this.shared.port.discard();
      this.shared.port.setSink((f) => this.switchFromStack(f));
    }
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.removeListener('error', reject);
        resolve();
      });
    });
  }

  /** The TCP port listened on. */
  get tcpPort(): number {
    const a = this.http.address();
    return a !== null && typeof a === 'object' ? a.port : 0;
  }

  /** Connections open now. */
  get connected(): number {
    return this.conns.size;
  }

  close(): void {
    for (const c of this.conns) c.ws.terminate();
    this.http.close();
    this.shared?.close();
  }

  private refuse(socket: Duplex, status: string, why: string): void {
    this.log(`ws: refusing a connection: ${why}`);
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const origin = req.headers.origin;
    if (origin !== undefined && !this.origins.has('*') && !this.origins.has(origin)) {
      this.stats.refusedOrigin++;
      this.refuse(socket, '403 Forbidden', `origin ${origin} is not allowed (allow it with --ws-origin)`);
      return;
    }
    if (this.conns.size >= this.maxConnections) {
      this.stats.refusedBusy++;
      this.refuse(socket, '503 Service Unavailable', `${this.conns.size} guests are connected already`);
      return;
    }
    // Follows the frame boundaries in the bytes, to tell a message left half sent.
    // (Bytes that came with the upgrade request, `head`, are unshifted by ws and seen here too.)
    const tracker = new WsFrameTracker();
    socket.prependListener('data', (b: Buffer) => {
      this.stats.bytesIn += b.length;
      tracker.push(b);
    });
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, tracker));
  }

  private accept(ws: WebSocket, socket: Duplex, tracker: WsFrameTracker): void {
    this.stats.connections++;
    const { clock } = this.options;
    const net = this.shared ?? this.options.network();
    const port = net.port;
    const limit = Math.min(this.maxFrame, port.maxFrame);
    const close = (why: string, code = 1008): void => {
      this.log(`ws: ${why}; closing the connection`);
      ws.close(code, why.slice(0, 120));
      ws.terminate();
    };
    const idle = clock.timer(() => {
      this.stats.idleTimeouts++;
      close(`a message stayed incomplete for ${this.idleMs} ms`);
    });
    const stall = clock.timer(() => {
      this.stats.stallTimeouts++;
      close(`the guest read nothing for ${this.stallMs} ms (${port.stats.txDropped} frames dropped so far)`);
    });
    const conn: Conn = {
      ws,
      idle,
      stall,
      blocked: false,
      deliver: (frame) => {
        if (ws.readyState !== ws.OPEN) return true;
        this.stats.framesOut++;
        ws.send(frame, { binary: true }, () => {
          if (conn.blocked && ws.bufferedAmount <= this.highWater >> 1) conn.onDrained();
        });
        if (ws.bufferedAmount <= this.highWater) return true;
        conn.blocked = true;
        stall.schedule(this.stallMs);
        return false;
      },
      onDrained: () => {
        conn.blocked = false;
        stall.cancel();
        if (this.mode === 'per-connection') port.resume();
      },
    };
    this.conns.add(conn);
    if (this.mode === 'per-connection') {
      port.discard();
      port.setSink(conn.deliver);
    }
    ws.on('error', (e: Error & { code?: string }) => {
      this.stats.badMessages++;
      this.log(`ws: ${e.message}${e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? ` (frames are at most ${limit} bytes)` : ''}; closing the connection`);
      ws.terminate();
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const frame = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(new Uint8Array(data));
      if (!isBinary) {
        this.stats.badMessages++;
        close('a text message (frames are binary messages)', 1003);
        return;
      }
      if (frame.length < ETHERNET_HEADER || frame.length > limit) {
        this.stats.badMessages++;
        close(`a message of ${frame.length} bytes, outside ${ETHERNET_HEADER}..${limit}`, 1009);
        return;
      }
      this.stats.framesIn++;
      const f = new Uint8Array(frame.buffer, frame.byteOffset, frame.length);
      if (this.mode === 'shared') this.switchFromGuest(conn, f);
      else port.send(f);
    });
    ws.on('close', () => {
      idle.cancel();
      stall.cancel();
      this.conns.delete(conn);
      for (const [mac, c] of this.macs) if (c === conn) this.macs.delete(mac);
      if (this.mode === 'per-connection') net.close();
    });
    const armIdle = (): void => {
      if (tracker.partial) idle.schedule(this.idleMs);
      else idle.cancel();
    };
    socket.on('data', armIdle);
    armIdle();
  }

  /** Shared mode: a guest's frame to the guest that has the destination MAC, else to the stack (broadcasts to all). */
  private switchFromGuest(from: Conn, f: Uint8Array): void {
    if (!isMulticast(f.subarray(6))) this.macs.set(macKey(f, 6), from);
    if (isMulticast(f)) {
      for (const c of this.conns) if (c !== from) this.toGuest(c, f);
      this.shared!.port.send(f);
      return;
    }
    const to = this.macs.get(macKey(f, 0));
    if (to === undefined) this.shared!.port.send(f);
    else if (to !== from) this.toGuest(to, f);
  }

  /** Shared mode: the stack's frame to the guest with that MAC, or to every guest. */
  private switchFromStack(f: Uint8Array): boolean {
    const to = isMulticast(f) ? undefined : this.macs.get(macKey(f, 0));
    if (to !== undefined) this.toGuest(to, f);
    else for (const c of this.conns) this.toGuest(c, f);
    return true;
  }

  /** Shared mode: a guest whose buffer is full loses the frame (a switch port's queue). */
  private toGuest(c: Conn, f: Uint8Array): void {
    if (c.blocked) this.stats.switchDropped++;
    else c.deliver(f);
  }
}
