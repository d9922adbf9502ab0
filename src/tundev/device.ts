import { EventEmitter } from 'eventemitter3';
import { TunstackError, type ErrnoCode } from '../errors.js';
import type { AddressInfo, NIC } from '../stack/nic.js';
import { EthernetEndpoint } from '../link/ethernet.js';
import { PacketBuffer } from '../stack/packet.js';
import { validateName, type Stack } from '../stack/stack.js';
import { expectBoolean, expectBytes, expectInteger, expectNumber, optionalNumber } from '../validate.js';
import { PI_LENGTH, TUN_PKT_STRIP } from '../headers/tunpi.js';
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_LENGTH,
  VirtioNetHeader,
} from '../headers/virtio.js';
import {
  EventMask,
  IFF_ATTACH_QUEUE,
  IFF_DETACH_QUEUE,
  IFF_MULTI_QUEUE,
  IFF_NO_PI,
  IFF_PERSIST,
  IFF_SETIFF_MASK,
  IFF_TAP,
  IFF_TUN,
  IFF_TUN_EXCL,
  IFF_VNET_HDR,
  IFNAMSIZ,
  MAX_TAP_QUEUES,
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
  TUN_FEATURES,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_UFO,
  TUN_F_USO4,
  TUN_F_USO6,
} from './constants.js';
import { TunEndpoint, TunQueue, type TunQueueReader } from './endpoint.js';
import { completePartialChecksum, segmentGso } from './gso.js';

/**
 * TunDevice: one open of the virtual /dev/net/tun (`stack.openTun()`), with Linux's semantics
 * where DESIGN.md does not say otherwise. Attach it to an interface with `setIff` (TUNSETIFF),
 * then `write` packets into the stack and `read` the packets the stack sends. Non-blocking:
 * `read` throws EAGAIN when nothing is queued; listen for 'readable' (fired on every enqueue) or
 * poll `readiness`. See README "The virtual tun device" for flags, errnos and ioctl numbers.
 *
 * Framing is per open (IFF_NO_PI, IFF_VNET_HDR and the vnet header size belong to this open, as in
 * gVisor); interface properties (MTU, MAC, persistence, owner, group, offloads) are shared by all
 * opens of the interface.
 */

/** struct ifreq as TUNSETIFF / TUNGETIFF / TUNSETQUEUE use it. */
export interface IfReq {
  /** Interface name; empty or absent: `tun%d` / `tap%d`. */
  name?: string;
  flags: number;
}

export interface TunDeviceEvents {
  /** A packet was queued for this open (fired once per packet). */
  readable: [];
  /** The device was closed. */
  close: [];
  /** The device lost its interface (removed from the stack) or its queue was detached. */
  detached: [];
}

const encoder = new TextEncoder();

function err(code: ErrnoCode, message: string, syscall?: string): TunstackError {
  return new TunstackError(code, message, syscall);
}

export class TunDevice extends EventEmitter<TunDeviceEvents> implements TunQueueReader {
  readonly stack: Stack;
  private ep: TunEndpoint | null = null;
  private q: TunQueue | null = null;
  private _flags = 0;
  private _closed = false;
  /** TUNSETQUEUE(IFF_DETACH_QUEUE) took this queue out; the reference is kept. */
  private detachedQueue = false;
  private vnetSize = VIRTIO_NET_HDR_LENGTH;
  private readonly vnet = new VirtioNetHeader(new Uint8Array(0));
  private readonly segments: PacketBuffer[] = [];

  constructor(stack: Stack) {
    super();
    this.stack = stack;
  }

  // ---------------------------------------------------------------- state

  /** Name of the attached interface, '' when not attached. */
  get name(): string {
    return this.ep?.nic?.name ?? '';
  }

  /** The TUNSETIFF flags of this open (0 before). */
  get flags(): number {
    return this._flags;
  }

  get isTap(): boolean {
    return (this._flags & IFF_TAP) !== 0;
  }

  /** Attached to an interface, and not detached by TUNSETQUEUE. */
  get attached(): boolean {
    return this.ep !== null && !this.detachedQueue;
  }

  get closed(): boolean {
    return this._closed;
  }

  /** The interface's link endpoint (queues, statistics); null when not attached. */
  get endpoint(): TunEndpoint | null {
    return this.ep;
  }

  /** This open's outbound queue (shared by all opens of a single-queue interface). */
  get queue(): TunQueue | null {
    return this.q;
  }

  /** The NIC behind the device; EBADFD when not attached. */
  get nic(): NIC {
    return this.requireEndpoint().nic!;
  }

  /** Header bytes this open adds in front of every packet (packet information + vnet header). */
  get headerLength(): number {
    return ((this._flags & IFF_NO_PI) === 0 ? PI_LENGTH : 0) + ((this._flags & IFF_VNET_HDR) !== 0 ? this.vnetSize : 0);
  }

  // ---------------------------------------------------------------- TUNSETIFF

  /**
   * TUNSETIFF: attach to the interface `name` (creating it when there is none). Returns the
   * resulting ifreq (the name chosen for `%d` / empty names). Errors: EBADF closed; EINVAL
   * already attached, bad flags, bad name, TUN/TAP or multi-queue mismatch with the existing
   * interface; EEXIST the name exists and IFF_TUN_EXCL was given; EOPNOTSUPP the name belongs to
   * a NIC that is not a tun interface; E2BIG 256 queues already.
   */
  setIff(req: IfReq): IfReq {
    this.assertOpen('ioctl');
    if (this.ep !== null) throw err('EINVAL', 'device already attached (one TUNSETIFF per open)', 'ioctl');
    if (req === null || typeof req !== 'object') throw err('EFAULT', 'TUNSETIFF needs an ifreq', 'ioctl');
    const flags = checkSetIffFlags(req.flags);
    const tap = (flags & IFF_TAP) !== 0;
    const mq = (flags & IFF_MULTI_QUEUE) !== 0;
    const name = req.name ?? '';
    if (typeof name !== 'string') throw err('EFAULT', 'interface name must be a string', 'ioctl');
    if (encoder.encode(name).length > IFNAMSIZ - 1) {
      throw err('EINVAL', `interface name ${JSON.stringify(name)} longer than ${IFNAMSIZ - 1} bytes`, 'ioctl');
    }
    let ep: TunEndpoint;
    const existing = name === '' ? undefined : this.stack.nic(name);
    if (existing !== undefined) {
      if ((flags & IFF_TUN_EXCL) !== 0) throw err('EEXIST', `interface ${name} exists (IFF_TUN_EXCL)`, 'ioctl');
      const found = existing.kind === 'tun' ? TunEndpoint.forNIC(existing) : undefined;
      if (found === undefined || found.isDead) throw err('EOPNOTSUPP', `${name} is not a tun/tap interface`, 'ioctl');
      if (found.isTap !== tap) throw err('EINVAL', `${name} is a ${found.isTap ? 'TAP' : 'TUN'} interface`, 'ioctl');
      if (found.multiQueue !== mq) {
        throw err('EINVAL', `${name} is ${found.multiQueue ? '' : 'not '}a multi-queue interface`, 'ioctl');
      }
      if (mq && found.queueCount >= MAX_TAP_QUEUES) throw err('E2BIG', `${name} has ${MAX_TAP_QUEUES} queues`, 'ioctl');
      ep = found;
    } else {
      const ifname = this.chooseName(name === '' ? (tap ? 'tap%d' : 'tun%d') : name);
      ep = new TunEndpoint(this.stack, { tap, multiQueue: mq, ...(tap ? { mac: randomMac(this.stack) } : {}) });
      let nic: NIC;
      try {
        nic = this.stack.createNIC({ name: ifname, endpoint: tap ? new EthernetEndpoint(ep) : ep, kind: 'tun' });
      } catch (e) {
        if (e instanceof TunstackError) throw err(e.code, e.message, 'ioctl');
        throw e;
      }
      ep.bind(nic);
    }
    this.attachTo(ep, flags);
    return { name: ep.nic!.name, flags: this.ifreqFlags() };
  }

  /** `pattern` with its `%d` replaced by the first free index (Linux dev_alloc_name). */
  private chooseName(pattern: string): string {
    const p = pattern.indexOf('%');
    if (p < 0) {
      validateName(pattern);
      return pattern;
    }
    if (pattern[p + 1] !== 'd' || pattern.indexOf('%', p + 1) >= 0) {
      throw err('EINVAL', `bad interface name pattern ${JSON.stringify(pattern)}`, 'ioctl');
    }
    const head = pattern.slice(0, p);
    const tail = pattern.slice(p + 2);
    const limit = this.stack.nics.length + 1;
    for (let i = 0; i <= limit; i++) {
      const candidate = `${head}${i}${tail}`;
      if (this.stack.nic(candidate) !== undefined) continue;
      validateName(candidate);
      return candidate;
    }
    throw err('ENOSPC', `no free name for ${pattern}`, 'ioctl');
  }

  private attachTo(ep: TunEndpoint, flags: number): void {
    ep.incRef();
    let q: TunQueue;
    if (ep.multiQueue) {
      q = new TunQueue();
      ep.addQueue(q);
    } else {
      q = ep.sharedQueue;
    }
    q.readers.push(this);
    this.ep = ep;
    this.q = q;
    this._flags = flags & ~IFF_TUN_EXCL;
    this.detachedQueue = false;
  }

  /** Flags as TUNGETIFF reports them: this open's, plus IFF_PERSIST. */
  private ifreqFlags(): number {
    return this._flags | (this.ep?.persistent ? IFF_PERSIST : 0);
  }

  // ---------------------------------------------------------------- ioctl

  /**
   * The tun ioctls by their Linux request numbers. TUNSETIFF/TUNSETQUEUE take an IfReq,
   * TUNSETPERSIST/OWNER/GROUP/OFFLOAD/VNETHDRSZ a number; TUNGETIFF returns an IfReq,
   * TUNGETFEATURES/TUNGETVNETHDRSZ a number, the setters 0. Unknown request: ENOTTY.
   * Before TUNSETIFF every request but TUNSETIFF and TUNGETFEATURES fails with EBADFD.
   */
  ioctl(request: typeof TUNSETIFF | typeof TUNGETIFF, arg?: IfReq): IfReq;
  ioctl(request: typeof TUNGETFEATURES | typeof TUNGETVNETHDRSZ): number;
  ioctl(request: number, arg?: number | IfReq): number | IfReq;
  ioctl(request: number, arg?: number | IfReq): number | IfReq {
    this.assertOpen('ioctl');
    expectInteger(request, 'ioctl', 'request', -0x80000000, 0xffffffff);
    switch (request) {
      case TUNSETIFF:
        return this.setIff(ifreqArg(arg));
      case TUNGETFEATURES:
        return TUN_FEATURES;
      case TUNGETIFF:
        this.requireEndpoint('ioctl');
        return { name: this.name, flags: this.ifreqFlags() };
      case TUNSETPERSIST:
        this.setPersist(numberArg(arg) !== 0);
        return 0;
      case TUNSETOWNER:
        this.setOwner(numberArg(arg));
        return 0;
      case TUNSETGROUP:
        this.setGroup(numberArg(arg));
        return 0;
      case TUNSETOFFLOAD:
        this.setOffload(numberArg(arg));
        return 0;
      case TUNGETVNETHDRSZ:
        this.requireEndpoint('ioctl');
        return this.vnetSize;
      case TUNSETVNETHDRSZ:
        this.setVnetHdrSize(numberArg(arg));
        return 0;
      case TUNSETQUEUE: {
        const f = typeof arg === 'number' ? arg : ifreqArg(arg).flags;
        this.setQueue(f);
        return 0;
      }
      default:
        throw err('ENOTTY', `unknown tun ioctl 0x${(request >>> 0).toString(16)}`, 'ioctl');
    }
  }

  /** TUNSETPERSIST: keep the interface after the last close (it holds one reference). */
  setPersist(on: boolean): void {
    this.assertOpen('ioctl');
    expectBoolean(on, 'setPersist', 'on');
    this.requireEndpoint('ioctl').setPersistent(on);
  }

  get persistent(): boolean {
    return this.ep?.persistent ?? false;
  }

  /** TUNSETOWNER: owning uid (stored; nothing is enforced). EINVAL for a negative or non-integer uid. */
  setOwner(uid: number): void {
    this.assertOpen('ioctl');
    expectInteger(uid, 'setOwner', 'uid', 0, 0xfffffffe);
    const ep = this.requireEndpoint('ioctl');
    ep.owner = checkId(uid, 'uid');
  }

  /** TUNSETGROUP: owning gid (stored). */
  setGroup(gid: number): void {
    this.assertOpen('ioctl');
    expectInteger(gid, 'setGroup', 'gid', 0, 0xfffffffe);
    const ep = this.requireEndpoint('ioctl');
    ep.group = checkId(gid, 'gid');
  }

  /** Owning uid / gid, -1 when unset or not attached. */
  get owner(): number {
    return this.ep?.owner ?? -1;
  }

  get group(): number {
    return this.ep?.group ?? -1;
  }

  /**
   * TUNSETOFFLOAD, with Linux's rules: TSO4/TSO6/UFO/USO need TUN_F_CSUM, TSO_ECN needs TSO4 or
   * TSO6, USO4 and USO6 go together; unknown bits: EINVAL. The flags are stored; packets read
   * are never offloaded (the stack always completes its checksums and segments).
   */
  setOffload(flags: number): void {
    this.assertOpen('ioctl');
    expectInteger(flags, 'setOffload', 'flags', 0, 0xffffffff);
    const ep = this.requireEndpoint('ioctl');
    if (!Number.isInteger(flags) || flags < 0) throw err('EINVAL', `bad offload flags ${flags}`, 'ioctl');
    let rest = flags;
    if ((rest & TUN_F_CSUM) !== 0) {
      rest &= ~TUN_F_CSUM;
      if ((rest & (TUN_F_TSO4 | TUN_F_TSO6)) !== 0) rest &= ~(TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
      rest &= ~TUN_F_UFO;
      if ((rest & TUN_F_USO4) !== 0 && (rest & TUN_F_USO6) !== 0) rest &= ~(TUN_F_USO4 | TUN_F_USO6);
    }
    if (rest !== 0) throw err('EINVAL', `unsupported offload flags 0x${rest.toString(16)}`, 'ioctl');
    ep.offload = flags;
  }

  /** TUNSETOFFLOAD flags of the interface (0 when not attached). */
  get offload(): number {
    return this.ep?.offload ?? 0;
  }

  /** TUNSETVNETHDRSZ: size of the virtio_net_hdr (>= 10; 12 adds num_buffers). */
  setVnetHdrSize(size: number): void {
    this.assertOpen('ioctl');
    expectInteger(size, 'setVnetHdrSize', 'size', VIRTIO_NET_HDR_LENGTH, 0x7fffffff);
    this.requireEndpoint('ioctl');
    if (!Number.isInteger(size) || size < VIRTIO_NET_HDR_LENGTH || size > 0x7fffffff) {
      throw err('EINVAL', `vnet header size ${size} < ${VIRTIO_NET_HDR_LENGTH}`, 'ioctl');
    }
    this.vnetSize = size;
  }

  get vnetHdrSize(): number {
    return this.vnetSize;
  }

  /**
   * TUNSETQUEUE: IFF_DETACH_QUEUE takes this open's queue out of the rotation (queued packets are
   * discarded; reads and writes fail with EBADFD until re-attached), IFF_ATTACH_QUEUE puts it
   * back. EINVAL: not a multi-queue interface, already in that state, or neither flag.
   */
  setQueue(flags: number): void {
    this.assertOpen('ioctl');
    expectInteger(flags, 'setQueue', 'flags', -0x80000000, 0xffffffff);
    if ((flags & IFF_ATTACH_QUEUE) !== 0) {
      if (this.ep === null || !this.detachedQueue) throw err('EINVAL', 'queue is not detached', 'ioctl');
      this.ep.setQueueActive(this.q!, true);
      this.detachedQueue = false;
      return;
    }
    if ((flags & IFF_DETACH_QUEUE) !== 0) {
      if (this.ep === null || !this.ep.multiQueue || this.detachedQueue) {
        throw err('EINVAL', 'not an attached queue of a multi-queue interface', 'ioctl');
      }
      this.ep.setQueueActive(this.q!, false);
      this.detachedQueue = true;
      this.emit('detached');
      return;
    }
    throw err('EINVAL', 'TUNSETQUEUE needs IFF_ATTACH_QUEUE or IFF_DETACH_QUEUE', 'ioctl');
  }

  // ---------------------------------------------------------------- interface conveniences

  /** The interface MTU (network-layer bytes, as Linux's dev->mtu). */
  get mtu(): number {
    return this.nic.mtu;
  }

  /** Set the MTU (68..65535, SIOCSIFMTU). */
  set mtu(v: number) {
    expectInteger(v, 'mtu', 'mtu', 68, 65535);
    const ep = this.requireEndpoint();
    ep.setMTU(v);
    ep.nic!.mtu = v;
  }

  /** The TAP interface's MAC (a copy); empty for TUN. */
  get mac(): Uint8Array {
    return this.nic.linkAddress.slice();
  }

  /** Set the TAP MAC (SIOCSIFHWADDR): EINVAL on TUN or not 6 bytes, EADDRNOTAVAIL for multicast/zero. */
  set mac(mac: Uint8Array) {
    const ep = this.requireEndpoint();
    if (!ep.isTap) throw err('EINVAL', 'a TUN interface has no MAC');
    if (!(mac instanceof Uint8Array) || mac.length !== 6) throw err('EINVAL', 'MAC must be 6 bytes');
    if ((mac[0]! & 1) !== 0 || mac.every((b) => b === 0)) throw err('EADDRNOTAVAIL', 'MAC must be unicast and non-zero');
    (ep.nic!.endpoint as EthernetEndpoint).setLinkAddress(mac);
    ep.setLinkAddress(mac);
  }

  /** Interface up (NIC enabled). */
  get isUp(): boolean {
    return this.nic.enabled;
  }

  up(): void {
    this.nic.enable();
  }

  /** Interface down: writes fail with EIO, the stack sends nothing. */
  down(): void {
    this.nic.disable();
  }

  get addresses(): readonly AddressInfo[] {
    return this.nic.addresses;
  }

  addAddress(addr: string | AddressInfo, options: { route?: boolean } = {}): AddressInfo {
    return this.nic.addAddress(addr, options);
  }

  removeAddress(addr: string | Uint8Array): void {
    this.nic.removeAddress(addr);
  }

  // ---------------------------------------------------------------- write

  /**
   * Inject one packet into the stack, as write(2) on the tun fd: [packet information][virtio_net_hdr]
   * [IP packet (TUN) | Ethernet frame (TAP)]. Returns the bytes consumed (all of them).
   *
   * Errors: EBADF closed; EBADFD not attached (or queue detached); EINVAL empty write, or (as
   * Linux, counted in rxFrameErrors) shorter than the packet information / vnet header /
   * Ethernet header, an IP version other than 4 or 6 on a TUN without packet information, a
   * vnet header that does not fit the packet; EIO interface down; EMSGSIZE longer than MTU plus
   * headers (GSO writes: a 64 KiB IP packet).
   *
   * The protocol is the packet information's, else (TAP) the EtherType (which always wins on
   * TAP, as Linux), else the IP version nibble. The bytes are copied: the buffer may be reused.
   */
  write(bytes: Uint8Array): number {
    this.assertOpen('write');
    expectBytes(bytes, 'write', 'bytes');
    const ep = this.requireAttached('write');
    const nic = ep.nic!;
    const total = bytes.length;
    if (total === 0) throw err('EINVAL', 'empty write', 'write');
    if (!nic.enabled) throw err('EIO', `${nic.name} is down`, 'write');
    const flags = this._flags;
    let off = 0;
    let protocol = 0;
    if ((flags & IFF_NO_PI) === 0) {
      if (total < PI_LENGTH) return this.frameError(ep, 'shorter than the packet information header');
      protocol = (bytes[2]! << 8) | bytes[3]!;
      off = PI_LENGTH;
    }
    let vh: VirtioNetHeader | null = null;
    if ((flags & IFF_VNET_HDR) !== 0) {
      if (total - off < this.vnetSize) return this.frameError(ep, 'shorter than the virtio_net_hdr');
      vh = this.vnet.reset(bytes, off, total - off, this.vnetSize);
      off += this.vnetSize;
    }
    const frameLen = total - off;
    const l2 = ep.isTap ? 14 : 0;
    if (ep.isTap) {
      if (frameLen < 14) return this.frameError(ep, 'shorter than an Ethernet header');
      protocol = (bytes[off + 12]! << 8) | bytes[off + 13]!;
    } else if (frameLen === 0) {
      return this.frameError(ep, 'no packet after the headers');
    } else if ((flags & IFF_NO_PI) !== 0) {
      const v = bytes[off]! >>> 4;
      if (v === 4) protocol = 0x0800;
      else if (v === 6) protocol = 0x86dd;
      else return this.frameError(ep, `IP version ${v}`);
    }
    const gso = vh === null ? VIRTIO_NET_HDR_GSO_NONE : vh.gsoProtocol;
    const limit = gso === VIRTIO_NET_HDR_GSO_NONE ? nic.mtu : 65535;
    if (frameLen - l2 > limit) {
      throw err('EMSGSIZE', `packet of ${frameLen - l2} bytes exceeds ${gso === VIRTIO_NET_HDR_GSO_NONE ? `MTU ${limit}` : 'the GSO limit'}`, 'write');
    }
    if (vh !== null) {
      // As Linux: with NEEDS_CSUM, hdr_len covers at least the checksum field; it must fit the
      // packet, and on TAP a non-zero hdr_len must cover the Ethernet header.
      let hdrLen = vh.hdrLen;
      if (vh.needsCsum) hdrLen = Math.max(hdrLen, vh.csumStart + vh.csumOffset + 2);
      if (hdrLen > frameLen) return this.frameError(ep, 'vnet hdr_len beyond the packet');
      if (ep.isTap && hdrLen !== 0 && hdrLen < 14) return this.frameError(ep, 'vnet hdr_len shorter than the Ethernet header');
      if (gso !== VIRTIO_NET_HDR_GSO_NONE && gso !== VIRTIO_NET_HDR_GSO_UDP) {
        const segs = this.segments;
        const n = segmentGso(bytes, off, total, l2, protocol, gso, vh.gsoSize, segs);
        if (n === 0) {
          segs.length = 0;
          return this.frameError(ep, 'GSO packet does not match its virtio_net_hdr');
        }
        ep.stats.rxGsoSegments += n;
        try {
          for (let i = 0; i < n; i++) ep.inject(protocol, segs[i]!);
        } finally {
          segs.length = 0;
        }
        return total;
      }
    }
    const pkt = PacketBuffer.copyOf(bytes.subarray(off, total));
    if (vh !== null && vh.needsCsum) {
      if (!completePartialChecksum(pkt.data, 0, pkt.end, l2, vh.csumStart, vh.csumOffset)) {
        return this.frameError(ep, 'csum_start/csum_offset beyond the packet');
      }
    }
    if (vh !== null && !vh.needsCsum && vh.dataValid) pkt.checksumOffload = true;
    ep.inject(protocol, pkt);
    return total;
  }

  private frameError(ep: TunEndpoint, why: string): never {
    ep.stats.rxFrameErrors++;
    throw err('EINVAL', `bad frame: ${why}`, 'write');
  }

  // ---------------------------------------------------------------- read

  /**
   * Take the next outbound packet, framed for this open: [packet information][virtio_net_hdr]
   * [IP packet | Ethernet frame]. `max` is the read buffer size: a packet longer than it is cut
   * (TUN_PKT_STRIP set in the packet information) and the rest discarded; a buffer too small for
   * the headers fails with EINVAL and discards the packet (as Linux); `max` 0 returns nothing and
   * keeps the packet. EAGAIN when nothing is queued; EBADFD not attached; EBADF closed.
   */
  read(max = Infinity): Uint8Array {
    this.assertOpen('read');
    if (max !== Infinity) optionalNumber(max, 'read', 'max', 0, Number.MAX_SAFE_INTEGER);
    const q = this.requireQueue('read');
    if (!(max >= 0)) throw err('EINVAL', `bad read size ${max}`, 'read');
    if (max === 0) return new Uint8Array(0);
    const pkt = q.peek();
    if (pkt === undefined) throw err('EAGAIN', 'no packet queued', 'read');
    const size = Math.min(max, this.headerLength + pkt.end - pkt.start);
    const out = new Uint8Array(size);
    this.readInto(out, 0);
    return out;
  }

  /**
   * `read` into a caller's buffer (no allocation): the packet goes to `buf[off..]`, at most
   * `buf.length - off` bytes. Returns the byte count.
   */
  readInto(buf: Uint8Array, off = 0): number {
    this.assertOpen('read');
    expectBytes(buf, 'readInto', 'buf');
    // A number is required here; one outside the buffer is EFAULT below, as a bad pointer.
    expectNumber(off, 'readInto', 'off', -Infinity, Infinity);
    const q = this.requireQueue('read');
    if (!Number.isInteger(off) || off < 0 || off > buf.length) throw err('EFAULT', `offset ${off} outside the buffer`, 'read');
    const room = buf.length - off;
    if (room === 0) return 0;
    const pkt = q.shift();
    if (pkt === undefined) throw err('EAGAIN', 'no packet queued', 'read');
    q.stats.read++;
    const flags = this._flags;
    const pi = (flags & IFF_NO_PI) === 0;
    const vnet = (flags & IFF_VNET_HDR) !== 0;
    const hdrs = (pi ? PI_LENGTH : 0) + (vnet ? this.vnetSize : 0);
    if (room < hdrs) {
      q.stats.discarded++;
      throw err('EINVAL', `read buffer of ${room} bytes cannot hold the ${hdrs}-byte header`, 'read');
    }
    const d = pkt.data;
    const start = pkt.start;
    const frameLen = pkt.end - start;
    const copyLen = Math.min(frameLen, room - hdrs);
    let o = off;
    if (pi) {
      const proto = this.isTap ? (frameLen >= 14 ? (d[start + 12]! << 8) | d[start + 13]! : 0) : ipProtocol(pkt);
      // struct tun_pi { __u16 flags; __be16 proto; }: the kernel writes flags in host byte order
      // (little-endian on x86-64 and arm64), so a truncated read shows 01 00, as on Linux.
      const fl = copyLen < frameLen ? TUN_PKT_STRIP : 0;
      buf[o] = fl & 0xff;
      buf[o + 1] = fl >>> 8;
      buf[o + 2] = proto >>> 8;
      buf[o + 3] = proto & 0xff;
      o += PI_LENGTH;
    }
    if (vnet) {
      buf.fill(0, o, o + this.vnetSize);
      // Packets the stack built with their TCP/UDP checksum complete: tell the reader it need
      // not verify (as a NIC that checked it would). Fragments and forwarded packets: 0.
      const tp = pkt.transportProtocol;
      if ((tp === 6 || tp === 17) && !pkt.checksumOffload && pkt.networkHeaderStart >= 0) {
        buf[o] = VIRTIO_NET_HDR_F_DATA_VALID;
      }
      o += this.vnetSize;
    }
    buf.set(d.subarray(start, start + copyLen), o);
    return o + copyLen - off;
  }

  // ---------------------------------------------------------------- readiness

  /**
   * The subset of `mask` (EventMask.Readable | Writable) that is ready: writable whenever
   * attached, readable while this open's queue holds a packet. EventMask.Error is reported
   * (whatever the mask, as POLLERR) when not attached or closed.
   */
  readiness(mask: number): number {
    if (this._closed || this.ep === null || this.detachedQueue) return EventMask.Error;
    let r = mask & EventMask.Writable;
    if ((mask & EventMask.Readable) !== 0 && this.q!.length > 0) r |= EventMask.Readable;
    return r;
  }

  /** @internal TunQueueReader. */
  queueReadable(): void {
    this.emit('readable');
  }

  /** @internal TunQueueReader: the interface was removed. */
  endpointGone(): void {
    this.ep = null;
    this.q = null;
    this.detachedQueue = false;
    this.emit('detached');
  }

  // ---------------------------------------------------------------- close

  /**
   * Close the open: drop its reference (the last one removes the interface unless persistent) and
   * its queue (multi-queue). Later calls fail with EBADF; closing twice is a no-op.
   */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    const ep = this.ep;
    const q = this.q;
    this.ep = null;
    this.q = null;
    if (ep !== null && q !== null) {
      const i = q.readers.indexOf(this);
      if (i >= 0) q.readers.splice(i, 1);
      if (ep.multiQueue) ep.removeQueue(q);
      ep.decRef();
    }
    this.emit('close');
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------- helpers

  private assertOpen(syscall: string): void {
    if (this._closed) throw err('EBADF', 'device is closed', syscall);
  }

  private requireEndpoint(syscall?: string): TunEndpoint {
    if (this._closed) throw err('EBADF', 'device is closed', syscall);
    if (this.ep === null) throw err('EBADFD', 'device not attached (TUNSETIFF first)', syscall);
    return this.ep;
  }

  private requireAttached(syscall: string): TunEndpoint {
    const ep = this.requireEndpoint(syscall);
    if (this.detachedQueue) throw err('EBADFD', 'queue detached (TUNSETQUEUE)', syscall);
    return ep;
  }

  private requireQueue(syscall: string): TunQueue {
    this.requireAttached(syscall);
    return this.q!;
  }
}

/** The EtherType to report for a TUN packet: the packet's, else from the IP version nibble. */
function ipProtocol(pkt: PacketBuffer): number {
  if (pkt.networkProtocol !== 0) return pkt.networkProtocol;
  const v = pkt.end > pkt.start ? pkt.data[pkt.start]! >>> 4 : 0;
  return v === 4 ? 0x0800 : v === 6 ? 0x86dd : 0;
}

function checkSetIffFlags(raw: unknown): number {
  if (typeof raw !== 'number' || !Number.isInteger(raw)) throw err('EINVAL', 'flags must be an integer', 'ioctl');
  // ifr_flags is a C short: accept -32768..65535 and read it as 16 bits.
  if (raw < -0x8000 || raw > 0xffff) throw err('EINVAL', `flags 0x${raw.toString(16)} out of range`, 'ioctl');
  const flags = raw & 0xffff;
  if ((flags & ~IFF_SETIFF_MASK) !== 0) {
    throw err('EINVAL', `unsupported flags 0x${(flags & ~IFF_SETIFF_MASK).toString(16)}`, 'ioctl');
  }
  const type = flags & (IFF_TUN | IFF_TAP);
  if (type !== IFF_TUN && type !== IFF_TAP) throw err('EINVAL', 'exactly one of IFF_TUN and IFF_TAP', 'ioctl');
  return flags;
}

function checkId(id: number, what: string): number {
  if (!Number.isInteger(id) || id < 0 || id > 0xfffffffe) throw err('EINVAL', `bad ${what} ${id}`, 'ioctl');
  return id;
}

function numberArg(arg: number | IfReq | undefined): number {
  if (typeof arg !== 'number') throw err('EFAULT', 'this ioctl takes a number', 'ioctl');
  return arg;
}

function ifreqArg(arg: number | IfReq | undefined): IfReq {
  if (arg === undefined || typeof arg !== 'object' || arg === null) throw err('EFAULT', 'this ioctl takes an ifreq', 'ioctl');
  return arg;
}

/** A random locally administered unicast MAC from the stack's seeded source (as eth_random_addr). */
function randomMac(stack: Stack): Uint8Array {
  const mac = stack.random.fill(new Uint8Array(6));
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return mac;
}
