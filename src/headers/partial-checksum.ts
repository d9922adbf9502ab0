import type { PacketBuffer } from '../core/packet.js';
import { sum } from './checksum.js';

/**
 * Complete a received packet's partial transport checksum in place (`pkt.csumStart`, Linux's
 * skb_checksum_help): the field holds the pseudo-header sum; the complemented sum of everything
 * from csumStart to the end of the packet replaces it (0 stored as 0xffff). Afterwards the
 * checksum is an ordinary complete one (`csumStart` -1, not offloaded). False when the offsets do
 * not fit the packet (it is left as it was).
 */
export function completePacketChecksum(pkt: PacketBuffer): boolean {
  const start = pkt.csumStart;
  if (start < 0) return true;
  pkt.linearize();
  const field = start + pkt.csumOffset;
  if (start < pkt.start || field + 2 > pkt.end) return false;
  const d = pkt.data;
  const c = ~sum(d, start, pkt.end - start) & 0xffff;
  const v = c === 0 ? 0xffff : c;
  d[field] = v >>> 8;
  d[field + 1] = v & 0xff;
  pkt.csumStart = -1;
  pkt.checksumOffload = false;
  return true;
}
