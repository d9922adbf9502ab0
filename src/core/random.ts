import { ManualClock, type Clock } from './clock.js';

/**
 * The stack's seeded random source (xoshiro128**, seeded through splitmix32).
 * Every random number the stack uses (ISNs, IP IDs, ephemeral ports, jitter, fault decisions)
 * comes from one of these, so a run with a fixed seed is reproducible.
 */
export class Random {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  readonly seed: number;

  constructor(seed?: number) {
    this.seed = seed === undefined ? randomSeed() : seed >>> 0;
    let x = this.seed;
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [0, n) for 0 < n <= 2^32, without modulo bias. */
  below(n: number): number {
    if (!(n > 0 && n <= 4294967296)) throw new RangeError(`Random.below: bad bound ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const v = this.u32();
      if (v < limit) return v % n;
    }
  }

  /** An integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** Fill bytes with random data. */
  fill(out: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= out.length; i += 4) {
      const v = this.u32();
      out[i] = v;
      out[i + 1] = v >>> 8;
      out[i + 2] = v >>> 16;
      out[i + 3] = v >>> 24;
    }
    if (i < out.length) {
      let v = this.u32();
      for (; i < out.length; i++, v >>>= 8) out[i] = v;
    }
    return out;
  }

  /** A new independent source derived from this one (for a sub-component). */
  fork(): Random {
    return new Random(this.u32());
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Transaction IDs for DNS queries (the sandbox relay's upstream queries, stack.dns's queries):
 * from the CSPRNG (Web Crypto's getRandomValues), so that an off-path attacker cannot predict them; from the stack's seeded source only when the stack runs on a
 * ManualClock (a reproducible simulation, where nothing real is at stake).
 */
export function upstreamIdSource(stack: { clock: Clock; random: Random }): () => number {
  if (stack.clock instanceof ManualClock) {
    const r = stack.random.fork();
    return () => r.below(0x10000);
  }
  return () => cryptoU32() & 0xffff;
}

/** A fresh seed from the platform's CSPRNG (Web Crypto: Node 20 and browsers have it as a global). */
function randomSeed(): number {
  return cryptoU32() & 0x7fffffff;
}

/** 32 bits from the platform's CSPRNG. */
function cryptoU32(): number {
  const word = new Uint32Array(1);
  globalThis.crypto.getRandomValues(word);
  return word[0]!;
}
