/** TCP constants shared by the endpoint's parts (timers, windows, bounds, state bits). */
import type { CaState } from './types.js';

export const IP_PROTO_TCP = 6;

export const RTO_MIN = 200;
export const RTO_MAX = 120_000;
export const RTO_INIT = 1000;
/** RFC 6298 5.7: RTO after a retransmitted SYN when no RTT sample was taken. */
export const RTO_FALLBACK = 3000;
export const ATO_MIN = 40;
export const ATO_MAX = 200;
export const INITIAL_WINDOW_SEGMENTS = 10;
export const DUP_THRESH = 3;
/** Quick ACKs at connection start (Linux TCP_MAX_QUICKACKS). */
export const MAX_QUICKACKS = 16;
/** Segments with less payload copy it (a view and a lease cost more than the copy). */
export const SG_MIN_PAYLOAD = 1024;
/** Most send-buffer ranges one segment borrows; a segment spanning more copies its payload. */
export const SG_MAX_FRAGS = 8;
/** TSO: a super-packet carries at most this many payload bytes (its IP datagram stays within 64 KiB). */
export const GSO_MAX_PAYLOAD = 65535 - 40 - 60;
/** Bound on out-of-order segments held per connection. */
export const MAX_OOO_SEGMENTS = 2048;
/** Smallest sender MSS accepted from the peer or from PMTU (Linux tcp_min_snd_mss). */
export const MIN_SND_MSS = 48;
/** Out-of-window ACK replies at most this often per connection (Linux tcp_invalid_ratelimit). */
export const OOW_RATELIMIT_MS = 500;

// Congestion-avoidance states (Linux's tcp_ca_state).
export const CA_OPEN = 0;
export const CA_DISORDER = 1;
export const CA_RECOVERY = 2;
export const CA_LOSS = 3;
export const CA_NAMES: readonly CaState[] = ['open', 'disorder', 'recovery', 'loss'];

// Pending event bits.
export const EV_CONNECT = 1;
export const EV_READABLE = 2;
export const EV_WRITABLE = 4;
export const EV_END = 8;
export const EV_ERROR = 16;
export const EV_CLOSE = 32;

// What the retransmission timer is doing.
export const RTX_RTO = 0;
export const RTX_PERSIST = 1;

// What sendRange advances.
export const ADV_NONE = 0;
export const ADV_NXT = 1;
export const ADV_HOLE = 2;

// What the keepalive timer is doing.
export const KT_KEEPALIVE = 0;
export const KT_FIN_WAIT_2 = 1;

/** Default MSS when the peer sends none (RFC 9293 3.7.1). */
export function defaultMss(family: 4 | 6): number {
  return family === 4 ? 536 : 1220;
}
