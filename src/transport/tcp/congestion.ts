/**
 * Congestion control: Reno (RFC 5681) and CUBIC (RFC 9438, the default, as Linux). Both keep the
 * congestion window in bytes on the host (the endpoint); CUBIC computes in segments internally.
 * Slow start is shared: cwnd grows by the bytes acknowledged (RFC 3465 without the L limit, as
 * Linux) up to ssthresh.
 */

/** What congestion control reads and writes on an endpoint. */
export interface CcHost {
  /** Congestion window, bytes (may be fractional). */
  cwnd: number;
  /** Slow-start threshold, bytes. */
  ssthresh: number;
  /** Sender MSS, bytes. */
  readonly sndMss: number;
  /** Smoothed RTT in ms (0 when unknown). */
  readonly srtt: number;
}

export type CongestionControlName = 'cubic' | 'reno';

export interface CongestionControl {
  readonly name: CongestionControlName;
  /** `acked` bytes newly acknowledged while cwnd-limited, outside loss recovery. */
  onAck(h: CcHost, acked: number, now: number): void;
  /** Loss detected (fast retransmit): returns the new ssthresh; cwnd is set by the caller. */
  onLoss(h: CcHost, flight: number, now: number): number;
  /** Retransmission timeout: returns the new ssthresh. */
  onRto(h: CcHost, flight: number, now: number): number;
  /** The connection sent after `idleMs` without data in flight (RFC 9438 4.8 epoch shift). */
  onIdle(idleMs: number): void;
}

function slowStart(h: CcHost, acked: number): number {
  const room = h.ssthresh - h.cwnd;
  const n = acked < room ? acked : room;
  h.cwnd += n;
  return acked - n;
}

export class Reno implements CongestionControl {
  readonly name = 'reno' as const;
  private bytesAcked = 0;

  onAck(h: CcHost, acked: number): void {
    if (h.cwnd < h.ssthresh) {
      acked = slowStart(h, acked);
      if (acked <= 0) return;
    }
    // Congestion avoidance: one MSS per cwnd of bytes acknowledged (RFC 5681 3.1, byte counting).
    this.bytesAcked += acked;
    if (this.bytesAcked >= h.cwnd) {
      this.bytesAcked -= h.cwnd;
      h.cwnd += h.sndMss;
    }
  }

  onLoss(h: CcHost, flight: number): number {
    this.bytesAcked = 0;
    return Math.max(flight / 2, 2 * h.sndMss);
  }

  onRto(h: CcHost, flight: number): number {
    this.bytesAcked = 0;
    return Math.max(flight / 2, 2 * h.sndMss);
  }

  onIdle(): void {}
}

/** CUBIC constants (RFC 9438 4.1 and 4.6). */
export const CUBIC_C = 0.4;
export const CUBIC_BETA = 0.7;

export class Cubic implements CongestionControl {
  readonly name = 'cubic' as const;
  /** Window (segments) before the last reduction. */
  wMax = 0;
  /** Time (ms) the current congestion-avoidance epoch started, or -1. */
  epochStart = -1;
  /** K in seconds. */
  k = 0;
  private origin = 0;
  /** Reno-friendly estimate (segments). */
  wEst = 0;
  fastConvergence = true;

  onAck(h: CcHost, acked: number, now: number): void {
    if (h.cwnd < h.ssthresh) {
      acked = slowStart(h, acked);
      if (acked <= 0) return;
    }
    const mss = h.sndMss;
    const cwndSeg = h.cwnd / mss;
    if (this.epochStart < 0) {
      this.epochStart = now;
      if (cwndSeg < this.wMax) {
        this.k = Math.cbrt((this.wMax - cwndSeg) / CUBIC_C);
        this.origin = this.wMax;
      } else {
        this.k = 0;
        this.origin = cwndSeg;
      }
      this.wEst = cwndSeg;
    }
    const segs = acked / mss;
    const t = (now - this.epochStart) / 1000;
    const rtt = h.srtt / 1000;
    // W_cubic(t + RTT), limited to [cwnd, 1.5 cwnd] (RFC 9438 4.2).
    const d = t + rtt - this.k;
    let target = this.origin + CUBIC_C * d * d * d;
    if (target < cwndSeg) target = cwndSeg;
    else if (target > 1.5 * cwndSeg) target = 1.5 * cwndSeg;
    // Reno-friendly region (4.3): alpha = 3(1-beta)/(1+beta) until W_est reaches W_max, then 1.
    const alpha = this.wEst >= this.wMax ? 1 : (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);
    this.wEst += (alpha * segs) / cwndSeg;
    const dt = t - this.k;
    const wCubicNow = this.origin + CUBIC_C * dt * dt * dt;
    if (wCubicNow < this.wEst) {
      if (this.wEst > cwndSeg) h.cwnd = this.wEst * mss;
    } else {
      h.cwnd += (((target - cwndSeg) / cwndSeg) * segs) * mss;
    }
  }

  /** RFC 9438 4.6: W_max from cwnd (with fast convergence, 4.7), ssthresh = flight * beta. */
  private reduce(h: CcHost, flight: number): number {
    const cwndSeg = h.cwnd / h.sndMss;
    this.epochStart = -1;
    if (this.fastConvergence && cwndSeg < this.wMax) this.wMax = (cwndSeg * (1 + CUBIC_BETA)) / 2;
    else this.wMax = cwndSeg;
    const base = flight > 0 ? flight : h.cwnd;
    return Math.max(base * CUBIC_BETA, 2 * h.sndMss);
  }

  onLoss(h: CcHost, flight = h.cwnd): number {
    return this.reduce(h, flight);
  }

  onRto(h: CcHost, flight = h.cwnd): number {
    return this.reduce(h, flight);
  }

  onIdle(idleMs: number): void {
    if (this.epochStart >= 0) this.epochStart += idleMs;
  }
}

export function createCongestionControl(name: CongestionControlName): CongestionControl {
  return name === 'reno' ? new Reno() : new Cubic();
}
