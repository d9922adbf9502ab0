/** Shared bits of the tun device tests: a stack on a ManualClock, packets built with src/headers. */
import {
  ManualClock,
  Stack,
  TunstackError,
  parseIPv4,
  type TunDevice,
} from '../../src/index.js';
import { buildIPv4, buildIcmpV4Echo, buildUdp, IP_PROTO_ICMP, IP_PROTO_UDP } from '../../src/headers/index.js';

export function newStack(seed = 7): { stack: Stack; clock: ManualClock } {
  const clock = new ManualClock();
  return { stack: new Stack({ clock, seed }), clock };
}

/** The errno code a call throws, or 'ok'. Anything but a TunstackError is re-thrown. */
export function errno(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof TunstackError) return e.code;
    throw e;
  }
}

export const PEER = '10.0.0.2';
export const LOCAL = '10.0.0.1';

/** An ICMP echo request from PEER to LOCAL (IPv4 header and ICMP checksums valid). */
export function echoRequest(opts: { ident?: number; seq?: number; data?: Uint8Array; src?: string; dst?: string; id?: number } = {}): Uint8Array {
  const data = opts.data ?? Uint8Array.from({ length: 24 }, (_, i) => (i * 11) & 0xff);
  const icmp = buildIcmpV4Echo({ ident: opts.ident ?? 0x1234, sequence: opts.seq ?? 1, data });
  return buildIPv4({ src: parseIPv4(opts.src ?? PEER), dst: parseIPv4(opts.dst ?? LOCAL), protocol: IP_PROTO_ICMP, id: opts.id ?? 77 }, icmp);
}

/** A UDP datagram (checksum set) between the given addresses/ports. */
export function udpPacket(src: string, sport: number, dst: string, dport: number, payload: Uint8Array, id = 1): Uint8Array {
  const s = parseIPv4(src);
  const d = parseIPv4(dst);
  const udp = buildUdp({ srcPort: sport, dstPort: dport, pseudoHeader: { src: s, dst: d } }, payload);
  return buildIPv4({ src: s, dst: d, protocol: IP_PROTO_UDP, id }, udp);
}

/** Drain every queued packet of a device. */
export function drain(dev: TunDevice): Uint8Array[] {
  const out: Uint8Array[] = [];
  while (dev.readiness(1) & 1) out.push(dev.read());
  return out;
}
