import type { PacketBuffer } from '../core/packet.js';
import { BaseEndpoint, LinkCapability, type NetworkDispatcher, type WireFormat } from './endpoint.js';
import { Trampoline, resetForReceive, type DeliveryTarget } from '../core/queue.js';

/**
 * LoopbackEndpoint: everything written comes back in as inbound, on the same endpoint (`lo`).
 *
 * Delivery is synchronous but never recursive: packets go through a bounded FIFO drained by one
 * loop, so a packet written while a looped-back packet is being delivered (a TCP reply, say) is
 * queued and delivered after the current one returns, at constant stack depth. When the FIFO is
 * full, writes are dropped and counted.
 */

export interface LoopbackEndpointOptions {
  /** Default 65536 (as Linux's lo). */
  mtu?: number;
  /** Bound of the re-entrancy FIFO in packets; default 1024. */
  queueLength?: number;
  /** Capability bits; default Loopback. */
  capabilities?: number;
}

export interface LoopbackStats {
  /** Packets accepted for looping back, and their bytes. */
  txPackets: number;
  txBytes: number;
  /** Packets refused because the FIFO was full or the endpoint closed. */
  txDropped: number;
  /** Packets delivered inbound, and their bytes. */
  rxPackets: number;
  rxBytes: number;
  /** Packets dropped at delivery because no dispatcher was attached. */
  rxDropped: number;
}

export class LoopbackEndpoint extends BaseEndpoint implements DeliveryTarget {
  readonly mtu: number;
  readonly linkAddress = new Uint8Array(0);
  readonly capabilities: number;
  readonly wireFormat: WireFormat = 'ip';
  readonly stats: LoopbackStats = { txPackets: 0, txBytes: 0, txDropped: 0, rxPackets: 0, rxBytes: 0, rxDropped: 0 };
  private readonly loop: Trampoline;
  private closed = false;

  constructor(options: LoopbackEndpointOptions = {}) {
    super();
    this.mtu = options.mtu ?? 65536;
    this.capabilities = options.capabilities ?? LinkCapability.Loopback;
    this.loop = new Trampoline(options.queueLength ?? 1024);
  }

  /** Packets waiting in the FIFO (non-zero only during a delivery). */
  get queued(): number {
    return this.loop.length;
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    let accepted = 0;
    const stats = this.stats;
    for (let i = 0; i < pkts.length; i++) {
      const pkt = pkts[i]!;
      if (this.closed || !this.loop.enqueue(this, pkt.networkProtocol, pkt)) {
        stats.txDropped++;
        continue;
      }
      accepted++;
      stats.txPackets++;
      stats.txBytes += pkt.length;
    }
    this.loop.run();
    return accepted;
  }

  /** @internal Trampoline callback. */
  deliverQueued(protocol: number, pkt: PacketBuffer): void {
    const d = this.dispatcher;
    if (d === null) {
      this.stats.rxDropped++;
      return;
    }
    resetForReceive(pkt);
    this.stats.rxPackets++;
    this.stats.rxBytes += pkt.length;
    d.deliverNetworkPacket(protocol, pkt);
  }

  override attach(dispatcher: NetworkDispatcher | null): void {
    super.attach(this.closed ? null : dispatcher);
  }

  override close(): void {
    this.closed = true;
    this.loop.clear();
    super.close();
  }
}
