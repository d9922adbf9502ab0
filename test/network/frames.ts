/**
 * Packet-level helpers: a stack whose one NIC sits on a ChannelEndpoint carrying Ethernet, so a
 * test reads every frame the stack sends and injects frames of its own; and a small decoder of
 * the frames (through tunstack's header views) for exact field assertions.
 */
import {
  ChannelEndpoint,
  EthernetEndpoint,
  ManualClock,
  Stack,
  formatIPv6,
  formatMAC,
  multicastMac,
  parseIPv6,
  parseMAC,
  type IPv6Protocol,
  type NIC,
  type StackOptions,
} from '../../src/index.js';
import { ETHERTYPE_IPV6, IPV6_WALK_OK, IPv6Walk, IcmpV6Header, NdpOptionIterator, buildEthernet, buildIcmpV6Packet, walkIPv6, type IcmpV6Message, type IcmpV6PacketFields } from '../../src/headers/index.js';
import { LinkType, PcapWriter } from '../../src/pcap/index.js';

export const HOST_MAC = '02:00:00:00:00:0a';
export const PEER_MAC = '02:00:00:00:00:0b';

export interface TapHost {
  clock: ManualClock;
  stack: Stack;
  nic: NIC;
  ip6: IPv6Protocol;
  ch: ChannelEndpoint;
  /** Every frame read so far (in order), kept for a final tshark pass. */
  all: Uint8Array[];
  /** Read the frames sent since the last call. */
  out(): Uint8Array[];
  /** Deliver a frame to the stack. */
  inject(frame: Uint8Array): void;
}

export function tapHost(opts: { seed?: number; stack?: Partial<StackOptions>; enabled?: boolean } = {}): TapHost {
  const clock = new ManualClock();
  const ch = new ChannelEndpoint({ wireFormat: 'ethernet', mtu: 1500, queueLength: 4096 });
  const stack = new Stack({ clock, seed: opts.seed ?? 7, ...opts.stack });
  const nic = stack.createNIC({
    name: 'eth0',
    endpoint: new EthernetEndpoint(ch, { linkAddress: parseMAC(HOST_MAC) }),
    ...(opts.enabled === false ? { enabled: false } : {}),
  });
  const all: Uint8Array[] = [];
  const ip6 = stack.requireNetwork<IPv6Protocol>(ETHERTYPE_IPV6);
  return {
    clock,
    stack,
    nic,
    ip6,
    ch,
    all,
    out() {
      const frames: Uint8Array[] = [];
      for (let p = ch.read(); p !== null; p = ch.read()) frames.push(p.toBytes());
      all.push(...frames);
      return frames;
    },
    inject(frame) {
      all.push(frame);
      ch.injectBytes(frame.slice());
    },
  };
}

/** An Ethernet frame carrying an ICMPv6 message built by the header module (checksum set). */
export function icmpFrame(m: IcmpV6Message, f: IcmpV6PacketFields, ethSrc = PEER_MAC, ethDst?: string): Uint8Array {
  const ip = buildIcmpV6Packet(m, f);
  const dst = ethDst !== undefined ? parseMAC(ethDst) : f.destination[0] === 0xff ? multicastMac(f.destination) : parseMAC(HOST_MAC);
  return buildEthernet({ destination: dst, source: parseMAC(ethSrc), etherType: ETHERTYPE_IPV6 }, ip);
}

export interface Decoded {
  ethDst: string;
  ethSrc: string;
  etherType: number;
  src: string;
  dst: string;
  hopLimit: number;
  flowLabel: number;
  /** Extension headers before the upper layer (count). */
  extensions: number;
  routerAlert: number;
  protocol: number;
  /** The upper layer's bytes. */
  payload: Uint8Array;
  icmp: IcmpV6Header | null;
  /** NDP options: type and the bytes after type and length. */
  options: Array<{ type: number; data: Uint8Array }>;
}

const walk = new IPv6Walk();

/** Decode an Ethernet frame with IPv6 inside (throws when it is something else). */
export function decode(frame: Uint8Array): Decoded {
  const etherType = (frame[12]! << 8) | frame[13]!;
  if (etherType !== ETHERTYPE_IPV6) throw new Error(`not IPv6: ethertype 0x${etherType.toString(16)}`);
  const ip = 14;
  if (walkIPv6(frame, ip, frame.length - ip, walk) !== IPV6_WALK_OK) throw new Error(`bad IPv6 chain: status ${walk.status}`);
  const payload = frame.slice(walk.offset, walk.end);
  let icmp: IcmpV6Header | null = null;
  const options: Array<{ type: number; data: Uint8Array }> = [];
  if (walk.protocol === 58 && !walk.isFragment) {
    icmp = new IcmpV6Header(payload);
    const start = icmp.ndpOptionsOffset;
    if (start >= 0) {
      const it = new NdpOptionIterator().reset(payload, start, payload.length);
      while (it.next()) options.push({ type: it.type, data: payload.slice(it.offset + 2, it.offset + it.length) });
    }
  }
  return {
    ethDst: formatMAC(frame, 0),
    ethSrc: formatMAC(frame, 6),
    etherType,
    src: formatIPv6(frame, ip + 8),
    dst: formatIPv6(frame, ip + 24),
    hopLimit: frame[ip + 7]!,
    flowLabel: ((frame[ip + 1]! & 0x0f) << 16) | (frame[ip + 2]! << 8) | frame[ip + 3]!,
    extensions: walk.headerCount,
    routerAlert: walk.routerAlert,
    protocol: walk.protocol,
    payload,
    icmp,
    options,
  };
}

/** Frames whose ICMPv6 type is `type`. */
export function ofType(frames: Uint8Array[], type: number): Decoded[] {
  return frames
    .filter((f) => f.length > 14 && ((f[12]! << 8) | f[13]!) === ETHERTYPE_IPV6)
    .map(decode)
    .filter((d) => d.icmp?.type === type);
}

export function pcapOf(frames: Uint8Array[]): Uint8Array {
  const w = PcapWriter.inMemory({ linkType: LinkType.ETHERNET });
  frames.forEach((f, i) => w.write(f, 1_700_000_000_000 + i));
  return w.bytes();
}

export const ip6 = parseIPv6;
