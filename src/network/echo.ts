import { PacketBuffer } from '../stack/packet.js';

/**
 * An ICMP or ICMPv6 echo request (both share the layout: type, code, checksum, id, seq, data)
 * with `size` bytes of the pattern ping(8) sends. The checksum field is left zero: ICMPv4 sums
 * the message alone, ICMPv6 adds a pseudo-header, so the caller fills it.
 */
export function buildEchoRequest(type: number, id: number, seq: number, size: number): PacketBuffer {
  const pkt = PacketBuffer.alloc(8 + size);
  const b = pkt.data;
  const s = pkt.start;
  b[s] = type;
  b[s + 4] = id >>> 8;
  b[s + 5] = id & 0xff;
  b[s + 6] = seq >>> 8;
  b[s + 7] = seq & 0xff;
  for (let i = 0; i < size; i++) b[s + 8 + i] = (i + 0x10) & 0xff;
  return pkt;
}
