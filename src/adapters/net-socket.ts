import { isIP, isIPv4 } from 'node:net';
import { Duplex } from 'node:stream';
import { TunstackError } from '../core/errors.js';
import { ClockHold, type Timer } from '../core/clock.js';
import type { Stack } from './stack.js';
import type { TcpEndpoint } from '../transport/tcp/index.js';
import { codedError, errnoError, hostPortError } from './node-errors.js';
import { nodeArgType, nodeError, nodePort } from '../core/validate.js';

/**
 * Node's `net.Socket` over tunstack TCP: a real stream.Duplex with net.Socket's API, connecting
 * (with a `lookup` as Node's) or wrapping an accepted endpoint. `Server` and `NetModule` are in
 * net.ts.
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
      // Large payloads (TSO super-packets kept whole) go up as they are; MSS-sized ones are
      // joined into chunks of up to 64 KiB, as Node's own reads are.
      const chunk = ep.readStreamChunk(65536, 16384);
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
