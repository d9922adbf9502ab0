import { WrappingEndpoint, type LinkEndpoint } from '../link/endpoint.js';
import type { PcapWriter } from '../pcap/writer.js';
import type { Clock } from '../core/clock.js';
import type { PacketBuffer } from '../core/packet.js';

/**
 * TapPoint: a pass-through endpoint that a simulated network puts under every interface, so that
 * captures can be switched on at any time (SnifferEndpoint needs its writer when built). With no
 * writer attached it only counts. Outbound packets are recorded as offered (before the link's
 * impairments lose or delay them), inbound packets as delivered to the host: what tcpdump on the
 * host would see.
 */
export class TapPoint extends WrappingEndpoint {
  /** Packets seen in each direction (captured or not). */
  txPackets = 0;
  rxPackets = 0;
  private writers: PcapWriter[] = [];
  /** Called with every packet seen (both directions), for activity tracking. */
  onPacket: (() => void) | null = null;

  constructor(
    inner: LinkEndpoint,
    private readonly clock: Clock,
  ) {
    super(inner);
  }

  /** Start recording into `writer` (several writers may record the same tap). */
  addWriter(writer: PcapWriter): void {
    if (!this.writers.includes(writer)) this.writers = [...this.writers, writer];
  }

  removeWriter(writer: PcapWriter): void {
    this.writers = this.writers.filter((w) => w !== writer);
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    if (!this.closed) {
      this.txPackets += pkts.length;
      const ws = this.writers;
      if (ws.length !== 0) {
        const t = this.clock.wallNow();
        for (let i = 0; i < pkts.length; i++) {
          const p = pkts[i]!;
          const bytes = p.data.subarray(p.start, p.end);
          for (let k = 0; k < ws.length; k++) ws[k]!.write(bytes, t);
        }
      }
      if (this.onPacket !== null) this.onPacket();
    }
    return this.inner.writePackets(pkts);
  }

  deliverNetworkPacket(protocol: number, pkt: PacketBuffer): void {
    const up = this.upper;
    if (up === null) return;
    this.rxPackets++;
    const ws = this.writers;
    if (ws.length !== 0) {
      const t = this.clock.wallNow();
      const bytes = pkt.data.subarray(pkt.start, pkt.end);
      for (let k = 0; k < ws.length; k++) ws[k]!.write(bytes, t);
    }
    if (this.onPacket !== null) this.onPacket();
    up.deliverNetworkPacket(protocol, pkt);
  }

  protected override onClose(): void {
    this.writers = [];
  }
}
