/** Shared bits of the link tests: a recording dispatcher, IPv4 packets, a pcap record reader. */
import { checksum } from '../../src/headers/checksum.js';
import type { NetworkDispatcher } from '../../src/link/endpoint.js';
import { PacketBuffer, type PacketType } from '../../src/core/packet.js';

export interface Received {
  protocol: number;
  pkt: PacketBuffer;
  bytes: Uint8Array;
  linkHeaderStart: number;
  start: number;
  packetType: PacketType;
}

/** Records every delivery (with a copy of the bytes at delivery time); `onPacket` may react. */
export class FakeDispatcher implements NetworkDispatcher {
  received: Received[] = [];
  onPacket: ((protocol: number, pkt: PacketBuffer) => void) | null = null;
  /** Keep records (turn off for long runs). */
  record = true;
  count = 0;

  deliverNetworkPacket(protocol: number, pkt: PacketBuffer): void {
    this.count++;
    if (this.record) {
      this.received.push({
        protocol,
        pkt,
        bytes: pkt.toBytes(),
        linkHeaderStart: pkt.linkHeaderStart,
        start: pkt.start,
        packetType: pkt.packetType,
      });
    }
    if (this.onPacket) this.onPacket(protocol, pkt);
  }
}

/**
 * A valid IPv4/UDP packet (header checksum right, UDP checksum 0 = none) from 10.0.0.1 to
 * 10.0.0.2, with `id` in the IP ID field and as the first payload bytes.
 */
export function ipv4Bytes(id: number, payloadLength = 32): Uint8Array {
  const total = 20 + 8 + payloadLength;
  const b = new Uint8Array(total);
  b[0] = 0x45;
  b[2] = total >>> 8;
  b[3] = total & 0xff;
  b[4] = (id >>> 8) & 0xff;
  b[5] = id & 0xff;
  b[8] = 64;
  b[9] = 17;
  b[12] = 10;
  b[15] = 1;
  b[16] = 10;
  b[19] = 2;
  const c = checksum(b, 0, 20);
  b[10] = c >>> 8;
  b[11] = c & 0xff;
  b[20] = 0x30;
  b[21] = 0x39;
  b[22] = 0;
  b[23] = 9;
  b[24] = (8 + payloadLength) >>> 8;
  b[25] = (8 + payloadLength) & 0xff;
  for (let i = 0; i < payloadLength; i++) b[28 + i] = i < 4 ? (id >>> (24 - 8 * i)) & 0xff : i & 0xff;
  return b;
}

/** An outbound IPv4 packet with headroom, networkProtocol 0x0800. */
export function ipv4Packet(id: number, payloadLength = 32): PacketBuffer {
  const p = PacketBuffer.fromPayload(ipv4Bytes(id, payloadLength));
  p.networkProtocol = 0x0800;
  return p;
}

/** The IP ID of an IPv4 packet at `off`. */
export function ipId(bytes: Uint8Array, off = 0): number {
  return (bytes[off + 4]! << 8) | bytes[off + 5]!;
}

export interface PcapRecord {
  timeMs: number;
  capLen: number;
  origLen: number;
  bytes: Uint8Array;
}

/** Read a little-endian microsecond pcap (as PcapWriter writes it). */
export function readPcap(file: Uint8Array): { linkType: number; snapLength: number; records: PcapRecord[] } {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (v.getUint32(0, true) !== 0xa1b2c3d4) throw new Error('not a little-endian microsecond pcap');
  const snapLength = v.getUint32(16, true);
  const linkType = v.getUint32(20, true);
  const records: PcapRecord[] = [];
  let o = 24;
  while (o + 16 <= file.length) {
    const sec = v.getUint32(o, true);
    const usec = v.getUint32(o + 4, true);
    const capLen = v.getUint32(o + 8, true);
    const origLen = v.getUint32(o + 12, true);
    records.push({ timeMs: sec * 1000 + usec / 1000, capLen, origLen, bytes: file.slice(o + 16, o + 16 + capLen) });
    o += 16 + capLen;
  }
  return { linkType, snapLength, records };
}
