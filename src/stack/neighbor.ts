import type { Clock, Timer } from './clock.js';
import type { PacketBuffer } from './packet.js';
import type { Random } from './random.js';
import { TokenBucket } from './ratelimit.js';

/**
 * Neighbour cache (Linux NUD states, shared by ARP and NDP). One per NIC and network protocol.
 * Packets to an unresolved neighbour wait in a bounded per-entry queue; solicitations are
 * retried every `retransTimeMs`, `maxMulticastProbes` times, then the entry fails and the
 * queued packets are handed back to the protocol (which reports EHOSTUNREACH).
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
  /** Entries at most; beyond it, stale/failed entries are evicted, else new ones refused. */
  maxEntries: number;
  /** Solicitations per second across the cache (token bucket) and burst. */
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
  maxEntries: 1024,
  solicitRate: 100,
  solicitBurst: 100,
};

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
  queuedDropped: number;
  entriesEvicted: number;
  entriesRefused: number;
}

export interface NeighborEntrySnapshot {
  address: Uint8Array;
  linkAddress: Uint8Array | null;
  state: NeighborState;
}

class Entry {
  state: NeighborState = NeighborState.Incomplete;
  linkAddress: Uint8Array | null = null;
  queue: PacketBuffer[] = [];
  probes = 0;
  timer: Timer;
  constructor(
    readonly address: Uint8Array,
    readonly key: string | number,
    clock: Clock,
    fire: (e: Entry) => void,
  ) {
    this.timer = clock.timer(() => fire(this));
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
    entriesEvicted: 0,
    entriesRefused: 0,
  };
  private readonly entries = new Map<string | number, Entry>();
  private readonly solicitBucket: TokenBucket;

  constructor(
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly prober: NeighborProber,
    config: Partial<NeighborConfig> = {},
  ) {
    this.config = { ...DEFAULT_NEIGHBOR_CONFIG, ...config };
    this.solicitBucket = new TokenBucket(clock, this.config.solicitRate, this.config.solicitBurst);
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
          this.stats.entriesRefused++;
          this.prober.resolutionFailed(addr, [pkt]);
          return;
        }
        e = created;
      }
      e.state = NeighborState.Incomplete;
      e.probes = 0;
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
        e.state = NeighborState.Delay;
        e.timer.schedule(this.config.delayFirstProbeTimeMs);
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
      if (created === null) {
        this.stats.entriesRefused++;
        return;
      }
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
      e = new Entry(addr.slice(), key, this.clock, this.onTimer);
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
    if (e.queue.length > 0) this.prober.resolutionFailed(e.address, e.queue.splice(0));
    return true;
  }

  clear(): void {
    for (const e of this.entries.values()) {
      e.timer.cancel();
      e.queue.length = 0;
    }
    this.entries.clear();
  }

  entriesSnapshot(): NeighborEntrySnapshot[] {
    return [...this.entries.values()].map((e) => ({
      address: e.address.slice(),
      linkAddress: e.linkAddress ? e.linkAddress.slice() : null,
      state: e.state,
    }));
  }

  private create(addr: Uint8Array, key: string | number): Entry | null {
    if (this.entries.size >= this.config.maxEntries && !this.evictOne()) return null;
    const e = new Entry(addr.slice(), key, this.clock, this.onTimer);
    this.entries.set(key, e);
    return e;
  }

  private evictOne(): boolean {
    for (const [k, e] of this.entries) {
      if (e.state === NeighborState.Failed || e.state === NeighborState.Stale) {
        e.timer.cancel();
        this.entries.delete(k);
        this.stats.entriesEvicted++;
        return true;
      }
    }
    return false;
  }

  private enqueue(e: Entry, pkt: PacketBuffer): void {
    if (e.queue.length >= this.config.maxQueuedPerEntry) {
      e.queue.shift();
      this.stats.queuedDropped++;
    }
    e.queue.push(pkt);
  }

  private flush(e: Entry): void {
    if (e.queue.length === 0 || !e.linkAddress) return;
    const q = e.queue.splice(0);
    for (const p of q) this.prober.transmit(p, e.linkAddress);
  }

  private solicit(e: Entry, unicastTo: Uint8Array | null): void {
    e.probes++;
    e.timer.schedule(this.config.retransTimeMs);
    if (!this.solicitBucket.take()) {
      this.stats.solicitsRateLimited++;
      return;
    }
    this.stats.solicitsSent++;
    this.prober.sendSolicit(e.address, unicastTo);
  }

  private setState(e: Entry, s: NeighborState): void {
    e.state = s;
    e.probes = 0;
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
        const dropped = e.queue.splice(0);
        this.prober.resolutionFailed(e.address, dropped);
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
