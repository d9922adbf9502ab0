import type { Clock, Timer } from '../core/clock.js';
import { TunstackError } from '../core/errors.js';
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

interface PendingPing {
  resolve: (r: PingResult) => void;
  reject: (e: Error) => void;
  sentAt: number;
  timer: Timer;
  seq: number;
}

/**
 * The echo requests in flight of one IP protocol (IPv4's ICMP or IPv6's ICMPv6), keyed by
 * identifier and sequence number: one implementation of `ping` for both families.
 */
export class Pinger {
  private readonly pending = new Map<number, PendingPing>();
  private seq = 0;

  constructor(
    private readonly clock: Clock,
    /** The identifier used when a ping names none (drawn once per stack, as ping(8)'s pid). */
    private readonly ident: number,
    /** How a destination is written in messages. */
    private readonly format: (dst: Uint8Array) => string,
  ) {}

  /**
   * Start a ping to `dst` with checked options. `prepare(id, seq, size)` routes and builds the
   * request (throwing rejects the ping before anything is sent) and returns the function that
   * sends it (throwing rejects it after).
   */
  ping(dst: Uint8Array, options: PingOptions, prepare: (id: number, seq: number, size: number) => () => void): Promise<PingResult> {
    const size = options.size ?? 56;
    const id = (options.id ?? this.ident) & 0xffff;
    const seq = options.seq ?? (this.seq = (this.seq + 1) & 0xffff);
    const key = ((id << 16) | seq) >>> 0;
    if (this.pending.has(key)) return Promise.reject(new TunstackError('EBUSY', `ping ${id}/${seq} in flight`));
    let send: () => void;
    try {
      send = prepare(id, seq, size);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return new Promise<PingResult>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(key);
        reject(new TunstackError('ETIMEDOUT', `no echo reply from ${this.format(dst)}`, 'ping'));
      }, options.timeoutMs ?? 1000);
      this.pending.set(key, { resolve, reject, sentAt: this.clock.now(), timer, seq });
      try {
        send();
      } catch (e) {
        timer.cancel();
        this.pending.delete(key);
        reject(e as Error);
      }
    });
  }

  /** Whether a ping with this identifier and sequence number is in flight. */
  has(id: number, seq: number): boolean {
    return this.pending.has(((id << 16) | seq) >>> 0);
  }

  /** An echo reply arrived: settle the matching ping. True if one matched. */
  replied(id: number, seq: number, from: string, ttl: number, bytes: number): boolean {
    const key = ((id << 16) | seq) >>> 0;
    const p = this.pending.get(key);
    if (p === undefined) return false;
    this.pending.delete(key);
    p.timer.cancel();
    p.resolve({ from, rttMs: this.clock.now() - p.sentAt, ttl, bytes, seq });
    return true;
  }

  /** An error quoted one of our echo requests: fail the matching ping. True if one matched. */
  failed(id: number, seq: number, err: Error): boolean {
    const key = ((id << 16) | seq) >>> 0;
    const p = this.pending.get(key);
    if (p === undefined) return false;
    this.pending.delete(key);
    p.timer.cancel();
    p.reject(err);
    return true;
  }

  /** The stack closed: every ping in flight fails with ECONNABORTED. */
  close(): void {
    for (const p of this.pending.values()) {
      p.timer.cancel();
      p.reject(new TunstackError('ECONNABORTED', 'stack closed'));
    }
    this.pending.clear();
  }
}
