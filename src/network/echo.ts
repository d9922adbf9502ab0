import { PacketBuffer } from '../core/packet.js';
import { expectAddress, optionalBoolean, optionalInteger, optionalNicRef, optionalNumber, optionsObject } from '../core/validate.js';

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

export interface PingOptions {
  /** ICMP payload bytes (default 56, as ping). */
  size?: number;
  id?: number;
  seq?: number;
  ttl?: number;
  timeoutMs?: number;
  /** Set DF (default false). */
  dontFragment?: boolean;
  nic?: number | string;
}

export interface PingResult {
  from: string;
  rttMs: number;
  ttl: number;
  bytes: number;
  seq: number;
}

/** ping()'s arguments for one family: the destination's bytes and the checked options. */
export function checkPingArgs(host: unknown, options: unknown, family: 4 | 6): { dst: Uint8Array; options: PingOptions } {
  const where = 'ping';
  const dst = expectAddress(host, where, 'host', family);
  // The largest echo payload in one IP datagram (65535 less the IP and ICMP headers).
  const maxSize = family === 4 ? 65507 : 65527;
  const o = optionsObject<PingOptions>(options, where);
  optionalInteger(o.size, where, 'options.size', 0, maxSize);
  optionalInteger(o.id, where, 'options.id', 0, 0xffff);
  optionalInteger(o.seq, where, 'options.seq', 0, 0xffff);
  optionalInteger(o.ttl, where, 'options.ttl', 1, 255);
  // Node's timers take at most 2^31-1 ms.
  optionalNumber(o.timeoutMs, where, 'options.timeoutMs', Number.MIN_VALUE, 0x7fffffff);
  optionalBoolean(o.dontFragment, where, 'options.dontFragment');
  optionalNicRef(o.nic, where, 'options.nic');
  return { dst, options: o };
}
