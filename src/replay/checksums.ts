/**
 * Recomputing the checksums of a captured IP datagram in place. Captures taken on a host with
 * checksum offload hold outgoing TCP/UDP segments whose checksum the NIC was to fill in (often
 * just the pseudo-header sum); replaying them into a stack that verifies checksums needs them
 * fixed. Also used after the replay engine rewrites TCP sequence numbers.
 *
 * Fixed: the IPv4 header checksum; TCP, UDP (IPv4 UDP with checksum 0 stays 0: "none"), ICMP and
 * ICMPv6 checksums of unfragmented datagrams whose bytes are all present. Fragments get only
 * their IPv4 header fixed (a transport checksum covers the whole reassembled datagram).
 */
import { checksum, pseudoHeaderSumV4, pseudoHeaderSumV6, sum } from '../headers/checksum.js';
import { IPv6Walk, walkIPv6 } from '../headers/ipv6-walk.js';
import { tcpChecksum } from '../headers/tcp.js';
import { udpChecksum } from '../headers/udp.js';

const walk = new IPv6Walk();

function put16(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 8;
  b[p + 1] = v & 0xff;
}

function get16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

/**
 * Fix the checksums of the IP datagram at b[off, end). Returns the number of checksum fields
 * that changed (0 when all were right or nothing could be fixed).
 */
export function fixChecksums(b: Uint8Array, off: number, end: number): number {
  if (end - off < 1) return 0;
  const v = b[off]! >>> 4;
  if (v === 4) return fixV4(b, off, end);
  if (v === 6) return fixV6(b, off, end);
  return 0;
}

function fixV4(b: Uint8Array, off: number, end: number): number {
  if (end - off < 20) return 0;
  const hl = (b[off]! & 0x0f) * 4;
  const tl = get16(b, off + 2);
  if (hl < 20 || off + hl > end) return 0;
  let changed = 0;
  const old = get16(b, off + 10);
  put16(b, off + 10, 0);
  const c = checksum(b, off, hl);
  put16(b, off + 10, c);
  if (c !== old) changed++;
  const flags = get16(b, off + 6);
  if ((flags & 0x3fff) !== 0) return changed; // a fragment (MF set or offset > 0)
  if (tl < hl || off + tl > end) return changed; // cut by the snap length
  const l4 = off + hl;
  const len = tl - hl;
  const proto = b[off + 9]!;
  const pseudo = pseudoHeaderSumV4(b, off + 12, b, off + 16, proto, len);
  return changed + fixTransport(b, proto, l4, len, pseudo, false);
}

function fixV6(b: Uint8Array, off: number, end: number): number {
  if (end - off < 40) return 0;
  const plen = get16(b, off + 4);
  if (off + 40 + plen > end) return 0;
  if (walkIPv6(b, off, 40 + plen, walk) !== 0 || walk.isFragment) return 0;
  const l4 = walk.offset;
  const len = off + 40 + plen - l4;
  const pseudo = pseudoHeaderSumV6(b, off + 8, b, off + 24, walk.protocol, len);
  return fixTransport(b, walk.protocol, l4, len, pseudo, true);
}

function fixTransport(b: Uint8Array, proto: number, l4: number, len: number, pseudo: number, v6: boolean): number {
  if (proto === 6) {
    if (len < 20) return 0;
    const old = get16(b, l4 + 16);
    const c = tcpChecksum(b, l4, len, pseudo);
    put16(b, l4 + 16, c);
    return c !== old ? 1 : 0;
  }
  if (proto === 17) {
    if (len < 8) return 0;
    const old = get16(b, l4 + 6);
    if (!v6 && old === 0) return 0;
    const c = udpChecksum(b, l4, len, pseudo);
    put16(b, l4 + 6, c);
    return c !== old ? 1 : 0;
  }
  if (proto === 1 || proto === 58) {
    if (len < 4) return 0;
    const old = get16(b, l4 + 2);
    put16(b, l4 + 2, 0);
    const c = ~sum(b, l4, len, proto === 58 ? pseudo : 0) & 0xffff;
    put16(b, l4 + 2, c);
    return c !== old ? 1 : 0;
  }
  return 0;
}
