/**
 * IPv6 address constants and helpers the network layer shares (IPv6, ICMPv6, NDP, MLD): well-known
 * groups, address classification, solicited-node groups, multicast MACs and EUI-64 identifiers.
 * Kept apart from ipv6.ts so the protocols ipv6.ts owns can use them without a value import back.
 */
import { parseIPv6 } from '../core/address.js';

export const ALL_NODES = parseIPv6('ff02::1');
export const ALL_ROUTERS = parseIPv6('ff02::2');
export const ALL_MLDV2_ROUTERS = parseIPv6('ff02::16');
export const UNSPECIFIED = new Uint8Array(16);

/** A 16-byte address as an 8-character string (a map key). */
export function addrKey(buf: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 16; i += 2) s += String.fromCharCode((buf[off + i]! << 8) | buf[off + i + 1]!);
  return s;
}

// ---------------------------------------------------------------- address helpers

export function isV4Mapped(b: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 10; i++) if (b[off + i] !== 0) return false;
  return b[off + 10] === 0xff && b[off + 11] === 0xff;
}

export function isLoopbackAddr(b: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 15; i++) if (b[off + i] !== 0) return false;
  return b[off + 15] === 1;
}

export function isUnspecifiedAt(b: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 16; i++) if (b[off + i] !== 0) return false;
  return true;
}

export function isLinkLocal(b: Uint8Array, off = 0): boolean {
  return b[off] === 0xfe && (b[off + 1]! & 0xc0) === 0x80;
}

/** The solicited-node multicast address ff02::1:ffXX:XXXX of `addr` (RFC 4291 2.7.1). */
export function solicitedNode(addr: Uint8Array, off = 0): Uint8Array {
  const g = new Uint8Array(16);
  g[0] = 0xff;
  g[1] = 0x02;
  g[11] = 0x01;
  g[12] = 0xff;
  g[13] = addr[off + 13]!;
  g[14] = addr[off + 14]!;
  g[15] = addr[off + 15]!;
  return g;
}

/** The Ethernet address of an IPv6 multicast group: 33:33 and the group's last 32 bits (RFC 2464 7). */
export function multicastMac(group: Uint8Array, off = 0): Uint8Array {
  return Uint8Array.of(0x33, 0x33, group[off + 12]!, group[off + 13]!, group[off + 14]!, group[off + 15]!);
}

/** The modified EUI-64 interface identifier of a MAC (RFC 4291 appendix A), 8 bytes. */
export function eui64(mac: Uint8Array): Uint8Array {
  return Uint8Array.of(mac[0]! ^ 0x02, mac[1]!, mac[2]!, 0xff, 0xfe, mac[3]!, mac[4]!, mac[5]!);
}

/** fe80::/64 plus the EUI-64 of `mac`. */
export function linkLocalFromMac(mac: Uint8Array): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0xfe;
  a[1] = 0x80;
  a.set(eui64(mac), 8);
  return a;
}

/** True if `b` holds the bytes of `x` at `off`. */
export function sameBytes(b: Uint8Array, off: number, x: Uint8Array): boolean {
  for (let i = 0; i < x.length; i++) if (b[off + i] !== x[i]) return false;
  return true;
}

export function sameArray(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sameBytes(a, 0, b);
}
