/**
 * QEMU's stream framing over a socket: each Ethernet frame is a 32-bit big-endian length, then
 * the frame. QEMU 7.2+ `-netdev stream,addr.type=unix,addr.path=PATH,server=off` and the older
 * `-netdev socket,connect=127.0.0.1:PORT` both connect to a server that speaks it (passt does
 * too). A StreamFrameServer listens on a unix path or a TCP address and plugs one guest at a time
 * into a FramePort.
 *
 * Bad input never costs more than one frame of memory: a length of 0 or above the port's largest
 * frame (MTU + 14, + 4 for a VLAN tag), a frame left half written for `idleTimeoutMs`, and a peer
 * that reads nothing for `stallTimeoutMs` while frames wait (the port's bounded queue drops and
 * counts meanwhile) each get a log line and a closed connection. Timeouts run on the given clock.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import type { Clock, Timer } from '../core/clock.js';
import type { FramePort } from '../link/frame-port.js';

export interface FrameServerOptions {
  port: FramePort;
  clock: Clock;
  /** Where log lines go (default: nowhere). */
  log?: (line: string) => void;
  /** Close a connection whose frame stays incomplete this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Close a connection that reads nothing this long while frames wait for it (default 30 s). */
  stallTimeoutMs?: number;
  /** Socket write buffer above which the port holds frames (default 256 KiB). */
  writeBufferBytes?: number;
}

export interface FrameServerStats {
  connections: number;
  /** Bytes received from guests (framing included). */
  bytesIn: number;
  /** Connections refused because a guest was connected already. */
  refused: number;
  /** Connections closed for a bad length prefix, a frame left incomplete, a peer that reads nothing. */
  badLength: number;
  idleTimeouts: number;
  stallTimeouts: number;
}

/**
 * Reassembles length-prefixed frames from stream chunks. Holds at most one frame: `push` returns
 * an error string for a bad length (the stream is then unusable), else ''.
 */
export class StreamDeframer {
  private readonly header = new Uint8Array(4);
  private headerHave = 0;
  private frame: Uint8Array | null = null;
  private frameHave = 0;

  constructor(
    private readonly maxFrame: number,
    private readonly onFrame: (frame: Uint8Array) => void,
  ) {}

  /** Whether a frame (or its length) is partly received. */
  get partial(): boolean {
    return this.headerHave > 0 || this.frame !== null;
  }

  push(chunk: Uint8Array): string {
    let i = 0;
    while (i < chunk.length) {
      if (this.frame === null) {
        const take = Math.min(4 - this.headerHave, chunk.length - i);
        this.header.set(chunk.subarray(i, i + take), this.headerHave);
        this.headerHave += take;
        i += take;
        if (this.headerHave < 4) break;
        this.headerHave = 0;
        const len = ((this.header[0]! << 24) | (this.header[1]! << 16) | (this.header[2]! << 8) | this.header[3]!) >>> 0;
        if (len === 0 || len > this.maxFrame) return `frame length ${len} outside 1..${this.maxFrame}`;
        this.frame = new Uint8Array(len);
        this.frameHave = 0;
      }
      const f = this.frame;
      const take = Math.min(f.length - this.frameHave, chunk.length - i);
      f.set(chunk.subarray(i, i + take), this.frameHave);
      this.frameHave += take;
      i += take;
      if (this.frameHave === f.length) {
        this.frame = null;
        this.onFrame(f);
      }
    }
    return '';
  }
}

/** A frame with its 32-bit big-endian length in front. */
export function lengthPrefixed(frame: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(4 + frame.length);
  b.writeUInt32BE(frame.length, 0);
  b.set(frame, 4);
  return b;
}

export class StreamFrameServer {
  readonly stats: FrameServerStats = { connections: 0, bytesIn: 0, refused: 0, badLength: 0, idleTimeouts: 0, stallTimeouts: 0 };
  private readonly server: Server;
  private current: { socket: Socket; idle: Timer; stall: Timer } | null = null;
  private unixPath: string | null = null;
  private readonly log: (line: string) => void;
  private readonly idleMs: number;
  private readonly stallMs: number;

  constructor(private readonly options: FrameServerOptions) {
    this.log = options.log ?? (() => {});
    this.idleMs = options.idleTimeoutMs ?? 30_000;
    this.stallMs = options.stallTimeoutMs ?? 30_000;
    this.server = createServer({ highWaterMark: options.writeBufferBytes ?? 256 * 1024 }, (s) => this.accept(s));
    this.server.on('error', (e) => this.log(`stream server: ${e.message}`));
  }

  /** Listen on a unix socket path (an existing socket file there is replaced). */
  listenUnix(path: string): Promise<void> {
    try {
      unlinkSync(path);
    } catch {
      // nothing there
    }
    this.unixPath = path;
    return this.listen(() => this.server.listen(path));
  }

  /** Listen on a TCP address (port 0 picks one: see `address`). */
  listenTcp(host: string, port: number): Promise<void> {
    return this.listen(() => this.server.listen(port, host));
  }

  /** The TCP port listened on (0 for a unix socket). */
  get tcpPort(): number {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a.port : 0;
  }

  /** Whether a guest is connected. */
  get connected(): boolean {
    return this.current !== null;
  }

  close(): void {
    this.current?.socket.destroy();
    this.server.close();
    if (this.unixPath !== null) {
      try {
        unlinkSync(this.unixPath);
      } catch {
        // gone already
      }
    }
  }

  private listen(start: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.once('listening', () => {
        this.server.removeListener('error', reject);
        resolve();
      });
      start();
    });
  }

  private accept(socket: Socket): void {
    socket.on('error', () => {});
    if (this.current !== null) {
      this.stats.refused++;
      this.log('stream: a guest is connected already; refusing another connection');
      socket.destroy();
      return;
    }
    this.stats.connections++;
    const { port, clock } = this.options;
    socket.setNoDelay?.(true);
    const close = (why: string): void => {
      if (why !== '') this.log(`stream: ${why}; closing the connection`);
      socket.destroy();
    };
    const idle = clock.timer(() => {
      this.stats.idleTimeouts++;
      close(`a frame stayed incomplete for ${this.idleMs} ms`);
    });
    const stall = clock.timer(() => {
      this.stats.stallTimeouts++;
      close(`the guest read nothing for ${this.stallMs} ms (${port.stats.txDropped} frames dropped so far)`);
    });
    this.current = { socket, idle, stall };
    const deframer = new StreamDeframer(port.maxFrame, (f) => port.send(f));
    port.discard();
    port.setSink((frame) => {
      if (socket.destroyed) return false;
      if (socket.write(lengthPrefixed(frame))) return true;
      stall.schedule(this.stallMs);
      return false;
    });
    socket.on('drain', () => {
      stall.cancel();
      port.resume();
    });
    socket.on('data', (chunk: Buffer) => {
      this.stats.bytesIn += chunk.length;
      const err = deframer.push(chunk);
      if (err !== '') {
        this.stats.badLength++;
        close(err);
        return;
      }
      if (deframer.partial) idle.schedule(this.idleMs);
      else idle.cancel();
    });
    socket.on('end', () => socket.end());
    socket.once('close', () => {
      idle.cancel();
      stall.cancel();
      if (this.current?.socket === socket) {
        this.current = null;
        port.setSink(null);
        port.discard();
      }
    });
  }
}
