/**
 * The link layers a capture may carry, reduced to what replay needs: where the network packet
 * starts, which protocol it is, and the link addresses when there are any; and the reverse, a
 * network packet wrapped again in a link header for writing answers to a capture.
 *
 * Supported: Ethernet (1, with 802.1Q / 802.1ad tags), raw IP (101, and 12 / 14, the
 * platform-specific DLT_RAW values some files carry, 228 IPv4, 229 IPv6), Linux cooked capture
 * SLL (113) and SLL2 (276), BSD loopback NULL (0, host byte order) and OpenBSD LOOP (108, network
 * byte order).
 */
import { TunstackError } from '../core/errors.js';

export const LinkTypes = {
  NULL: 0,
  ETHERNET: 1,
  RAW_12: 12,
  RAW_14: 14,
  RAW: 101,
  LOOP: 108,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

const NAMES: Record<number, string> = {
  0: 'BSD loopback (NULL)',
  1: 'Ethernet',
  6: 'Token Ring',
  9: 'PPP',
  10: 'FDDI',
  12: 'raw IP (DLT_RAW 12)',
  14: 'raw IP (DLT_RAW 14)',
  101: 'raw IP',
  105: 'IEEE 802.11',
  108: 'OpenBSD loopback (LOOP)',
  113: 'Linux cooked capture (SLL)',
  127: 'IEEE 802.11 radiotap',
  147: 'user-defined (DLT_USER0)',
  187: 'Bluetooth HCI H4',
  195: 'IEEE 802.15.4',
  220: 'USB Linux mmapped',
  228: 'raw IPv4',
  229: 'raw IPv6',
  249: 'netlink',
  276: 'Linux cooked capture v2 (SLL2)',
};

/** A human name for a LINKTYPE_* value. */
export function linkTypeName(linkType: number): string {
  return NAMES[linkType] ?? `link type ${linkType}`;
}

/** True for the link types replay and flow understand. */
export function isSupportedLinkType(linkType: number): boolean {
  switch (linkType) {
    case LinkTypes.NULL:
    case LinkTypes.ETHERNET:
    case LinkTypes.RAW_12:
    case LinkTypes.RAW_14:
    case LinkTypes.RAW:
    case LinkTypes.LOOP:
    case LinkTypes.LINUX_SLL:
    case LinkTypes.IPV4:
    case LinkTypes.IPV6:
    case LinkTypes.LINUX_SLL2:
      return true;
    default:
      return false;
  }
}

/** Throws a clear error for a link type replay cannot read. */
export function assertSupportedLinkType(linkType: number, frame: number): void {
  if (!isSupportedLinkType(linkType)) {
    throw new TunstackError(
      'EPROTONOSUPPORT',
      `frame ${frame}: unsupported link type ${linkType} (${linkTypeName(linkType)}); supported: Ethernet (1), raw IP (101, 12, 14, 228, 229), Linux SLL (113), SLL2 (276), NULL (0), LOOP (108)`,
    );
  }
}

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;

/** What is below the network header of one frame; reused from frame to frame. */
export class LinkInfo {
  /** Offset of the network header. */
  offset = 0;
  /** EtherType of the network packet (0x0800, 0x86dd, 0x0806, ...), 0 when unknown. */
  etherType = 0;
  /** Ethernet destination/source (offsets into the frame), -1 when the link has none. */
  dstMacOffset = -1;
  srcMacOffset = -1;
  /** SLL/SLL2 packet type (0 to us, 1 broadcast, 2 multicast, 3 other host, 4 sent by us), -1 else. */
  sllPacketType = -1;
  /** NULL/LOOP: the address family value as found, and whether it was little-endian. */
  family = -1;
  familyLittleEndian = false;
  /** Why decapsulation failed. */
  error = '';

  clear(): void {
    this.offset = 0;
    this.etherType = 0;
    this.dstMacOffset = -1;
    this.srcMacOffset = -1;
    this.sllPacketType = -1;
    this.family = -1;
    this.familyLittleEndian = false;
    this.error = '';
  }
}

function versionEtherType(b: Uint8Array, off: number): number {
  if (off >= b.length) return 0;
  const v = b[off]! >>> 4;
  return v === 4 ? ETHERTYPE_IPV4 : v === 6 ? ETHERTYPE_IPV6 : 0;
}

/** AF_INET6 as BSDs, Linux and Darwin number it; AF_INET is 2 everywhere. */
function familyEtherType(f: number): number {
  if (f === 2) return ETHERTYPE_IPV4;
  if (f === 10 || f === 24 || f === 28 || f === 30) return ETHERTYPE_IPV6;
  return 0;
}

/**
 * Find the network packet in a frame of `linkType`. Returns false (with `out.error`) when the
 * frame is too short or carries something other than IP/ARP.
 */
export function decapsulate(linkType: number, b: Uint8Array, out: LinkInfo): boolean {
  out.clear();
  const n = b.length;
  switch (linkType) {
    case LinkTypes.ETHERNET: {
      if (n < 14) return bad(out, `Ethernet frame of ${n} bytes`);
      out.dstMacOffset = 0;
      out.srcMacOffset = 6;
      let off = 12;
      let type = (b[off]! << 8) | b[off + 1]!;
      let tags = 0;
      while ((type === 0x8100 || type === 0x88a8 || type === 0x9100) && tags < 4) {
        if (off + 6 > n) return bad(out, 'truncated VLAN tag');
        off += 4;
        type = (b[off]! << 8) | b[off + 1]!;
        tags++;
      }
      if (type < 0x0600) return bad(out, `802.3 length field ${type} (LLC frames are not IP)`);
      out.etherType = type;
      out.offset = off + 2;
      return true;
    }
    case LinkTypes.RAW:
    case LinkTypes.RAW_12:
    case LinkTypes.RAW_14:
    case LinkTypes.IPV4:
    case LinkTypes.IPV6:
      out.offset = 0;
      out.etherType = versionEtherType(b, 0);
      if (out.etherType === 0) return bad(out, 'raw frame is neither IPv4 nor IPv6');
      return true;
    case LinkTypes.NULL:
    case LinkTypes.LOOP: {
      if (n < 4) return bad(out, `loopback frame of ${n} bytes`);
      const be = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
      const le = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
      // NULL is in the capturing host's byte order: a small value in one order is the answer.
      let f: number;
      if (linkType === LinkTypes.LOOP) f = be;
      else if (le < 0x10000 && (be >= 0x10000 || le !== 0)) {
        f = le;
        out.familyLittleEndian = true;
      } else f = be;
      out.family = f;
      out.offset = 4;
      out.etherType = familyEtherType(f) || versionEtherType(b, 4);
      if (out.etherType === 0) return bad(out, `loopback address family ${f}`);
      return true;
    }
    case LinkTypes.LINUX_SLL: {
      if (n < 16) return bad(out, `SLL frame of ${n} bytes`);
      out.sllPacketType = (b[0]! << 8) | b[1]!;
      const hatype = (b[2]! << 8) | b[3]!;
      const alen = (b[4]! << 8) | b[5]!;
      if (hatype === 1 && alen === 6) out.srcMacOffset = 6;
      out.etherType = (b[14]! << 8) | b[15]!;
      out.offset = 16;
      if (out.etherType < 0x0600) return bad(out, `SLL protocol ${out.etherType} is not an EtherType`);
      return true;
    }
    case LinkTypes.LINUX_SLL2: {
      if (n < 20) return bad(out, `SLL2 frame of ${n} bytes`);
      out.etherType = (b[0]! << 8) | b[1]!;
      const hatype = (b[8]! << 8) | b[9]!;
      out.sllPacketType = b[10]!;
      const alen = b[11]!;
      if (hatype === 1 && alen === 6) out.srcMacOffset = 12;
      out.offset = 20;
      if (out.etherType < 0x0600) return bad(out, `SLL2 protocol ${out.etherType} is not an EtherType`);
      return true;
    }
    default:
      return bad(out, `unsupported link type ${linkType}`);
  }
}

function bad(out: LinkInfo, why: string): false {
  out.error = why;
  return false;
}

/** The link type answers are written with, for a capture of `linkType`. */
export function outputLinkType(linkType: number): number {
  switch (linkType) {
    case LinkTypes.RAW_12:
    case LinkTypes.RAW_14:
    case LinkTypes.IPV4:
    case LinkTypes.IPV6:
      return LinkTypes.RAW;
    default:
      return linkType;
  }
}

export interface EncapsulateOptions {
  /** Ethernet: destination and source MACs (6 bytes each). SLL/SLL2: source MAC (optional). */
  dstMac?: Uint8Array | null;
  srcMac?: Uint8Array | null;
  /** NULL/LOOP: AF_INET6 value to use (default 24, as the BSDs); byte order for NULL (default LE). */
  inet6Family?: number;
  littleEndian?: boolean;
  /** SLL/SLL2 packet type (default 4, "sent by us"). */
  sllPacketType?: number;
}

/** Wrap a network packet (of `etherType`) in a link header of `linkType` (see outputLinkType). */
export function encapsulate(linkType: number, packet: Uint8Array, etherType: number, o: EncapsulateOptions = {}): Uint8Array {
  switch (linkType) {
    case LinkTypes.ETHERNET: {
      const out = new Uint8Array(14 + packet.length);
      if (o.dstMac) out.set(o.dstMac.subarray(0, 6), 0);
      if (o.srcMac) out.set(o.srcMac.subarray(0, 6), 6);
      out[12] = etherType >>> 8;
      out[13] = etherType & 0xff;
      out.set(packet, 14);
      return out;
    }
    case LinkTypes.RAW:
    case LinkTypes.RAW_12:
    case LinkTypes.RAW_14:
    case LinkTypes.IPV4:
    case LinkTypes.IPV6:
      return packet.slice();
    case LinkTypes.NULL:
    case LinkTypes.LOOP: {
      const out = new Uint8Array(4 + packet.length);
      const f = etherType === ETHERTYPE_IPV6 ? (o.inet6Family ?? 24) : 2;
      const le = linkType === LinkTypes.NULL && (o.littleEndian ?? true);
      new DataView(out.buffer).setUint32(0, f, le);
      out.set(packet, 4);
      return out;
    }
    case LinkTypes.LINUX_SLL: {
      const out = new Uint8Array(16 + packet.length);
      const v = new DataView(out.buffer);
      v.setUint16(0, o.sllPacketType ?? 4);
      v.setUint16(2, 1);
      if (o.srcMac) {
        v.setUint16(4, 6);
        out.set(o.srcMac.subarray(0, 6), 6);
      }
      v.setUint16(14, etherType);
      out.set(packet, 16);
      return out;
    }
    case LinkTypes.LINUX_SLL2: {
      const out = new Uint8Array(20 + packet.length);
      const v = new DataView(out.buffer);
      v.setUint16(0, etherType);
      v.setUint32(4, 1);
      v.setUint16(8, 1);
      out[10] = o.sllPacketType ?? 4;
      if (o.srcMac) {
        out[11] = 6;
        out.set(o.srcMac.subarray(0, 6), 12);
      }
      out.set(packet, 20);
      return out;
    }
    default:
      throw new TunstackError('EPROTONOSUPPORT', `cannot write ${linkTypeName(linkType)} frames`);
  }
}
