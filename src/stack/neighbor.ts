import type { Clock, Timer } from '../core/clock.js';
import type { PacketBuffer } from '../core/packet.js';
import type { Random } from '../core/random.js';
import { TokenBucket } from '../core/ratelimit.js';

/**
 * Neighbour cache (Linux NUD states, shared by ARP and NDP). One per NIC and network protocol.
 * Packets to an unresolved neighbour wait in a queue bounded per entry (packets and bytes) and
 * across the cache (bytes); solicitations are retried every `retransTimeMs`,
 * `maxMulticastProbes` times, then the entry fails and the queued packets are handed back to the
 * protocol (which reports EHOSTUNREACH).
 *
 * Garbage collection follows Linux's neighbour tables (net/core/neighbour.c): below `gcThresh1`
 * nothing is collected; adding an entry at `gcThresh1` or more runs the periodic pass (at most every
 * `gcIntervalMs`: STALE entries unused for `gcStaleTimeMs` go); adding one at `gcThresh3`, or at
 * `gcThresh2` when the last forced gc is more than 5 s old, runs a forced gc that shrinks the cache
 * towards `gcThresh2`, oldest first by class: INCOMPLETE/FAILED, then STALE, then DELAY/PROBE
 * (in use but not confirmed since they went stale), then REACHABLE entries not confirmed in the
 * last 5 s (Linux spares any entry updated in the last 5 s; here only REACHABLE ones, so that a
 * flood of fresh unconfirmed entries cannot fill the cache). Permanent (static) entries are
 * never collected. Only when that frees nothing at `gcThresh3` is the new entry refused.
 * Deviation from Linux: its forced gc skips entries whose timer holds a reference (an INCOMPLETE
 * entry being probed), so 1024 spoofed neighbours lock new ones out until they fail (3 s); here
 * they are collected first, their queued packets dropped silently (as Linux's neigh_destroy
 * purges an entry's queue).
 */

export const enum NeighborState {
  Incomplete = 'incomplete',
  Reachable = 'reachable',
  Stale = 'stale',
  Delay = 'delay',
  Probe = 'probe',
  Failed = 'failed',
  Static = 'permanent',
}

export interface NeighborConfig {
  /** Base reachable time; each entry gets a random 0.5x..1.5x of it (RFC 4861 6.3.2). */
  baseReachableTimeMs: number;
  retransTimeMs: number;
  delayFirstProbeTimeMs: number;
  maxMulticastProbes: number;
  maxUnicastProbes: number;
  /** Packets queued per unresolved entry (oldest dropped first, as Linux does). */
  maxQueuedPerEntry: number;
  /**
   * Bytes queued per unresolved entry, counted as each packet's buffer (headroom included), its
   * scatter-gather fragments and QUEUED_PACKET_OVERHEAD (Linux counts skb truesize); oldest
   * dropped first. Default
   * 212992, Linux's `unres_qlen_bytes` default (read from a 6.18 kernel's
   * /proc/sys/net/ipv4/neigh/default/unres_qlen_bytes).
   */
  maxQueuedBytesPerEntry: number;
  /** Bytes queued across the whole cache (no Linux equivalent); the oldest packet anywhere goes first. */
  maxQueuedBytesTotal: number;
  /** Linux gc_thresh1: below it the periodic gc does nothing. */
  gcThresh1: number;
  /** Linux gc_thresh2: a forced gc shrinks the cache towards it; above it one runs at most every 5 s. */
  gcThresh2: number;
  /** Linux gc_thresh3: the most entries; a new one is refused only if a forced gc frees nothing. */
  gcThresh3: number;
  /** Linux gc_stale_time: a STALE entry unused this long is collected by the periodic pass. */
  gcStaleTimeMs: number;
  /** Linux gc_interval: the periodic pass runs at most this often (when an entry is added). */
  gcIntervalMs: number;
  /** Retransmitted and unicast solicitations per second across the cache (token bucket) and burst. */
  solicitRate: number;
  solicitBurst: number;
}

export const DEFAULT_NEIGHBOR_CONFIG: NeighborConfig = {
  baseReachableTimeMs: 30_000,
  retransTimeMs: 1_000,
  delayFirstProbeTimeMs: 5_000,
  maxMulticastProbes: 3,
  maxUnicastProbes: 3,
  maxQueuedPerEntry: 64,
  maxQueuedBytesPerEntry: 212_992,
  maxQueuedBytesTotal: 1 << 20,
  gcThresh1: 128,
  gcThresh2: 512,
  gcThresh3: 1024,
  gcStaleTimeMs: 60_000,
  gcIntervalMs: 30_000,
  solicitRate: 100,
  solicitBurst: 100,
};

/**
 * Bytes charged per queued packet on top of its buffer and fragments: the PacketBuffer object
 * itself (Linux's truesize likewise adds its sk_buff and shared info).
 */
export const QUEUED_PACKET_OVERHEAD = 256;

/** Linux's forced gc: at most once per 5 s above gc_thresh2; spares valid entries confirmed within 5 s. */
const FORCED_GC_MS = 5_000;

export interface NeighborProber {
  /** Send a solicitation for `target`; `unicastTo` is the cached link address for a unicast probe. */
  sendSolicit(target: Uint8Array, unicastTo: Uint8Array | null): void;
  /** Transmit a packet with a resolved link address. */
  transmit(pkt: PacketBuffer, linkAddress: Uint8Array): void;
  /** Resolution failed: these packets were dropped (report EHOSTUNREACH to their senders). */
  resolutionFailed(target: Uint8Array, dropped: PacketBuffer[]): void;
}

export interface NeighborStats {
  solicitsSent: number;
  solicitsRateLimited: number;
  resolved: number;
  failed: number;
  /** Packets dropped from the queues, all reasons (the four below). */
  queuedDropped: number;
  /** ...because their entry's packet or byte cap was reached (Linux unres_discards). */
  queueDropsEntryFull: number;
  /** ...because the cache-wide byte cap was reached. */
  queueDropsTotalFull: number;
  /** ...because the gc evicted their entry (dropped silently, as Linux). */
  queueDropsEvicted: number;
  /** ...because resolution failed or the entry was removed (EHOSTUNREACH to their senders). */
  queueDropsFailed: number;
  /** Packets and bytes queued now. */
  queuedPackets: number;
  queuedBytes: number;
  /** Entries collected by the gc (forced and periodic), and by state. */
  entriesEvicted: number;
  evictedIncomplete: number;
  /** STALE, DELAY and PROBE entries. */
  evictedStale: number;
  evictedReachable: number;
  /** Forced gc runs (Linux forced_gc_runs) and periodic passes that ran. */
  forcedGcRuns: number;
  periodicGcRuns: number;
  /** New entries refused: the cache held gcThresh3 entries that no gc could free (Linux table_fulls). */
  entriesRefused: number;
}

export interface NeighborEntrySnapshot {
  address: Uint8Array;
  linkAddress: Uint8Array | null;
  state: NeighborState;
}

/** A queued packet, in its entry's queue and in the cache-wide FIFO; `pkt` is null once it left. */
interface Queued {
  pkt: PacketBuffer | null;
  entry: Entry;
  bytes: number;
}

type DropReason = 'queueDropsEntryFull' | 'queueDropsTotalFull' | 'queueDropsEvicted';

class Entry {
  state: NeighborState = NeighborState.Incomplete;
  linkAddress: Uint8Array | null = null;
  queue: Queued[] = [];
  queuedBytes = 0;
  probes = 0;
  /** Last state change or confirmation (Linux n->updated). */
  updated: number;
  timer: Timer;
  constructor(
    readonly address: Uint8Array,
    readonly key: string | number,
    readonly seq: number,
    clock: Clock,
    fire: (e: Entry) => void,
  ) {
    this.updated = clock.now();
    this.timer = clock.timer(() => fire(this));
  }
}

/** Forced-gc class of an entry: lower goes first; -1 is never collected. */
function gcClass(e: Entry, now: number): number {
  switch (e.state) {
    case NeighborState.Static:
      return -1;
    case NeighborState.Incomplete:
    case NeighborState.Failed:
      return 0;
    case NeighborState.Stale:
      return 1;
    case NeighborState.Reachable:
      return now - e.updated >= FORCED_GC_MS ? 3 : -1;
    default:
      // DELAY and PROBE: in use, but not confirmed since the entry went stale.
      return 2;
  }
}

export class NeighborCache {
  readonly config: NeighborConfig;
  readonly stats: NeighborStats = {
    solicitsSent: 0,
    solicitsRateLimited: 0,
    resolved: 0,
    failed: 0,
    queuedDropped: 0,
    queueDropsEntryFull: 0,
    queueDropsTotalFull: 0,
    queueDropsEvicted: 0,
    queueDropsFailed: 0,
    queuedPackets: 0,
    queuedBytes: 0,
    entriesEvicted: 0,
    evictedIncomplete: 0,
    evictedStale: 0,
    evictedReachable: 0,
    forcedGcRuns: 0,
    periodicGcRuns: 0,
    entriesRefused: 0,
  };
  private readonly entries = new Map<string | number, Entry>();
  private readonly solicitBucket: TokenBucket;
  /** Every queued packet in arrival order (dead records are skipped and compacted away). */
  private fifo: Queued[] = [];
  private fifoHead = 0;
  private seq = 0;
  private lastForcedGc: number;
  private lastPeriodicGc: number;

  constructor(
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly prober: NeighborProber,
    config: Partial<NeighborConfig> = {},
  ) {
    this.config = { ...DEFAULT_NEIGHBOR_CONFIG, ...config };
    this.solicitBucket = new TokenBucket(clock, this.config.solicitRate, this.config.solicitBurst);
    this.lastForcedGc = this.lastPeriodicGc = clock.now();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Send `pkt` to `addr`, resolving first when needed. */
  send(addr: Uint8Array, pkt: PacketBuffer): void {
    const key = keyOf(addr);
    let e = this.entries.get(key);
    if (e === undefined || e.state === NeighborState.Failed) {
      if (e === undefined) {
        const created = this.create(addr, key);
        if (created === null) {
          this.prober.resolutionFailed(addr, [pkt]);
          pkt.releaseFrags();
          return;
        }
        e = created;
      }
      e.state = NeighborState.Incomplete;
      e.probes = 0;
      e.updated = this.clock.now();
      this.enqueue(e, pkt);
      this.solicit(e, null);
      return;
    }
    switch (e.state) {
      case NeighborState.Incomplete:
        this.enqueue(e, pkt);
        return;
      case NeighborState.Stale:
        // RFC 4861 7.3.3: first use of a stale entry moves it to DELAY.
        this.setState(e, NeighborState.Delay);
        this.prober.transmit(pkt, e.linkAddress!);
        return;
      default:
        this.prober.transmit(pkt, e.linkAddress!);
    }
  }

  /** The cached link address if the entry is usable (any state but incomplete/failed). */
  lookup(addr: Uint8Array): Uint8Array | null {
    const e = this.entries.get(keyOf(addr));
    if (!e || e.state === NeighborState.Incomplete || e.state === NeighborState.Failed) return null;
    return e.linkAddress;
  }

  state(addr: Uint8Array): NeighborState | null {
    return this.entries.get(keyOf(addr))?.state ?? null;
  }

  /** Packets queued for `addr` (0 when it has no entry). */
  queuedFor(addr: Uint8Array): number {
    return this.entries.get(keyOf(addr))?.queue.length ?? 0;
  }

  /**
   * Learn or confirm a neighbour. `solicited`: a reply to our solicitation (reachability
   * confirmed). `override`: replace a different cached link address. `create`: add an entry if
   * none exists (as a STALE entry, RFC 4861 7.2.3 / Linux neigh_event_ns).
   */
  update(addr: Uint8Array, linkAddress: Uint8Array, flags: { solicited: boolean; override: boolean; create: boolean }): void {
    const key = keyOf(addr);
    let e = this.entries.get(key);
    if (e === undefined) {
      if (!flags.create) return;
      const created = this.create(addr, key);
      if (created === null) return;
      e = created;
      e.linkAddress = linkAddress.slice();
      this.setState(e, flags.solicited ? NeighborState.Reachable : NeighborState.Stale);
      return;
    }
    if (e.state === NeighborState.Static) return;
    const changed = e.linkAddress === null || !sameBytes(e.linkAddress, linkAddress);
    if (e.state === NeighborState.Incomplete || e.state === NeighborState.Failed) {
      e.linkAddress = linkAddress.slice();
      this.stats.resolved++;
      this.setState(e, flags.solicited ? NeighborState.Reachable : NeighborState.Stale);
      this.flush(e);
      return;
    }
    if (changed && !flags.override) {
      // Keep the old address; an unsolicited change only marks the entry stale.
      if (e.state === NeighborState.Reachable) this.setState(e, NeighborState.Stale);
      return;
    }
    if (changed) e.linkAddress = linkAddress.slice();
    if (flags.solicited) this.setState(e, NeighborState.Reachable);
    else if (changed) this.setState(e, NeighborState.Stale);
  }

  /** Upper-layer reachability confirmation (e.g. TCP ACK progress). */
  confirm(addr: Uint8Array): void {
    const e = this.entries.get(keyOf(addr));
    if (e && e.linkAddress && e.state !== NeighborState.Static && e.state !== NeighborState.Incomplete) {
      this.setState(e, NeighborState.Reachable);
    }
  }

  addStatic(addr: Uint8Array, linkAddress: Uint8Array): void {
    const key = keyOf(addr);
    let e = this.entries.get(key);
    if (!e) {
      e = new Entry(addr.slice(), key, this.seq++, this.clock, this.onTimer);
      this.entries.set(key, e);
    }
    e.linkAddress = linkAddress.slice();
    this.setState(e, NeighborState.Static);
    this.flush(e);
  }

  remove(addr: Uint8Array): boolean {
    const key = keyOf(addr);
    const e = this.entries.get(key);
    if (!e) return false;
    e.timer.cancel();
    this.entries.delete(key);
    this.failQueue(e);
    return true;
  }

  /** Forget every entry; queued packets are dropped silently (the NIC went down). */
  clear(): void {
    for (const e of this.entries.values()) {
      e.timer.cancel();
      this.dropQueue(e, 'queueDropsEvicted');
    }
    this.entries.clear();
    this.fifo = [];
    this.fifoHead = 0;
  }

  entriesSnapshot(): NeighborEntrySnapshot[] {
    return [...this.entries.values()].map((e) => ({
      address: e.address.slice(),
      linkAddress: e.linkAddress ? e.linkAddress.slice() : null,
      state: e.state,
    }));
  }

  private create(addr: Uint8Array, key: string | number): Entry | null {
    const c = this.config;
    const now = this.clock.now();
    if (this.entries.size >= c.gcThresh1 && now - this.lastPeriodicGc >= c.gcIntervalMs) this.periodicGc(now);
    const n = this.entries.size;
    if (n >= c.gcThresh3 || (n >= c.gcThresh2 && now - this.lastForcedGc > FORCED_GC_MS)) {
      this.forcedGc(now);
      if (this.entries.size >= c.gcThresh3) {
        this.stats.entriesRefused++;
        return null;
      }
    }
    const e = new Entry(addr.slice(), key, this.seq++, this.clock, this.onTimer);
    this.entries.set(key, e);
    return e;
  }

  /** Linux neigh_periodic_work, run lazily: STALE entries unused for gcStaleTimeMs go. */
  private periodicGc(now: number): void {
    this.lastPeriodicGc = now;
    this.stats.periodicGcRuns++;
    for (const e of [...this.entries.values()]) {
      if (e.state === NeighborState.Stale && now - e.updated >= this.config.gcStaleTimeMs) this.evict(e);
    }
  }

  /** Linux neigh_forced_gc: shrink towards gcThresh2, the lowest class and oldest first. */
  private forcedGc(now: number): void {
    this.lastForcedGc = now;
    this.stats.forcedGcRuns++;
    const excess = this.entries.size - this.config.gcThresh2;
    if (excess <= 0) return;
    const victims: Array<{ e: Entry; cls: number }> = [];
    for (const e of this.entries.values()) {
      const cls = gcClass(e, now);
      if (cls >= 0) victims.push({ e, cls });
    }
    victims.sort((x, y) => x.cls - y.cls || x.e.updated - y.e.updated || x.e.seq - y.e.seq);
    const n = Math.min(excess, victims.length);
    for (let i = 0; i < n; i++) this.evict(victims[i]!.e);
  }

  private evict(e: Entry): void {
    e.timer.cancel();
    this.entries.delete(e.key);
    const st = this.stats;
    st.entriesEvicted++;
    if (e.state === NeighborState.Incomplete || e.state === NeighborState.Failed) st.evictedIncomplete++;
    else if (e.state === NeighborState.Reachable) st.evictedReachable++;
    else st.evictedStale++;
    this.dropQueue(e, 'queueDropsEvicted');
  }

  private enqueue(e: Entry, pkt: PacketBuffer): void {
    const c = this.config;
    const st = this.stats;
    const bytes = pkt.data.byteLength + pkt.fragBytes + QUEUED_PACKET_OVERHEAD;
    if (bytes > c.maxQueuedBytesPerEntry || bytes > c.maxQueuedBytesTotal) {
      this.discard(pkt, bytes > c.maxQueuedBytesPerEntry ? 'queueDropsEntryFull' : 'queueDropsTotalFull');
      return;
    }
    while (e.queue.length >= c.maxQueuedPerEntry || e.queuedBytes + bytes > c.maxQueuedBytesPerEntry) {
      this.drop(e.queue.shift()!, 'queueDropsEntryFull');
    }
    while (st.queuedBytes + bytes > c.maxQueuedBytesTotal) this.dropOldest();
    // A small packet lives in a shared 64 KiB slab (packet.ts) that it would keep alive while it
    // waits: give it bytes of its own, so that what is charged is what is held.
    const d = pkt.data;
    if (d.byteLength < d.buffer.byteLength) pkt.data = d.slice();
    const q: Queued = { pkt, entry: e, bytes };
    e.queue.push(q);
    e.queuedBytes += bytes;
    st.queuedPackets++;
    st.queuedBytes += bytes;
    const fifo = this.fifo;
    fifo.push(q);
    // Keep the FIFO proportional to what is queued: drop the consumed head and dead records.
    if (this.fifoHead >= 1024 || fifo.length - this.fifoHead > 2 * st.queuedPackets + 256) {
      this.fifo = fifo.slice(this.fifoHead).filter((r) => r.pkt !== null);
      this.fifoHead = 0;
    }
  }

  /** Drop the oldest packet queued anywhere in the cache (the head of its entry's queue). */
  private dropOldest(): void {
    const fifo = this.fifo;
    while (this.fifoHead < fifo.length) {
      const q = fifo[this.fifoHead++]!;
      if (q.pkt === null) continue;
      q.entry.queue.shift();
      this.drop(q, 'queueDropsTotalFull');
      return;
    }
  }

  /** Take a queued packet out of the accounting (its entry's queue is the caller's). */
  private unlink(q: Queued): PacketBuffer {
    const pkt = q.pkt!;
    q.pkt = null; // the FIFO may keep the record a while, not the packet
    q.entry.queuedBytes -= q.bytes;
    this.stats.queuedPackets--;
    this.stats.queuedBytes -= q.bytes;
    return pkt;
  }

  private drop(q: Queued, reason: DropReason): void {
    this.discard(this.unlink(q), reason);
  }

  /** A dropped packet is freed silently, as Linux's kfree_skb: its borrowed bytes are returned. */
  private discard(pkt: PacketBuffer, reason: DropReason): void {
    this.stats.queuedDropped++;
    this.stats[reason]++;
    pkt.releaseFrags();
  }

  private takeQueue(e: Entry): PacketBuffer[] {
    const q = e.queue;
    e.queue = [];
    const out: PacketBuffer[] = new Array<PacketBuffer>(q.length);
    for (let i = 0; i < q.length; i++) out[i] = this.unlink(q[i]!);
    return out;
  }

  private dropQueue(e: Entry, reason: DropReason): void {
    for (const q of e.queue) this.drop(q, reason);
    e.queue = [];
  }

  /** Resolution failed or the entry was removed: hand its packets back for EHOSTUNREACH. */
  private failQueue(e: Entry): void {
    if (e.queue.length === 0) return;
    const dropped = this.takeQueue(e);
    this.stats.queuedDropped += dropped.length;
    this.stats.queueDropsFailed += dropped.length;
    this.prober.resolutionFailed(e.address, dropped);
    for (const p of dropped) p.releaseFrags();
  }

  private flush(e: Entry): void {
    if (e.queue.length === 0 || !e.linkAddress) return;
    for (const p of this.takeQueue(e)) this.prober.transmit(p, e.linkAddress);
  }

  private solicit(e: Entry, unicastTo: Uint8Array | null): void {
    // A new entry's first solicitation always goes out, one per entry as Linux sends it (the gc
    // bounds the entries); only retransmissions and unicast probes draw from the bucket, so that
    // a flood of unresolvable entries cannot starve a new neighbour's resolution.
    const first = e.probes === 0 && e.state === NeighborState.Incomplete;
    e.probes++;
    e.timer.schedule(this.config.retransTimeMs);
    if (!first && !this.solicitBucket.take()) {
      this.stats.solicitsRateLimited++;
      return;
    }
    this.stats.solicitsSent++;
    this.prober.sendSolicit(e.address, unicastTo);
  }

  private setState(e: Entry, s: NeighborState): void {
    e.state = s;
    e.probes = 0;
    e.updated = this.clock.now();
    switch (s) {
      case NeighborState.Reachable: {
        const base = this.config.baseReachableTimeMs;
        e.timer.schedule(base * (0.5 + this.random.float()));
        break;
      }
      case NeighborState.Delay:
        e.timer.schedule(this.config.delayFirstProbeTimeMs);
        break;
      default:
        e.timer.cancel();
    }
  }

  private readonly onTimer = (e: Entry): void => {
    switch (e.state) {
      case NeighborState.Reachable:
        this.setState(e, NeighborState.Stale);
        return;
      case NeighborState.Delay:
        e.state = NeighborState.Probe;
        e.probes = 0;
        this.solicit(e, e.linkAddress);
        return;
      case NeighborState.Incomplete:
      case NeighborState.Probe: {
        const max = e.state === NeighborState.Incomplete ? this.config.maxMulticastProbes : this.config.maxUnicastProbes;
        if (e.probes < max) {
          this.solicit(e, e.state === NeighborState.Probe ? e.linkAddress : null);
          return;
        }
        this.stats.failed++;
        e.timer.cancel();
        this.entries.delete(e.key);
        this.failQueue(e);
        return;
      }
      default:
        return;
    }
  };
}

/** The last 16-byte address keyed and its key: a forwarding burst to one next hop builds no strings. */
const lastAddr = new Uint8Array(16);
let lastKey = '';

function keyOf(addr: Uint8Array): string | number {
  if (addr.length === 4) return ((addr[0]! << 24) | (addr[1]! << 16) | (addr[2]! << 8) | addr[3]!) >>> 0;
  if (addr.length === 16 && lastKey !== '') {
    let same = true;
    for (let i = 15; i >= 0; i--) {
      if (addr[i] !== lastAddr[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastKey;
  }
  // Two bytes per character: an IPv6 key is 8 characters.
  let s = '';
  for (let i = 0; i + 1 < addr.length; i += 2) s += String.fromCharCode((addr[i]! << 8) | addr[i + 1]!);
  if ((addr.length & 1) !== 0) s += String.fromCharCode(addr[addr.length - 1]!);
  if (addr.length === 16) {
    lastAddr.set(addr);
    lastKey = s;
  }
  return s;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
