import { EventEmitter } from 'eventemitter3';
import { TunstackError } from '../core/errors.js';
import { formatIP, parseCIDR } from '../core/address.js';
import type { AddressInfo } from '../stack/nic.js';
import {
  EventMask,
  IFF_NO_PI,
  IFF_PERSIST,
  IFF_TAP,
  IFF_VNET_HDR,
  IFNAMSIZ,
  TUNGETFEATURES,
  TUNGETIFF,
  TUNGETVNETHDRSZ,
  TUNSETGROUP,
  TUNSETIFF,
  TUNSETOFFLOAD,
  TUNSETOWNER,
  TUNSETPERSIST,
  TUNSETQUEUE,
  TUNSETVNETHDRSZ,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_USO4,
  TUN_F_USO6,
} from '../tundev/constants.js';
import { truncateIfName, type IfReq, type TunIoctlArg, type TunIoctlResult } from '../tundev/device.js';
import { packetsOf, readAsyncFrom, type ReadAsyncOptions, type TunFile, type TunWaitable } from '../tundev/file.js';
import { check, errnoToError, requireNative, type NativeBinding, type PollerHandle } from './native.js';

/**
 * HostTap: one open of the kernel's /dev/net/tun, through the native shim (native/tunstack.c).
 *
 * It offers the surface of the virtual device (`stack.openTun()`, src/tundev/device.ts): `setIff`,
 * `ioctl` with the same request numbers, `read` / `readInto` (EAGAIN when nothing is queued),
 * `write`, `readiness`, 'readable' events and `close`, so code written against the virtual device
 * runs unchanged against the kernel. Errors are the kernel's, as TunstackErrors with the errno name
 * as `code`; ENOSYS when the native shim is not available (not Linux, not built).
 *
 * On top of that: host-side configuration of the interface (MTU, MAC, up/down, IPv4/IPv6
 * addresses, tx queue length, rename, persistence, offloads), extra queues of a multi-queue
 * interface, and batched packet I/O for FdEndpoint (`startBatches`, `writeBatch`).
 *
 * Differences from the virtual device, all the kernel's: 'readable' is level-triggered (emitted
 * once per event-loop turn while packets are waiting, not once per packet); interface settings
 * apply to the network namespace the process is in (ENODEV once the interface is moved out).
 */

export interface HostTapOptions {
  /** Default '/dev/net/tun'. */
  path?: string;
  /**
   * An fd already open on the tun device (from another namespace or process): taken over instead
   * of opening `path`, and closed with this object. See `HostTap.fromFd`.
   */
  fd?: number;
}

export interface HostTapEvents {
  /** Packets are waiting (level-triggered: again on the next loop turn while they are). */
  readable: [];
  /** The device was closed. */
  close: [];
  /** A poll error (the fd became invalid); the poller is stopped. */
  error: [TunstackError];
}

/** Options of `startBatches`. */
export interface BatchOptions {
  /** Bytes of the shared read buffer (default 1 MiB; at least one `maxPacket`). */
  bufferSize?: number;
  /** Most packets per batch (default 256). */
  maxPackets?: number;
  /** Largest packet read (default: 64 KiB + headers: room for a GSO super-packet). */
  maxPacket?: number;
  /**
   * Packets longer than this many bytes (TSO super-packets, jumbo frames) are not copied into the
   * shared buffer: each is read into memory of its own that the handler keeps (`own[i]`, never
   * reused; no copy, no zeroing). Shorter ones are copied into the shared buffer as without it.
   * Default: no hand-over.
   */
  handOverAbove?: number;
}

/**
 * Called once per batch: packet i is `buf[meta[2i], meta[2i] + meta[2i+1])`, framed as read(2)
 * returns it ([packet information][virtio_net_hdr][frame]). The buffer is reused after the call
 * returns: copy what must be kept. With `handOverAbove`, a packet with meta[2i] = -1 is the
 * whole of `own[i]` instead (meta[2i+1] bytes), which is the handler's to keep; the handler
 * should clear `own` (length 0) once done so that nothing holds those buffers.
 */
export type BatchHandler = (buf: Uint8Array, meta: Int32Array, count: number, own: ArrayBuffer[]) => void;

/** The offloads `enableOffloads` tries, best first (USO needs Linux 6.2). */
export const OFFLOAD_PREFERENCES: readonly number[] = [
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
  TUN_F_CSUM,
  0,
];

const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
/** ifGet/ifSet selectors (native/tunstack.c). */
const IF_MTU = 0;
const IF_FLAGS = 1;
const IF_TXQLEN = 2;
const IF_INDEX = 3;
const ARPHRD_ETHER = 1;
const IFA_F_NODAD = 0x02;
const IFA_F_NOPREFIXROUTE = 0x200;
/** Largest frame a read may return: 64 KiB IP packet + Ethernet/VLAN + PI + vnet header. */
const MAX_FRAME = 65535 + 18 + 4 + 24;

const encoder = new TextEncoder();
/** The `own` array of batches without hand-over (always empty). */
const NO_OWN: ArrayBuffer[] = [];

export class HostTap extends EventEmitter<HostTapEvents> implements TunFile {
  /** The file descriptor (-1 once closed). */
  fd: number;
  private readonly n: NativeBinding;
  private readonly path: string;
  private _name = '';
  private _flags = 0;
  private _created = false;
  private _closed = false;
  private vnetSize = 10;
  private _offload = 0;
  private poller: PollerHandle | null = null;
  private pollMode = -1;
  private paused = false;
  private refed = true;
  private batchHandler: BatchHandler | null = null;
  private batchBuf: Uint8Array | null = null;
  private batchMeta: Int32Array | null = null;
  private batchOwn: ArrayBuffer[] | null = null;
  private batchOwnMin = 0;
  private scratch: Uint8Array | null = null;
  private readonly wbStarts = new Uint32Array(256);
  private readonly wbEnds = new Uint32Array(256);
  private readonly wbResult = new Int32Array(3);
  private readonly onPoll = (a: number, b: number): void => this.pollEvent(a, b);

  /** open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC). ENOSYS without the native shim. */
  constructor(options: HostTapOptions = {}) {
    super();
    this.n = requireNative('open');
    this.path = options.path ?? '/dev/net/tun';
    this.fd = options.fd ?? check(this.n.open(this.path), `open ${this.path}`, 'open');
  }

  /**
   * A HostTap over `fd`, a tun file already attached to an interface (TUNSETIFF done, e.g. by a
   * process in another network namespace, which handed the fd over); its name and flags come from
   * TUNGETIFF. Packet I/O and the tun ioctls work wherever the interface lives; interface settings
   * by name (mtu, addresses, ...) apply to this process's namespace, so while the interface lives
   * in another one they fail with ENODEV, or reach another interface of the same name here: leave
   * them to the other namespace. The fd is closed if TUNGETIFF fails.
   */
  static fromFd(fd: number, options: HostTapOptions = {}): HostTap {
    if (!Number.isInteger(fd) || fd < 0) throw new TunstackError('EBADF', `bad fd ${fd}`, 'ioctl');
    const t = new HostTap({ ...options, fd });
    const r = t.n.getIff(fd);
    if (typeof r === 'number') {
      t.close();
      throw errnoToError(r, `TUNGETIFF on fd ${fd}`, 'ioctl');
    }
    t._name = r[0];
    t._flags = r[1] & ~IFF_PERSIST;
    return t;
  }

  /** `new HostTap(options)` followed by `setIff(req)`; the fd is closed if TUNSETIFF fails. */
  static open(req: IfReq, options: HostTapOptions = {}): HostTap {
    const t = new HostTap(options);
    try {
      t.setIff(req);
    } catch (e) {
      t.close();
      throw e;
    }
    return t;
  }

  // ---------------------------------------------------------------- state

  /** Interface name ('' before TUNSETIFF). Updated by `rename`. */
  get name(): string {
    return this._name;
  }

  /** The TUNSETIFF flags of this open (as the kernel returned them), 0 before. */
  get flags(): number {
    return this._flags;
  }

  get isTap(): boolean {
    return (this._flags & IFF_TAP) !== 0;
  }

  get attached(): boolean {
    return this._name !== '' && !this._closed;
  }

  get closed(): boolean {
    return this._closed;
  }

  /** Whether this open's TUNSETIFF created the interface (false when it attached to one that existed). */
  get created(): boolean {
    return this._created;
  }

  /** Header bytes in front of every packet read or written (packet information + vnet header). */
  get headerLength(): number {
    return ((this._flags & IFF_NO_PI) === 0 ? 4 : 0) + ((this._flags & IFF_VNET_HDR) !== 0 ? this.vnetSize : 0);
  }

  get vnetHdrSize(): number {
    return this.vnetSize;
  }

  /** The offload flags last set with TUNSETOFFLOAD through this object (0 initially). */
  get offload(): number {
    return this._offload;
  }

  // ---------------------------------------------------------------- TUNSETIFF and ioctls

  /**
   * TUNSETIFF. A name longer than IFNAMSIZ - 1 bytes is cut to that, as the kernel reads only the
   * 16-byte buffer (as the virtual device does); '' or a '%d' pattern lets the kernel choose.
   * Returns the kernel's ifreq (chosen name, flags as given).
   */
  setIff(req: IfReq): IfReq {
    this.assertOpen('ioctl');
    if (req === null || typeof req !== 'object') throw new TunstackError('EFAULT', 'TUNSETIFF needs an ifreq', 'ioctl');
    const raw = req.name ?? '';
    if (typeof raw !== 'string') throw new TunstackError('EFAULT', 'interface name must be a string', 'ioctl');
    const name = truncateIfName(raw);
    if (typeof req.flags !== 'number' || !Number.isInteger(req.flags) || req.flags < -0x8000 || req.flags > 0xffff) {
      throw new TunstackError('EINVAL', 'flags must be a 16-bit integer', 'ioctl');
    }
    // Whether TUNSETIFF makes the interface (no name, or no interface of that name yet) or
    // attaches to one that exists (persistent, another queue, someone else's).
    const existed = name !== '' && this.n.ifGet(name, IF_INDEX) > 0;
    const r = this.n.setIff(this.fd, name, req.flags);
    if (typeof r === 'number') throw errnoToError(r, `TUNSETIFF ${name === '' ? '(auto)' : name}`, 'ioctl');
    this._created = !existed;
    this._name = r[0];
    this._flags = r[1] & ~IFF_PERSIST;
    return { name: r[0], flags: r[1] };
  }

  /**
   * The tun ioctls by their Linux request numbers, as TunDevice.ioctl: TUNSETIFF/TUNGETIFF take or
   * return an IfReq; TUNSETQUEUE takes an IfReq or flags; the rest a number. Unknown: ENOTTY.
   */
  ioctl(request: typeof TUNSETIFF | typeof TUNGETIFF, arg?: IfReq): IfReq;
  ioctl(request: typeof TUNGETFEATURES | typeof TUNGETVNETHDRSZ): number;
  ioctl(request: number, arg?: TunIoctlArg): TunIoctlResult;
  ioctl(request: number, arg?: TunIoctlArg): TunIoctlResult {
    this.assertOpen('ioctl');
    switch (request) {
      case TUNSETIFF:
        if (arg === undefined || typeof arg !== 'object' || arg === null || Array.isArray(arg)) throw new TunstackError('EFAULT', 'TUNSETIFF takes an ifreq', 'ioctl');
        return this.setIff(arg as IfReq);
      case TUNGETIFF: {
        const r = this.n.getIff(this.fd);
        if (typeof r === 'number') throw errnoToError(r, 'TUNGETIFF', 'ioctl');
        return { name: r[0], flags: r[1] };
      }
      case TUNSETQUEUE: {
        const f = typeof arg === 'number' ? arg : arg !== undefined && arg !== null && 'flags' in arg && typeof arg.flags === 'number' ? arg.flags : NaN;
        this.setQueue(f);
        return 0;
      }
      case TUNSETOFFLOAD:
        this.setOffload(numberArg(arg));
        return 0;
      case TUNSETVNETHDRSZ:
        this.setVnetHdrSize(numberArg(arg));
        return 0;
      default: {
        const v = typeof arg === 'number' ? arg : 0;
        if (!Number.isInteger(v)) throw new TunstackError('EINVAL', `bad ioctl argument ${v}`, 'ioctl');
        return check(this.n.tunIoctl(this.fd, request >>> 0, v | 0), `ioctl 0x${(request >>> 0).toString(16)}`, 'ioctl');
      }
    }
  }

  /** TUNGETFEATURES: the IFF_* flags the kernel's tun driver accepts. */
  get features(): number {
    return this.ioctl(TUNGETFEATURES);
  }

  /** TUNSETPERSIST: keep the interface after the last close. */
  setPersist(on: boolean): void {
    this.ioctl(TUNSETPERSIST, on ? 1 : 0);
  }

  /** Persistent (IFF_PERSIST in TUNGETIFF). */
  get persistent(): boolean {
    return (this.ioctl(TUNGETIFF).flags & IFF_PERSIST) !== 0;
  }

  /** TUNSETOWNER (uid; -1 clears). */
  setOwner(uid: number): void {
    this.ioctl(TUNSETOWNER, uid);
  }

  /** TUNSETGROUP (gid; -1 clears). */
  setGroup(gid: number): void {
    this.ioctl(TUNSETGROUP, gid);
  }

  /** TUNSETOFFLOAD: which offloaded packets (partial checksums, TSO/USO super-packets) we accept. */
  setOffload(flags: number): void {
    this.assertOpen('ioctl');
    if (!Number.isInteger(flags) || flags < 0) throw new TunstackError('EINVAL', `bad offload flags ${flags}`, 'ioctl');
    check(this.n.tunIoctl(this.fd, TUNSETOFFLOAD, flags), `TUNSETOFFLOAD 0x${flags.toString(16)}`, 'ioctl');
    this._offload = flags;
  }

  /**
   * Turn on the best offloads the kernel takes (OFFLOAD_PREFERENCES, falling back on EINVAL).
   * Needs IFF_VNET_HDR (else nothing is enabled). Returns the flags set.
   */
  enableOffloads(preferences: readonly number[] = OFFLOAD_PREFERENCES): number {
    this.assertOpen('ioctl');
    if ((this._flags & IFF_VNET_HDR) === 0) return 0;
    let last: unknown = null;
    for (const f of preferences) {
      try {
        this.setOffload(f);
        return f;
      } catch (e) {
        if (!(e instanceof TunstackError) || e.code !== 'EINVAL') throw e;
        last = e;
      }
    }
    if (last !== null) throw last;
    return 0;
  }

  /** TUNSETVNETHDRSZ (>= 10; 12 adds num_buffers). */
  setVnetHdrSize(size: number): void {
    this.assertOpen('ioctl');
    if (!Number.isInteger(size)) throw new TunstackError('EINVAL', `bad vnet header size ${size}`, 'ioctl');
    check(this.n.tunIoctl(this.fd, TUNSETVNETHDRSZ, size), `TUNSETVNETHDRSZ ${size}`, 'ioctl');
    this.vnetSize = size;
  }

  /** TUNGETVNETHDRSZ as the kernel reports it. */
  getVnetHdrSize(): number {
    return this.ioctl(TUNGETVNETHDRSZ);
  }

  /** TUNSETQUEUE: IFF_ATTACH_QUEUE / IFF_DETACH_QUEUE on a multi-queue interface. */
  setQueue(flags: number): void {
    this.assertOpen('ioctl');
    if (!Number.isInteger(flags)) throw new TunstackError('EINVAL', 'TUNSETQUEUE needs flags', 'ioctl');
    check(this.n.tunIoctl(this.fd, TUNSETQUEUE, flags), 'TUNSETQUEUE', 'ioctl');
  }

  /**
   * Another queue of this multi-queue interface: a new open attached with the same name and flags
   * (the interface must have IFF_MULTI_QUEUE; EINVAL otherwise, from the kernel).
   */
  openQueue(): HostTap {
    this.requireName();
    const q = HostTap.open({ name: this._name, flags: this._flags }, { path: this.path });
    if ((this._flags & IFF_VNET_HDR) !== 0 && this.vnetSize !== 10) q.setVnetHdrSize(this.vnetSize);
    return q;
  }

  // ---------------------------------------------------------------- interface configuration

  /** The interface index in the current network namespace. */
  get ifindex(): number {
    return check(this.n.ifGet(this.requireName(), IF_INDEX), `SIOCGIFINDEX ${this._name}`, 'ioctl');
  }

  get mtu(): number {
    return check(this.n.ifGet(this.requireName(), IF_MTU), `SIOCGIFMTU ${this._name}`, 'ioctl');
  }

  /** SIOCSIFMTU. */
  set mtu(v: number) {
    if (!Number.isInteger(v) || v <= 0) throw new TunstackError('EINVAL', `bad MTU ${v}`, 'ioctl');
    check(this.n.ifSet(this.requireName(), IF_MTU, v), `SIOCSIFMTU ${this._name} ${v}`, 'ioctl');
  }

  /** The TAP's MAC (a copy); empty for TUN. */
  get mac(): Uint8Array {
    const out = new Uint8Array(6);
    const t = check(this.n.ifGetMac(this.requireName(), out), `SIOCGIFHWADDR ${this._name}`, 'ioctl');
    return t === ARPHRD_ETHER ? out : new Uint8Array(0);
  }

  /** SIOCSIFHWADDR (EADDRNOTAVAIL for multicast / zero, as the kernel says). */
  set mac(mac: Uint8Array) {
    if (!(mac instanceof Uint8Array) || mac.length !== 6) throw new TunstackError('EINVAL', 'MAC must be 6 bytes', 'ioctl');
    check(this.n.ifSetMac(this.requireName(), mac), `SIOCSIFHWADDR ${this._name}`, 'ioctl');
  }

  /** Interface flags (IFF_UP, IFF_RUNNING, ...: SIOCGIFFLAGS). */
  get interfaceFlags(): number {
    return check(this.n.ifGet(this.requireName(), IF_FLAGS), `SIOCGIFFLAGS ${this._name}`, 'ioctl');
  }

  get isUp(): boolean {
    return (this.interfaceFlags & IFF_UP) !== 0;
  }

  /** Carrier on: some open is attached (IFF_RUNNING). */
  get isRunning(): boolean {
    return (this.interfaceFlags & IFF_RUNNING) !== 0;
  }

  up(): void {
    const f = this.interfaceFlags;
    if ((f & IFF_UP) === 0) check(this.n.ifSet(this._name, IF_FLAGS, f | IFF_UP), `SIOCSIFFLAGS ${this._name} up`, 'ioctl');
  }

  down(): void {
    const f = this.interfaceFlags;
    if ((f & IFF_UP) !== 0) check(this.n.ifSet(this._name, IF_FLAGS, f & ~IFF_UP), `SIOCSIFFLAGS ${this._name} down`, 'ioctl');
  }

  get txQueueLength(): number {
    return check(this.n.ifGet(this.requireName(), IF_TXQLEN), `SIOCGIFTXQLEN ${this._name}`, 'ioctl');
  }

  set txQueueLength(v: number) {
    if (!Number.isInteger(v) || v < 0) throw new TunstackError('EINVAL', `bad tx queue length ${v}`, 'ioctl');
    check(this.n.ifSet(this.requireName(), IF_TXQLEN, v), `SIOCSIFTXQLEN ${this._name} ${v}`, 'ioctl');
  }

  /** SIOCSIFNAME (older kernels refuse while the interface is up: EBUSY). */
  rename(newName: string): void {
    if (typeof newName !== 'string' || newName === '' || encoder.encode(newName).length > IFNAMSIZ - 1) {
      throw new TunstackError('EINVAL', `bad interface name ${JSON.stringify(newName)}`, 'ioctl');
    }
    check(this.n.ifRename(this.requireName(), newName), `SIOCSIFNAME ${this._name} -> ${newName}`, 'ioctl');
    this._name = newName;
  }

  /** The interface's IPv4 and IPv6 addresses (RTM_GETADDR), link-local ones included. */
  get addresses(): AddressInfo[] {
    const r = this.n.addrList(this.ifindex);
    if (typeof r === 'number') throw errnoToError(r, `RTM_GETADDR ${this._name}`, 'netlink');
    return r.map(([address, prefixLength, flags]) => {
      const info: AddressInfo = { address, prefixLength };
      if ((flags & 0x40) !== 0) info.state = 'tentative';
      else if ((flags & 0x08) !== 0) info.state = 'dadfailed';
      else if ((flags & 0x20) !== 0) info.state = 'deprecated';
      return info;
    });
  }

  /**
   * Add "198.18.0.1/24" or "2001:db8::1/64" (RTM_NEWADDR; the connected route comes with it, as
   * with `ip addr add`; `route: false` leaves it out, IFA_F_NOPREFIXROUTE). `nodad`: an IPv6
   * address is usable at once. EEXIST when present.
   */
  addAddress(addr: string | AddressInfo, options: { nodad?: boolean; route?: boolean } = {}): AddressInfo {
    const info: AddressInfo = typeof addr === 'string' ? parseCIDR(addr) : { address: addr.address.slice(), prefixLength: addr.prefixLength };
    const nodad = options.nodad === true || (typeof addr !== 'string' && addr.nodad === true);
    const flags = (nodad ? IFA_F_NODAD : 0) | (options.route === false ? IFA_F_NOPREFIXROUTE : 0);
    const r = this.n.addrChange(this.ifindex, true, info.address, info.prefixLength, flags);
    check(r, `RTM_NEWADDR ${formatIP(info.address)}/${info.prefixLength} on ${this._name}`, 'netlink');
    if (nodad) info.nodad = true;
    return info;
  }

  /** RTM_DELADDR ("198.18.0.1/24", "2001:db8::1" or bytes; the prefix length is looked up). */
  removeAddress(addr: string | Uint8Array): void {
    const bytes = typeof addr === 'string' ? parseCIDR(addr).address : addr;
    const found = this.addresses.find((a) => a.address.length === bytes.length && a.address.every((b, i) => b === bytes[i]));
    if (found === undefined) throw new TunstackError('EADDRNOTAVAIL', `${formatIP(bytes)} is not on ${this._name}`, 'netlink');
    check(this.n.addrChange(this.ifindex, false, found.address, found.prefixLength, 0), `RTM_DELADDR ${formatIP(bytes)}`, 'netlink');
  }

  // ---------------------------------------------------------------- packet I/O

  /**
   * Read one packet (as read(2) with a buffer of `max` bytes, default large enough for any
   * packet). EAGAIN when nothing is waiting; EBADFD before TUNSETIFF.
   */
  read(max = Infinity): Uint8Array {
    this.assertOpen('read');
    if (!(max >= 0)) throw new TunstackError('EINVAL', `bad read size ${max}`, 'read');
    if (max === 0) return new Uint8Array(0);
    const size = Math.min(max, MAX_FRAME);
    const s = this.scratch ?? (this.scratch = new Uint8Array(MAX_FRAME));
    const n = check(this.n.read(this.fd, s, 0, size), 'read', 'read');
    return s.slice(0, n);
  }

  /** The next packet, waiting for one (level-triggered 'readable'); rejects with EBADF at close. */
  readAsync(options?: ReadAsyncOptions): Promise<Uint8Array> {
    return readAsyncFrom(this as unknown as TunWaitable, options);
  }

  /** `for await (const pkt of tap)`: one read per step, ending when the file closes. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return packetsOf(this as unknown as TunWaitable & HostTap);
  }

  /** `read` into a caller's buffer at `off` (at most buf.length - off bytes); returns the count. */
  readInto(buf: Uint8Array, off = 0): number {
    this.assertOpen('read');
    if (!Number.isInteger(off) || off < 0 || off > buf.length) throw new TunstackError('EFAULT', `offset ${off} outside the buffer`, 'read');
    if (off === buf.length) return 0;
    return check(this.n.read(this.fd, buf, off, buf.length - off), 'read', 'read');
  }

  /** write(2) one packet ([PI][vnet hdr][frame]); returns the bytes written. */
  write(bytes: Uint8Array): number {
    this.assertOpen('write');
    if (bytes.length === 0) throw new TunstackError('EINVAL', 'empty write', 'write');
    return check(this.n.write(this.fd, bytes, 0, bytes.length), 'write', 'write');
  }

  /**
   * Write packets with one native call: packet i is `hdr[i*hdrLen, (i+1)*hdrLen)` (omitted when
   * hdrLen is 0) followed by `views[i][starts[i], ends[i])` and then, when `frags` is given and
   * `frags[i]` is not null, each of its views (scatter-gather; at most 62), each packet one
   * writev(2). Stops at EAGAIN.
   * Returns [handled, written, failed, last errno]: handled - written packets failed (EINVAL,
   * EIO, ...) and are lost; packets from `handled` on were not tried.
   */
  writeBatch(
    views: readonly Uint8Array[],
    starts: Uint32Array,
    ends: Uint32Array,
    count: number,
    hdr: Uint8Array | null = null,
    hdrLen = 0,
    frags: readonly (readonly Uint8Array[] | null)[] | null = null,
  ): [handled: number, written: number, failed: number, errno: number] {
    this.assertOpen('write');
    const res = this.wbResult;
    const r = this.n.writeBatch(this.fd, hdr, hdrLen, views, starts, ends, count, res, frags);
    if (r < 0) {
      if (r === -11) return [0, 0, 0, 11];
      throw errnoToError(r, 'writev', 'write');
    }
    return [r, res[0]!, res[1]!, res[2]!];
  }

  /** Write whole packets (each `views[i]` entire) with one native call; returns packets written. */
  writePackets(packets: readonly Uint8Array[]): number {
    let starts = this.wbStarts;
    let ends = this.wbEnds;
    if (packets.length > starts.length) {
      starts = new Uint32Array(packets.length);
      ends = new Uint32Array(packets.length);
    }
    for (let i = 0; i < packets.length; i++) {
      starts[i] = 0;
      ends[i] = packets[i]!.length;
    }
    return this.writeBatch(packets, starts, ends, packets.length)[1];
  }

  /**
   * The subset of `mask` (EventMask.Readable | Writable) that is ready now (poll(2), no wait).
   * EventMask.Error when closed, not attached, or the kernel reports POLLERR.
   */
  readiness(mask: number): number {
    if (this._closed || this._name === '') return EventMask.Error;
    const r = this.n.poll(this.fd, mask & (EventMask.Readable | EventMask.Writable));
    if (r < 0) return EventMask.Error;
    return (r & (mask | EventMask.Error)) & (EventMask.Readable | EventMask.Writable | EventMask.Error);
  }

  // ---------------------------------------------------------------- readiness events / batches

  override on<T extends EventEmitter.EventNames<HostTapEvents>>(
    event: T,
    fn: EventEmitter.EventListener<HostTapEvents, T>,
    context?: unknown,
  ): this {
    super.on(event, fn, context);
    if (event === 'readable') this.watch();
    return this;
  }

  override addListener<T extends EventEmitter.EventNames<HostTapEvents>>(
    event: T,
    fn: EventEmitter.EventListener<HostTapEvents, T>,
    context?: unknown,
  ): this {
    return this.on(event, fn, context);
  }

  override once<T extends EventEmitter.EventNames<HostTapEvents>>(
    event: T,
    fn: EventEmitter.EventListener<HostTapEvents, T>,
    context?: unknown,
  ): this {
    super.once(event, fn, context);
    if (event === 'readable') this.watch();
    return this;
  }

  /**
   * Read packets in batches from the event loop: whenever the fd is readable the native side reads
   * until EAGAIN (or the buffer is full) and calls `handler` once with all of them. Replaces
   * 'readable' events while it runs. No libuv thread pool is involved.
   */
  startBatches(handler: BatchHandler, options: BatchOptions = {}): void {
    this.assertOpen('read');
    this.requireName();
    const maxPacket = options.maxPacket ?? MAX_FRAME;
    const size = Math.max(options.bufferSize ?? 1 << 20, maxPacket);
    const maxPackets = Math.max(1, options.maxPackets ?? 256);
    const ownMin = options.handOverAbove;
    if (ownMin !== undefined && (!Number.isInteger(ownMin) || ownMin < 0 || ownMin + 8 > size)) {
      throw new TunstackError('EINVAL', `handOverAbove ${ownMin} out of range`);
    }
    this.batchHandler = handler;
    this.batchBuf = new Uint8Array(size);
    this.batchMeta = new Int32Array(maxPackets * 2);
    this.batchOwn = ownMin === undefined ? null : [];
    this.batchOwnMin = ownMin ?? 0;
    this.setPoller(1, maxPacket, maxPackets);
  }

  /**
   * Read a batch now, as the poller would on readiness (non-blocking: nothing waiting reads
   * nothing), and hand it to `handler` (default the batch handler) in this call: for a caller that has just written
   * and expects an answer already queued (a guest's kernel answers inside the write). Returns the
   * packets read (0 when none were waiting, batches are not running, reading is paused, or the
   * device is closed). Must not be called from inside the batch handler (the buffer is shared). A
   * read error other than EAGAIN is left for the poller to report.
   */
  readBatchNow(handler: BatchHandler | null = null): number {
    const h = handler ?? this.batchHandler;
    const buf = this.batchBuf;
    const meta = this.batchMeta;
    if (this.batchHandler === null || h === null || buf === null || meta === null || this.paused || this._closed || this.poller === null) return 0;
    // The poller's own read: super-packets are handed over (batchOwn) as on readiness, not copied.
    const n = this.n.pollerRead(this.poller);
    if (n > 0) h(buf, meta, n, this.batchOwn ?? NO_OWN);
    return n > 0 ? n : 0;
  }

  /** Stop batch reading (back to 'readable' events if anyone listens). */
  stopBatches(): void {
    this.batchHandler = null;
    this.closePoller();
    this.batchBuf = null;
    this.batchMeta = null;
    this.batchOwn = null;
    if (this.listenerCount('readable') > 0) this.watch();
  }

  /** Stop polling the fd (backpressure): no batches or 'readable' events until `resume`. */
  pause(): void {
    this.paused = true;
    if (this.poller !== null) this.n.pollerStop(this.poller);
  }

  resume(): void {
    this.paused = false;
    if (this.poller !== null && !this._closed) check(this.n.pollerStart(this.poller, EventMask.Readable), 'uv_poll_start', 'poll');
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Let the process exit while this device is polled (as socket.unref()). */
  unref(): this {
    this.refed = false;
    if (this.poller !== null) this.n.pollerRef(this.poller, false);
    return this;
  }

  ref(): this {
    this.refed = true;
    if (this.poller !== null) this.n.pollerRef(this.poller, true);
    return this;
  }

  private watch(): void {
    if (this._closed || this._name === '' || this.batchHandler !== null || this.pollMode === 0) return;
    this.setPoller(0, 0, 0);
  }

  private setPoller(mode: number, maxPacket: number, maxPackets: number): void {
    this.closePoller();
    const h = this.n.pollerCreate(
      this.fd,
      mode,
      this.onPoll,
      mode === 1 ? this.batchBuf : null,
      mode === 1 ? this.batchMeta : null,
      maxPacket,
      maxPackets,
      mode === 1 ? this.batchOwn : null,
      this.batchOwnMin,
    );
    if (typeof h === 'number') throw errnoToError(h, 'uv_poll_init', 'poll');
    this.poller = h;
    this.pollMode = mode;
    if (!this.refed) this.n.pollerRef(h, false);
    if (!this.paused) check(this.n.pollerStart(h, EventMask.Readable), 'uv_poll_start', 'poll');
  }

  private closePoller(): void {
    if (this.poller !== null) {
      this.n.pollerClose(this.poller);
      this.poller = null;
    }
    this.pollMode = -1;
  }

  private pollEvent(a: number, b: number): void {
    if (this._closed) return;
    if (a === -2) {
      this.closePoller();
      this.emit('error', errnoToError(-Math.abs(b), `poll ${this._name}`, 'poll'));
      return;
    }
    if (a === -1) {
      if (this.listenerCount('readable') === 0) {
        this.closePoller();
        return;
      }
      this.emit('readable');
      return;
    }
    const h = this.batchHandler;
    if (h !== null && a > 0) h(this.batchBuf!, this.batchMeta!, a, this.batchOwn ?? NO_OWN);
    if (b !== 0 && b !== 11) {
      this.closePoller();
      this.emit('error', errnoToError(-b, `read ${this._name}`, 'read'));
    }
  }

  // ---------------------------------------------------------------- close

  /**
   * Close the fd (the interface goes away with its last open unless persistent). Later calls fail
   * with EBADF; closing twice is a no-op.
   */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    this.closePoller();
    this.batchHandler = null;
    this.n.close(this.fd);
    this.fd = -1;
    this.emit('close');
    this.removeAllListeners();
  }

  private assertOpen(syscall: string): void {
    if (this._closed) throw new TunstackError('EBADF', 'device is closed', syscall);
  }

  private requireName(): string {
    this.assertOpen('ioctl');
    if (this._name === '') throw new TunstackError('EBADFD', 'device not attached (TUNSETIFF first)', 'ioctl');
    return this._name;
  }
}

function numberArg(arg: TunIoctlArg | undefined): number {
  if (typeof arg !== 'number') throw new TunstackError('EFAULT', 'this ioctl takes a number', 'ioctl');
  return arg;
}
