import { TunstackError } from '../core/errors.js';
import { expectMethods } from '../core/validate.js';
import { LinkType, PcapWriter, type ByteSink } from '../pcap/writer.js';
import { RealClock, type Clock } from '../core/clock.js';
import type { PacketBuffer } from '../core/packet.js';
import { WrappingEndpoint, type LinkEndpoint, type WireFormat } from './endpoint.js';

/**
 * SnifferEndpoint: wraps any endpoint and records every packet written through it (outbound) and
 * delivered up through it (inbound) to a pcap file, timestamped with the clock's wallNow(). The
 * pcap link type follows the wrapped endpoint's wire format: Ethernet (1) or raw IP (101).
 *
 * Packets pass through untouched (bytes, offsets and metadata). Outbound packets are captured
 * when offered, before the wrapped endpoint sees them, so a packet the wrapped endpoint then
 * drops (queue full) still appears in the capture.
 */

export type SniffDirection = 'both' | 'inbound' | 'outbound';

export interface SnifferOptions {
  /** Timestamps come from clock.wallNow(); default a RealClock. */
  clock?: Clock;
  /** Write to this writer (its link type must match the wire format)... */
  writer?: PcapWriter;
  /**
   * ...or write a new pcap (the wire format's link type) to this sink, closed with the endpoint:
   * `new FileSink(path)` (tunstack/pcap) for a file, a MemorySink for memory.
   */
  sink?: ByteSink;
  /** Largest number of bytes stored per packet when writing to `sink`; default 262144. */
  snapLength?: number;
  /** Nanosecond timestamps when writing to `sink`; default microseconds. */
  nanosecond?: boolean;
  /** Which packets to record; default 'both'. */
  direction?: SniffDirection;
}

export interface SnifferStats {
  inbound: number;
  outbound: number;
}

/** The pcap LINKTYPE for a wire format. */
export function linkTypeFor(format: WireFormat): number {
  return format === 'ethernet' ? LinkType.ETHERNET : LinkType.RAW;
}

export class SnifferEndpoint extends WrappingEndpoint {
  readonly writer: PcapWriter;
  readonly stats: SnifferStats = { inbound: 0, outbound: 0 };
  private readonly clock: Clock;
  private readonly ownsWriter: boolean;
  private readonly captureIn: boolean;
  private readonly captureOut: boolean;

  constructor(inner: LinkEndpoint, options: SnifferOptions = {}) {
    super(inner);
    this.clock = options.clock ?? new RealClock();
    const linkType = linkTypeFor(inner.wireFormat);
    if (options.writer !== undefined) {
      if (options.writer.linkType !== linkType) {
        throw new TunstackError(
          'EINVAL',
          `pcap writer link type ${options.writer.linkType} does not match wire format ${inner.wireFormat} (${linkType})`,
        );
      }
      this.writer = options.writer;
      this.ownsWriter = false;
    } else if (options.sink !== undefined) {
      const o: { linkType: number; snapLength?: number; nanosecond?: boolean } = { linkType };
      if (options.snapLength !== undefined) o.snapLength = options.snapLength;
      if (options.nanosecond !== undefined) o.nanosecond = options.nanosecond;
      this.writer = new PcapWriter(expectMethods<ByteSink>(options.sink, 'new SnifferEndpoint', 'options.sink', ['write']), o);
      this.ownsWriter = true;
    } else {
      throw new TunstackError('EINVAL', 'SnifferEndpoint needs a writer or a sink (new FileSink(path) for a file)');
    }
    const dir = options.direction ?? 'both';
    this.captureIn = dir !== 'outbound';
    this.captureOut = dir !== 'inbound';
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    if (this.captureOut && !this.closed) {
      const t = this.clock.wallNow();
      for (let i = 0; i < pkts.length; i++) {
        const p = pkts[i]!;
        this.writer.writeParts(p.data.subarray(p.start, p.end), p.frags, t);
      }
      this.stats.outbound += pkts.length;
    }
    return this.inner.writePackets(pkts);
  }

  protected override get passesFrags(): boolean {
    return true;
  }

  deliverNetworkPacket(protocol: number, pkt: PacketBuffer): void {
    const up = this.upper;
    if (up === null) return;
    if (this.captureIn) {
      this.writer.write(pkt.data.subarray(pkt.start, pkt.end), this.clock.wallNow());
      this.stats.inbound++;
    }
    up.deliverNetworkPacket(protocol, pkt);
  }

  /** Close the wrapped endpoint, and the pcap file if this endpoint created it. */
  protected override onClose(): void {
    if (this.ownsWriter) this.writer.close();
  }
}
