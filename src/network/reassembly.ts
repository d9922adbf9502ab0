import type { Clock, Timer } from '../core/clock.js';

/**
 * Fragment reassembly shared by IPv4 and IPv6: bounded memory, a timeout per datagram, and
 * RFC 5722 handling of overlaps (an overlapping fragment discards the whole datagram; an exact
 * duplicate is ignored).
 */

export interface ReassemblyConfig {
  /** Bytes of fragment data held at most across all datagrams (Linux ipfrag_high_thresh: 4 MiB). */
  maxBytes: number;
  /** Datagrams in progress at most. */
  maxDatagrams: number;
  /** Fragments per datagram at most. */
  maxFragments: number;
  /** Time allowed to complete a datagram (Linux ipfrag_time: 30 s; IPv6 60 s). */
  timeoutMs: number;
}

export interface ReassemblyStats {
  fragmentsReceived: number;
  reassembled: number;
  timeouts: number;
  overlapsDropped: number;
  duplicatesIgnored: number;
  memoryEvictions: number;
  tooManyFragments: number;
  badFragments: number;
}

interface Fragment {
  offset: number;
  end: number;
  data: Uint8Array;
}

class Datagram {
  fragments: Fragment[] = [];
  bytes = 0;
  /** Total payload length, known once the last fragment (MF = 0) arrived; -1 until then. */
  total = -1;
  /** The first fragment's network header (and the start of its payload), kept for
   * reassembly and for the ICMP time exceeded message. */
  firstHeader: Uint8Array | null = null;
  firstPacket: Uint8Array | null = null;
  timer: Timer | null = null;
  dead = false;
  constructor(readonly key: string) {}
}

export interface Completed {
  /** The first fragment's header bytes (network header incl. unfragmentable part). */
  header: Uint8Array;
  /** The reassembled payload. */
  payload: Uint8Array;
}

export class Reassembler {
  readonly stats: ReassemblyStats = {
    fragmentsReceived: 0,
    reassembled: 0,
    timeouts: 0,
    overlapsDropped: 0,
    duplicatesIgnored: 0,
    memoryEvictions: 0,
    tooManyFragments: 0,
    badFragments: 0,
  };
  private readonly datagrams = new Map<string, Datagram>();
  private bytes = 0;

  constructor(
    private readonly clock: Clock,
    readonly config: ReassemblyConfig,
    /** Called when a datagram times out; `firstPacket` is the first fragment if it arrived. */
    private readonly onTimeout: (firstPacket: Uint8Array | null) => void,
  ) {}

  get memoryUsed(): number {
    return this.bytes;
  }

  get inProgress(): number {
    return this.datagrams.size;
  }

  /**
   * Add one fragment. `header` is its network header (copied only for the first fragment),
   * `data` its payload (copied), `offset` in bytes, `more` the MF flag, `whole` the entire
   * fragment packet (kept for the first fragment, for ICMP). Returns the datagram when complete.
   */
  add(key: string, header: Uint8Array, data: Uint8Array, offset: number, more: boolean, whole: Uint8Array): Completed | null {
    this.stats.fragmentsReceived++;
    const end = offset + data.length;
    if ((more && data.length % 8 !== 0) || end > 65535 || (more && data.length === 0)) {
      this.stats.badFragments++;
      return null;
    }
    let d = this.datagrams.get(key);
    if (!d) {
      if (this.datagrams.size >= this.config.maxDatagrams) this.evictOldest();
      d = new Datagram(key);
      this.datagrams.set(key, d);
      const dg = d;
      d.timer = this.clock.setTimeout(() => this.expire(dg), this.config.timeoutMs);
    }
    if (!more) {
      if (d.total >= 0 && d.total !== end) return this.discard(d, 'bad');
      // A fragment claiming to end before data we already have is inconsistent.
      for (const f of d.fragments) if (f.end > end) return this.discard(d, 'bad');
      d.total = end;
    } else if (d.total >= 0 && end > d.total) {
      return this.discard(d, 'bad');
    }
    // Find the insertion point; detect duplicates and overlaps.
    const frags = d.fragments;
    let i = 0;
    while (i < frags.length && frags[i]!.offset < offset) i++;
    const prev = i > 0 ? frags[i - 1]! : null;
    const next = i < frags.length ? frags[i]! : null;
    if (next && next.offset === offset && next.end === end) {
      this.stats.duplicatesIgnored++;
      return null;
    }
    if ((prev && prev.end > offset) || (next && next.offset < end)) {
      this.stats.overlapsDropped++;
      return this.discard(d, 'overlap');
    }
    if (frags.length >= this.config.maxFragments) {
      this.stats.tooManyFragments++;
      return this.discard(d, 'bad');
    }
    while (this.bytes + data.length > this.config.maxBytes && this.datagrams.size > 0) {
      const victim = this.oldest();
      if (!victim || victim === d) break;
      this.stats.memoryEvictions++;
      this.remove(victim);
    }
    if (this.bytes + data.length > this.config.maxBytes) {
      this.stats.memoryEvictions++;
      return this.discard(d, 'bad');
    }
    frags.splice(i, 0, { offset, end, data: data.slice() });
    d.bytes += data.length;
    this.bytes += data.length;
    if (offset === 0) {
      d.firstHeader = header.slice();
      d.firstPacket = whole.slice(0, Math.min(whole.length, header.length + 8));
    }
    if (d.total < 0 || d.firstHeader === null) return null;
    // Complete when fragments are contiguous from 0 to total.
    let covered = 0;
    for (const f of frags) {
      if (f.offset !== covered) return null;
      covered = f.end;
    }
    if (covered !== d.total) return null;
    const payload = new Uint8Array(d.total);
    for (const f of frags) payload.set(f.data, f.offset);
    const header0 = d.firstHeader;
    this.remove(d);
    this.stats.reassembled++;
    return { header: header0, payload };
  }

  /** Drop everything (timers included). */
  clear(): void {
    for (const d of [...this.datagrams.values()]) this.remove(d);
  }

  private discard(d: Datagram, why: 'bad' | 'overlap'): null {
    if (why === 'bad') this.stats.badFragments++;
    this.remove(d);
    return null;
  }

  private expire(d: Datagram): void {
    if (d.dead) return;
    this.stats.timeouts++;
    const first = d.firstPacket;
    this.remove(d);
    this.onTimeout(first);
  }

  private remove(d: Datagram): void {
    if (d.dead) return;
    d.dead = true;
    d.timer?.cancel();
    this.bytes -= d.bytes;
    this.datagrams.delete(d.key);
  }

  private oldest(): Datagram | undefined {
    // Map iteration order is insertion order: the first is the oldest.
    return this.datagrams.values().next().value;
  }

  private evictOldest(): void {
    const o = this.oldest();
    if (o) {
      this.stats.memoryEvictions++;
      this.remove(o);
    }
  }
}
