import type { Clock } from './clock.js';

/** A token bucket on the stack's clock: `rate` tokens per second, at most `burst` saved. */
export class TokenBucket {
  private tokens: number;
  private at: number;
  constructor(
    private readonly clock: Clock,
    readonly rate: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
    this.at = clock.now();
  }

  take(n = 1): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}
