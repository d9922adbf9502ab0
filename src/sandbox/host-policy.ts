/**
 * "Is this the host?": the one decision every sandbox relay (TCP, UDP, ICMP; DNS may ask too)
 * takes before it lets a guest packet become a host socket's traffic.
 *
 * A relay that connects a host socket to a guest-chosen address reaches the host itself when
 * that address is one Linux delivers locally. Linux treats as the local host:
 * - IPv4 0.0.0.0/8 (connecting to 0.0.0.0 reaches the loopback) and 127.0.0.0/8;
 * - IPv6 :: (connecting to it reaches ::1) and ::1;
 * - the IPv4-mapped (::ffff:a.b.c.d, which an IPv6 socket sends over IPv4) and IPv4-compatible
 *   (::a.b.c.d) forms of those, which include :: and ::1 themselves;
 * - every address of the host's own interfaces (services bound to the wildcard answer there).
 *
 * `isLocalHostAddress` answers the first three: these are never relayed from a guest, whatever
 * the options (the gateway address is the only way to the host's loopback, and only with
 * hostLoopback). `HostPolicy` adds the host's interface addresses when asked to refuse them
 * (`hostAddresses: false`, the stricter mode; slirp4netns leaves them reachable, and so does the
 * default). The interface list is read with os.networkInterfaces() and refreshed at most once
 * per `refreshMs` (default 1 s), so an address the host gains is refused within that time.
 */
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { formatIP, tryParseIPv4, tryParseIPv6 } from '../core/address.js';

/** Parse a textual address (IPv4 or IPv6, zone ignored) to bytes, or null. */
function toBytes(address: string | Uint8Array): Uint8Array | null {
  if (typeof address !== 'string') return address.length === 4 || address.length === 16 ? address : null;
  return address.includes(':') ? tryParseIPv6(address) : tryParseIPv4(address);
}

/**
 * The IPv4 address an IPv6 address stands for when it is IPv4-mapped (::ffff:0:0/96) or
 * IPv4-compatible (::/96, which holds :: and ::1 too); null for any other IPv6 address. An IPv4
 * address is returned as it is.
 */
export function embeddedIPv4(a: Uint8Array): Uint8Array | null {
  if (a.length === 4) return a;
  if (a.length !== 16) return null;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return null;
  const mapped = a[10] === 0xff && a[11] === 0xff;
  const compatible = a[10] === 0 && a[11] === 0;
  return mapped || compatible ? a.subarray(12, 16) : null;
}

/**
 * True when a connection or datagram to `address` is delivered to the local host by Linux
 * whatever its interfaces: 0.0.0.0/8, 127.0.0.0/8, ::, ::1, and their IPv4-mapped and
 * IPv4-compatible forms. Unparsable input counts as the host (refused).
 */
export function isLocalHostAddress(address: string | Uint8Array): boolean {
  const a = toBytes(address);
  if (a === null) return true;
  const v4 = embeddedIPv4(a);
  // ::/96 covers :: (0.0.0.0) and ::1 (0.0.0.1): both land in 0.0.0.0/8 here.
  return v4 !== null && (v4[0] === 0 || v4[0] === 127);
}

export interface HostPolicyOptions {
  /** The host's own interface addresses may be reached (default true, as slirp4netns). */
  hostAddresses?: boolean;
  /** Where the interface list comes from (default os.networkInterfaces). */
  interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
  /** Milliseconds between re-reads of the interface list (default 1000). */
  refreshMs?: number;
  /** Time in ms (default Date.now; the sandbox passes its stack's clock). */
  now?: () => number;
}

/** The host's own addresses, canonical text: each interface address and, for IPv4, its subnet broadcast. */
function hostAddressSet(ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>): Set<string> {
  const set = new Set<string>();
  for (const list of Object.values(ifaces)) {
    for (const info of list ?? []) {
      const a = toBytes(info.address);
      if (a === null) continue;
      const v4 = embeddedIPv4(a);
      set.add(formatIP(v4 ?? a));
      const mask = toBytes(info.netmask);
      if (a.length === 4 && mask !== null && mask.length === 4) {
        set.add(formatIP(a.map((b, i) => (b | ~mask[i]!) & 0xff)));
      }
    }
  }
  return set;
}

/** Decides whether a guest destination is the host (see the file comment). */
export class HostPolicy {
  readonly hostAddresses: boolean;
  private readonly interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private cache: Set<string> | null = null;
  private readAt = 0;
  private reads = 0;

  constructor(options: HostPolicyOptions = {}) {
    this.hostAddresses = options.hostAddresses ?? true;
    this.interfaces = options.interfaces ?? networkInterfaces;
    this.refreshMs = options.refreshMs ?? 1000;
    this.now = options.now ?? Date.now;
  }

  /**
   * True when traffic to `address` would reach this host: always for the loopback and
   * unspecified forms (isLocalHostAddress), and for the host's interface addresses when they are
   * refused (`hostAddresses: false`).
   */
  isHost(address: string | Uint8Array): boolean {
    const a = toBytes(address);
    if (a === null || isLocalHostAddress(a)) return true;
    if (this.hostAddresses) return false;
    return this.ownAddresses().has(formatIP(embeddedIPv4(a) ?? a));
  }

  /** Counts re-reads of the interface list: decisions cached under an older one are stale. */
  get version(): number {
    return this.reads;
  }

  /** The host's interface addresses as last read (re-read when older than `refreshMs`). */
  ownAddresses(): Set<string> {
    const t = this.now();
    if (this.cache === null || t - this.readAt >= this.refreshMs || t < this.readAt) {
      try {
        this.cache = hostAddressSet(this.interfaces());
      } catch {
        // Keep the last list (none yet: only the loopback forms are known).
        this.cache ??= new Set();
      }
      this.readAt = t;
      this.reads++;
    }
    return this.cache;
  }
}
