import { EventEmitter } from 'node:events';
import { TunstackError } from '../errors.js';
import { formatIP } from '../headers/address.js';
import type { Stack } from '../stack/stack.js';
import type { UdpEndpoint } from '../transport/udp.js';

/**
 * A dgram.Socket-like surface over a tunstack UDP endpoint: bind, connect, send, close, address,
 * setBroadcast, setTTL, events 'message' (with rinfo), 'listening', 'connect', 'close', 'error'.
 * Events are emitted asynchronously (on a microtask), as Node's come from the event loop.
 */

export type SocketType = 'udp4' | 'udp6';

export interface SocketOptions {
  type: SocketType;
  reuseAddr?: boolean;
  ipv6Only?: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
}

export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

export interface BindOptions {
  port?: number;
  address?: string;
  exclusive?: boolean;
}

export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

type MessageData = Uint8Array | string | ReadonlyArray<Uint8Array | string>;
type SendCallback = (error: Error | null, bytes: number) => void;

export class DgramSocket extends EventEmitter {
  readonly type: SocketType;
  private readonly ep: UdpEndpoint;
  private state: 'unbound' | 'bound' | 'closed' = 'unbound';
  private connected = false;
  private draining = false;

  constructor(stack: Stack, options: SocketOptions) {
    super();
    if (options.type !== 'udp4' && options.type !== 'udp6') {
      throw new TunstackError('EINVAL', `bad socket type ${String(options.type)}`);
    }
    this.type = options.type;
    this.ep = stack.udp({
      family: options.type === 'udp4' ? 4 : 6,
      reuseAddress: options.reuseAddr ?? false,
      ...(options.ipv6Only !== undefined ? { v6Only: options.ipv6Only } : {}),
      ...(options.recvBufferSize !== undefined ? { receiveBufferSize: options.recvBufferSize } : {}),
    });
    this.ep.on('readable', () => this.scheduleDrain());
    this.ep.on('error', (e) => queueMicrotask(() => this.emit('error', e)));
  }

  /** bind([port][, address][, callback]) or bind(options[, callback]) */
  bind(portOrOptions?: number | BindOptions | (() => void), addressOrCb?: string | (() => void), cb?: () => void): this {
    let port = 0;
    let address: string | undefined;
    let callback: (() => void) | undefined;
    if (typeof portOrOptions === 'function') callback = portOrOptions;
    else if (typeof portOrOptions === 'object' && portOrOptions !== null) {
      port = portOrOptions.port ?? 0;
      address = portOrOptions.address;
      callback = typeof addressOrCb === 'function' ? addressOrCb : cb;
    } else {
      port = portOrOptions ?? 0;
      if (typeof addressOrCb === 'function') callback = addressOrCb;
      else {
        address = addressOrCb;
        callback = cb;
      }
    }
    this.assertNotClosed();
    if (this.state === 'bound') throw new TunstackError('EINVAL', 'Socket is already bound', 'bind');
    if (callback) this.once('listening', callback);
    try {
      this.ep.bind(address === undefined || address === '0.0.0.0' || address === '::' ? null : address, port);
    } catch (e) {
      queueMicrotask(() => this.emit('error', e));
      return this;
    }
    this.state = 'bound';
    queueMicrotask(() => this.emit('listening'));
    return this;
  }

  connect(port: number, addressOrCb?: string | (() => void), cb?: () => void): void {
    this.assertNotClosed();
    if (this.connected) throw new TunstackError('EISCONN', 'Already connected', 'connect');
    const address = typeof addressOrCb === 'string' ? addressOrCb : this.type === 'udp4' ? '127.0.0.1' : '::1';
    const callback = typeof addressOrCb === 'function' ? addressOrCb : cb;
    if (callback) this.once('connect', callback);
    const wasBound = this.ep.isBound;
    try {
      this.ep.connect(address, port);
    } catch (e) {
      queueMicrotask(() => this.emit('error', e));
      return;
    }
    this.connected = true;
    if (!wasBound) {
      this.state = 'bound';
      queueMicrotask(() => this.emit('listening'));
    }
    queueMicrotask(() => this.emit('connect'));
  }

  disconnect(): void {
    this.assertNotClosed();
    if (!this.connected) throw new TunstackError('ENOTCONN', 'Not connected', 'disconnect');
    this.ep.disconnect();
    this.connected = false;
  }

  /**
   * send(msg[, offset, length][, port][, address][, callback]), as Node's. Errors go to the
   * callback when given, else to an 'error' event.
   */
  send(msg: MessageData, ...args: Array<number | string | SendCallback | undefined>): void {
    this.assertNotClosed();
    let callback: SendCallback | undefined;
    if (typeof args[args.length - 1] === 'function') callback = args.pop() as SendCallback;
    let data = toBytes(msg);
    // (msg, offset, length, port?, address?) when the two first extra args are numbers and msg is bytes.
    if (typeof args[0] === 'number' && typeof args[1] === 'number' && !(typeof msg === 'string') && !Array.isArray(msg)
      && (args.length >= 3 || this.connected)) {
      const offset = args.shift() as number;
      const length = args.shift() as number;
      if (offset < 0 || length < 0 || offset + length > data.length) {
        throw new TunstackError('EINVAL', 'offset/length out of range', 'send');
      }
      data = data.subarray(offset, offset + length);
    }
    const port = args[0] as number | undefined;
    const address = args[1] as string | undefined;
    const wasBound = this.ep.isBound;
    let n = 0;
    let err: Error | null = null;
    try {
      if (this.connected) {
        if (port !== undefined) throw new TunstackError('EISCONN', 'Already connected', 'send');
        n = this.ep.send(data);
      } else {
        if (port === undefined) throw new TunstackError('EDESTADDRREQ', 'Destination address required', 'send');
        const dst = address ?? (this.type === 'udp4' ? '127.0.0.1' : '::1');
        n = this.ep.send(data, port, dst);
      }
    } catch (e) {
      err = e as Error;
    }
    if (!wasBound && this.ep.isBound) {
      this.state = 'bound';
      queueMicrotask(() => this.emit('listening'));
    }
    queueMicrotask(() => {
      if (callback) callback(err, n);
      else if (err) this.emit('error', err);
    });
  }

  close(callback?: () => void): this {
    this.assertNotClosed();
    if (callback) this.once('close', callback);
    this.state = 'closed';
    this.ep.close();
    queueMicrotask(() => this.emit('close'));
    return this;
  }

  address(): AddressInfo {
    if (!this.ep.isBound) throw new TunstackError('EBADF', 'getsockname', 'getsockname');
    const any = this.type === 'udp4' ? '0.0.0.0' : '::';
    return { address: this.ep.localAddress ? formatIP(this.ep.localAddress) : any, family: this.family, port: this.ep.localPort };
  }

  remoteAddress(): AddressInfo {
    if (!this.connected || !this.ep.remoteAddress) throw new TunstackError('ENOTCONN', 'Not connected', 'getpeername');
    return { address: formatIP(this.ep.remoteAddress), family: this.family, port: this.ep.remotePort };
  }

  setBroadcast(flag: boolean): void {
    this.ep.broadcast = flag;
  }

  setTTL(ttl: number): number {
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw new TunstackError('EINVAL', `TTL ${ttl} out of range`, 'setTTL');
    this.ep.ttl = ttl;
    return ttl;
  }

  setRecvBufferSize(size: number): void {
    this.ep.receiveBufferSize = size;
  }

  getRecvBufferSize(): number {
    return this.ep.receiveBufferSize;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  private get family(): 'IPv4' | 'IPv6' {
    return this.type === 'udp4' ? 'IPv4' : 'IPv6';
  }

  private scheduleDrain(): void {
    if (this.draining) return;
    this.draining = true;
    queueMicrotask(() => {
      this.draining = false;
      for (let m = this.ep.recv(); m !== null; m = this.ep.recv()) {
        const buf = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length);
        this.emit('message', buf, { address: m.address, family: m.family === 4 ? 'IPv4' : 'IPv6', port: m.port, size: buf.length } satisfies RemoteInfo);
        if (this.state === 'closed') return;
      }
    });
  }

  private assertNotClosed(): void {
    if (this.state === 'closed') throw new TunstackError('EBADF', 'Not running', 'send');
  }
}

/** `stack.dgram`: createSocket like Node's dgram module. */
export class DgramModule {
  constructor(private readonly stack: Stack) {}

  createSocket(type: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void): DgramSocket {
    const s = new DgramSocket(this.stack, typeof type === 'string' ? { type } : type);
    if (listener) s.on('message', listener);
    return s;
  }
}

function toBytes(msg: MessageData): Uint8Array {
  if (typeof msg === 'string') return Buffer.from(msg);
  if (msg instanceof Uint8Array) return msg;
  if (Array.isArray(msg)) return Buffer.concat(msg.map((m) => (typeof m === 'string' ? Buffer.from(m) : m)));
  throw new TunstackError('EINVAL', 'message must be a string, Buffer, Uint8Array or an array of them');
}
