/**
 * One direction of a TCP byte stream rebuilt from segments by their offset (sequence number minus
 * the initial sequence number, minus one for the SYN). Retransmissions and overlaps keep the
 * first copy of each byte. Bounded: bytes beyond `limit` are counted but not stored.
 */
export class StreamAssembly {
  /** Bytes known contiguously from offset 0. */
  private buf = new Uint8Array(1024);
  private contiguous = 0;
  /** Segments beyond a hole, by offset. */
  private pending = new Map<number, Uint8Array>();
  /** Highest offset + length seen (the stream's extent, holes included). */
  highest = 0;
  /** Bytes not stored because they lay beyond `limit`. */
  overflow = 0;

  constructor(readonly limit = 64 * 1024 * 1024) {}

  /** The contiguous length from offset 0. */
  get length(): number {
    return this.contiguous;
  }

  /** Record `data` at stream offset `offset` (which may be negative for bytes before the start). */
  add(offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    if (offset < 0) {
      if (offset + data.length <= 0) return;
      data = data.subarray(-offset);
      offset = 0;
    }
    const end = offset + data.length;
    if (end > this.highest) this.highest = end;
    if (offset > this.limit) {
      this.overflow += data.length;
      return;
    }
    if (end > this.limit) {
      this.overflow += end - this.limit;
      data = data.subarray(0, this.limit - offset);
    }
    if (offset > this.contiguous) {
      const prev = this.pending.get(offset);
      if (prev === undefined || prev.length < data.length) this.pending.set(offset, data.slice());
      return;
    }
    this.append(offset, data);
    // Pull in pending segments that now touch the contiguous prefix.
    let moved = true;
    while (moved && this.pending.size > 0) {
      moved = false;
      for (const [o, d] of this.pending) {
        if (o <= this.contiguous) {
          this.pending.delete(o);
          this.append(o, d);
          moved = true;
        }
      }
    }
  }

  private append(offset: number, data: Uint8Array): void {
    const end = offset + data.length;
    if (end <= this.contiguous) return;
    if (end > this.buf.length) {
      let n = this.buf.length;
      while (n < end) n *= 2;
      const nb = new Uint8Array(n);
      nb.set(this.buf.subarray(0, this.contiguous));
      this.buf = nb;
    }
    this.buf.set(data.subarray(this.contiguous - offset), this.contiguous);
    this.contiguous = end;
  }

  /** The contiguous bytes (a view, valid until the next add). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.contiguous);
  }
}

/** Sequence-number arithmetic modulo 2^32. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}
