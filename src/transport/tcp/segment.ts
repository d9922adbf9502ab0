import { TcpOptions } from '../../headers/tcp.js';
import type { NetworkInfo } from '../../stack/protocol.js';
import type { PacketBuffer } from '../../stack/packet.js';

/** One parsed inbound segment. A single instance per protocol is reused for every packet. */
export class Segment {
  data: Uint8Array = new Uint8Array(0);
  /** Offset of the TCP header in `data` and header length. */
  off = 0;
  hl = 0;
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  /** Window field as received (unscaled). */
  wnd = 0;
  /** Payload offset in `data` and length. */
  plOff = 0;
  plLen = 0;
  readonly opts = new TcpOptions();
  net!: NetworkInfo;
  pkt!: PacketBuffer;
}
