import { EventEmitter } from 'eventemitter3';
import { TunstackError } from '../core/errors.js';
import { PacketBuffer } from '../core/packet.js';
import { LinkCapability, type LinkEndpoint, type NetworkDispatcher, type WireFormat } from './endpoint.js';
import { Ring } from '../core/queue.js';
import { checkLinkOptions, optionalBytes, optionalInteger } from '../core/validate.js';

/**
 * ChannelEndpoint: a link whose other side is the application (gVisor's channel.Endpoint).
 * Packets the NIC writes go to a bounded outbound queue that the owner `read`s; packets the owner
 * `inject`s are delivered inbound to the attached dispatcher. The virtual tun device sits on one
 * of these: wireFormat 'ip' for TUN, 'ethernet' for TAP.
 */

export interface ChannelEndpointOptions {
  /** Default 1500. */
  mtu?: number;
  /** Outbound queue bound in packets; default 1024 (writes beyond it are dropped and counted). */
  queueLength?: number;
  /** Default empty (an IP-only link). */
  linkAddress?: Uint8Array;
  /** Default 'ip'. */
  wireFormat?: WireFormat;
  /** LinkCapability bits; default None. */
  capabilities?: number;
  /** Link header bytes the owner adds below this endpoint; default 0. */
  maxHeaderLength?: number;
}

export interface ChannelStats {
  /** Outbound packets accepted into the queue, and their bytes. */
  txPackets: number;
  txBytes: number;
  /** Outbound packets dropped: queue full or endpoint closed. */
  txDropped: number;
  /** Inbound packets delivered to the dispatcher, and their bytes. */
  rxPackets: number;
  rxBytes: number;
  /** Inbound packets dropped: no dispatcher attached, or endpoint closed. */
  rxDropped: number;
}

export interface ChannelEvents {
  /** A packet was queued outbound (fired once per enqueued packet). */
  readable: [];
}

export class ChannelEndpoint extends EventEmitter<ChannelEvents> implements LinkEndpoint {
  readonly linkAddress: Uint8Array;
  readonly capabilities: number;
  readonly wireFormat: WireFormat;
  readonly maxHeaderLength: number;
  readonly stats: ChannelStats = { txPackets: 0, txBytes: 0, txDropped: 0, rxPackets: 0, rxBytes: 0, rxDropped: 0 };
  /**
   * A single cheap listener called on every enqueue, before the 'readable' event (the tun device
   * uses this; other listeners use `on('readable', ...)`).
   */
  onReadable: (() => void) | null = null;
  private _mtu: number;
  private dispatcher: NetworkDispatcher | null = null;
  private readonly queue: Ring<PacketBuffer>;
  private closed = false;

  constructor(options: ChannelEndpointOptions = {}) {
    super();
    checkLinkOptions(options, 'new ChannelEndpoint');
    optionalBytes(options.linkAddress, 'new ChannelEndpoint', 'options.linkAddress');
    optionalInteger(options.maxHeaderLength, 'new ChannelEndpoint', 'options.maxHeaderLength', 0, 0xffff);
    this._mtu = checkMtu(options.mtu ?? 1500);
    this.queue = new Ring(options.queueLength ?? 1024);
    this.linkAddress = options.linkAddress ?? new Uint8Array(0);
    this.wireFormat = options.wireFormat ?? 'ip';
    this.capabilities = options.capabilities ?? LinkCapability.None;
    this.maxHeaderLength = options.maxHeaderLength ?? 0;
  }

  get mtu(): number {
    return this._mtu;
  }

  /** Change the MTU (SIOCSIFMTU on the tun device). */
  setMTU(mtu: number): void {
    optionalInteger(mtu, 'setMTU', 'mtu', 1, 0x7fffffff);
    this._mtu = checkMtu(mtu);
  }

  /** Outbound packets waiting to be read. */
  get queued(): number {
    return this.queue.length;
  }

  /** The outbound queue bound. */
  get queueLength(): number {
    return this.queue.capacity;
  }

  get isAttached(): boolean {
    return this.dispatcher !== null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  attach(dispatcher: NetworkDispatcher | null): void {
    this.dispatcher = this.closed ? null : dispatcher;
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    let accepted = 0;
    const stats = this.stats;
    for (let i = 0; i < pkts.length; i++) {
      const pkt = pkts[i]!;
      if (this.closed || !this.queue.push(pkt)) {
        stats.txDropped++;
        continue;
      }
      accepted++;
      stats.txPackets++;
      stats.txBytes += pkt.length;
      const cb = this.onReadable;
      if (cb !== null) cb();
      this.emit('readable');
    }
    return accepted;
  }

  /** Take the oldest outbound packet, or null when the queue is empty. */
  read(): PacketBuffer | null {
    return this.queue.shift() ?? null;
  }

  /** Take up to `max` outbound packets (oldest first). */
  readBatch(max: number, out: PacketBuffer[] = []): PacketBuffer[] {
    while (out.length < max) {
      const p = this.queue.shift();
      if (p === undefined) break;
      out.push(p);
    }
    return out;
  }

  /** Discard every queued outbound packet; returns how many were discarded. */
  drain(): number {
    const n = this.queue.length;
    this.queue.clear();
    return n;
  }

  /**
   * Deliver a packet inbound. `protocol` is the EtherType, or 0 to let the receiver look at the
   * IP version nibble. Returns false (counted in rxDropped) when nothing is attached.
   */
  inject(protocol: number, pkt: PacketBuffer): boolean {
    const d = this.dispatcher;
    if (d === null) {
      this.stats.rxDropped++;
      return false;
    }
    this.stats.rxPackets++;
    this.stats.rxBytes += pkt.length;
    d.deliverNetworkPacket(protocol, pkt);
    return true;
  }

  /** Deliver bytes inbound without copying them (the caller gives them up). */
  injectBytes(bytes: Uint8Array, protocol = 0): boolean {
    return this.inject(protocol, PacketBuffer.wrap(bytes));
  }

  /** Drop the queue and the dispatcher; later writes and injects are dropped and counted. */
  close(): void {
    this.closed = true;
    this.dispatcher = null;
    this.queue.clear();
  }
}

function checkMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu <= 0 || mtu > 0x7fffffff) {
    throw new TunstackError('EINVAL', `MTU ${mtu} out of range`);
  }
  return mtu;
}

