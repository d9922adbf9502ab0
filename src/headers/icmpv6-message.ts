/**
 * Whole ICMPv6 messages and datagrams from a description (`buildIcmpV6`, `buildIcmpV6Packet`), for
 * tests, tools and the stack's own rarely-sent messages: echo, errors, NDP and MLDv2 reports.
 */
import {
  IPV6_HEADER_LENGTH,
  IPV6_MIN_MTU,
  IPV6_NEXT_HEADER_ICMPV6,
  IPV6_OPTION_ROUTER_ALERT,
  IPV6_ROUTER_ALERT_MLD,
} from './ipv6.js';
import { buildIPv6, ipv6ExtensionsLength, type IPv6Extension } from './ipv6-extensions.js';
import {
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_ERROR_MAX_MESSAGE,
  ICMPV6_HEADER_LENGTH,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_TIME_EXCEEDED,
  NDP_NA_LENGTH,
  NDP_NS_LENGTH,
  NDP_RA_LENGTH,
  NDP_REDIRECT_LENGTH,
  NDP_RS_LENGTH,
  encodeIcmpV6,
  encodeIcmpV6Echo,
  encodeIcmpV6Error,
  setIcmpV6Checksum,
} from './icmpv6.js';
import { encodeMldV2Report, mldV2RecordLength, type MldV2RecordFields } from './mld.js';
import {
  encodeNdpNeighborAdvertisement,
  encodeNdpNeighborSolicitation,
  encodeNdpOptions,
  encodeNdpRedirect,
  encodeNdpRouterAdvertisement,
  encodeNdpRouterSolicitation,
  ndpOptionLength,
  ndpOptionsLength,
  type NdpNeighborAdvertisementFields,
  type NdpOptionFields,
  type NdpRouterAdvertisementFields,
} from './ndp.js';


/** Any ICMPv6 message, for `buildIcmpV6`. */
export type IcmpV6Message =
  | { kind: 'echoRequest' | 'echoReply'; identifier: number; sequence: number; data?: Uint8Array }
  | { kind: 'destinationUnreachable'; code: number; invoking: Uint8Array }
  | { kind: 'packetTooBig'; mtu: number; invoking: Uint8Array }
  | { kind: 'timeExceeded'; code: number; invoking: Uint8Array }
  | { kind: 'parameterProblem'; code: number; pointer: number; invoking: Uint8Array }
  | { kind: 'routerSolicitation'; options?: readonly NdpOptionFields[] }
  | ({ kind: 'routerAdvertisement'; options?: readonly NdpOptionFields[] } & NdpRouterAdvertisementFields)
  | { kind: 'neighborSolicitation'; target: Uint8Array; options?: readonly NdpOptionFields[] }
  | ({ kind: 'neighborAdvertisement'; options?: readonly NdpOptionFields[] } & NdpNeighborAdvertisementFields)
  | { kind: 'redirect'; target: Uint8Array; destination: Uint8Array; options?: readonly NdpOptionFields[] }
  | { kind: 'mldv2Report'; records: readonly MldV2RecordFields[] }
  | { kind: 'raw'; type: number; code: number; rest?: number; body?: Uint8Array };

const ERROR_TYPES = {
  destinationUnreachable: ICMPV6_DEST_UNREACHABLE,
  packetTooBig: ICMPV6_PACKET_TOO_BIG,
  timeExceeded: ICMPV6_TIME_EXCEEDED,
  parameterProblem: ICMPV6_PARAMETER_PROBLEM,
} as const;

/**
 * Errors and redirects are cut so the datagram fits the minimum MTU: `maxLength` is the room
 * for the ICMPv6 message (1280 - IPv6 header - extension headers).
 */
function fitOptions(opts: readonly NdpOptionFields[], fixed: number, maxLength: number): readonly NdpOptionFields[] {
  const total = fixed + ndpOptionsLength(opts);
  if (total <= maxLength) return opts;
  return opts.map((o) => {
    if (o.kind !== 'redirectedHeader') return o;
    const others = total - ndpOptionLength(o);
    const room = Math.max(0, (maxLength - others - 8) & ~7);
    return { kind: 'redirectedHeader', packet: o.packet.subarray(0, Math.min(o.packet.length, room)) };
  });
}

/**
 * A new ICMPv6 message with its checksum set for `source` -> `destination`. An error's invoking
 * packet and a redirect's Redirected Header are truncated to fit in `maxLength` bytes (default
 * 1240: the minimum MTU less a bare IPv6 header).
 */
export function buildIcmpV6(
  m: IcmpV6Message,
  source: Uint8Array,
  destination: Uint8Array,
  maxLength = ICMPV6_ERROR_MAX_MESSAGE,
): Uint8Array {
  let out: Uint8Array;
  switch (m.kind) {
    case 'echoRequest':
    case 'echoReply': {
      const data = m.data ?? new Uint8Array(0);
      out = new Uint8Array(ICMPV6_HEADER_LENGTH + data.length);
      encodeIcmpV6Echo(out, 0, {
        type: m.kind === 'echoRequest' ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY,
        identifier: m.identifier,
        sequence: m.sequence,
      });
      out.set(data, ICMPV6_HEADER_LENGTH);
      break;
    }
    case 'destinationUnreachable':
    case 'packetTooBig':
    case 'timeExceeded':
    case 'parameterProblem': {
      const n = Math.max(0, Math.min(m.invoking.length, maxLength - ICMPV6_HEADER_LENGTH));
      out = new Uint8Array(ICMPV6_HEADER_LENGTH + n);
      encodeIcmpV6Error(out, 0, {
        type: ERROR_TYPES[m.kind],
        code: m.kind === 'packetTooBig' ? 0 : m.code,
        parameter: m.kind === 'packetTooBig' ? m.mtu : m.kind === 'parameterProblem' ? m.pointer : 0,
      });
      out.set(m.invoking.subarray(0, n), ICMPV6_HEADER_LENGTH);
      break;
    }
    case 'routerSolicitation': {
      const opts = m.options ?? [];
      out = new Uint8Array(NDP_RS_LENGTH + ndpOptionsLength(opts));
      encodeNdpRouterSolicitation(out, 0);
      encodeNdpOptions(out, NDP_RS_LENGTH, opts);
      break;
    }
    case 'routerAdvertisement': {
      const opts = m.options ?? [];
      out = new Uint8Array(NDP_RA_LENGTH + ndpOptionsLength(opts));
      encodeNdpRouterAdvertisement(out, 0, m);
      encodeNdpOptions(out, NDP_RA_LENGTH, opts);
      break;
    }
    case 'neighborSolicitation': {
      const opts = m.options ?? [];
      out = new Uint8Array(NDP_NS_LENGTH + ndpOptionsLength(opts));
      encodeNdpNeighborSolicitation(out, 0, m);
      encodeNdpOptions(out, NDP_NS_LENGTH, opts);
      break;
    }
    case 'neighborAdvertisement': {
      const opts = m.options ?? [];
      out = new Uint8Array(NDP_NA_LENGTH + ndpOptionsLength(opts));
      encodeNdpNeighborAdvertisement(out, 0, m);
      encodeNdpOptions(out, NDP_NA_LENGTH, opts);
      break;
    }
    case 'redirect': {
      const opts = fitOptions(m.options ?? [], NDP_REDIRECT_LENGTH, maxLength);
      out = new Uint8Array(NDP_REDIRECT_LENGTH + ndpOptionsLength(opts));
      encodeNdpRedirect(out, 0, m);
      encodeNdpOptions(out, NDP_REDIRECT_LENGTH, opts);
      break;
    }
    case 'mldv2Report': {
      let n = ICMPV6_HEADER_LENGTH;
      for (const r of m.records) n += mldV2RecordLength(r);
      out = new Uint8Array(n);
      encodeMldV2Report(out, 0, m.records);
      break;
    }
    case 'raw': {
      const body = m.body ?? new Uint8Array(0);
      out = new Uint8Array(ICMPV6_HEADER_LENGTH + body.length);
      encodeIcmpV6(out, 0, m);
      out.set(body, ICMPV6_HEADER_LENGTH);
      break;
    }
  }
  setIcmpV6Checksum(out, 0, out.length, source, destination);
  return out;
}

export interface IcmpV6PacketFields {
  source: Uint8Array;
  destination: Uint8Array;
  /** Default: 255 for NDP (RFC 4861 requires it), 1 for MLD, else 64. */
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /**
   * Extension headers. Default: none, except MLD messages, which get the Hop-by-Hop Router
   * Alert (value 0) RFC 3810 requires.
   */
  extensions?: readonly IPv6Extension[];
}

function isNdp(kind: IcmpV6Message['kind']): boolean {
  return (
    kind === 'routerSolicitation' ||
    kind === 'routerAdvertisement' ||
    kind === 'neighborSolicitation' ||
    kind === 'neighborAdvertisement' ||
    kind === 'redirect'
  );
}

/** A whole IPv6 datagram carrying the message (checksum set). */
export function buildIcmpV6Packet(m: IcmpV6Message, f: IcmpV6PacketFields): Uint8Array {
  const mld = m.kind === 'mldv2Report';
  const extensions =
    f.extensions ??
    (mld
      ? [{ kind: 'hopByHop' as const, options: [{ type: IPV6_OPTION_ROUTER_ALERT, data: Uint8Array.of(0, IPV6_ROUTER_ALERT_MLD) }] }]
      : []);
  const room = IPV6_MIN_MTU - IPV6_HEADER_LENGTH - ipv6ExtensionsLength(extensions);
  const msg = buildIcmpV6(m, f.source, f.destination, room);
  return buildIPv6(
    {
      source: f.source,
      destination: f.destination,
      hopLimit: f.hopLimit ?? (isNdp(m.kind) ? 255 : mld ? 1 : 64),
      trafficClass: f.trafficClass ?? 0,
      flowLabel: f.flowLabel ?? 0,
      nextHeader: IPV6_NEXT_HEADER_ICMPV6,
      extensions,
    },
    msg,
  );
}