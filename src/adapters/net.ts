import { EventEmitter } from 'node:events';
import { Agent as HttpAgent, type AgentOptions } from 'node:http';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { Duplex } from 'node:stream';
import { TunstackError } from '../errors.js';
import { ClockHold, type Timer } from '../stack/clock.js';
import type { Stack } from '../stack/stack.js';
import type { TcpEndpoint } from '../transport/tcp/index.js';
import { codedError, errnoError, hostPortError, notFoundError, uvHostPortError } from './node-errors.js';
import { nodeArgType, nodeError, nodePort, nodeReceived } from '../validate.js';

/**
 * Node's `net` over tunstack TCP: `Socket` is a real stream.Duplex with net.Socket's API, `Server`
 * has net.Server's. Node's own `http.createServer` serves a tunstack listener through
 * `stack.net.listen(httpServer, port)`, and `http.request` uses tunstack through
 * `createConnection` or `stack.net.httpAgent()`.
 */

/** One address from a lookup with `all: true`, as dns.lookup gives it. */
export interface LookupAddress {
  address: string;
  family: number;
}

/** Options Node passes to a `lookup` function. */
export interface LookupOptions {
  family: number | undefined;
  hints: number;
  all?: boolean;
}

/** Node's `lookup` option (dns.lookup's signature): either callback form is accepted. */
export type LookupFunction = (
  hostname: string,
  options: LookupOptions,
  cb: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
) => void;

/** dns.ADDRCONFIG, which Node adds to an unspecified-family lookup. */
const ADDRCONFIG = 32;

export interface SocketConnectOpts {
  port: number;
  host?: string;
  localAddress?: string;
  localPort?: number;
  family?: 4 | 6 | 0;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  timeout?: number;
  /** Resolve a host name (as Node's `lookup` option); IP literals and "localhost" need none. */
  lookup?: LookupFunction;
  /** dns.lookup hints passed to `lookup`. */
  hints?: number;
  /** As Node 20: when true (default) and no family is set, `lookup` is asked for all addresses. */
  autoSelectFamily?: boolean;
}

export interface SocketOptions {
  allowHalfOpen?: boolean;
}

/** @internal How an accepted socket was created. */
interface AcceptOptions extends SocketOptions {
  /** An IPv4 connection accepted by a dual-stack IPv6 listener: addresses shown as ::ffff:a.b.c.d. */
  mapped?: boolean;
}

/** `::ffff:a.b.c.d` for an IPv4 address, as a dual-stack socket reports IPv4 peers. */
function mapV4(address: string): string {
  return `::ffff:${address}`;
}

/** The IPv4 address inside an IPv4-mapped IPv6 literal, else null. */
function unmapV4(address: string): string | null {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m && isIPv4(m[1]!) ? m[1]! : null;
}

export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

/** A net.Socket-compatible Duplex over a tunstack TCP endpoint. */
export class Socket extends Duplex {
  connecting = false;
  private ep: TcpEndpoint | null = null;
  private readonly stack: Stack;
  private pendingWrite: { chunk: Uint8Array; cb: (err?: Error | null) => void } | null = null;
  private pendingFinal: ((err?: Error | null) => void) | null = null;
  private endPushed = false;
  private writtenBytes = 0;
  private readBytes = 0;
  private idleTimer: Timer | null = null;
  private idleMs = 0;
  private idleSet = false;
  /** Node's socket has a handle from connect() (or accept) on: 'close' then carries hadError. */
  private hasHandle = false;
  private wantNoDelay = false;
  private wantKeepAlive: { on: boolean; delay: number } | null = null;
  /** IPv4 underneath, shown as IPv6 (::ffff:a.b.c.d), as a dual-stack socket on Linux. */
  private mapped = false;
  /** Where a connect goes, for Node's error shape (`connect ECONNREFUSED addr:port`). */
  private connectTo: { address: string; port: number } | null = null;
  private refed = true;
  private readonly hold: ClockHold;

  constructor(stack: Stack, options: SocketOptions = {}) {
    if (options === null) options = {};
    if (typeof options !== 'object') throw nodeArgType('options', 'of type object', options);
    // 'close' is emitted by _destroy with Node's hadError argument (Duplex would emit none).
    super({ allowHalfOpen: options.allowHalfOpen ?? false, decodeStrings: true, emitClose: false, autoDestroy: true });
    this.stack = stack;
    this.hold = new ClockHold(stack.clock);
  }

  /** @internal Wrap an endpoint accepted by a listener. */
  static fromEndpoint(stack: Stack, ep: TcpEndpoint, options: AcceptOptions = {}): Socket {
    const s = new Socket(stack, options);
    s.mapped = options.mapped ?? false;
    s.attach(ep);
    return s;
  }

  // ---- addresses and counters, as net.Socket ----
  get remoteAddress(): string | undefined {
    const a = this.ep?.remoteAddress ?? undefined;
    return a !== undefined && this.mapped ? mapV4(a) : a;
  }
  get remotePort(): number | undefined {
    return this.ep && this.ep.remotePort ? this.ep.remotePort : undefined;
  }
  get remoteFamily(): 'IPv4' | 'IPv6' | undefined {
    return this.ep?.remoteAddress ? this.familyName : undefined;
  }
  get localAddress(): string | undefined {
    const a = this.ep?.localAddress ?? undefined;
    return a !== undefined && this.mapped ? mapV4(a) : a;
  }
  get localPort(): number | undefined {
    return this.ep && this.ep.localPort ? this.ep.localPort : undefined;
  }
  get localFamily(): 'IPv4' | 'IPv6' | undefined {
    return this.ep ? this.familyName : undefined;
  }
  private get familyName(): 'IPv4' | 'IPv6' {
    return this.ep?.family === 4 && !this.mapped ? 'IPv4' : 'IPv6';
  }
  get bytesRead(): number {
    return this.readBytes;
  }
  get bytesWritten(): number {
    return this.writtenBytes + (this.pendingWrite ? this.pendingWrite.chunk.length : 0) + this.writableLength;
  }
  get pending(): boolean {
    return this.ep === null || this.connecting;
  }
  /** As Node's (a new, unconnected socket is 'open': readable and writable). */
  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
  /** The idle timeout set by setTimeout (0 once cleared), undefined before any. */
  get timeout(): number | undefined {
    return this.idleSet ? this.idleMs : undefined;
  }

  address(): AddressInfo | Record<string, never> {
    if (!this.ep || !this.ep.localPort) return {};
    const address = this.localAddress ?? (this.familyName === 'IPv4' ? '0.0.0.0' : '::');
    return { address, family: this.familyName, port: this.ep.localPort };
  }

  /** @internal For `instanceof stack.net.Socket`. */
  onStack(stack: Stack): boolean {
    return this.stack === stack;
  }

  /** TCP info (state, rtt, cwnd, ...), like TCP_INFO. */
  tcpInfo(): ReturnType<TcpEndpoint['info']> | null {
    return this.ep ? this.ep.info() : null;
  }

  /** connect(options[, listener]) | connect(port[, host][, listener]) */
  connect(portOrOptions: number | SocketConnectOpts, hostOrListener?: string | (() => void), listener?: () => void): this {
    const opts = connectArgs(portOrOptions);
    let cb = listener;
    if (typeof hostOrListener === 'function') cb = hostOrListener;
    else if (typeof hostOrListener === 'string') opts.host = hostOrListener;
    if (cb) this.once('connect', cb);
    if (this.ep) throw new TunstackError('EISCONN', 'socket is already connected', 'connect');
    opts.port = nodePort(opts.port, 'Port', false);
    if (opts.host !== undefined && typeof opts.host !== 'string') throw nodeArgType('hostname', 'of type string', opts.host);
    this.connecting = true;
    this.hasHandle = true;
    this.updateHold();
    if (opts.noDelay) this.wantNoDelay = true;
    if (opts.keepAlive) this.wantKeepAlive = { on: true, delay: opts.keepAliveInitialDelay ?? 0 };
    if (opts.timeout) this.setTimeout(opts.timeout);
    const host = opts.host ?? 'localhost';
    const family = isIP(host);
    if (family !== 0) this.startConnect(host, family as 4 | 6, opts);
    else if (host === 'localhost' && !opts.lookup) this.startConnect(opts.family === 6 ? '::1' : '127.0.0.1', opts.family === 6 ? 6 : 4, opts);
    else if (opts.lookup) this.lookupAndConnect(host, opts.lookup, opts);
    else {
      // Without a lookup, names resolve through the stack's own resolver (stack.dns), as Node's
      // go through dns.lookup: its hosts table, then the stack's DNS servers.
      const viaStack: LookupFunction = (h, o, done) =>
        this.stack.dns.lookup(h, o, (err, address, fam) => done(err, address ?? [], fam));
      this.lookupAndConnect(host, viaStack, opts);
    }
    return this;
  }

  /** Node's lookupAndConnect: `lookup` is called at once with Node's options; 'lookup' is emitted. */
  private lookupAndConnect(host: string, lookup: LookupFunction, opts: SocketConnectOpts): void {
    const fam = opts.family === 4 || opts.family === 6 ? opts.family : undefined;
    const hints = opts.hints ?? 0;
    const all = fam === undefined && opts.autoSelectFamily !== false;
    const options: LookupOptions = { family: fam, hints: fam === undefined && hints === 0 ? ADDRCONFIG : hints };
    if (all) options.all = true;
    lookup(host, options, (err, result, resultFamily) => {
      if (this.destroyed) return;
      let address: string | undefined;
      let f: number | undefined;
      if (!err) {
        if (Array.isArray(result)) {
          // Node tries each in turn (autoSelectFamily); tunstack takes the first.
          address = result[0]?.address;
          f = result[0]?.family;
        } else {
          address = result;
          f = resultFamily;
        }
      }
      this.emit('lookup', err, address, f, host);
      if (err) {
        this.destroy(err);
        return;
      }
      const ipFamily = address !== undefined ? isIP(address) : 0;
      if (ipFamily === 0) {
        this.destroy(codedError(TypeError, 'ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${String(address)}`));
        return;
      }
      this.startConnect(address!, ipFamily as 4 | 6, opts);
    });
  }

  setNoDelay(noDelay = true): this {
    // Node takes any value for its truthiness.
    this.wantNoDelay = Boolean(noDelay);
    this.ep?.setNoDelay(this.wantNoDelay);
    return this;
  }

  setKeepAlive(enable = false, initialDelay = 0): this {
    // As Node: any value for `enable`; a delay that is not a positive number means the default.
    const delay = typeof initialDelay === 'number' && initialDelay > 0 && initialDelay < 0x7fffffff ? initialDelay : 0;
    this.wantKeepAlive = { on: Boolean(enable), delay };
    if (this.ep) this.applyKeepAlive();
    return this;
  }

  /** Idle timeout on the stack's clock: 'timeout' is emitted, the socket is not closed. */
  setTimeout(ms: number, callback?: () => void): this {
    if (typeof ms !== 'number') throw nodeArgType('msecs', 'of type number', ms);
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw nodeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "msecs" is out of range. It must be a non-negative finite number. Received ${ms}`);
    }
    this.idleMs = ms;
    this.idleSet = true;
    if (callback) {
      if (ms === 0) this.removeListener('timeout', callback);
      else this.once('timeout', callback);
    }
    if (ms === 0) {
      this.idleTimer?.cancel();
      return this;
    }
    this.idleTimer ??= this.stack.clock.timer(() => this.emit('timeout'));
    this.idleTimer.schedule(ms);
    return this;
  }

  /** Keep the process alive while connecting or open (the default), as Node's sockets do. */
  ref(): this {
    this.refed = true;
    this.updateHold();
    return this;
  }

  /** Let the process exit even while this socket is open. */
  unref(): this {
    this.refed = false;
    this.updateHold();
    return this;
  }

  private updateHold(): void {
    const want = this.refed && !this.destroyed && (this.connecting || this.ep !== null);
    this.hold.set(want);
  }

  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  resetAndDestroy(): this {
    this.ep?.abort();
    this.destroy();
    return this;
  }

  // ---- Duplex plumbing ----

  override _read(): void {
    this.pump();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.connecting || !this.ep) {
      this.pendingWrite = { chunk, cb };
      return;
    }
    this.writeChunk(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, cb: (err?: Error | null) => void): void {
    const all = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this._write(all, 'buffer' as BufferEncoding, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.connecting || !this.ep) {
      this.pendingFinal = cb;
      return;
    }
    try {
      this.ep.shutdown();
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.idleTimer?.cancel();
    this.connecting = false;
    const ep = this.ep;
    if (ep && ep.state !== 'CLOSED') {
      if (err) ep.abort();
      else ep.close();
    }
    const pw = this.pendingWrite;
    this.pendingWrite = null;
    if (pw) pw.cb(err ?? new TunstackError('EPIPE', 'socket destroyed', 'write'));
    cb(err);
    this.updateHold();
    // Node emits 'close' from the handle's close callback, a loop turn after 'error' (queued by
    // cb); a socket that never had a handle closes on the next tick, without hadError.
    const hadError = err != null;
    if (this.hasHandle) setImmediate(() => this.emit('close', hadError));
    else process.nextTick(() => this.emit('close'));
  }

  private startConnect(address: string, family: 4 | 6, opts: SocketConnectOpts): void {
    if (this.destroyed) return;
    let ep: TcpEndpoint;
    // A dual-stack socket reaches an IPv4-mapped address over IPv4 (Linux does the same).
    const inner = family === 6 ? unmapV4(address) : null;
    if (inner !== null) this.mapped = true;
    this.connectTo = { address, port: opts.port };
    try {
      ep = this.stack.tcp({ family: inner !== null ? 4 : family });
      if (opts.localAddress || opts.localPort) ep.bind(opts.localAddress ? (unmapV4(opts.localAddress) ?? opts.localAddress) : null, opts.localPort ?? 0);
      this.attach(ep);
      ep.connect(inner ?? address, opts.port);
    } catch (e) {
      process.nextTick(() => this.destroy(this.nodeError(e)));
    }
  }

  /** Node's shape for an error of this socket: a connect failure names the peer, others the syscall. */
  private nodeError(e: unknown): Error {
    const to = this.connectTo;
    if (this.connecting && to) return hostPortError(e, 'connect', to.address, to.port);
    // Linux reports an established connection's failure on the next read (libuv: `read ECONNRESET`).
    return errnoError(e, 'read');
  }

  private attach(ep: TcpEndpoint): void {
    this.ep = ep;
    this.hasHandle = true;
    if (this.wantNoDelay) ep.setNoDelay(true);
    if (this.wantKeepAlive) this.applyKeepAlive();
    ep.on('connect', () => {
      // Defer as Node does: 'connect' comes from the event loop, never from inside a call.
      queueMicrotask(() => this.onConnected());
    });
    ep.on('readable', () => queueMicrotask(() => this.pump()));
    ep.on('end', () => queueMicrotask(() => this.pump()));
    ep.on('writable', () => queueMicrotask(() => this.flushPending()));
    ep.on('error', (err: Error) => {
      const e = this.nodeError(err);
      queueMicrotask(() => this.destroy(e));
    });
    ep.on('close', () =>
      queueMicrotask(() => {
        this.pump();
        if (!this.endPushed && !this.destroyed) this.pushEnd();
      }),
    );
    if (ep.state !== 'SYN_SENT' && ep.state !== 'CLOSED') this.connecting = false;
    this.updateHold();
  }

  private onConnected(): void {
    if (this.destroyed) return;
    this.connecting = false;
    this.touch();
    this.emit('connect');
    this.emit('ready');
    this.flushPending();
    this.pump();
  }

  private applyKeepAlive(): void {
    const k = this.wantKeepAlive;
    if (!k || !this.ep) return;
    if (k.on && k.delay > 0) this.ep.setKeepAlive(true, k.delay);
    else this.ep.setKeepAlive(k.on);
  }

  private pump(): void {
    const ep = this.ep;
    if (!ep || this.endPushed || this.destroyed) return;
    for (;;) {
      const chunk = ep.read();
      if (chunk === null) {
        if (ep.readEnded) this.pushEnd();
        return;
      }
      this.readBytes += chunk.length;
      this.touch();
      if (!this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length))) return;
    }
  }

  /** EOF as Node's onStreamRead: push(null) then read(0), so 'end' comes even when nobody reads. */
  private pushEnd(): void {
    this.endPushed = true;
    this.push(null);
    this.read(0);
  }

  private writeChunk(chunk: Uint8Array, cb: (err?: Error | null) => void): void {
    const ep = this.ep!;
    let n: number;
    try {
      n = ep.write(chunk);
    } catch (e) {
      cb(errnoError(e, 'write'));
      return;
    }
    this.writtenBytes += n;
    if (n > 0) this.touch();
    if (n >= chunk.length) {
      cb();
      return;
    }
    this.pendingWrite = { chunk: chunk.subarray(n), cb };
  }

  private flushPending(): void {
    if (this.connecting || !this.ep) return;
    const pw = this.pendingWrite;
    if (pw) {
      this.pendingWrite = null;
      this.writeChunk(pw.chunk, pw.cb);
      if (this.pendingWrite) return;
    }
    const pf = this.pendingFinal;
    if (pf) {
      this.pendingFinal = null;
      this._final(pf);
    }
  }

  private touch(): void {
    if (this.idleMs > 0 && this.idleTimer) this.idleTimer.schedule(this.idleMs);
  }
}

export interface ListenOptions {
  port?: number;
  host?: string;
  backlog?: number;
  ipv6Only?: boolean;
  reuseAddress?: boolean;
}

export interface ServerOptions {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

/** A net.Server-compatible listener. */
export class Server extends EventEmitter {
  maxConnections = Infinity;
  private ep: TcpEndpoint | null = null;
  private readonly connections = new Set<Socket>();
  private refed = true;
  private readonly hold: ClockHold;

  constructor(
    private readonly stack: Stack,
    private readonly options: ServerOptions = {},
    listener?: (socket: Socket) => void,
  ) {
    super();
    this.hold = new ClockHold(stack.clock);
    if (listener) this.on('connection', listener);
  }

  get listening(): boolean {
    return this.ep !== null;
  }

  /** @internal For `instanceof stack.net.Server`. */
  onStack(stack: Stack): boolean {
    return this.stack === stack;
  }

  /**
   * listen([port][, host][, backlog][, cb]) | listen(options[, cb]). With no host (or '::') the
   * listener is dual stack as Node's on Linux: IPv6 and IPv4, IPv4 peers seen as ::ffff:a.b.c.d
   * (unless `ipv6Only`); '0.0.0.0' is IPv4 only.
   */
  listen(...args: Array<number | string | ListenOptions | (() => void) | undefined | null>): this {
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    let opts: ListenOptions;
    if (typeof args[0] === 'object' && args[0] !== null) {
      opts = { ...(args[0] as ListenOptions) };
      if (opts.port === undefined && !('path' in opts)) {
        throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'options' must have the property "port" or "path". ${nodeReceived(args[0])}`);
      }
    } else {
      opts = { port: (args[0] as number | undefined) ?? 0 };
      if (typeof args[1] === 'string') {
        opts.host = args[1];
        if (typeof args[2] === 'number') opts.backlog = args[2];
      } else if (typeof args[1] === 'number') opts.backlog = args[1];
    }
    checkListenOptions(opts);
    if (this.ep) throw codedError(Error, 'ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    const port = opts.port ?? 0;
    if (cb) this.once('listening', cb);
    let host = opts.host ?? '::';
    if (host === 'localhost') host = '127.0.0.1';
    if (isIP(host) === 0) {
      const err = notFoundError(host);
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    const family: 4 | 6 = isIPv6(host) ? 6 : 4;
    const any = host === '0.0.0.0' || host === '::';
    let ep: TcpEndpoint | null = null;
    try {
      ep = this.stack.tcp({ family, v6Only: opts.ipv6Only ?? false });
      ep.bind(any ? null : host, port, { reuseAddress: opts.reuseAddress ?? true });
      ep.listen(opts.backlog ?? 511);
    } catch (e) {
      ep?.close();
      // libuv reports bind failures at listen: `listen EADDRINUSE: address already in use :::80`.
      const err = uvHostPortError(e, 'listen', host, port);
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    const listener = ep;
    // The child is handed over in the event (not queued): wrap it at once so none of its
    // events are missed, and tell the user on a microtask, as Node's come from the loop.
    listener.on('connection', (child) => this.adopt(child, family === 6 && child.family === 4));
    // The stack closed under us (stack.close()): as if closed.
    listener.on('close', () => {
      if (this.ep === listener) this.stopListening();
    });
    this.ep = listener;
    this.updateHold();
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  address(): AddressInfo | null {
    const ep = this.ep;
    if (!ep) return null;
    return { address: ep.localAddress ?? (ep.family === 4 ? '0.0.0.0' : '::'), family: ep.family === 4 ? 'IPv4' : 'IPv6', port: ep.localPort };
  }

  /**
   * Stop accepting; 'close' once every connection has ended, as Node. The callback gets
   * ERR_SERVER_NOT_RUNNING (on 'close') when the server was not listening.
   */
  close(cb?: (err?: Error) => void): this {
    if (cb) {
      if (!this.ep) this.once('close', () => cb(codedError(Error, 'ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
      else this.once('close', cb);
    }
    const ep = this.ep;
    if (ep) {
      this.ep = null;
      ep.close();
    }
    this.stopListening();
    return this;
  }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    const n = this.connections.size;
    process.nextTick(() => cb(null, n));
    return this;
  }

  /** Keep the process alive while listening (the default), as Node's servers do. */
  ref(): this {
    this.refed = true;
    this.updateHold();
    return this;
  }

  /** Let the process exit even while listening. */
  unref(): this {
    this.refed = false;
    this.updateHold();
    return this;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return new Promise((resolve) => (this.ep ? this.close(() => resolve()) : resolve()));
  }

  private updateHold(): void {
    const want = this.refed && this.ep !== null;
    this.hold.set(want);
  }

  private stopListening(): void {
    this.ep = null;
    this.updateHold();
    this.emitCloseIfDrained();
  }

  private adopt(child: TcpEndpoint, mapped: boolean): void {
    if (!this.ep) {
      child.abort();
      return;
    }
    if (this.connections.size >= this.maxConnections) {
      child.abort();
      this.emit('drop', { remoteAddress: child.remoteAddress, remotePort: child.remotePort });
      return;
    }
    const s = Socket.fromEndpoint(this.stack, child, { allowHalfOpen: this.options.allowHalfOpen ?? false, mapped });
    if (this.options.noDelay) s.setNoDelay(true);
    if (this.options.keepAlive) s.setKeepAlive(true, this.options.keepAliveInitialDelay ?? 0);
    if (this.options.pauseOnConnect) s.pause();
    this.connections.add(s);
    s.once('close', () => {
      this.connections.delete(s);
      this.emitCloseIfDrained();
    });
    queueMicrotask(() => this.emit('connection', s));
  }

  /** Node's _emitCloseIfDrained: 'close' on the next tick once not listening and no connection is left. */
  private emitCloseIfDrained(): void {
    if (this.ep || this.connections.size > 0) return;
    process.nextTick(() => this.emit('close'));
  }
}

/** Something that takes connections the way http.Server, https.Server, tls.Server, http2 servers do. */
export interface ConnectionSink {
  emit(event: 'connection', socket: Socket): boolean;
  emit(event: string | symbol, ...args: unknown[]): boolean;
  on(event: 'close', listener: () => void): unknown;
}

/** `new stack.net.Socket(options)`: a Socket class bound to one stack. */
export type BoundSocketClass = new (options?: SocketOptions) => Socket;
/** `new stack.net.Server([options][, listener])`: a Server class bound to one stack. */
export type BoundServerClass = new (optionsOrListener?: ServerOptions | ((s: Socket) => void), listener?: (s: Socket) => void) => Server;

/** `stack.net`: the net module's functions bound to a stack. */
export class NetModule {
  /** `new stack.net.Socket()`; `x instanceof stack.net.Socket` is true for every Socket of this stack. */
  readonly Socket: BoundSocketClass;
  /** `new stack.net.Server()`; `x instanceof stack.net.Server` is true for every Server of this stack. */
  readonly Server: BoundServerClass;

  constructor(stack: Stack) {
    class StackSocket extends Socket {
      constructor(options: SocketOptions = {}) {
        super(stack, options);
      }
      static override [Symbol.hasInstance](x: unknown): boolean {
        return x instanceof Socket && x.onStack(stack);
      }
    }
    class StackServer extends Server {
      constructor(optionsOrListener?: ServerOptions | ((s: Socket) => void), listener?: (s: Socket) => void) {
        if (typeof optionsOrListener === 'function') super(stack, {}, optionsOrListener);
        else super(stack, optionsOrListener ?? {}, listener);
      }
      static override [Symbol.hasInstance](x: unknown): boolean {
        return x instanceof Server && x.onStack(stack);
      }
    }
    this.Socket = StackSocket;
    this.Server = StackServer;
  }

  createServer(optionsOrListener?: ServerOptions | ((s: Socket) => void), listener?: (s: Socket) => void): Server {
    if (optionsOrListener !== undefined && typeof optionsOrListener !== 'function' && (typeof optionsOrListener !== 'object' || optionsOrListener === null)) {
      throw nodeArgType('options', 'of type object', optionsOrListener);
    }
    return new this.Server(optionsOrListener, listener);
  }

  connect(portOrOptions: number | (SocketConnectOpts & SocketOptions), hostOrListener?: string | (() => void), listener?: () => void): Socket {
    const opts = typeof portOrOptions === 'object' ? portOrOptions : undefined;
    const s = new this.Socket(opts?.allowHalfOpen !== undefined ? { allowHalfOpen: opts.allowHalfOpen } : {});
    return s.connect(portOrOptions, hostOrListener, listener);
  }

  createConnection(portOrOptions: number | (SocketConnectOpts & SocketOptions), hostOrListener?: string | (() => void), listener?: () => void): Socket {
    return this.connect(portOrOptions, hostOrListener, listener);
  }

  /** A new unconnected Socket bound to this stack (same as `new stack.net.Socket(options)`). */
  socket(options: SocketOptions = {}): Socket {
    return new this.Socket(options);
  }

  /**
   * Serve `target` (an http.Server, https.Server, tls.Server or http2 server made by Node) from a
   * stack listener: every connection is emitted as 'connection' on `target`, which then runs its
   * protocol over it. listen(target, port[, host][, cb]) or listen(target, options[, cb]); returns
   * the stack Server (close it, or close `target`: either stops the listener).
   */
  listen(target: ConnectionSink, portOrOptions?: number | ListenOptions, hostOrCb?: string | (() => void), cb?: () => void): Server {
    const server = this.createServer((s) => target.emit('connection', s));
    const callback = typeof hostOrCb === 'function' ? hostOrCb : cb;
    server.on('listening', () => target.emit('listening'));
    server.on('error', (e) => target.emit('error', e));
    target.on('close', () => {
      if (server.listening) server.close();
    });
    const opts: ListenOptions = typeof portOrOptions === 'object' ? portOrOptions : { port: portOrOptions ?? 0 };
    if (typeof hostOrCb === 'string') opts.host = hostOrCb;
    return callback ? server.listen(opts, callback) : server.listen(opts);
  }

  /**
   * An http.Agent whose connections go through this stack (for http.request / http.get). The
   * request's (or agent's) `lookup`, `family`, `hints`, `localAddress` and socket options apply.
   */
  httpAgent(options: AgentOptions = {}): HttpAgent {
    const agent = new HttpAgent(options);
    const net = this;
    (agent as unknown as { createConnection: (o: SocketConnectOpts & { host?: string | null }, cb?: () => void) => Socket }).createConnection = (o) => {
      const c: SocketConnectOpts = { port: Number(o.port), host: o.host ?? 'localhost' };
      if (o.localAddress) c.localAddress = o.localAddress;
      if (o.localPort) c.localPort = o.localPort;
      if (o.family) c.family = o.family;
      if (o.hints) c.hints = o.hints;
      if (o.lookup) c.lookup = o.lookup;
      if (o.autoSelectFamily !== undefined) c.autoSelectFamily = o.autoSelectFamily;
      if (o.noDelay) c.noDelay = o.noDelay;
      if (o.keepAlive) c.keepAlive = o.keepAlive;
      if (o.keepAliveInitialDelay) c.keepAliveInitialDelay = o.keepAliveInitialDelay;
      if (o.timeout) c.timeout = o.timeout;
      return net.connect(c);
    };
    return agent;
  }

  isIP = isIP;
  isIPv4 = isIPv4;
  isIPv6 = isIPv6;
}

/** connect()'s first argument as Node's normalizeArgs reads it (ERR_MISSING_ARGS without a port). */
function connectArgs(portOrOptions: unknown): SocketConnectOpts {
  if (typeof portOrOptions === 'object' && portOrOptions !== null) {
    const o = portOrOptions as Partial<SocketConnectOpts> & { path?: unknown };
    if (o.path !== undefined) {
      if (typeof o.path !== 'string') throw nodeArgType('options.path', 'of type string', o.path);
      throw new TunstackError('EAFNOSUPPORT', 'connect: Unix domain sockets ("options.path") are not supported');
    }
    if (o.port === undefined) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "options" or "port" or "path" argument must be specified');
    if (typeof o.port !== 'number' && typeof o.port !== 'string') throw nodeArgType('options.port', 'one of type number or string', o.port);
    return { ...o } as SocketConnectOpts;
  }
  if (portOrOptions === undefined) throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "options" or "port" or "path" argument must be specified');
  if (typeof portOrOptions !== 'number' && typeof portOrOptions !== 'string') {
    throw nodeArgType('options.port', 'one of type number or string', portOrOptions);
  }
  return { port: portOrOptions as number };
}

/** listen()'s options checked as Node's Server.listen does (ERR_SOCKET_BAD_PORT, ERR_INVALID_ARG_VALUE). */
function checkListenOptions(opts: ListenOptions & { path?: unknown }): void {
  if (opts.path !== undefined) throw new TunstackError('EAFNOSUPPORT', 'listen: Unix domain sockets ("options.path") are not supported');
  const port: unknown = opts.port;
  if (typeof port === 'number' || (typeof port === 'string' && /^[0-9]+$/.test(port))) {
    opts.port = nodePort(port, 'options.port');
  } else if (port !== undefined) {
    // Node takes a non-numeric string as a pipe path; tunstack has none, so it is refused too.
    throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'options' is invalid. ${nodeReceived(port)}`);
  }
  if (opts.host !== undefined && opts.host !== null && typeof opts.host !== 'string') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'options' is invalid. ${nodeReceived(opts.host)}`);
  }
  if (opts.backlog !== undefined && !(Number.isInteger(opts.backlog) && opts.backlog >= 0)) delete opts.backlog;
}
