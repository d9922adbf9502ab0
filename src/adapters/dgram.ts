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

  constructor(
    private readonly stack: Stack,
    options: SocketOptions,
  ) {
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

  // ------------------------------------------------------------------ multicast

  /**
   * addMembership(multicastAddress[, multicastInterface]): join a group on the interface with
   * that address (IPv4), `::%scope` or name (IPv6), else the one the route to the group leaves
   * by. An unbound socket is bound to an ephemeral port first, as Node (libuv) does.
   */
  addMembership(multicastAddress: string, multicastInterface?: string): void {
    this.multicastCall('multicastAddress', multicastAddress, multicastInterface, () => this.ep.multicast.add(multicastAddress, multicastInterface));
  }

  dropMembership(multicastAddress: string, multicastInterface?: string): void {
    this.multicastCall('multicastAddress', multicastAddress, multicastInterface, () => this.ep.multicast.drop(multicastAddress, multicastInterface));
  }

  /** Receive `groupAddress` only from `sourceAddress` (IGMPv3 / MLDv2 INCLUDE mode). */
  addSourceSpecificMembership(sourceAddress: string, groupAddress: string, multicastInterface?: string): void {
    requireString('sourceAddress', sourceAddress);
    this.multicastCall('groupAddress', groupAddress, multicastInterface, () => this.ep.multicast.addSource(sourceAddress, groupAddress, multicastInterface));
  }

  dropSourceSpecificMembership(sourceAddress: string, groupAddress: string, multicastInterface?: string): void {
    requireString('sourceAddress', sourceAddress);
    this.multicastCall('groupAddress', groupAddress, multicastInterface, () => this.ep.multicast.dropSource(sourceAddress, groupAddress, multicastInterface));
  }

  /** IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS: 0-255 (default 1). Returns `ttl`. */
  setMulticastTTL(ttl: number): number {
    this.assertRunning();
    if (typeof ttl !== 'number') throw nodeTypeError('ttl', 'number', ttl);
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) throw new TunstackError('EINVAL', `setMulticastTTL EINVAL`, 'setMulticastTTL');
    this.ep.multicast.ttl = ttl;
    return ttl;
  }

  /** IP_MULTICAST_LOOP: whether this host's members get our multicast too (default true). Returns `flag`. */
  setMulticastLoopback<T>(flag: T): T {
    this.assertRunning();
    this.ep.multicast.loop = Boolean(flag);
    return flag;
  }

  /**
   * IP_MULTICAST_IF: an address of this stack (IPv4; EADDRNOTAVAIL otherwise) or `::%scope`
   * (IPv6; an unknown scope goes back to the default, as Node does); '0.0.0.0' / '::' reset.
   */
  setMulticastInterface(interfaceAddress: string): void {
    this.assertRunning();
    requireString('interfaceAddress', interfaceAddress);
    const pct = interfaceAddress.indexOf('%');
    if (this.type === 'udp6' && pct >= 0) {
      const scope = interfaceAddress.slice(pct + 1);
      const known = this.stack.nic(/^\d+$/.test(scope) ? Number(scope) : scope) !== undefined;
      this.ep.multicast.setInterface(known ? interfaceAddress : undefined);
      return;
    }
    this.ep.multicast.setInterface(interfaceAddress);
  }

  private multicastCall(argName: string, group: unknown, iface: unknown, fn: () => void): void {
    this.assertRunning();
    if (group === undefined) throw nodeMissingArg(argName);
    requireString(argName, group);
    if (iface !== undefined) requireString('multicastInterface', iface);
    if (!this.ep.isBound) {
      this.ep.bind(null, 0);
      this.state = 'bound';
    }
    fn();
  }

  private assertRunning(): void {
    if (this.state === 'closed') throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
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

/** Node's validation errors (`ERR_*` codes), for the argument checks Node makes before any syscall. */
function nodeError(code: string, message: string, ctor: ErrorConstructor = Error): Error & { code: string } {
  const e = new ctor(message) as Error & { code: string };
  e.code = code;
  return e;
}

function nodeMissingArg(name: string): Error {
  return nodeError('ERR_MISSING_ARGS', `The "${name}" argument must be specified`, TypeError);
}

function nodeTypeError(name: string, type: string, value: unknown): Error {
  const shown = typeof value === 'string' ? `type string ('${value}')` : value === null ? 'null' : `type ${typeof value} (${String(value)})`;
  return nodeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type ${type}. Received ${shown}`, TypeError);
}

function requireString(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') throw nodeTypeError(name, 'string', value);
}

function toBytes(msg: MessageData): Uint8Array {
  if (typeof msg === 'string') return Buffer.from(msg);
  if (msg instanceof Uint8Array) return msg;
  if (Array.isArray(msg)) return Buffer.concat(msg.map((m) => (typeof m === 'string' ? Buffer.from(m) : m)));
  throw new TunstackError('EINVAL', 'message must be a string, Buffer, Uint8Array or an array of them');
}
