import { EventEmitter } from 'node:events';
import { TunstackError } from '../errors.js';
import { formatIP } from '../headers/address.js';
import type { Stack } from '../stack/stack.js';
import { nodeArgType, nodeError, nodePort } from '../validate.js';
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
    if (typeof options !== 'object' || options === null || (options.type !== 'udp4' && options.type !== 'udp6')) {
      throw nodeError(TypeError, 'ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6');
    }
    if (options.recvBufferSize !== undefined) checkBufferSize(options.recvBufferSize);
    if (options.sendBufferSize !== undefined) checkBufferSize(options.sendBufferSize);
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
    // Node coerces a bad port (bind(-1) listens on 65535); tunstack refuses it as connect does.
    port = nodePort(port);
    if (address !== undefined && typeof address !== 'string') throw nodeArgType('hostname', 'of type string', address);
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
    port = nodePort(port, 'Port', false);
    if (addressOrCb !== undefined && typeof addressOrCb !== 'string' && typeof addressOrCb !== 'function') {
      throw nodeArgType('address', 'of type string', addressOrCb);
    }
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
      // As Node: both are taken as unsigned 32-bit integers, then bounded by the buffer.
      const offset = (args.shift() as number) >>> 0;
      const length = (args.shift() as number) >>> 0;
      if (offset > data.length) throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
      if (length > data.length - offset) throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
      data = data.subarray(offset, offset + length);
    }
    let port = args[0] as number | undefined;
    const address = args[1];
    if (!this.connected || port !== undefined) port = nodePort(port, 'Port', false);
    if (address !== undefined && typeof address !== 'string') throw nodeArgType('address', 'of type string', address);
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
    this.ep.broadcast = Boolean(flag);
  }

  setTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw nodeArgType('ttl', 'of type number', ttl);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw new TunstackError('EINVAL', `TTL ${ttl} out of range`, 'setTTL');
    this.ep.ttl = ttl;
    return ttl;
  }

  setRecvBufferSize(size: number): void {
    this.ep.receiveBufferSize = checkBufferSize(size);
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
    if (typeof listener === 'function') s.on('message', listener);
    return s;
  }
}

const BYTES_EXPECTED = 'of type string or an instance of Buffer, TypedArray, or DataView';

function toBytes(msg: MessageData): Uint8Array {
  if (typeof msg === 'string') return Buffer.from(msg);
  if (msg instanceof Uint8Array) return msg;
  if (Array.isArray(msg)) {
    const bad = msg.findIndex((m) => typeof m !== 'string' && !(m instanceof Uint8Array));
    if (bad >= 0) throw nodeArgType('buffer list arguments', BYTES_EXPECTED, msg[bad]);
    return Buffer.concat(msg.map((m) => (typeof m === 'string' ? Buffer.from(m) : m)));
  }
  throw nodeArgType('buffer', BYTES_EXPECTED, msg);
}

/** Node's buffer size check (ERR_SOCKET_BAD_BUFFER_SIZE): a positive integer. */
function checkBufferSize(size: unknown): number {
  if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0 || size > 0x7fffffff) {
    throw nodeError(TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer');
  }
  return size;
}
