/**
 * A Web Streams face for tunstack's TCP, beside the Node `net`-compatible one: a connection is a
 * `ReadableStream<Uint8Array>` of what the peer sent and a `WritableStream<Uint8Array>` to the
 * peer, in the shape of the Direct Sockets API's TCPSocket. Works wherever Web Streams exist
 * (browser pages, workers, Node >= 18).
 *
 * Backpressure is TCP's own: the readable takes bytes out of the endpoint's receive queue only
 * when its consumer asks (so a slow reader closes the advertised window), and a write resolves
 * once the send buffer has taken every byte of the chunk (so a fast writer waits for ACKs).
 */
import { TunstackError } from '../core/errors.js';
import type { PortableStack } from '../portable/stack.js';
import type { TcpEndpoint, TcpEndpointEvents } from '../transport/tcp/endpoint.js';
import type { TcpEndpointOptions } from '../transport/tcp/types.js';
import { expectInteger, optionalInteger, optionsObject } from '../core/validate.js';

/** Largest chunk the readable hands out (several received segments are joined up to this). */
const READ_MAX = 256 * 1024;

export interface TcpStreamsOptions {
  /**
   * Bytes the readable may hold ahead of its consumer (ByteLengthQueuingStrategy); default 0:
   * bytes stay in the TCP receive queue, where they count against the advertised window.
   */
  readHighWaterMark?: number;
}

/** One TCP connection as a pair of Web Streams. */
export interface WebTcpConnection {
  readonly endpoint: TcpEndpoint;
  /** What the peer sends; closes after the peer's FIN, errors on a reset or timeout. */
  readonly readable: ReadableStream<Uint8Array>;
  /** To the peer; `close()` sends FIN after the buffered bytes (shutdown), `abort()` a RST. */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves when the endpoint is closed; rejects with the connection's error (ECONNRESET, ETIMEDOUT, ...). */
  readonly closed: Promise<void>;
  readonly remoteAddress: string | null;
  readonly remotePort: number;
  readonly localAddress: string | null;
  readonly localPort: number;
}

type EventName = keyof TcpEndpointEvents;

/** Resolve at the first of `events` (listeners removed afterwards). */
function nextEvent(ep: TcpEndpoint, events: readonly EventName[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const fire = (): void => {
      for (const e of events) ep.off(e, fire);
      resolve();
    };
    for (const e of events) ep.on(e, fire);
  });
}

/** Wrap an endpoint (connected, or a child from a listener) in Web Streams. */
export function tcpStreams(endpoint: TcpEndpoint, options: TcpStreamsOptions = {}): WebTcpConnection {
  options = optionsObject<TcpStreamsOptions>(options, 'tcpStreams');
  optionalInteger(options.readHighWaterMark, 'tcpStreams', 'options.readHighWaterMark', 0, Number.MAX_SAFE_INTEGER);
  const ep = endpoint;
  let failure: TunstackError | null = null;
  let isClosed = false;
  let readDone = false;
  let writeDone = false;
  let settle!: { resolve(): void; reject(e: unknown): void };
  const closed = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  closed.catch(() => {}); // the streams report the error too; an unobserved `closed` is not an unhandled rejection
  ep.on('error', (e) => {
    failure ??= e;
  });
  ep.on('close', () => {
    isClosed = true;
    const err = failure ?? ep.takeError();
    if (err) settle.reject(err);
    else settle.resolve();
  });
  /** Both directions done: release the endpoint (a graceful close, as close(2)). */
  const finishOne = (): void => {
    if (readDone && writeDone && !isClosed) ep.close();
  };

  const readable = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          const chunk = ep.read(READ_MAX);
          if (chunk !== null) {
            controller.enqueue(chunk);
            return;
          }
          if (ep.readEnded || (isClosed && failure === null)) {
            readDone = true;
            controller.close();
            finishOne();
            return;
          }
          if (failure !== null) {
            readDone = true;
            throw failure;
          }
          await nextEvent(ep, ['readable', 'end', 'close', 'error']);
        }
      },
      cancel() {
        // Linux: closing with unread bytes resets the connection.
        readDone = true;
        writeDone = true;
        if (!isClosed) ep.close();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: options.readHighWaterMark ?? 0 }),
  );

  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (!(chunk instanceof Uint8Array)) throw new TunstackError('EINVAL', 'tcp writable: chunks must be Uint8Array', 'write');
      let off = 0;
      while (off < chunk.length) {
        if (failure !== null) throw failure;
        off += ep.write(off === 0 ? chunk : chunk.subarray(off));
        if (off < chunk.length) await nextEvent(ep, ['writable', 'close', 'error']);
      }
    },
    close() {
      writeDone = true;
      if (!isClosed) ep.shutdown();
      finishOne();
    },
    abort() {
      writeDone = true;
      readDone = true;
      if (!isClosed) ep.abort();
    },
  });

  return {
    endpoint: ep,
    readable,
    writable,
    closed,
    get remoteAddress() {
      return ep.remoteAddress;
    },
    get remotePort() {
      return ep.remotePort;
    },
    get localAddress() {
      return ep.localAddress;
    },
    get localPort() {
      return ep.localPort;
    },
  };
}

export interface ConnectTcpOptions extends TcpEndpointOptions, TcpStreamsOptions {
  address: string;
  port: number;
  localAddress?: string;
  localPort?: number;
  /** Abort the handshake (the endpoint is reset, the promise rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** Connect and resolve with the connection once established (rejects with ECONNREFUSED, ETIMEDOUT, ...). */
export function connectTcp(stack: PortableStack, options: ConnectTcpOptions): Promise<WebTcpConnection> {
  const where = 'connectTcp';
  options = optionsObject<ConnectTcpOptions>(options, where);
  expectInteger(options.port, where, 'options.port', 1, 65535);
  optionalInteger(options.localPort, where, 'options.localPort', 0, 65535);
  const { address, port, localAddress, localPort, signal, readHighWaterMark, ...epOptions } = options;
  return new Promise<WebTcpConnection>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const family = epOptions.family ?? (address.includes(':') ? 6 : 4);
    const ep = stack.tcp({ ...epOptions, family });
    const done = (): void => {
      ep.off('connect', onConnect);
      ep.off('error', onFail);
      ep.off('close', onFail);
      signal?.removeEventListener('abort', onAbort);
    };
    function onConnect(): void {
      done();
      resolve(tcpStreams(ep, readHighWaterMark === undefined ? {} : { readHighWaterMark }));
    }
    function onFail(): void {
      done();
      reject(ep.takeError() ?? new TunstackError('ECONNREFUSED', `connect ${address}:${port} failed`, 'connect'));
    }
    function onAbort(): void {
      done();
      ep.abort();
      reject(signal!.reason);
    }
    ep.on('connect', onConnect);
    ep.on('error', onFail);
    ep.on('close', onFail);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (localAddress !== undefined || localPort !== undefined) ep.bind(localAddress ?? null, localPort ?? 0);
      ep.connect(address, port);
    } catch (e) {
      done();
      ep.abort();
      reject(e);
    }
  });
}

export interface ListenTcpOptions extends TcpEndpointOptions, TcpStreamsOptions {
  /** Port to listen on (0: an ephemeral port, read it from `port`). */
  port: number;
  /** Local address (default: every address of the family). */
  address?: string;
  backlog?: number;
}

/** A listening socket whose accepted connections come as a ReadableStream. */
export interface WebTcpListener {
  readonly endpoint: TcpEndpoint;
  readonly port: number;
  /**
   * Accepted connections, one per read. Nothing is accepted ahead of the reader: connections wait
   * in the listener's accept queue (bounded by the backlog, as listen(2)) until read.
   */
  readonly connections: ReadableStream<WebTcpConnection>;
  /** Stop listening (connections already accepted are not affected). */
  close(): void;
}

export function listenTcp(stack: PortableStack, options: ListenTcpOptions): WebTcpListener {
  const where = 'listenTcp';
  options = optionsObject<ListenTcpOptions>(options, where);
  expectInteger(options.port, where, 'options.port', 0, 65535);
  optionalInteger(options.backlog, where, 'options.backlog', 0, 0x7fffffff);
  const { port, address, backlog, readHighWaterMark, ...epOptions } = options;
  const streamOptions: TcpStreamsOptions = readHighWaterMark === undefined ? {} : { readHighWaterMark };
  const ep = stack.tcp(epOptions);
  ep.bind(address ?? null, port);
  ep.listen(backlog);
  let stopped = false;
  const connections = new ReadableStream<WebTcpConnection>(
    {
      async pull(controller) {
        for (;;) {
          const child = ep.accept();
          if (child !== null) {
            controller.enqueue(tcpStreams(child, streamOptions));
            return;
          }
          if (stopped || ep.state !== 'LISTEN') {
            controller.close();
            return;
          }
          // While a read waits, a new child is handed to the 'connection' listener instead of
          // the accept queue (TcpEndpoint's contract), so take it from the event.
          const next = await new Promise<TcpEndpoint | null>((resolve) => {
            const onConn = (c: TcpEndpoint): void => {
              ep.off('close', onClose);
              resolve(c);
            };
            const onClose = (): void => {
              ep.off('connection', onConn);
              resolve(null);
            };
            ep.once('connection', onConn);
            ep.once('close', onClose);
          });
          if (next !== null) {
            controller.enqueue(tcpStreams(next, streamOptions));
            return;
          }
        }
      },
      cancel() {
        stop();
      },
    },
    new CountQueuingStrategy({ highWaterMark: 0 }),
  );
  function stop(): void {
    if (stopped) return;
    stopped = true;
    ep.close();
  }
  return { endpoint: ep, port: ep.localPort, connections, close: stop };
}
