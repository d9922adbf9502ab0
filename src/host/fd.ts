import { randomFillSync } from 'node:crypto';
import { TunstackError } from '../core/errors.js';
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP_L4,
} from '../headers/virtio.js';
import { TcpCoalescer, writeVnetHeader } from './gro.js';
import type { BatchOptions, HostTap } from './tap.js';
import { PacketBuffer } from '../core/packet.js';
import { IFF_NO_PI, IFF_VNET_HDR } from '../tundev/constants.js';
import { segmentGso } from '../tundev/gso.js';
import { LinkCapability, type LinkEndpoint, type NetworkDispatcher, type WireFormat } from '../link/endpoint.js';
import { EthernetEndpoint } from '../link/ethernet.js';

/**
 * FdEndpoint: a link endpoint over a kernel TUN/TAP device (a HostTap), so that a tunstack NIC
 * talks to the Linux kernel (gVisor's fdbased endpoint). wireFormat is 'ethernet' for a TAP (put
 * an EthernetEndpoint above it, or use `hostNicEndpoint`) and 'ip' for a TUN.
 *
 * Inbound: the device is read in batches by the native poller (no thread pool, one JS call per
 * batch). With IFF_VNET_HDR the kernel's offloads are turned on (TUNSETOFFLOAD: partial
 * checksums, TSO4/6, USO where the kernel has it): TSO/USO super-packets are split into segments
 * (src/tundev/gso.ts) and packets whose checksum the kernel marked as not needing a check
 * (NEEDS_CSUM, DATA_VALID) skip verification.
 *
 * Outbound: packets are queued and written at the end of the current tick in one native call
 * (one writev per packet, no copies but for coalescing). With IFF_VNET_HDR, TCP transmit
 * checksums are left to the kernel (LinkCapability.TxChecksumOffload, NEEDS_CSUM), and bursts of
 * TCP segments of one flow are coalesced into 64 KiB GSO super-packets (src/host/gro.ts); a
 * stack's TCP sends its own super-packets (TSO, LinkCapability.GSO), written with a GSO header.
 *
 * Backpressure: `pause()` stops reading the device (the kernel queues, then drops, as a NIC
 * ring would); `resume()` starts again. Writes that meet EAGAIN are dropped and counted.
 */

export interface FdEndpointOptions {
  /** The MTU (network layer); default the interface's MTU when it can be read, else 1500. */
  mtu?: number;
  /** TAP: this endpoint's MAC (the stack's end of the wire); default random, locally administered. */
  mac?: Uint8Array;
  /**
   * With IFF_VNET_HDR: turn on the kernel's offloads and use them (default true). Without the
   * vnet header nothing is offloaded whatever this says.
   */
  offload?: boolean;
  /** Coalesce outbound TCP into GSO super-packets (default: `offload`). */
  gro?: boolean;
  /**
   * Take TCP super-packets from the stack (LinkCapability.GSO: its TCP sends up to 64 KiB per
   * packet, which the kernel cuts into segments; TSO) (default: `gro`, with scatter-gather).
   */
  tso?: boolean;
  /** Leave TCP transmit checksums to the kernel (default: `offload`). */
  txChecksumOffload?: boolean;
  /**
   * Take packets whose payload is scatter-gather fragments (TCP segments as views of the send
   * buffer, written with one writev and never copied in JS; default: with txChecksumOffload).
   */
  scatterGather?: boolean;
  /**
   * Of the pure ACKs of one connection written in one batch, write only the last when it
   * acknowledges more than the others (default true). A read batch of several TSO super-packets
   * then costs one ACK write instead of one per super-packet (and the kernel processes one ACK
   * in that write instead of several). Duplicate ACKs, window updates with the same ACK number,
   * ACKs with SACK blocks and anything with data or SYN/FIN/RST are never dropped.
   */
  coalesceAcks?: boolean;
  /** Write at the end of the tick in one batch (default true); false writes on every writePackets. */
  deferWrites?: boolean;
  /**
   * After each end-of-tick write, read the device at once (non-blocking) instead of waiting for
   * the poller's next turn (default true with deferWrites): see `flushAndRead`.
   */
  readAfterWrite?: boolean;
  /** Outbound packets held until the flush (default 4096; more are dropped and counted). */
  maxPending?: number;
  /** Read batching (buffer size, packets per batch). */
  batch?: BatchOptions;
  /**
   * The kernel's transmit queue of the interface (packets the kernel holds for this endpoint to
   * read; Linux's default is 1000, which a burst from a few thousand connections overflows: the
   * kernel drops). Raised to this length when shorter, on interfaces this process created
   * (`HostTap.created`) only, unless `always` is given; null leaves it alone. Default
   * FD_TX_QUEUE_LENGTH.
   */
  txQueueLength?: number | { length: number; always: true } | null;
  /** Close the HostTap when the endpoint is closed (default true). */
  closeTap?: boolean;
  /**
   * Deliver TCP super-packets from the kernel (TSO) whole, as one large segment, instead of
   * splitting them: the stack then handles one segment where it would handle dozens. 'auto'
   * (default): whole when what is attached terminates TCP (a NIC of a stack that does not
   * forward), split otherwise (a router must send MTU-sized segments on). UDP (USO)
   * super-packets are always split.
   */
  keepTcpGso?: boolean | 'auto';
}

export interface FdEndpointStats {
  /** Packets delivered up (segments counted once each), and their bytes. */
  rxPackets: number;
  rxBytes: number;
  /** Batches read (one native callback each). */
  rxBatches: number;
  /** Of them, batches read right after a write (readAfterWrite), not by the poller. */
  rxRereads: number;
  /**
   * Packets the native reader handed over in memory of their own (super-packets above the
   * batch's handOverAbove), not copied out of the shared batch buffer.
   */
  rxHandedOver: number;
  /** Packets above handOverAbove copied out of the shared batch buffer all the same (0 while hand-over works). */
  rxLargeCopied: number;
  /** GSO super-packets read from the kernel, and the segments they were split into. */
  rxGsoPackets: number;
  rxGsoSegments: number;
  /** Packets read with a partial checksum (NEEDS_CSUM), trusted and left partial (PacketBuffer.csumStart). */
  rxPartialChecksums: number;
  /** Packets read that could not be used (bad vnet header, unsplittable GSO, too short). */
  rxErrors: number;
  /** Packets read while nothing was attached. */
  rxNoDispatcher: number;
  /** Packets written to the kernel (a super-packet counts once), and their bytes. */
  txPackets: number;
  txBytes: number;
  /** Native write batches. */
  txBatches: number;
  /** Super-packets written, and the segments merged into them. */
  txGroPackets: number;
  txGroSegments: number;
  /** Packets that came with scatter-gather fragments (written as they are, or merged by GRO). */
  txSgPackets: number;
  /**
   * Pure ACKs not written because a later pure ACK of the same connection in the same write
   * batch acknowledged more (it says all they said: ACKs are cumulative).
   */
  txAcksCoalesced: number;
  /** Outbound packets dropped: pending queue full, EAGAIN, closed. */
  txDropped: number;
  /** Writes the kernel refused (EINVAL, EIO when the interface is down, ...). */
  txErrors: number;
  /** The errno of the last refused write (0 none). */
  lastTxErrno: number;
}

const ETH_HLEN = 14;

/**
 * The transmit queue length FdEndpoint gives the TAPs it was handed fresh: 2000 keep-alive
 * connections answering at once overflow Linux's 1000; queued packets are small (a few MiB at
 * most for this many).
 */
export const FD_TX_QUEUE_LENGTH = 16384;

export class FdEndpoint implements LinkEndpoint {
  readonly tap: HostTap;
  readonly wireFormat: WireFormat;
  readonly linkAddress: Uint8Array;
  readonly capabilities: number;
  readonly maxHeaderLength = 0;
  readonly stats: FdEndpointStats = {
    rxPackets: 0,
    rxBytes: 0,
    rxBatches: 0,
    rxRereads: 0,
    rxHandedOver: 0,
    rxLargeCopied: 0,
    rxGsoPackets: 0,
    rxGsoSegments: 0,
    rxPartialChecksums: 0,
    rxErrors: 0,
    rxNoDispatcher: 0,
    txPackets: 0,
    txBytes: 0,
    txBatches: 0,
    txGroPackets: 0,
    txGroSegments: 0,
    txSgPackets: 0,
    txAcksCoalesced: 0,
    txDropped: 0,
    txErrors: 0,
    lastTxErrno: 0,
  };
  /** The offload flags set on the device (TUNSETOFFLOAD), 0 when none. */
  readonly offloadFlags: number;
  private _mtu: number;
  private dispatcher: NetworkDispatcher | null = null;
  private closed = false;
  private reading = false;
  private readonly l2: number;
  private readonly pi: boolean;
  private readonly vnet: boolean;
  private readonly vnetSize: number;
  private readonly gro: boolean;
  private readonly defer: boolean;
  private readonly coalesceAcks: boolean;
  /** coalesceAcks scratch: indices of recent pure ACKs in the batch being flushed. */
  private readonly ackIdx: number[] = [];
  private readonly maxPending: number;
  private readonly closeTap: boolean;
  private readonly keepTcpGso: boolean | 'auto';

  /** Whether a TCP super-packet goes up whole (asked only for super-packets, never per packet). */
  private keepsTcpGso(d: NetworkDispatcher): boolean {
    return this.keepTcpGso === 'auto' ? d.terminatesTcp === true : this.keepTcpGso;
  }
  private readonly batchOptions: BatchOptions;
  /** Packets longer than this are handed over whole by the native reader (Infinity: none). */
  private readonly handOverAbove: number;
  private pending: PacketBuffer[] = [];
  private spare: PacketBuffer[] = [];
  private flushScheduled = false;
  private readonly flushTask = (): void => this.flushAndRead();
  private readonly onBatch = (buf: Uint8Array, meta: Int32Array, count: number, own: ArrayBuffer[]): void => {
    this.rereads = 0;
    this.receiveBatch(buf, meta, count, own);
  };
  private readonly readAfterWrite: boolean;
  /** Reads after writes since the poller's last batch that found packets (bounded by MAX_REREADS). */
  private rereads = 0;
  // flush scratch
  private views: Uint8Array[] = [];
  /** Scatter-gather fragments of each write (null: none), and their byte counts. */
  private fragViews: (Uint8Array[] | null)[] = [];
  private fragLens = new Uint32Array(256);
  private anyFrags = false;
  private starts = new Uint32Array(256);
  private ends = new Uint32Array(256);
  private hdr = new Uint8Array(256 * 16);
  private readonly coalescer: TcpCoalescer;
  private readonly segments: PacketBuffer[] = [];

  constructor(tap: HostTap, options: FdEndpointOptions = {}) {
    if (!tap.attached) throw new TunstackError('EBADFD', 'the HostTap is not attached (TUNSETIFF first)');
    this.tap = tap;
    const flags = tap.flags;
    const isTap = tap.isTap;
    this.wireFormat = isTap ? 'ethernet' : 'ip';
    this.l2 = isTap ? ETH_HLEN : 0;
    this.coalescer = new TcpCoalescer(this.l2);
    this.pi = (flags & IFF_NO_PI) === 0;
    this.vnet = (flags & IFF_VNET_HDR) !== 0;
    this.vnetSize = tap.vnetHdrSize;
    const offload = this.vnet && options.offload !== false;
    this.offloadFlags = offload ? tap.enableOffloads() : 0;
    this.gro = offload && (options.gro ?? true);
    const txCsum = offload && (options.txChecksumOffload ?? true);
    // Scatter-gather goes with checksum offload: a sender then never has to read the payload.
    const sg = txCsum && (options.scatterGather ?? true);
    const tso = sg && (options.tso ?? this.gro);
    this.capabilities = txCsum
      ? LinkCapability.TxChecksumOffload | (sg ? LinkCapability.ScatterGather : 0) | (tso ? LinkCapability.GSO : 0)
      : LinkCapability.None;
    this.defer = options.deferWrites ?? true;
    this.readAfterWrite = this.defer && (options.readAfterWrite ?? true);
    this.coalesceAcks = options.coalesceAcks ?? true;
    this.maxPending = options.maxPending ?? 4096;
    this.closeTap = options.closeTap ?? true;
    this.keepTcpGso = options.keepTcpGso ?? 'auto';
    this.batchOptions = { handOverAbove: HAND_OVER_ABOVE, ...options.batch };
    this.handOverAbove = this.batchOptions.handOverAbove ?? Infinity;
    const q = options.txQueueLength === undefined ? FD_TX_QUEUE_LENGTH : options.txQueueLength;
    if (q !== null) {
      const len = typeof q === 'number' ? q : q.length;
      if (!Number.isInteger(len) || len < 1) throw new TunstackError('EINVAL', `bad tx queue length ${len}`);
      if (typeof q !== 'number' || tap.created) {
        // Only upwards; an interface that cannot be set (moved to another namespace) is left as it is.
        try {
          if (tap.txQueueLength < len) tap.txQueueLength = len;
        } catch {
          // ENODEV / EPERM: keep going with the queue the interface has
        }
      }
    }
    let mtu = options.mtu;
    if (mtu === undefined) {
      try {
        mtu = tap.mtu;
      } catch {
        mtu = 1500;
      }
    }
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new TunstackError('EINVAL', `MTU ${mtu} out of range`);
    this._mtu = mtu;
    if (isTap) {
      const mac = options.mac ?? randomMac();
      if (!(mac instanceof Uint8Array) || mac.length !== 6) throw new TunstackError('EINVAL', 'MAC must be 6 bytes');
      this.linkAddress = mac.slice();
    } else {
      this.linkAddress = new Uint8Array(0);
    }
  }

  get mtu(): number {
    return this._mtu;
  }

  /** Change the MTU this endpoint reports (the kernel interface's MTU is the HostTap's business). */
  setMTU(mtu: number): void {
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new TunstackError('EINVAL', `MTU ${mtu} out of range`);
    this._mtu = mtu;
  }

  get isAttached(): boolean {
    return this.dispatcher !== null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Outbound packets waiting for the end-of-tick flush. */
  get pendingCount(): number {
    return this.pending.length;
  }

  attach(dispatcher: NetworkDispatcher | null): void {
    if (this.closed) return;
    this.dispatcher = dispatcher;
    if (dispatcher !== null && !this.reading) {
      this.reading = true;
      this.tap.startBatches(this.onBatch, this.batchOptions);
    }
  }

  /** Stop reading the device (backpressure). */
  pause(): void {
    this.tap.pause();
  }

  resume(): void {
    this.tap.resume();
  }

  get isPaused(): boolean {
    return this.tap.isPaused;
  }

  /** Let the process exit while the device is being read. */
  unref(): this {
    this.tap.unref();
    return this;
  }

  ref(): this {
    this.tap.ref();
    return this;
  }

  // ---------------------------------------------------------------- outbound

  writePackets(pkts: readonly PacketBuffer[]): number {
    if (this.closed) {
      this.stats.txDropped += pkts.length;
      return 0;
    }
    let accepted = 0;
    const pending = this.pending;
    for (let i = 0; i < pkts.length; i++) {
      if (pending.length >= this.maxPending) {
        this.stats.txDropped++;
        continue;
      }
      pending.push(pkts[i]!);
      accepted++;
    }
    if (!this.defer) this.flush();
    else if (!this.flushScheduled && pending.length > 0) {
      this.flushScheduled = true;
      queueMicrotask(this.flushTask);
    }
    return accepted;
  }

  /**
   * The end-of-tick flush; then, when it wrote and `readAfterWrite` is on, the device is read at
   * once: the other side's kernel answers inside the write (the guest's ACK of a SYN-ACK, of a
   * FIN), so its reply is usually queued already, and reading it now spares a turn of the event
   * loop. Bounded: after MAX_REREADS reads that found packets, only the poller reads again.
   */
  private flushAndRead(): void {
    const wrote = this.pending.length > 0;
    this.flush();
    if (!wrote || !this.readAfterWrite || this.closed || this.rereads >= MAX_REREADS || this.dispatcher === null) return;
    if (this.tap.readBatchNow(this.onReread) > 0) this.rereads++;
  }

  private readonly onReread = (buf: Uint8Array, meta: Int32Array, count: number, own: ArrayBuffer[]): void => {
    this.stats.rxRereads++;
    this.receiveBatch(buf, meta, count, own);
  };

  /** Write every pending packet now (normally done at the end of the tick). */
  flush(): void {
    this.flushScheduled = false;
    const pkts = this.pending;
    let n = pkts.length;
    if (n === 0) return;
    // Swap lists first: a write cannot call back into us, but keep re-entrancy harmless anyway.
    this.pending = this.spare;
    this.spare = pkts;
    if (this.closed) {
      this.stats.txDropped += n;
      pkts.length = 0;
      return;
    }
    if (this.coalesceAcks && n > 1) {
      this.dropSupersededAcks(pkts);
      n = pkts.length;
    }
    const hs = this.vnet ? this.vnetSize : 0;
    const hdrStride = hs + (this.pi ? 4 : 0);
    this.ensureCapacity(n, hdrStride);
    const views = this.views;
    const starts = this.starts;
    const ends = this.ends;
    const hdr = this.hdr;
    let k = 0;
    let i = 0;
    while (i < n) {
      const p = pkts[i]!;
      const ho = k * hdrStride;
      if (hdrStride > 0) hdr.fill(0, ho, ho + hdrStride);
      if (this.pi) {
        const proto = this.etherTypeOf(p);
        hdr[ho + 2] = proto >>> 8;
        hdr[ho + 3] = proto & 0xff;
      }
      const vo = ho + (this.pi ? 4 : 0);
      if (this.gro) {
        const used = this.coalescer.coalesce(pkts, i, n, hdr, vo);
        if (used > 0) {
          const sp = this.coalescer.packet!;
          views[k] = sp;
          starts[k] = 0;
          ends[k] = sp.length;
          this.fragViews[k] = null;
          this.fragLens[k] = 0;
          this.stats.txGroPackets++;
          this.stats.txGroSegments += used;
          k++;
          i += used;
          continue;
        }
      }
      if (this.vnet && p.gsoSize > 0 && p.transportProtocol === 6 && p.transportHeaderStart >= p.start) {
        // TSO: the kernel cuts it into segments of gsoSize payload and completes their checksums.
        const csumStart = p.transportHeaderStart - p.start;
        const v6 = p.networkProtocol === 0x86dd;
        writeVnetHeader(hdr, vo, VIRTIO_NET_HDR_F_NEEDS_CSUM, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4, csumStart + p.transportHeaderLength, p.gsoSize, csumStart, 16);
      } else if (this.vnet && p.checksumOffload && p.transportHeaderStart >= p.start) {
        const proto = p.transportProtocol;
        writeVnetHeader(hdr, vo, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, 0, 0, p.transportHeaderStart - p.start, proto === 17 ? 6 : 16);
      }
      views[k] = p.data;
      starts[k] = p.start;
      ends[k] = p.end;
      this.fragViews[k] = p.frags;
      this.fragLens[k] = p.fragBytes;
      if (p.frags !== null) this.anyFrags = true;
      k++;
      i++;
    }
    this.coalescer.packet = null;
    this.write(k, hdrStride);
    // The kernel has copied every super-packet: the coalescer may build into those buffers again.
    this.coalescer.recycle();
    for (let j = 0; j < k; j++) {
      views[j] = EMPTY;
      this.fragViews[j] = null;
    }
    this.anyFrags = false;
    // The kernel has copied (or refused) every packet: their fragments are free.
    let sgs = 0;
    for (let j = 0; j < n; j++) {
      if (pkts[j]!.frags !== null) {
        pkts[j]!.releaseFrags();
        sgs++;
      }
    }
    this.stats.txSgPackets += sgs;
    pkts.length = 0;
  }

  /**
   * Remove from `pkts` every pure ACK (TCP, no payload, flags ACK alone, no SACK option) that a
   * later pure ACK of the same connection in `pkts` acknowledges beyond.
   */
  private dropSupersededAcks(pkts: PacketBuffer[]): void {
    const idx = this.ackIdx;
    let dropped = 0;
    for (let i = 0; i < pkts.length; i++) {
      const p = pkts[i]!;
      if (!isPureAck(p)) continue;
      for (let c = idx.length - 1; c >= 0; c--) {
        const q = pkts[idx[c]!]!;
        if (!sameConnection(p, q)) continue;
        // Only when p acknowledges more (sequence arithmetic): duplicate ACKs stay.
        if (((ackNumber(p) - ackNumber(q)) | 0) > 0) {
          pkts[idx[c]!] = DROPPED_ACK;
          idx.splice(c, 1);
          dropped++;
        }
        break;
      }
      idx.push(i);
      if (idx.length > 16) idx.shift();
    }
    idx.length = 0;
    if (dropped === 0) return;
    let k = 0;
    for (let i = 0; i < pkts.length; i++) if (pkts[i] !== DROPPED_ACK) pkts[k++] = pkts[i]!;
    pkts.length = k;
    this.stats.txAcksCoalesced += dropped;
  }

  private write(k: number, hdrStride: number): void {
    const stats = this.stats;
    const views = this.views;
    let off = 0;
    while (off < k) {
      // writeBatch takes views from 0: shift the window when a batch stopped early.
      let r: [number, number, number, number];
      try {
        r =
          off === 0
            ? this.tap.writeBatch(views, this.starts, this.ends, k, hdrStride > 0 ? this.hdr : null, hdrStride, this.anyFrags ? this.fragViews : null)
            : this.writeFrom(off, k, hdrStride);
      } catch (e) {
        // EBADF and the like: the device is gone; drop the rest.
        stats.txDropped += k - off;
        stats.txErrors++;
        stats.lastTxErrno = e instanceof TunstackError ? -e.errno : 0;
        return;
      }
      stats.txBatches++;
      const [handled, written, failed, errno] = r;
      stats.txPackets += written;
      if (failed > 0) {
        stats.txErrors += failed;
        stats.lastTxErrno = errno;
      }
      for (let j = off; j < off + handled; j++) stats.txBytes += this.ends[j]! - this.starts[j]! + this.fragLens[j]!;
      if (handled === 0) {
        // EAGAIN: the kernel queue is full; drop what is left (TCP retransmits).
        stats.txDropped += k - off;
        return;
      }
      off += handled;
    }
  }

  private writeFrom(off: number, k: number, hdrStride: number): [number, number, number, number] {
    const views = this.views.slice(off, k);
    const starts = this.starts.subarray(off, k);
    const ends = this.ends.subarray(off, k);
    const hdr = hdrStride > 0 ? this.hdr.subarray(off * hdrStride) : null;
    return this.tap.writeBatch(views, starts, ends, k - off, hdr, hdrStride, this.anyFrags ? this.fragViews.slice(off, k) : null);
  }

  private ensureCapacity(n: number, hdrStride: number): void {
    if (this.starts.length < n) {
      let c = this.starts.length;
      while (c < n) c *= 2;
      this.starts = new Uint32Array(c);
      this.ends = new Uint32Array(c);
      this.fragLens = new Uint32Array(c);
    }
    if (this.hdr.length < this.starts.length * hdrStride) this.hdr = new Uint8Array(this.starts.length * hdrStride);
    while (this.views.length < n) this.views.push(EMPTY);
    while (this.fragViews.length < n) this.fragViews.push(null);
  }

  private etherTypeOf(p: PacketBuffer): number {
    const d = p.data;
    if (this.l2 > 0) return p.end - p.start >= 14 ? (d[p.start + 12]! << 8) | d[p.start + 13]! : 0;
    if (p.networkProtocol !== 0) return p.networkProtocol;
    const v = p.end > p.start ? d[p.start]! >>> 4 : 0;
    return v === 4 ? 0x0800 : v === 6 ? 0x86dd : 0;
  }

  // ---------------------------------------------------------------- inbound

  private receiveBatch(buf: Uint8Array, meta: Int32Array, count: number, own: ArrayBuffer[]): void {
    const stats = this.stats;
    stats.rxBatches++;
    for (let i = 0; i < count; i++) {
      const off = meta[2 * i]!;
      const len = meta[2 * i + 1]!;
      try {
        // off -1: the poller handed this packet over in memory of its own (no copy needed).
        if (off < 0) {
          stats.rxHandedOver++;
          this.receiveOne(new Uint8Array(own[i]!, 0, len), 0, len, true);
        } else {
          if (len > this.handOverAbove) stats.rxLargeCopied++;
          this.receiveOne(buf, off, off + len, false);
        }
      } catch (e) {
        // A bug below must not escape into the event loop: count it and go on.
        stats.rxErrors++;
        void e;
      }
    }
    own.length = 0;
  }

  /** One packet at buf[off, end); `owned`: buf is this packet's alone (kept, not copied). */
  private receiveOne(buf: Uint8Array, off: number, end: number, owned: boolean): void {
    const stats = this.stats;
    const d = this.dispatcher;
    if (d === null) {
      stats.rxNoDispatcher++;
      return;
    }
    let p = off;
    let protocol = 0;
    if (this.pi) {
      if (end - p < 4) {
        stats.rxErrors++;
        return;
      }
      protocol = (buf[p + 2]! << 8) | buf[p + 3]!;
      p += 4;
    }
    let vflags = 0;
    let gso = VIRTIO_NET_HDR_GSO_NONE;
    let gsoSize = 0;
    let csumStart = 0;
    let csumOffset = 0;
    if (this.vnet) {
      if (end - p < this.vnetSize) {
        stats.rxErrors++;
        return;
      }
      vflags = buf[p]!;
      gso = buf[p + 1]! & ~VIRTIO_NET_HDR_GSO_ECN & 0xff;
      gsoSize = buf[p + 4]! | (buf[p + 5]! << 8);
      csumStart = buf[p + 6]! | (buf[p + 7]! << 8);
      csumOffset = buf[p + 8]! | (buf[p + 9]! << 8);
      p += this.vnetSize;
    }
    const l2 = this.l2;
    if (end - p <= l2) {
      stats.rxErrors++;
      return;
    }
    if (l2 > 0) protocol = (buf[p + 12]! << 8) | buf[p + 13]!;
    else if (protocol === 0) {
      const v = buf[p]! >>> 4;
      protocol = v === 4 ? 0x0800 : v === 6 ? 0x86dd : 0;
    }
    if (gso !== VIRTIO_NET_HDR_GSO_NONE && !((gso === VIRTIO_NET_HDR_GSO_TCPV4 || gso === VIRTIO_NET_HDR_GSO_TCPV6) && this.keepsTcpGso(d))) {
      if (gso !== VIRTIO_NET_HDR_GSO_TCPV4 && gso !== VIRTIO_NET_HDR_GSO_TCPV6 && gso !== VIRTIO_NET_HDR_GSO_UDP_L4) {
        stats.rxErrors++;
        return;
      }
      const segs = this.segments;
      const n = segmentGso(buf, p, end, l2, protocol, gso, gsoSize, segs);
      if (n === 0) {
        segs.length = 0;
        stats.rxErrors++;
        return;
      }
      stats.rxGsoPackets++;
      stats.rxGsoSegments += n;
      try {
        for (let i = 0; i < n; i++) {
          const s = segs[i]!;
          // segmentGso just computed every checksum.
          s.checksumOffload = true;
          stats.rxPackets++;
          stats.rxBytes += s.end - s.start;
          d.deliverNetworkPacket(protocol, s);
        }
      } finally {
        segs.length = 0;
      }
      return;
    }
    const partial = (vflags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
    // A partial checksum's field must lie inside the frame (else the header is bad).
    if (partial && p + csumStart + csumOffset + 2 > end) {
      stats.rxErrors++;
      return;
    }
    const pkt = owned ? new PacketBuffer(buf, p, end) : PacketBuffer.copyOf(buf.subarray(p, end));
    if (partial) {
      // The kernel left a partial checksum (TUN_F_CSUM, its CHECKSUM_PARTIAL): as Linux does for
      // a packet from a local device, it is trusted for local delivery and completed only when
      // the packet is forwarded (PacketBuffer.csumStart); captures see it partial, as tcpdump
      // on the sending host does.
      stats.rxPartialChecksums++;
      pkt.csumStart = pkt.start + csumStart;
      pkt.csumOffset = csumOffset;
      pkt.checksumOffload = true;
    } else if ((vflags & VIRTIO_NET_HDR_F_DATA_VALID) !== 0) {
      pkt.checksumOffload = true;
    }
    stats.rxPackets++;
    stats.rxBytes += end - p;
    d.deliverNetworkPacket(protocol, pkt);
  }

  // ---------------------------------------------------------------- close

  /** Flush what is pending, stop reading, drop the dispatcher and (by default) close the HostTap. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.dispatcher = null;
    if (this.reading && !this.tap.closed) this.tap.stopBatches();
    this.reading = false;
    if (this.closeTap) this.tap.close();
  }
}

const EMPTY = new Uint8Array(0);
/** Reads right after writes (that found packets) between two of the poller's batches. */
const MAX_REREADS = 8;
/** Marks a pure ACK removed by dropSupersededAcks. */
const DROPPED_ACK = new PacketBuffer(EMPTY);

/** An outbound TCP segment with no payload whose only flag is ACK and that carries no SACK blocks. */
function isPureAck(p: PacketBuffer): boolean {
  const th = p.transportHeaderStart;
  if (p.transportProtocol !== 6 || p.frags !== null || p.gsoSize !== 0 || th < p.start || p.networkHeaderStart < p.start) return false;
  const hl = p.transportHeaderLength;
  if (hl < 20 || th + hl !== p.end) return false;
  const d = p.data;
  if (d[th + 13] !== 0x10) return false;
  // Options: NOP, NOP, timestamps (the usual) or none are fine; anything else is walked for SACK.
  if (hl === 20 || (hl === 32 && d[th + 20] === 1 && d[th + 21] === 1 && d[th + 22] === 8)) return true;
  let o = th + 20;
  const end = th + hl;
  while (o < end) {
    const kind = d[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    if (kind === 5 || o + 1 >= end) return false;
    const len = d[o + 1]!;
    if (len < 2) return false;
    o += len;
  }
  return true;
}

function ackNumber(p: PacketBuffer): number {
  const d = p.data;
  const o = p.transportHeaderStart + 8;
  return ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
}

/** Same addresses and ports (both pure ACKs, so both have their headers parsed). */
function sameConnection(a: PacketBuffer, b: PacketBuffer): boolean {
  if (a.networkProtocol !== b.networkProtocol) return false;
  const da = a.data;
  const db = b.data;
  const ta = a.transportHeaderStart;
  const tb = b.transportHeaderStart;
  for (let i = 0; i < 4; i++) if (da[ta + i] !== db[tb + i]) return false;
  const v6 = a.networkProtocol === 0x86dd;
  const na = a.networkHeaderStart + (v6 ? 8 : 12);
  const nb = b.networkHeaderStart + (v6 ? 8 : 12);
  const len = v6 ? 32 : 8;
  for (let i = 0; i < len; i++) if (da[na + i] !== db[nb + i]) return false;
  return true;
}

/**
 * Packets longer than this are read by the poller into memory of their own that the packet keeps
 * (TSO super-packets: no copy out of the shared batch buffer); shorter ones are copied into
 * pooled slab memory (PacketBuffer.copyOf), cheaper than an ArrayBuffer each.
 */
const HAND_OVER_ABOVE = 4096;

function randomMac(): Uint8Array {
  const mac = randomFillSync(new Uint8Array(6));
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return mac;
}

/**
 * The endpoint a NIC takes for this FdEndpoint: the endpoint itself for a TUN, an
 * EthernetEndpoint above it for a TAP (Ethernet framing, ARP/NDP resolution).
 */
export function fdNicEndpoint(ep: FdEndpoint): LinkEndpoint {
  return ep.wireFormat === 'ethernet' ? new EthernetEndpoint(ep) : ep;
}
