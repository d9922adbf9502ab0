import { formatIPv4, ipv4ToU32, parseIPv4, u32ToIPv4 } from '../core/address.js';
import {
  BOOTREPLY,
  BOOTREQUEST,
  DHCP_CLIENT_PORT,
  DHCP_SERVER_PORT,
  DhcpMessageType,
  DhcpOption,
  encodeDhcp,
  parseDhcp,
  u16Option,
  u32Option,
  type DhcpMessage,
} from '../headers/dhcp.js';
import type { PortableStack as Stack } from './stack.js';
import type { UdpEndpoint } from '../transport/udp.js';

export interface DhcpServerOptions {
  /** NIC to serve (id or name). Its first IPv4 address is the server identifier. */
  nic: number | string;
  /** Addresses handed out, inclusive. A single address when start === end. */
  poolStart: string;
  poolEnd: string;
  prefixLength: number;
  router?: string;
  dns?: string[];
  mtu?: number;
  domain?: string;
  /** Lease time in seconds (default 86400, as slirp). */
  leaseSeconds?: number;
}

export interface DhcpServerStats {
  received: number;
  malformed: number;
  offers: number;
  acks: number;
  naks: number;
  releases: number;
  declines: number;
  ignored: number;
}

interface Lease {
  address: number;
  chaddr: string;
  expires: number;
  /** Offered but not yet requested. */
  offered: boolean;
}

/**
 * A DHCPv4 server (RFC 2131) for a sandbox guest: DISCOVER -> OFFER, REQUEST -> ACK/NAK,
 * RELEASE, DECLINE, INFORM. Replies are broadcast (the guest has no address yet), or unicast to
 * ciaddr when the client already has one. Leases are bounded by the pool.
 */
export class DhcpServer {
  readonly stats: DhcpServerStats = { received: 0, malformed: 0, offers: 0, acks: 0, naks: 0, releases: 0, declines: 0, ignored: 0 };
  private readonly ep: UdpEndpoint;
  private readonly leases = new Map<string, Lease>();
  private readonly byAddress = new Map<number, Lease>();
  private readonly declined = new Set<number>();
  private readonly start: number;
  private readonly end: number;
  private readonly serverId: Uint8Array;
  private readonly leaseSeconds: number;

  constructor(
    private readonly stack: Stack,
    private readonly options: DhcpServerOptions,
  ) {
    const nic = stack.getNIC(options.nic);
    const id = nic.primaryAddress(4);
    if (!id) throw new Error(`DHCP server: ${nic.name} has no IPv4 address`);
    this.serverId = id.slice();
    this.start = ipv4ToU32(parseIPv4(options.poolStart));
    this.end = ipv4ToU32(parseIPv4(options.poolEnd));
    this.leaseSeconds = options.leaseSeconds ?? 86400;
    this.ep = stack.udp();
    this.ep.bindNic = nic.id;
    this.ep.broadcast = true;
    this.ep.bind(null, DHCP_SERVER_PORT);
    this.ep.on('readable', () => this.drain());
  }

  /** Current leases (address -> client hardware address). */
  get activeLeases(): Array<{ address: string; mac: string; expiresAt: number }> {
    return [...this.leases.values()]
      .filter((l) => !l.offered)
      .map((l) => ({ address: formatIPv4(u32ToIPv4(l.address)), mac: l.chaddr, expiresAt: l.expires }));
  }

  close(): void {
    this.ep.close();
  }

  private drain(): void {
    for (let m = this.ep.recv(); m !== null; m = this.ep.recv()) {
      this.stats.received++;
      let req: DhcpMessage;
      try {
        req = parseDhcp(m.data);
      } catch {
        this.stats.malformed++;
        continue;
      }
      if (req.op !== BOOTREQUEST || req.htype !== 1 || req.hlen !== 6) {
        this.stats.ignored++;
        continue;
      }
      this.handle(req);
    }
  }

  private handle(req: DhcpMessage): void {
    const type = req.options.get(DhcpOption.MESSAGE_TYPE)?.[0];
    const mac = [...req.chaddr].map((b) => b.toString(16).padStart(2, '0')).join(':');
    const now = this.stack.clock.now();
    this.expire(now);
    switch (type) {
      case DhcpMessageType.DISCOVER: {
        const addr = this.pick(mac, req);
        if (addr === null) {
          this.stats.ignored++;
          return;
        }
        this.bind(mac, addr, now, true);
        this.stats.offers++;
        this.reply(req, DhcpMessageType.OFFER, addr);
        return;
      }
      case DhcpMessageType.REQUEST: {
        const sid = req.options.get(DhcpOption.SERVER_ID);
        if (sid && ipv4ToU32(sid) !== ipv4ToU32(this.serverId)) {
          // The client chose another server: forget our offer.
          const l = this.leases.get(mac);
          if (l?.offered) this.unbind(l);
          return;
        }
        const wanted = req.options.get(DhcpOption.REQUESTED_IP) ?? req.ciaddr;
        const want = wanted.length === 4 ? ipv4ToU32(wanted) : 0;
        const holder = this.byAddress.get(want);
        if (want === 0 || !this.inPool(want) || (holder && holder.chaddr !== mac) || this.declined.has(want)) {
          this.stats.naks++;
          this.reply(req, DhcpMessageType.NAK, 0);
          return;
        }
        this.bind(mac, want, now, false);
        this.stats.acks++;
        this.reply(req, DhcpMessageType.ACK, want);
        return;
      }
      case DhcpMessageType.RELEASE: {
        const l = this.leases.get(mac);
        if (l && l.address === ipv4ToU32(req.ciaddr)) this.unbind(l);
        this.stats.releases++;
        return;
      }
      case DhcpMessageType.DECLINE: {
        const bad = req.options.get(DhcpOption.REQUESTED_IP);
        if (bad && bad.length === 4) this.declined.add(ipv4ToU32(bad));
        const l = this.leases.get(mac);
        if (l) this.unbind(l);
        this.stats.declines++;
        return;
      }
      case DhcpMessageType.INFORM:
        this.stats.acks++;
        this.reply(req, DhcpMessageType.ACK, 0, true);
        return;
      default:
        this.stats.ignored++;
    }
  }

  private inPool(a: number): boolean {
    return a >= this.start && a <= this.end;
  }

  private pick(mac: string, req: DhcpMessage): number | null {
    const existing = this.leases.get(mac);
    if (existing) return existing.address;
    const requested = req.options.get(DhcpOption.REQUESTED_IP);
    if (requested && requested.length === 4) {
      const r = ipv4ToU32(requested);
      if (this.inPool(r) && !this.byAddress.has(r) && !this.declined.has(r)) return r;
    }
    for (let a = this.start; a <= this.end; a++) {
      if (!this.byAddress.has(a) && !this.declined.has(a)) return a;
    }
    return null;
  }

  private bind(mac: string, address: number, now: number, offered: boolean): void {
    const old = this.leases.get(mac);
    if (old && old.address !== address) this.unbind(old);
    const lease: Lease = { address, chaddr: mac, offered, expires: now + (offered ? 60_000 : this.leaseSeconds * 1000) };
    this.leases.set(mac, lease);
    this.byAddress.set(address, lease);
  }

  private unbind(l: Lease): void {
    this.leases.delete(l.chaddr);
    if (this.byAddress.get(l.address) === l) this.byAddress.delete(l.address);
  }

  private expire(now: number): void {
    for (const l of [...this.leases.values()]) if (l.expires <= now) this.unbind(l);
  }

  private reply(req: DhcpMessage, type: number, yiaddr: number, inform = false): void {
    const o = this.options;
    const options = new Map<number, Uint8Array>();
    options.set(DhcpOption.MESSAGE_TYPE, Uint8Array.of(type));
    options.set(DhcpOption.SERVER_ID, this.serverId);
    if (type !== DhcpMessageType.NAK) {
      if (!inform) {
        options.set(DhcpOption.LEASE_TIME, u32Option(this.leaseSeconds));
        options.set(DhcpOption.RENEWAL_TIME, u32Option(Math.floor(this.leaseSeconds / 2)));
        options.set(DhcpOption.REBINDING_TIME, u32Option(Math.floor((this.leaseSeconds * 7) / 8)));
      }
      const mask = o.prefixLength === 0 ? 0 : (0xffffffff << (32 - o.prefixLength)) >>> 0;
      options.set(DhcpOption.SUBNET_MASK, u32Option(mask));
      if (o.router) options.set(DhcpOption.ROUTER, parseIPv4(o.router));
      if (o.dns && o.dns.length > 0) options.set(DhcpOption.DNS, Uint8Array.from(o.dns.flatMap((d) => [...parseIPv4(d)])));
      if (o.mtu) options.set(DhcpOption.INTERFACE_MTU, u16Option(o.mtu));
      if (o.domain) options.set(DhcpOption.DOMAIN_NAME, new TextEncoder().encode(o.domain));
      const bcast = ((yiaddr || ipv4ToU32(req.ciaddr)) | ~mask) >>> 0;
      options.set(DhcpOption.BROADCAST, u32Option(bcast));
    }
    const msg = encodeDhcp({
      op: BOOTREPLY,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid: req.xid,
      secs: 0,
      flags: req.flags,
      ciaddr: inform ? req.ciaddr : new Uint8Array(4),
      yiaddr: u32ToIPv4(yiaddr),
      siaddr: type === DhcpMessageType.NAK ? new Uint8Array(4) : this.serverId,
      giaddr: req.giaddr,
      chaddr: req.chaddr,
      options,
    });
    // A client with an address (INFORM, renewing) gets a unicast; otherwise broadcast.
    const toCiaddr = ipv4ToU32(req.ciaddr) !== 0 && type !== DhcpMessageType.NAK;
    try {
      this.ep.send(msg, DHCP_CLIENT_PORT, toCiaddr ? req.ciaddr : '255.255.255.255');
    } catch {
      this.stats.ignored++;
    }
  }
}
