import { EventEmitter } from 'node:events';
import { Agent as HttpAgent, type AgentOptions } from 'node:http';
import { isIP } from 'node:net';
import { Duplex } from 'node:stream';
import { TunstackError } from '../errors.js';
import type { Timer } from '../stack/clock.js';
import type { Stack } from '../stack/stack.js';
import type { TcpEndpoint } from '../transport/tcp/index.js';
import { nodeArgType, nodeError, nodePort, nodeReceived } from '../validate.js';

/**
 * Node's `net` over tunstack TCP: `Socket` is a real stream.Duplex with net.Socket's API, `Server`
 * has net.Server's. Node's own `http.createServer` serves a tunstack listener (emit its sockets as
 * 'connection' on the http server, or use `serveHttp`), and `http.request` uses tunstack through
 * `createConnection` or `stack.net.httpAgent()`.
 */

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
  lookup?: (hostname: string, options: { family?: number }, cb: (err: Error | null, address: string, family: number) => void) => void;
}

export interface SocketOptions {
  allowHalfOpen?: boolean;
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
  private wantNoDelay = false;
  private wantKeepAlive: { on: boolean; delay: number } | null = null;

  constructor(stack: Stack, options: SocketOptions = {}) {
    if (options === null) options = {};
    if (typeof options !== 'object') throw nodeArgType('options', 'of type object', options);
    super({ allowHalfOpen: options.allowHalfOpen ?? false, decodeStrings: true, emitClose: true, autoDestroy: true });
    this.stack = stack;
  }

  /** @internal Wrap an endpoint accepted by a listener. */
  static fromEndpoint(stack: Stack, ep: TcpEndpoint, options: SocketOptions = {}): Socket {
    const s = new Socket(stack, options);
    s.attach(ep);
    return s;
  }

  // ---- addresses and counters, as net.Socket ----
  get remoteAddress(): string | undefined {
    return this.ep?.remoteAddress ?? undefined;
  }
  get remotePort(): number | undefined {
    return this.ep && this.ep.remotePort ? this.ep.remotePort : undefined;
  }
  get remoteFamily(): 'IPv4' | 'IPv6' | undefined {
    return this.ep?.remoteAddress ? (this.ep.family === 4 ? 'IPv4' : 'IPv6') : undefined;
  }
  get localAddress(): string | undefined {
    return this.ep?.localAddress ?? undefined;
  }
  get localPort(): number | undefined {
    return this.ep && this.ep.localPort ? this.ep.localPort : undefined;
  }
  get localFamily(): 'IPv4' | 'IPv6' | undefined {
    return this.ep ? (this.ep.family === 4 ? 'IPv4' : 'IPv6') : undefined;
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
  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.destroyed || !this.ep) return 'closed';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
  get timeout(): number | undefined {
    return this.idleMs || undefined;
  }

  address(): AddressInfo | Record<string, never> {
    if (!this.ep || !this.ep.localPort) return {};
    return { address: this.ep.localAddress ?? (this.ep.family === 4 ? '0.0.0.0' : '::'), family: this.ep.family === 4 ? 'IPv4' : 'IPv6', port: this.ep.localPort };
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
    if (opts.noDelay) this.wantNoDelay = true;
    if (opts.keepAlive) this.wantKeepAlive = { on: true, delay: opts.keepAliveInitialDelay ?? 0 };
    if (opts.timeout) this.setTimeout(opts.timeout);
    const host = opts.host ?? 'localhost';
    const family = isIP(host);
    if (family !== 0) this.startConnect(host, family as 4 | 6, opts);
    else if (host === 'localhost') this.startConnect(opts.family === 6 ? '::1' : '127.0.0.1', opts.family === 6 ? 6 : 4, opts);
    else if (opts.lookup) {
      opts.lookup(host, { family: opts.family ?? 0 }, (err, address, fam) => {
        if (err) this.destroy(err);
        else this.startConnect(address, fam === 6 ? 6 : 4, opts);
      });
    } else {
      const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: host });
      process.nextTick(() => this.destroy(err));
    }
    return this;
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

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
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
  }

  private startConnect(address: string, family: 4 | 6, opts: SocketConnectOpts): void {
    if (this.destroyed) return;
    let ep: TcpEndpoint;
    try {
      ep = this.stack.tcp({ family });
      if (opts.localAddress || opts.localPort) ep.bind(opts.localAddress ?? null, opts.localPort ?? 0);
      this.attach(ep);
      ep.connect(address, opts.port);
    } catch (e) {
      process.nextTick(() => this.destroy(e as Error));
    }
  }

  private attach(ep: TcpEndpoint): void {
    this.ep = ep;
    if (this.wantNoDelay) ep.setNoDelay(true);
    if (this.wantKeepAlive) this.applyKeepAlive();
    ep.on('connect', () => {
      // Defer as Node does: 'connect' comes from the event loop, never from inside a call.
      queueMicrotask(() => this.onConnected());
    });
    ep.on('readable', () => queueMicrotask(() => this.pump()));
    ep.on('end', () => queueMicrotask(() => this.pump()));
    ep.on('writable', () => queueMicrotask(() => this.flushPending()));
    ep.on('error', (err: Error) => queueMicrotask(() => this.destroy(err)));
    ep.on('close', () =>
      queueMicrotask(() => {
        this.pump();
        if (!this.endPushed && !this.destroyed) {
          this.endPushed = true;
          this.push(null);
        }
      }),
    );
    if (ep.state !== 'SYN_SENT' && ep.state !== 'CLOSED') this.connecting = false;
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
        if (ep.readEnded) {
          this.endPushed = true;
          this.push(null);
        }
        return;
      }
      this.readBytes += chunk.length;
      this.touch();
      if (!this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length))) return;
    }
  }

  private writeChunk(chunk: Uint8Array, cb: (err?: Error | null) => void): void {
    const ep = this.ep!;
    let n: number;
    try {
      n = ep.write(chunk);
    } catch (e) {
      cb(e as Error);
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
  private closing = false;

  constructor(
    private readonly stack: Stack,
    private readonly options: ServerOptions = {},
    listener?: (socket: Socket) => void,
  ) {
    super();
    if (listener) this.on('connection', listener);
  }

  get listening(): boolean {
    return this.ep !== null;
  }

  /** listen(port[, host][, backlog][, cb]) | listen(options[, cb]) */
  listen(...args: Array<number | string | ListenOptions | (() => void) | undefined>): this {
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
    if (this.ep) throw Object.assign(new Error('Listen method has been called more than once without closing.'), { code: 'ERR_SERVER_ALREADY_LISTEN' });
    if (cb) this.once('listening', cb);
    const host = opts.host && opts.host !== '0.0.0.0' && opts.host !== '::' ? opts.host : null;
    const family: 4 | 6 = opts.host?.includes(':') ? 6 : 4;
    try {
      const ep = this.stack.tcp({ family });
      ep.bind(host, opts.port ?? 0, { reuseAddress: opts.reuseAddress ?? true });
      ep.listen(opts.backlog ?? 511);
      // The child is handed over in the event (not queued): wrap it at once so none of its
      // events are missed, and tell the user on a microtask, as Node's come from the loop.
      ep.on('connection', (child) => this.adopt(child));
      this.ep = ep;
      this.closing = false;
    } catch (e) {
      process.nextTick(() => this.emit('error', e));
      return this;
    }
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  address(): AddressInfo | null {
    const ep = this.ep;
    if (!ep) return null;
    return { address: ep.localAddress ?? (ep.family === 4 ? '0.0.0.0' : '::'), family: ep.family === 4 ? 'IPv4' : 'IPv6', port: ep.localPort };
  }

  /** Stop accepting; 'close' once every connection has ended (as Node). */
  close(cb?: (err?: Error) => void): this {
    if (!this.ep) {
      const err = Object.assign(new Error('Server is not running.'), { code: 'ERR_SERVER_NOT_RUNNING' });
      if (cb) process.nextTick(() => cb(err));
      return this;
    }
    if (cb) this.once('close', () => cb());
    this.ep.close();
    this.ep = null;
    this.closing = true;
    this.maybeClosed();
    return this;
  }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    process.nextTick(() => cb(null, this.connections.size));
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return new Promise((resolve) => (this.ep ? this.close(() => resolve()) : resolve()));
  }

  private adopt(child: TcpEndpoint): void {
    if (!this.ep) {
      child.abort();
      return;
    }
    if (this.connections.size >= this.maxConnections) {
      child.abort();
      this.emit('drop', { remoteAddress: child.remoteAddress, remotePort: child.remotePort });
      return;
    }
    const s = Socket.fromEndpoint(this.stack, child, { allowHalfOpen: this.options.allowHalfOpen ?? false });
    if (this.options.noDelay) s.setNoDelay(true);
    if (this.options.keepAlive) s.setKeepAlive(true, this.options.keepAliveInitialDelay ?? 0);
    if (this.options.pauseOnConnect) s.pause();
    this.connections.add(s);
    s.once('close', () => {
      this.connections.delete(s);
      this.maybeClosed();
    });
    queueMicrotask(() => this.emit('connection', s));
  }

  private maybeClosed(): void {
    if (this.closing && this.connections.size === 0) {
      this.closing = false;
      process.nextTick(() => this.emit('close'));
    }
  }
}

/** `stack.net`: the net module's functions bound to a stack. */
export class NetModule {
  constructor(private readonly stack: Stack) {}

  createServer(optionsOrListener?: ServerOptions | ((s: Socket) => void), listener?: (s: Socket) => void): Server {
    if (typeof optionsOrListener === 'function') return new Server(this.stack, {}, optionsOrListener);
    if (optionsOrListener !== undefined && (typeof optionsOrListener !== 'object' || optionsOrListener === null)) {
      throw nodeArgType('options', 'of type object', optionsOrListener);
    }
    return new Server(this.stack, optionsOrListener ?? {}, typeof listener === 'function' ? listener : undefined);
  }

  connect(portOrOptions: number | (SocketConnectOpts & SocketOptions), hostOrListener?: string | (() => void), listener?: () => void): Socket {
    const opts = typeof portOrOptions === 'object' ? portOrOptions : undefined;
    const s = new Socket(this.stack, opts?.allowHalfOpen !== undefined ? { allowHalfOpen: opts.allowHalfOpen } : {});
    return s.connect(portOrOptions, hostOrListener, listener);
  }

  createConnection(portOrOptions: number | (SocketConnectOpts & SocketOptions), hostOrListener?: string | (() => void), listener?: () => void): Socket {
    return this.connect(portOrOptions, hostOrListener, listener);
  }

  /** A new unconnected Socket bound to this stack. */
  socket(options: SocketOptions = {}): Socket {
    return new Socket(this.stack, options);
  }

  /** An http.Agent whose connections go through this stack (for http.request / http.get). */
  httpAgent(options: AgentOptions = {}): HttpAgent {
    const agent = new HttpAgent(options);
    const net = this;
    (agent as unknown as { createConnection: (o: SocketConnectOpts, cb?: () => void) => Socket }).createConnection = (o) =>
      net.connect({ port: Number(o.port), host: o.host ?? 'localhost', ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    return agent;
  }

  isIP = isIP;
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
