import { EventEmitter } from 'eventemitter3';
import { TunstackError, type ErrnoCode } from '../core/errors.js';
import type { AddressInfo, NIC } from '../stack/nic.js';
import { EthernetEndpoint } from '../link/ethernet.js';
import { PacketBuffer } from '../core/packet.js';
import { validateName, type NetStack } from '../stack/stack.js';
import { expectBoolean, expectBytes, expectInteger, expectNumber, optionalNumber } from '../core/validate.js';
import { PI_LENGTH, TUN_PKT_STRIP } from '../headers/tunpi.js';
import {
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
  IFF_NAPI,
  IFF_NAPI_FRAGS,
  IFF_NOFILTER,
  IFF_NO_CARRIER,
  IFF_NO_PI,
  IFF_PERSIST,
  IFF_SETIFF_MASK,
  IFF_TAP,
  IFF_TUN,
  IFF_TUN_EXCL,
  IFF_VNET_HDR,
  IFNAMSIZ,
  MAX_TAP_QUEUES,
  SIOCGIFHWADDR,
  TUNGETFEATURES,
  TUNGETFILTER,
  TUNGETIFF,
  TUNGETSNDBUF,
  TUNSETIFINDEX,
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
import type { BpfInstruction } from './bpf.js';
import { packetsOf, readAsyncFrom, type ReadAsyncOptions, type TunFile, type TunWaitable } from './file.js';
import { TunEndpoint, TunQueue, type TunQueueReader } from './endpoint.js';
import { completePartialChecksum, segmentGso } from './gso.js';
import { ifreqArg, interfaceIoctl, numberArg, type HwAddr, type IfReq, type TunIoctlArg, type TunIoctlResult } from './ioctl.js';

export type { HwAddr, IfReq, TunIoctlArg, TunIoctlResult, TunTxFilterArg } from './ioctl.js';

/**
 * TunDevice: one open of the virtual /dev/net/tun (`stack.openTun()`), with Linux's semantics
 * where DESIGN.md does not say otherwise. Attach it to an interface with `setIff` (TUNSETIFF),
 * then `write` packets into the stack and `read` the packets the stack sends. Non-blocking:
 * `read` throws EAGAIN when nothing is queued; listen for 'readable' (fired on every enqueue) or
 * poll `readiness`. See README "The virtual tun device" for flags, errnos and ioctl numbers.
 *
 * Framing is per open (IFF_NO_PI, IFF_VNET_HDR and the vnet header size belong to this open, as in
 * gVisor); interface properties (MTU, MAC, persistence, owner, group, offloads) are shared by all
 * opens of the interface. The ioctls that act on the attached interface are in ioctl.ts.
 */

/** Options of `stack.openTun()`. */
export interface TunOpenOptions {
  /**
   * Let this open attach to a single-queue interface that another open already has, sharing its
   * one queue (gVisor's behaviour). Off by default: Linux answers EBUSY, which daemons use to
   * detect a second instance, and a shared queue silently splits the traffic between readers.
   */
  shareQueue?: boolean;
}

export interface TunDeviceEvents {
  /** A packet was queued for this open (fired once per packet). */
  readable: [];
  /** Something was accepted but changed, as Linux does silently (a name cut to 15 bytes). */
  warning: [message: string];
  /** The device was closed. */
  close: [];
  /** The device lost its interface (removed from the stack) or its queue was detached. */
  detached: [];
}

const encoder = new TextEncoder();

function err(code: ErrnoCode, message: string, syscall?: string): TunstackError {
  return new TunstackError(code, message, syscall);
}

export class TunDevice extends EventEmitter<TunDeviceEvents> implements TunQueueReader, TunFile {
  readonly stack: NetStack;
  private ep: TunEndpoint | null = null;
  private q: TunQueue | null = null;
  private _flags = 0;
  private _closed = false;
  /** TUNSETQUEUE(IFF_DETACH_QUEUE) took this queue out; the reference is kept. */
  private detachedQueue = false;
  private vnetSize = VIRTIO_NET_HDR_LENGTH;
  private readonly vnet = new VirtioNetHeader(new Uint8Array(0));
  private readonly segments: PacketBuffer[] = [];

  private readonly shareQueue: boolean;
  /** TUNSETIFINDEX before TUNSETIFF (kept; 0 when not given). */
  requestedIfIndex = 0;

  constructor(stack: NetStack, options: TunOpenOptions = {}) {
    super();
    this.stack = stack;
    this.shareQueue = options.shareQueue === true;
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
   * TUNSETIFF: attach to the interface `name` (creating it, down, when there is none). Returns the
   * ifreq as Linux hands it back: the interface's name and the flags as given. Flags as Linux:
   * IFF_TUN wins over IFF_TAP, bits outside TUN_FEATURES are ignored, IFF_NAPI_FRAGS needs
   * IFF_NAPI and TAP, IFF_NO_CARRIER leaves the carrier off. A name longer than 15 bytes is cut
   * (a 'warning' event says so). Errors: EBADF closed; EEXIST already attached; EINVAL neither
   * TUN nor TAP, bad name or `%` pattern, the name is not a tun interface of that type, or the
   * multi-queue flag differs from the interface's; EBUSY the name exists and IFF_TUN_EXCL was
   * given, or a single-queue interface already has a file (unless `shareQueue`); E2BIG 256 queues.
   */
  setIff(req: IfReq): IfReq {
    this.assertOpen('ioctl');
    if (this.ep !== null) throw err('EEXIST', 'device already attached (one TUNSETIFF per open)', 'ioctl');
    if (req === null || typeof req !== 'object') throw err('EFAULT', 'TUNSETIFF needs an ifreq', 'ioctl');
    const input = checkSetIffFlags(req.flags);
    const type = (input & IFF_TUN) !== 0 ? IFF_TUN : IFF_TAP;
    const tap = type === IFF_TAP;
    const flags = type | (input & IFF_SETIFF_MASK);
    const mq = (flags & IFF_MULTI_QUEUE) !== 0;
    const raw = req.name ?? '';
    if (typeof raw !== 'string') throw err('EFAULT', 'interface name must be a string', 'ioctl');
    const name = truncateIfName(raw);
    if (name !== raw) this.emit('warning', `interface name ${JSON.stringify(raw)} cut to ${IFNAMSIZ - 1} bytes: ${JSON.stringify(name)}`);
    let ep: TunEndpoint;
    const existing = name === '' ? undefined : this.stack.nic(name);
    if (existing !== undefined) {
      if ((input & IFF_TUN_EXCL) !== 0) throw err('EBUSY', `interface ${name} exists (IFF_TUN_EXCL)`, 'ioctl');
      const found = existing.kind === 'tun' ? TunEndpoint.forNIC(existing) : undefined;
      if (found === undefined || found.isDead) throw err('EINVAL', `${name} is not a tun/tap interface`, 'ioctl');
      if (found.isTap !== tap) throw err('EINVAL', `${name} is a ${found.isTap ? 'TAP' : 'TUN'} interface`, 'ioctl');
      if (found.multiQueue !== mq) {
        throw err('EINVAL', `${name} is ${found.multiQueue ? '' : 'not '}a multi-queue interface`, 'ioctl');
      }
      if (!mq && !this.shareQueue && found.sharedQueue.readers.length > 0) {
        throw err('EBUSY', `${name} is a single-queue interface already attached to a file`, 'ioctl');
      }
      if (mq && found.queueCount >= MAX_TAP_QUEUES) throw err('E2BIG', `${name} has ${MAX_TAP_QUEUES} queues`, 'ioctl');
      ep = found;
    } else {
      const ifname = this.chooseName(name === '' ? (tap ? 'tap%d' : 'tun%d') : name);
      ep = new TunEndpoint(this.stack, { tap, multiQueue: mq, ...(tap ? { mac: randomMac(this.stack) } : {}) });
      let nic: NIC;
      try {
        nic = this.stack.createNIC({ name: ifname, endpoint: tap ? new EthernetEndpoint(ep) : ep, kind: 'tun', enabled: false });
      } catch (e) {
        if (e instanceof TunstackError) throw err(e.code, e.message, 'ioctl');
        throw e;
      }
      ep.bind(nic);
    }
    this.attachTo(ep, flags);
    if ((input & IFF_NO_CARRIER) === 0) ep.carrier = true;
    return { name: ep.nic!.name, flags: input };
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
    this._flags = flags;
    this.detachedQueue = false;
  }

  /** Flags as TUNGETIFF reports them: this open's, IFF_PERSIST, IFF_DETACH_QUEUE, and always
   * IFF_NOFILTER (which Linux sets in every answer; it is IFF_NO_PI's bit). */
  private ifreqFlags(): number {
    return this._flags | IFF_NOFILTER | (this.ep?.persistent ? IFF_PERSIST : 0) | (this.detachedQueue ? IFF_DETACH_QUEUE : 0);
  }

  // ---------------------------------------------------------------- ioctl

  /**
   * The tun ioctls by their Linux request numbers. TUNSETIFF/TUNSETQUEUE take an IfReq,
   * TUNSETPERSIST/OWNER/GROUP/OFFLOAD/VNETHDRSZ a number; TUNGETIFF returns an IfReq,
   * TUNGETFEATURES/TUNGETVNETHDRSZ a number, the setters 0. Unknown request: EINVAL (EBADFD
   * before TUNSETIFF, as every request but TUNSETIFF, TUNGETFEATURES and TUNSETQUEUE).
   */
  ioctl(request: typeof TUNSETIFF | typeof TUNGETIFF, arg?: IfReq): IfReq;
  ioctl(request: typeof TUNGETFEATURES | typeof TUNGETVNETHDRSZ | typeof TUNGETSNDBUF): number;
  ioctl(request: typeof TUNGETFILTER): BpfInstruction[];
  ioctl(request: typeof SIOCGIFHWADDR): HwAddr;
  ioctl(request: number, arg?: TunIoctlArg): TunIoctlResult;
  ioctl(request: number, arg?: TunIoctlArg): TunIoctlResult {
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
      case TUNSETIFINDEX:
        // Only before TUNSETIFF (EPERM after, as Linux). The index is kept but the NIC's id is the
        // stack's own (see README's deviation list).
        if (this.ep !== null) throw err('EPERM', 'TUNSETIFINDEX after TUNSETIFF', 'ioctl');
        this.requestedIfIndex = numberArg(arg) >>> 0;
        return 0;
    }
    const ep = this.requireEndpoint('ioctl');
    return interfaceIoctl(this, ep, request, arg);
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
   * discarded; as Linux, reads find nothing (EAGAIN), writes still go in and TUNGETIFF shows
   * IFF_DETACH_QUEUE), IFF_ATTACH_QUEUE puts it back. EINVAL: not a multi-queue interface, already in that state, or neither flag.
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
   * Errors: EBADF closed; EBADFD not attached; EINVAL empty write, or (as Linux, counted in
   * rxFrameErrors) shorter than the packet information / vnet header / Ethernet header, an IP
   * version other than 4 or 6 on a TUN without packet information, a vnet header that does not
   * fit the packet (checked before the interface state, as Linux); EIO interface down; EMSGSIZE
   * a GSO write above 64 KiB. Packets longer than the MTU are accepted (as Linux; the stack deals
   * with them as with any received packet), a TUN packet whose packet information names
   * protocol 0 is accepted and dropped (no handler, as Linux), and a write on a queue detached
   * by TUNSETQUEUE still goes in.
   *
   * The protocol is the packet information's, else (TAP) the EtherType (which always wins on
   * TAP, as Linux), else the IP version nibble. The bytes are copied: the buffer may be reused.
   */
  write(bytes: Uint8Array): number {
    this.assertOpen('write');
    expectBytes(bytes, 'write', 'bytes');
    const ep = this.requireEndpoint('write');
    const nic = ep.nic!;
    const total = bytes.length;
    if (total === 0) throw err('EINVAL', 'empty write', 'write');
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
    } else if ((flags & IFF_NO_PI) !== 0) {
      const v = frameLen === 0 ? 0 : bytes[off]! >>> 4;
      if (v === 4) protocol = 0x0800;
      else if (v === 6) protocol = 0x86dd;
      else return this.frameError(ep, `IP version ${v}`);
    }
    if (!nic.enabled) throw err('EIO', `${nic.name} is down`, 'write');
    const gso = vh === null ? VIRTIO_NET_HDR_GSO_NONE : vh.gsoProtocol;
    if (gso !== VIRTIO_NET_HDR_GSO_NONE && frameLen - l2 > 65535) {
      throw err('EMSGSIZE', `GSO packet of ${frameLen - l2} bytes exceeds 64 KiB`, 'write');
    }
    if (protocol === 0 || frameLen - l2 === 0) {
      // No protocol handler (PI protocol 0) or nothing after the headers: accepted and dropped.
      ep.stats.rxDropped++;
      return total;
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
      // As Linux: the stack's packets are complete (checksums done, no GSO), flags 0.
      buf.fill(0, o, o + this.vnetSize);
      o += this.vnetSize;
    }
    buf.set(d.subarray(start, start + copyLen), o);
    return o + copyLen - off;
  }

  /**
   * The next packet, waiting for one ('readable'); rejects with EBADF when the device closes,
   * EBADFD when its interface goes, or the signal's reason. Packets wait in the queue meanwhile.
   */
  readAsync(options?: ReadAsyncOptions): Promise<Uint8Array> {
    return readAsyncFrom(this as unknown as TunWaitable, options);
  }

  /** `for await (const pkt of tun)`: one read per step, ending when the device closes. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return packetsOf(this as unknown as TunWaitable & TunDevice);
  }

  // ---------------------------------------------------------------- readiness

  /**
   * The subset of `mask` (EventMask.Readable | Writable) that is ready: writable while the
   * interface is up (a write would not fail with EIO; a detached queue too), readable while this
   * open's queue holds a packet. EventMask.Error is reported (whatever the mask, as POLLERR) when
   * not attached or closed.
   */
  readiness(mask: number): number {
    const ep = this.ep;
    if (this._closed || ep === null) return EventMask.Error;
    let r = 0;
    if ((mask & EventMask.Writable) !== 0 && ep.nic!.enabled) r |= EventMask.Writable;
    if ((mask & EventMask.Readable) !== 0 && !this.detachedQueue && this.q!.length > 0) r |= EventMask.Readable;
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
      // The queue goes with its last file (Linux tun_detach purges it): a persistent interface
      // hands nothing stale to its next opener.
      if (ep.multiQueue) ep.removeQueue(q);
      else if (q.readers.length === 0) q.purge();
      // Linux: the carrier goes off with the last file (and back on with the next TUNSETIFF).
      if (ep.queueCount === 0 || (!ep.multiQueue && q.readers.length === 0)) ep.carrier = false;
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

  /** The queue to read; a queue detached by TUNSETQUEUE has nothing to read (EAGAIN, as Linux). */
  private requireQueue(syscall: string): TunQueue {
    this.requireEndpoint(syscall);
    if (this.detachedQueue) throw err('EAGAIN', 'queue detached (TUNSETQUEUE)', syscall);
    return this.q!;
  }
}

/** The EtherType to report for a TUN packet: the packet's, else from the IP version nibble. */
function ipProtocol(pkt: PacketBuffer): number {
  if (pkt.networkProtocol !== 0) return pkt.networkProtocol;
  const v = pkt.end > pkt.start ? pkt.data[pkt.start]! >>> 4 : 0;
  return v === 4 ? 0x0800 : v === 6 ? 0x86dd : 0;
}

/** The 16-bit ifr_flags, checked as Linux's tun_set_iff does; unknown bits pass (ignored later). */
function checkSetIffFlags(raw: unknown): number {
  if (typeof raw !== 'number' || !Number.isInteger(raw)) throw err('EINVAL', 'flags must be an integer', 'ioctl');
  // ifr_flags is a C short: accept -32768..65535 and read it as 16 bits.
  if (raw < -0x8000 || raw > 0xffff) throw err('EINVAL', `flags 0x${raw.toString(16)} out of range`, 'ioctl');
  const flags = raw & 0xffff;
  if ((flags & (IFF_TUN | IFF_TAP)) === 0) throw err('EINVAL', 'one of IFF_TUN and IFF_TAP', 'ioctl');
  if ((flags & IFF_NAPI_FRAGS) !== 0 && ((flags & IFF_NAPI) === 0 || (flags & IFF_TUN) !== 0)) {
    throw err('EINVAL', 'IFF_NAPI_FRAGS needs IFF_NAPI on a TAP', 'ioctl');
  }
  return flags;
}

/**
 * An interface name as Linux keeps it from a TUNSETIFF: at most IFNAMSIZ - 1 bytes of UTF-8 (the
 * kernel cuts the 16-byte buffer; here the cut falls between characters).
 */
export function truncateIfName(name: string): string {
  if (encoder.encode(name).length <= IFNAMSIZ - 1) return name;
  let out = '';
  for (const ch of name) {
    if (encoder.encode(out + ch).length > IFNAMSIZ - 1) break;
    out += ch;
  }
  return out;
}

function checkId(id: number, what: string): number {
  if (!Number.isInteger(id) || id < 0 || id > 0xfffffffe) throw err('EINVAL', `bad ${what} ${id}`, 'ioctl');
  return id;
}


/** A random locally administered unicast MAC from the stack's seeded source (as eth_random_addr). */
function randomMac(stack: NetStack): Uint8Array {
  const mac = stack.random.fill(new Uint8Array(6));
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return mac;
}
