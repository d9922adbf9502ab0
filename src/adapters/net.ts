import { EventEmitter } from 'node:events';
import { Agent as HttpAgent, type AgentOptions } from 'node:http';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { TunstackError } from '../core/errors.js';
import { ClockHold } from '../core/clock.js';
import type { Stack } from './stack.js';
import type { TcpEndpoint } from '../transport/tcp/index.js';
import { codedError, notFoundError, uvHostPortError } from './node-errors.js';
import { nodeArgType, nodeError, nodePort, nodeReceived } from '../core/validate.js';
import { Socket, type AddressInfo, type SocketConnectOpts, type SocketOptions } from './net-socket.js';

export {
  Socket,
  type AddressInfo,
  type LookupAddress,
  type LookupFunction,
  type LookupOptions,
  type SocketConnectOpts,
  type SocketOptions,
} from './net-socket.js';

/**
 * Node's `net` over tunstack TCP: `Socket` is a real stream.Duplex with net.Socket's API, `Server`
 * has net.Server's. Node's own `http.createServer` serves a tunstack listener through
 * `stack.net.listen(httpServer, port)`, and `http.request` uses tunstack through
 * `createConnection` or `stack.net.httpAgent()`. This file has `Server` and `NetModule`; `Socket` is
 * in net-socket.ts.
 */

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
