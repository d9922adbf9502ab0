/**
 * The IPv6 extension-header chain walker: finds the upper-layer protocol or says exactly why (and
 * where) the packet must be dropped.
 *
 * The walker never throws and never reads outside [start, end): every length is checked before it
 * is used, every step advances by at least 8 bytes, and the number of headers is bounded. Its
 * result object is reused from packet to packet (no allocation per packet).
 */
import {
  IPV6_FRAGMENT_HEADER_LENGTH,
  IPV6_HEADER_LENGTH,
  IPV6_MAX_PAYLOAD,
  IPV6_NEXT_HEADER_DESTINATION_OPTIONS,
  IPV6_NEXT_HEADER_FRAGMENT,
  IPV6_NEXT_HEADER_HOP_BY_HOP,
  IPV6_NEXT_HEADER_ICMPV6,
  IPV6_NEXT_HEADER_NONE,
  IPV6_NEXT_HEADER_ROUTING,
  IPV6_NEXT_HEADER_TCP,
  IPV6_NEXT_HEADER_UDP,
  IPV6_OPTION_ACTION_DISCARD,
  IPV6_OPTION_ACTION_DISCARD_ICMP_UNLESS_MULTICAST,
  IPV6_OPTION_ACTION_SKIP,
  IPV6_OPTION_PAD1,
  IPV6_OPTION_PADN,
  IPV6_OPTION_ROUTER_ALERT,
  IPV6_VERSION,
} from './ipv6.js';
import { IPV6_OPTIONS_END, IPv6OptionIterator } from './ipv6-extensions.js';

// ---------------------------------------------------------------------------------------------
// Extension header chain walker

/** Walk outcomes (`IPv6Walk.status`). Everything but OK means "drop the packet". */
export const IPV6_WALK_OK = 0;
/** The fixed header is not valid (too short, not version 6, payload length beyond the bytes). */
export const IPV6_WALK_BAD_HEADER = 1;
/**
 * An extension header runs past the end of the packet. Dropped silently. `problemOffset` is the
 * Next Header byte that named a header with no room, or the length byte of one that overruns.
 */
export const IPV6_WALK_TRUNCATED = 2;
/** A Hop-by-Hop header anywhere but right after the fixed header (ICMP code 1). */
export const IPV6_WALK_HOP_BY_HOP_NOT_FIRST = 3;
/**
 * An option's TLV overruns its header, or a Router Alert is not 2 bytes; `problemOffset` is the
 * option's type byte. Dropped silently.
 */
export const IPV6_WALK_BAD_OPTION = 4;
/** An unrecognised option whose action says discard (see `optionAction`, `icmpCode`). */
export const IPV6_WALK_UNKNOWN_OPTION = 5;
/** A Routing header with Segments Left > 0: no routing type is supported by a host (code 0). */
export const IPV6_WALK_ROUTING = 6;
/** A fragment of a length that is not a multiple of 8 with M set, or one ending past 65535 (code 0). */
export const IPV6_WALK_BAD_FRAGMENT = 7;
/** A first fragment without the whole header chain through the upper-layer header (code 3). */
export const IPV6_WALK_INCOMPLETE_CHAIN = 8;
/** More extension headers than `maxHeaders` (problemOffset: the Next Header naming one too many). Dropped silently. */
export const IPV6_WALK_TOO_MANY_HEADERS = 9;

/** Default bound on the number of extension headers in one chain. */
export const IPV6_DEFAULT_MAX_EXTENSION_HEADERS = 16;

/**
 * The result of a walk, reused from packet to packet. Offsets are absolute offsets in the buffer
 * walked; `pointer` is relative to the start of the IPv6 header (the ICMPv6 Parameter Problem
 * pointer). Fields not touched by the chain are -1 (offsets) or false.
 */
export class IPv6Walk {
  /** Bound on the chain length (extension headers counted). */
  maxHeaders = IPV6_DEFAULT_MAX_EXTENSION_HEADERS;

  status = IPV6_WALK_OK;
  /** Offset of the IPv6 fixed header. */
  ipOffset = 0;
  /** End of the datagram (40 + payloadLength after ipOffset, clipped to the bytes at hand). */
  end = 0;
  /** The upper-layer protocol (or 59, no next header); for a fragment, the fragment's next header. */
  protocol = -1;
  /** Offset of the upper-layer header (for a fragment: of the fragment's data). */
  offset = -1;
  /** Offset of the Next Header byte that named `protocol` (pointer for ICMP code 1). */
  nextHeaderFieldOffset = -1;
  /** Number of extension headers walked. */
  headerCount = 0;

  hopByHopOffset = -1;
  /** Router Alert value from the Hop-by-Hop header, or -1. */
  routerAlert = -1;
  /** Offset of the last Destination Options header walked, or -1. */
  destinationOptionsOffset = -1;

  routingOffset = -1;
  routingType = -1;
  segmentsLeft = -1;

  fragmentHeaderOffset = -1;
  /** Fragment offset in 8-octet units. */
  fragmentOffset = 0;
  moreFragments = false;
  fragmentId = 0;
  /** A fragment header that is not atomic: the walk stopped there; reassemble before going on. */
  isFragment = false;
  /** A fragment header with offset 0 and M clear (RFC 6946); the walk went on past it. */
  atomicFragment = false;

  /** On failure: absolute offset of the byte at fault. */
  problemOffset = -1;
  /** On failure: problemOffset - ipOffset, the Parameter Problem pointer. */
  pointer = -1;
  /** On failure: the ICMPv6 Parameter Problem code to send, or -1 to drop silently. */
  icmpCode = -1;
  /** For UNKNOWN_OPTION: the option type and its action (IPV6_OPTION_ACTION_*). */
  optionType = -1;
  optionAction = -1;

  /** @internal */
  readonly options = new IPv6OptionIterator();

  get ok(): boolean {
    return this.status === IPV6_WALK_OK;
  }

  clear(): this {
    this.status = IPV6_WALK_OK;
    this.ipOffset = 0;
    this.end = 0;
    this.protocol = -1;
    this.offset = -1;
    this.nextHeaderFieldOffset = -1;
    this.headerCount = 0;
    this.hopByHopOffset = -1;
    this.routerAlert = -1;
    this.destinationOptionsOffset = -1;
    this.routingOffset = -1;
    this.routingType = -1;
    this.segmentsLeft = -1;
    this.fragmentHeaderOffset = -1;
    this.fragmentOffset = 0;
    this.moreFragments = false;
    this.fragmentId = 0;
    this.isFragment = false;
    this.atomicFragment = false;
    this.problemOffset = -1;
    this.pointer = -1;
    this.icmpCode = -1;
    this.optionType = -1;
    this.optionAction = -1;
    return this;
  }
}

function fail(r: IPv6Walk, status: number, at: number, icmpCode: number): number {
  r.status = status;
  r.problemOffset = at;
  r.pointer = at - r.ipOffset;
  r.icmpCode = icmpCode;
  return status;
}

/**
 * Walk a whole IPv6 datagram at `off` (`len` bytes available). Returns `r.status`.
 * On OK, `r.protocol` and `r.offset` name the upper layer (or the fragment data).
 */
export function walkIPv6(buf: Uint8Array, off: number, len: number, r: IPv6Walk): number {
  r.clear();
  r.ipOffset = off;
  if (off < 0 || len < IPV6_HEADER_LENGTH || off + len > buf.length || buf[off]! >>> 4 !== IPV6_VERSION) {
    return fail(r, IPV6_WALK_BAD_HEADER, off, -1);
  }
  const plen = (buf[off + 4]! << 8) | buf[off + 5]!;
  if (plen > len - IPV6_HEADER_LENGTH) return fail(r, IPV6_WALK_BAD_HEADER, off + 4, -1);
  return walkIPv6Extensions(buf, off, off + IPV6_HEADER_LENGTH, off + IPV6_HEADER_LENGTH + plen, buf[off + 6]!, off + 6, r);
}

/**
 * Walk an extension-header chain that starts at `start` with Next Header value `nextHeader`
 * (named by the byte at `nextHeaderFieldOffset`), within [start, end). `ipOff` is the IPv6 fixed
 * header's offset (pointers are relative to it; a Hop-by-Hop header is allowed only at ipOff + 40;
 * the destination address is read from it for the "unless multicast" rule).
 * Usable after reassembly to walk the reassembled datagram's chain. Returns `r.status`.
 */
export function walkIPv6Extensions(
  buf: Uint8Array,
  ipOff: number,
  start: number,
  end: number,
  nextHeader: number,
  nextHeaderFieldOffset: number,
  r: IPv6Walk,
): number {
  r.clear();
  r.ipOffset = ipOff;
  if (end > buf.length) end = buf.length;
  r.end = end;
  const dstMulticast = ipOff >= 0 && ipOff + IPV6_HEADER_LENGTH <= buf.length && buf[ipOff + 24] === 0xff;
  let nh = nextHeader;
  let nhField = nextHeaderFieldOffset;
  let p = start;
  if (p < 0 || p > end) return fail(r, IPV6_WALK_TRUNCATED, nhField, -1);
  for (;;) {
    switch (nh) {
      case IPV6_NEXT_HEADER_HOP_BY_HOP:
      case IPV6_NEXT_HEADER_DESTINATION_OPTIONS: {
        const hbh = nh === IPV6_NEXT_HEADER_HOP_BY_HOP;
        if (hbh && p !== ipOff + IPV6_HEADER_LENGTH) {
          // RFC 8200 4.1: only right after the fixed header; otherwise "unrecognized Next Header".
          return fail(r, IPV6_WALK_HOP_BY_HOP_NOT_FIRST, nhField, 1);
        }
        if (++r.headerCount > r.maxHeaders) return fail(r, IPV6_WALK_TOO_MANY_HEADERS, nhField, -1);
        if (p + 8 > end) return fail(r, IPV6_WALK_TRUNCATED, nhField, -1);
        const hl = (buf[p + 1]! + 1) << 3;
        if (p + hl > end) return fail(r, IPV6_WALK_TRUNCATED, p + 1, -1);
        if (hbh) r.hopByHopOffset = p;
        else r.destinationOptionsOffset = p;
        const it = r.options.reset(buf, p + 2, p + hl);
        while (it.next()) {
          const t = it.type;
          if (t === IPV6_OPTION_PAD1 || t === IPV6_OPTION_PADN) continue;
          if (hbh && t === IPV6_OPTION_ROUTER_ALERT) {
            if (it.dataLength !== 2) return fail(r, IPV6_WALK_BAD_OPTION, it.optionOffset, -1);
            r.routerAlert = (buf[it.dataOffset]! << 8) | buf[it.dataOffset + 1]!;
            continue;
          }
          const action = (t >>> 6) & 3;
          if (action === IPV6_OPTION_ACTION_SKIP) continue;
          r.optionType = t;
          r.optionAction = action;
          const code =
            action === IPV6_OPTION_ACTION_DISCARD ||
            (action === IPV6_OPTION_ACTION_DISCARD_ICMP_UNLESS_MULTICAST && dstMulticast)
              ? -1
              : 2;
          return fail(r, IPV6_WALK_UNKNOWN_OPTION, it.optionOffset, code);
        }
        if (it.status !== IPV6_OPTIONS_END) {
          // The option at optionOffset claims more bytes than its header has.
          return fail(r, IPV6_WALK_BAD_OPTION, it.optionOffset, -1);
        }
        nhField = p;
        nh = buf[p]!;
        p += hl;
        continue;
      }
      case IPV6_NEXT_HEADER_ROUTING: {
        if (++r.headerCount > r.maxHeaders) return fail(r, IPV6_WALK_TOO_MANY_HEADERS, nhField, -1);
        if (p + 8 > end) return fail(r, IPV6_WALK_TRUNCATED, nhField, -1);
        const hl = (buf[p + 1]! + 1) << 3;
        if (p + hl > end) return fail(r, IPV6_WALK_TRUNCATED, p + 1, -1);
        r.routingOffset = p;
        r.routingType = buf[p + 2]!;
        r.segmentsLeft = buf[p + 3]!;
        // RFC 8200 4.4: an unrecognised type with Segments Left 0 is ignored; otherwise the
        // packet is discarded with a Parameter Problem pointing at the Routing Type.
        if (r.segmentsLeft !== 0) return fail(r, IPV6_WALK_ROUTING, p + 2, 0);
        nhField = p;
        nh = buf[p]!;
        p += hl;
        continue;
      }
      case IPV6_NEXT_HEADER_FRAGMENT: {
        if (++r.headerCount > r.maxHeaders) return fail(r, IPV6_WALK_TOO_MANY_HEADERS, nhField, -1);
        if (p + IPV6_FRAGMENT_HEADER_LENGTH > end) return fail(r, IPV6_WALK_TRUNCATED, nhField, -1);
        const w = (buf[p + 2]! << 8) | buf[p + 3]!;
        r.fragmentHeaderOffset = p;
        r.fragmentOffset = w >>> 3;
        r.moreFragments = (w & 1) !== 0;
        r.fragmentId = ((buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!) >>> 0;
        const dataStart = p + IPV6_FRAGMENT_HEADER_LENGTH;
        if (r.fragmentOffset === 0 && !r.moreFragments) {
          r.atomicFragment = true;
          nhField = p;
          nh = buf[p]!;
          p = dataStart;
          continue;
        }
        r.isFragment = true;
        const dataLen = end - dataStart;
        if (r.moreFragments && (dataLen & 7) !== 0) {
          // RFC 8200 4.5: pointer at the Payload Length field.
          return fail(r, IPV6_WALK_BAD_FRAGMENT, ipOff + 4, 0);
        }
        if ((r.fragmentOffset << 3) + dataLen > IPV6_MAX_PAYLOAD) {
          return fail(r, IPV6_WALK_BAD_FRAGMENT, p + 2, 0);
        }
        if (r.fragmentOffset === 0 && !chainComplete(buf, dataStart, end, buf[p]!, r.maxHeaders - r.headerCount)) {
          // RFC 8200 4.5 / RFC 7112: pointer 0.
          return fail(r, IPV6_WALK_INCOMPLETE_CHAIN, ipOff, 3);
        }
        r.protocol = buf[p]!;
        r.offset = dataStart;
        r.nextHeaderFieldOffset = p;
        return IPV6_WALK_OK;
      }
      default:
        // Upper layer (or 59, no next header: the rest is ignored).
        r.protocol = nh;
        r.offset = p;
        r.nextHeaderFieldOffset = nhField;
        return IPV6_WALK_OK;
    }
  }
}

/**
 * Within a first fragment: do the remaining extension headers and the start of the upper-layer
 * header fit in [p, end)? Skips headers by their length only (their options are processed after
 * reassembly). Minimum upper-layer header sizes: TCP 20, UDP 8, ICMPv6 8, others 1.
 */
function chainComplete(buf: Uint8Array, p: number, end: number, nh: number, budget: number): boolean {
  for (let n = 0; ; n++) {
    switch (nh) {
      case IPV6_NEXT_HEADER_HOP_BY_HOP:
      case IPV6_NEXT_HEADER_DESTINATION_OPTIONS:
      case IPV6_NEXT_HEADER_ROUTING: {
        if (n >= budget || p + 8 > end) return false;
        const hl = (buf[p + 1]! + 1) << 3;
        if (p + hl > end) return false;
        nh = buf[p]!;
        p += hl;
        continue;
      }
      case IPV6_NEXT_HEADER_FRAGMENT:
        // A second fragment header inside a fragment: let reassembly deal with it.
        return p + IPV6_FRAGMENT_HEADER_LENGTH <= end;
      case IPV6_NEXT_HEADER_NONE:
        return true;
      case IPV6_NEXT_HEADER_TCP:
        return p + 20 <= end;
      case IPV6_NEXT_HEADER_UDP:
      case IPV6_NEXT_HEADER_ICMPV6:
        return p + 8 <= end;
      default:
        return p + 1 <= end;
    }
  }
}
