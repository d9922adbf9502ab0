import { EventEmitter } from 'node:events';
import { TunstackError } from '../core/errors.js';
import { formatIP } from '../core/address.js';
import { ClockHold } from '../core/clock.js';
import { NodeError, codedError } from './node-errors.js';
import type { Stack } from './stack.js';
import { nodeArgType, nodeError, nodePort } from '../core/validate.js';
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

type MessageData = ArrayBufferView | string | ReadonlyArray<ArrayBufferView | string>;

/** Linux's default net.core.rmem_max and wmem_max (a socket buffer can be set up to twice that). */
const SOCK_BUF_MAX = 212992;
/** Linux's SOCK_MIN_RCVBUF and SOCK_MIN_SNDBUF (x86-64). */
const SOCK_MIN_RCVBUF = 2304;
const SOCK_MIN_SNDBUF = 4608;
/** Linux's default send buffer (net.core.wmem_default). */
const SOCK_SNDBUF_DEFAULT = 212992;
type SendCallback = (error: Error | null, bytes: number) => void;

export class DgramSocket extends EventEmitter {
  readonly type: SocketType;
  private readonly ep: UdpEndpoint;
  private state: 'unbound' | 'bound' | 'closed' = 'unbound';
  private connected = false;
  private draining = false;
  /** SO_SNDBUF as Linux reports it (sends are synchronous here, so it bounds nothing). */
  private sndbuf = SOCK_SNDBUF_DEFAULT;
  /** Buffer sizes asked for at creation, applied when bound (as Node does). */
  private readonly initialSizes: { recv?: number; send?: number };
  private refed = true;
  private readonly hold: ClockHold;

  constructor(
    private readonly stack: Stack,
    options: SocketOptions,
  ) {
    super();
    if (typeof options !== 'object' || options === null || (options.type !== 'udp4' && options.type !== 'udp6')) {
      throw nodeError(TypeError, 'ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6');
    }
    this.hold = new ClockHold(stack.clock);
    if (options.recvBufferSize !== undefined) checkBufferSize(options.recvBufferSize);
    if (options.sendBufferSize !== undefined) checkBufferSize(options.sendBufferSize);
    this.type = options.type;
    this.ep = stack.udp({
      family: options.type === 'udp4' ? 4 : 6,
      reuseAddress: options.reuseAddr ?? false,
      ...(options.ipv6Only !== undefined ? { v6Only: options.ipv6Only } : {}),
    });
    for (const size of [options.recvBufferSize, options.sendBufferSize]) {
      if (size !== undefined) checkBufferSize(size);
    }
    this.initialSizes = {
      ...(options.recvBufferSize !== undefined ? { recv: options.recvBufferSize } : {}),
      ...(options.sendBufferSize !== undefined ? { send: options.sendBufferSize } : {}),
    };
    this.ep.on('readable', () => this.scheduleDrain());
    this.ep.on('error', (e) => queueMicrotask(() => this.emit('error', e)));
    // The stack closed under us: closed, as if close() had been called (the hold is released).
    this.ep.on('close', () => {
      if (this.state === 'closed') return;
      this.state = 'closed';
      this.updateHold();
      queueMicrotask(() => this.emit('close'));
    });
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
    this.markBound();
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
    if (!wasBound) this.markBound();
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
  send(
    msg: MessageData,
    offset?: number | string | SendCallback | null,
    length?: number | string | SendCallback | null,
    portArg?: number | string | SendCallback | null,
    addressArg?: string | SendCallback | null,
    callbackArg?: SendCallback,
  ): void {
    this.assertNotClosed();
    // Node's argument rules (lib/dgram.js): offset/length only when a port follows (unconnected)
    // or when length is a number (connected); everything else shifts left.
    let data: Uint8Array;
    let port: unknown;
    let address: unknown;
    let callback: unknown;
    if (!this.connected) {
      if (addressArg || (portArg && typeof portArg !== 'function')) {
        data = sliceBytes(msg, offset, length);
        port = portArg;
        address = addressArg;
        callback = callbackArg;
      } else {
        data = toBytes(msg);
        port = offset;
        address = length;
        callback = portArg;
      }
    } else {
      port = portArg;
      address = addressArg;
      callback = callbackArg;
      if (typeof length === 'number') {
        data = sliceBytes(msg, offset, length);
        if (typeof portArg === 'function') {
          callback = portArg;
          port = null;
        }
      } else {
        data = toBytes(msg);
        callback = offset;
      }
      if (port || address) throw codedError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    }
    if (typeof address === 'function') {
      callback = address;
      address = undefined;
    }
    // Node validates these at once (lib/dgram.js): ERR_SOCKET_BAD_PORT, ERR_INVALID_ARG_TYPE.
    if (!this.connected) {
      port = nodePort(port, 'Port', false);
      if (address !== undefined && address !== null && typeof address !== 'string') throw nodeArgType('address', 'of type string', address);
    }
    const cb = typeof callback === 'function' ? (callback as SendCallback) : undefined;
    const wasBound = this.ep.isBound;
    let n = 0;
    let err: Error | null = null;
    try {
      if (this.connected) n = this.ep.send(data);
      else {
        if (typeof port !== 'number') throw new TunstackError('EDESTADDRREQ', 'Destination address required', 'send');
        const dst = typeof address === 'string' && address !== '' ? address : this.type === 'udp4' ? '127.0.0.1' : '::1';
        n = this.ep.send(data, port, dst);
      }
    } catch (e) {
      err = e as Error;
    }
    if (!wasBound && this.ep.isBound) this.markBound();
    queueMicrotask(() => {
      if (cb) cb(err, n);
      else if (err) this.emit('error', err);
    });
  }

  close(callback?: () => void): this {
    this.assertNotClosed();
    if (callback) this.once('close', callback);
    this.state = 'closed';
    this.ep.close();
    this.updateHold();
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

  /** SO_RCVBUF: Linux keeps (and reports) twice the size asked, within its bounds. */
  setRecvBufferSize(size: number): void {
    checkBufferSize(size);
    this.assertBufferable('uv_recv_buffer_size');
    this.ep.receiveBufferSize = linuxBufferSize(size, SOCK_MIN_RCVBUF);
  }

  getRecvBufferSize(): number {
    this.assertBufferable('uv_recv_buffer_size');
    return this.ep.receiveBufferSize;
  }

  /** SO_SNDBUF, as Linux reports it (sends leave at once here, so nothing queues against it). */
  setSendBufferSize(size: number): void {
    checkBufferSize(size);
    this.assertBufferable('uv_send_buffer_size');
    this.sndbuf = linuxBufferSize(size, SOCK_MIN_SNDBUF);
  }

  getSendBufferSize(): number {
    this.assertBufferable('uv_send_buffer_size');
    return this.sndbuf;
  }

  /** Bytes waiting to be sent: always 0, as every send() leaves synchronously. */
  getSendQueueSize(): number {
    return 0;
  }

  /** Sends waiting: always 0 (see getSendQueueSize). */
  getSendQueueCount(): number {
    return 0;
  }

  /** Keep the process alive while bound (the default), as Node's sockets do. */
  ref(): this {
    this.refed = true;
    this.updateHold();
    return this;
  }

  /** Let the process exit even while bound. */
  unref(): this {
    this.refed = false;
    this.updateHold();
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
      // libuv binds 0.0.0.0 / :: on an ephemeral port first; Node emits no 'listening' then.
      this.ep.bind(null, 0);
      this.state = 'bound';
      this.updateHold();
    }
    fn();
  }

  private assertRunning(): void {
    if (this.state === 'closed') throw nodeCodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
  }

  private markBound(): void {
    this.state = 'bound';
    const { recv, send } = this.initialSizes;
    if (recv !== undefined) this.ep.receiveBufferSize = linuxBufferSize(recv, SOCK_MIN_RCVBUF);
    if (send !== undefined) this.sndbuf = linuxBufferSize(send, SOCK_MIN_SNDBUF);
    this.updateHold();
    queueMicrotask(() => this.emit('listening'));
  }

  private updateHold(): void {
    const want = this.refed && this.state === 'bound';
    this.hold.set(want);
  }

  /** Node's ERR_SOCKET_BUFFER_SIZE (libuv's EBADF) on a socket not bound yet or closed. */
  private assertBufferable(syscall: string): void {
    if (this.state === 'bound') return;
    const message = 'bad file descriptor';
    const err = new NodeError(`Could not get or set buffer size: ${syscall} returned EBADF (${message})`) as NodeError & Record<string, unknown>;
    err.code = 'ERR_SOCKET_BUFFER_SIZE';
    err.info = { errno: -9, code: 'EBADF', message, syscall };
    err.errno = -9;
    err.syscall = syscall;
    throw err;
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

/** Node's validation errors (`ERR_*` codes), for the argument checks Node makes before any syscall. */
function nodeCodeError(code: string, message: string, ctor: ErrorConstructor = Error): Error & { code: string } {
  const e = new ctor(message) as Error & { code: string };
  e.code = code;
  return e;
}

function nodeMissingArg(name: string): Error {
  return nodeCodeError('ERR_MISSING_ARGS', `The "${name}" argument must be specified`, TypeError);
}

function nodeTypeError(name: string, type: string, value: unknown): Error {
  const shown = typeof value === 'string' ? `type string ('${value}')` : value === null ? 'null' : `type ${typeof value} (${String(value)})`;
  return nodeCodeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type ${type}. Received ${shown}`, TypeError);
}

function requireString(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') throw nodeTypeError(name, 'string', value);
}

const BYTES_EXPECTED = 'of type string or an instance of Buffer, TypedArray, or DataView';

function toBytes(msg: MessageData): Uint8Array {
  if (typeof msg === 'string') return Buffer.from(msg);
  if (ArrayBuffer.isView(msg)) return viewBytes(msg);
  if (Array.isArray(msg)) {
    const list = msg as unknown[];
    const bad = list.findIndex((m) => typeof m !== 'string' && !ArrayBuffer.isView(m));
    if (bad >= 0) throw nodeArgType('buffer list arguments', BYTES_EXPECTED, list[bad]);
    return Buffer.concat(msg.map((m: ArrayBufferView | string) => (typeof m === 'string' ? Buffer.from(m) : viewBytes(m))));
  }
  throw nodeArgType('buffer', BYTES_EXPECTED, msg);
}

/** The bytes of any ArrayBufferView (Buffer, TypedArray, DataView), without copying. */
function viewBytes(v: ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Node's sliceBuffer: msg[offset, offset + length) of a string or a view (not an array). */
function sliceBytes(msg: MessageData, offset: unknown, length: unknown): Uint8Array {
  if (Array.isArray(msg)) throw nodeArgType('buffer', BYTES_EXPECTED, msg);
  const data = toBytes(msg);
  // As Node: both taken as unsigned 32-bit integers, then bounded by the buffer.
  const off = Number(offset) >>> 0;
  const len = Number(length) >>> 0;
  if (off > data.length) throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
  if (off + len > data.length) throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
  return data.subarray(off, off + len);
}

/** Node's check: an integer >= 0 (its message says positive), else ERR_SOCKET_BAD_BUFFER_SIZE. */
function checkBufferSize(size: number): void {
  if (!(Number.isInteger(size) && size >= 0 && size <= 0x7fffffff)) {
    throw codedError(TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer');
  }
}

/** What Linux stores for SO_RCVBUF/SO_SNDBUF = size: twice it, within [min, 2 * rmem_max]. */
function linuxBufferSize(size: number, min: number): number {
  return Math.max(min, Math.min(size, SOCK_BUF_MAX) * 2);
}
