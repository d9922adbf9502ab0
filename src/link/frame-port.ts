/**
 * FramePort: an in-process duplex of Ethernet frames between tunstack and a virtual machine or an
 * emulator, with no socket in between. It is a LinkEndpoint (wireFormat 'ethernet'), so the
 * sandbox's guest network (SandboxNetwork: DHCP, DNS, relays, port forwards, the host policy)
 * sits on it as it sits on a TAP:
 *
 *   const port = new FramePort();
 *   const net = new SandboxNetwork({ link: port });
 *   port.setSink((frame) => emulator.deliver(frame));   // frames from the stack to the guest
 *   emulator.onFrame((frame) => port.send(frame));       // frames from the guest to the stack
 *
 * To the guest: `send(frame)` hands one frame (14-byte Ethernet header and payload, no FCS) to the
 * stack. Frames shorter than an Ethernet header or longer than MTU + 14 (+ 4 with a VLAN tag) are
 * dropped and counted. The port keeps the bytes: the caller must not change them afterwards
 * (copy a view of memory you reuse).
 *
 * From the stack: frames go to the sink while it returns true. A sink that returns false is
 * full: later frames wait in a bounded queue (`queueLength`, default 1024; beyond it they are
 * dropped and counted, as a NIC ring would) until the owner calls `resume()`, its 'drain' signal,
 * which hands the queue on until the sink is full again. With no sink, frames wait in the same
 * queue for `read()` and each queued frame fires 'readable'.
 */
import { EventEmitter } from 'eventemitter3';
import { TunstackError } from '../core/errors.js';
import { LinkCapability, type LinkEndpoint, type NetworkDispatcher, type WireFormat } from './endpoint.js';
import { Ring } from '../core/queue.js';
import { PacketBuffer } from '../core/packet.js';

/** Bytes of an Ethernet header without and with one 802.1Q tag. */
export const ETHERNET_HEADER = 14;
const VLAN_TAG = 4;

export interface FramePortOptions {
  /** Largest IP packet (default 1500); frames may be MTU + 14 bytes (+ 4 with a VLAN tag). */
  mtu?: number;
  /** The stack's MAC on this link (default 52:55:0a:00:02:02, as slirp's gateway). */
  linkAddress?: Uint8Array;
  /** Frames from the stack held while the sink is full or absent (default 1024). */
  queueLength?: number;
}

export interface FramePortStats {
  /** Frames the guest sent that reached the stack, and their bytes. */
  rxFrames: number;
  rxBytes: number;
  /** Guest frames dropped: too short, too long, port closed or nothing attached. */
  rxDropped: number;
  /** Frames the stack sent that were handed to the sink or read, and their bytes. */
  txFrames: number;
  txBytes: number;
  /** Stack frames dropped: queue full or port closed. */
  txDropped: number;
  /** Times the sink said it was full. */
  txBlocked: number;
}

export interface FramePortEvents {
  /** A frame was queued for `read()` (no sink set). */
  readable: [];
  /** The port was closed. */
  close: [];
}

/** A consumer of the stack's frames: false means "full, wait for my resume()". */
export type FrameSink = (frame: Uint8Array) => boolean;

export const DEFAULT_GATEWAY_MAC = Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02);

export class FramePort extends EventEmitter<FramePortEvents> implements LinkEndpoint {
  readonly mtu: number;
  readonly linkAddress: Uint8Array;
  readonly capabilities = LinkCapability.None;
  readonly wireFormat: WireFormat = 'ethernet';
  readonly maxHeaderLength = 0;
  readonly stats: FramePortStats = { rxFrames: 0, rxBytes: 0, rxDropped: 0, txFrames: 0, txBytes: 0, txDropped: 0, txBlocked: 0 };
  /** The largest frame accepted from the guest (MTU + Ethernet header + one VLAN tag). */
  readonly maxFrame: number;
  private dispatcher: NetworkDispatcher | null = null;
  private readonly queue: Ring<Uint8Array>;
  private sink: FrameSink | null = null;
  private blocked = false;
  private closed = false;

  constructor(options: FramePortOptions = {}) {
    super();
    const mtu = options.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new TunstackError('EINVAL', `FramePort: MTU ${String(mtu)} outside 68..65535`);
    const qlen = options.queueLength ?? 1024;
    if (!Number.isInteger(qlen) || qlen < 1 || qlen > 1 << 20) throw new TunstackError('EINVAL', `FramePort: queueLength ${String(qlen)} outside 1..1048576`);
    const mac = options.linkAddress ?? DEFAULT_GATEWAY_MAC;
    if (!(mac instanceof Uint8Array) || mac.length !== 6) throw new TunstackError('EINVAL', 'FramePort: linkAddress must be 6 bytes');
    this.mtu = mtu;
    this.maxFrame = mtu + ETHERNET_HEADER + VLAN_TAG;
    this.linkAddress = mac.slice();
    this.queue = new Ring(qlen);
  }

  get isAttached(): boolean {
    return this.dispatcher !== null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Frames from the stack waiting for the sink or `read()`. */
  get queued(): number {
    return this.queue.length;
  }

  /** Whether the sink said it was full and the port waits for `resume()`. */
  get isBlocked(): boolean {
    return this.blocked;
  }

  attach(dispatcher: NetworkDispatcher | null): void {
    this.dispatcher = this.closed ? null : dispatcher;
  }

  /** One frame from the guest into the stack. False when it was dropped (and counted). */
  send(frame: Uint8Array): boolean {
    const d = this.dispatcher;
    if (d === null || frame.length < ETHERNET_HEADER || frame.length > this.maxFrame) {
      this.stats.rxDropped++;
      return false;
    }
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
    d.deliverNetworkPacket(0, PacketBuffer.wrap(frame));
    return true;
  }

  /**
   * Where the stack's frames go (null: queue them for `read()`). Setting a sink hands it what is
   * queued already.
   */
  setSink(sink: FrameSink | null): void {
    this.sink = sink;
    this.blocked = false;
    if (sink !== null) this.flush();
  }

  /** The sink has room again: hand it the queued frames until it is full. */
  resume(): void {
    this.blocked = false;
    this.flush();
  }

  /** Drop the queued frames (a new guest should not get an old one's); returns how many. */
  discard(): number {
    const n = this.queue.length;
    this.queue.clear();
    return n;
  }

  /** The oldest frame from the stack, or null (for owners without a sink). */
  read(): Uint8Array | null {
    const f = this.queue.shift();
    if (f === undefined) return null;
    this.countTx(f);
    return f;
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    let accepted = 0;
    for (const pkt of pkts) {
      if (this.closed) {
        this.stats.txDropped++;
        continue;
      }
      const frame = pkt.toBytes();
      if (this.sink !== null && !this.blocked && this.queue.length === 0) {
        this.countTx(frame);
        accepted++;
        if (!this.sink(frame)) {
          this.blocked = true;
          this.stats.txBlocked++;
        }
        continue;
      }
      if (!this.queue.push(frame)) {
        this.stats.txDropped++;
        continue;
      }
      accepted++;
      if (this.sink === null) this.emit('readable');
    }
    return accepted;
  }

  /** Stop: later frames both ways are dropped and counted; the queue is discarded. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dispatcher = null;
    this.sink = null;
    this.queue.clear();
    this.emit('close');
  }

  private flush(): void {
    const sink = this.sink;
    if (sink === null) return;
    while (!this.blocked) {
      const f = this.queue.shift();
      if (f === undefined) return;
      this.countTx(f);
      if (!sink(f)) {
        this.blocked = true;
        this.stats.txBlocked++;
      }
    }
  }

  private countTx(f: Uint8Array): void {
    this.stats.txFrames++;
    this.stats.txBytes += f.length;
  }
}
