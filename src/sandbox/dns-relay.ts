import { createSocket, type Socket as NodeDgram } from 'node:dgram';
import { promises as dnsPromises } from 'node:dns';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseIP } from '../headers/address.js';
import { DNS_RCODE_NOERROR, DNS_RCODE_SERVFAIL, DNS_TYPE_A, DNS_TYPE_AAAA, decodeQuestion, encodeAnswer } from '../headers/dns.js';
import type { Stack } from '../stack/stack.js';
import type { UdpEndpoint, UdpMessage } from '../transport/udp.js';

export type Lookup = (name: string, family: 4 | 6) => Promise<Uint8Array[]>;

export interface DnsRelayOptions {
  /** The address the guest sends queries to (e.g. 10.0.2.3); it must be on a NIC of the stack. */
  address: string;
  /** A/AAAA resolution; default Node's dns.lookup (getaddrinfo: /etc/hosts, then the resolver). */
  lookup?: Lookup;
  /** Resolvers for other query types; default the nameservers of /etc/resolv.conf. */
  upstream?: Array<{ host: string; port?: number }>;
  /** Queries forwarded upstream and waiting, at most (default 1024). */
  maxInFlight?: number;
  /** How long an upstream answer may take (default 5000 ms, on the real clock). */
  timeoutMs?: number;
}

export interface DnsRelayStats {
  queries: number;
  malformed: number;
  answeredLocally: number;
  nxdomain: number;
  forwarded: number;
  upstreamAnswers: number;
  upstreamTimeouts: number;
  dropped: number;
}

interface Pending {
  guest: UdpMessage;
  originalId: number;
  timer: NodeJS.Timeout;
}

/**
 * A DNS relay for a sandbox guest (the job of slirp's 10.0.2.3): A and AAAA queries are answered
 * with the host's own name resolution (so /etc/hosts entries work), anything else is forwarded to
 * the host's nameservers and the answer passed back. Bounded: at most `maxInFlight` queries wait.
 */
export class DnsRelay {
  readonly stats: DnsRelayStats = { queries: 0, malformed: 0, answeredLocally: 0, nxdomain: 0, forwarded: 0, upstreamAnswers: 0, upstreamTimeouts: 0, dropped: 0 };
  private readonly ep: UdpEndpoint;
  private readonly lookup: Lookup;
  private readonly upstream: Array<{ host: string; port: number }>;
  private readonly pending = new Map<number, Pending>();
  private upstreamSocket: NodeDgram | null = null;
  private nextId = 1;
  private closed = false;

  constructor(
    stack: Stack,
    private readonly options: DnsRelayOptions,
  ) {
    this.lookup = options.lookup ?? defaultLookup;
    this.upstream = (options.upstream ?? systemNameservers()).map((u) => ({ host: u.host, port: u.port ?? 53 }));
    this.ep = stack.udp({ family: isIP(options.address) === 6 ? 6 : 4 });
    this.ep.bind(options.address, 53);
    this.ep.on('readable', () => this.drain());
  }

  close(): void {
    this.closed = true;
    this.ep.close();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.upstreamSocket?.close();
    this.upstreamSocket = null;
  }

  private drain(): void {
    for (let m = this.ep.recv(); m !== null; m = this.ep.recv()) {
      this.stats.queries++;
      let q: ReturnType<typeof decodeQuestion>;
      try {
        q = decodeQuestion(m.data);
      } catch {
        this.stats.malformed++;
        continue;
      }
      if (q.response) {
        this.stats.malformed++;
        continue;
      }
      if (q.type === DNS_TYPE_A || q.type === DNS_TYPE_AAAA) void this.answerLocally(m, q.name, q.type === DNS_TYPE_A ? 4 : 6);
      else this.forward(m);
    }
  }

  private async answerLocally(m: UdpMessage, name: string, family: 4 | 6): Promise<void> {
    let addrs: Uint8Array[] = [];
    let rcode: number | undefined;
    try {
      addrs = await this.lookup(name.replace(/\.$/, ''), family);
    } catch (e) {
      const code = (e as { code?: string }).code;
      // ENODATA: the name exists without this family (NOERROR, no answer); else NXDOMAIN.
      if (code === 'ENODATA') rcode = DNS_RCODE_NOERROR;
      else if (code === 'ENOTFOUND') rcode = undefined;
      else rcode = DNS_RCODE_SERVFAIL;
    }
    if (addrs.length === 0 && rcode === undefined) this.stats.nxdomain++;
    this.stats.answeredLocally++;
    this.reply(m, encodeAnswer(m.data, addrs, 60, rcode));
  }

  private forward(m: UdpMessage): void {
    const up = this.upstream[0];
    if (!up || this.pending.size >= (this.options.maxInFlight ?? 1024)) {
      this.stats.dropped++;
      this.reply(m, withRcode(m.data, DNS_RCODE_SERVFAIL));
      return;
    }
    const sock = this.socket();
    let id = this.nextId;
    while (this.pending.has(id)) id = (id % 0xffff) + 1;
    this.nextId = (id % 0xffff) + 1;
    const query = Buffer.from(m.data);
    const originalId = query.readUInt16BE(0);
    query.writeUInt16BE(id, 0);
    const timer = setTimeout(() => {
      if (this.pending.delete(id)) {
        this.stats.upstreamTimeouts++;
        this.reply(m, withRcode(m.data, DNS_RCODE_SERVFAIL));
      }
    }, this.options.timeoutMs ?? 5000);
    timer.unref();
    this.pending.set(id, { guest: m, originalId, timer });
    this.stats.forwarded++;
    sock.send(query, up.port, up.host);
  }

  private socket(): NodeDgram {
    if (this.upstreamSocket) return this.upstreamSocket;
    const fam = this.upstream[0] && isIP(this.upstream[0].host) === 6 ? 'udp6' : 'udp4';
    const s = createSocket(fam);
    s.on('message', (msg) => {
      if (msg.length < 12) return;
      const p = this.pending.get(msg.readUInt16BE(0));
      if (!p) return;
      this.pending.delete(msg.readUInt16BE(0));
      clearTimeout(p.timer);
      this.stats.upstreamAnswers++;
      const out = Buffer.from(msg);
      out.writeUInt16BE(p.originalId, 0);
      this.reply(p.guest, out);
    });
    s.on('error', () => {});
    s.unref();
    this.upstreamSocket = s;
    return s;
  }

  private reply(to: UdpMessage, msg: Uint8Array): void {
    if (this.closed) return;
    try {
      this.ep.send(msg, to.port, to.address);
    } catch {
      this.stats.dropped++;
    }
  }
}

/** A copy of a query turned into a response with the given RCODE and no answers. */
function withRcode(query: Uint8Array, rcode: number): Uint8Array {
  const out = query.slice();
  out[2] = 0x81 | (out[2]! & 0x01);
  out[3] = 0x80 | (rcode & 0x0f);
  return out;
}

const defaultLookup: Lookup = async (name, family) => {
  const res = await dnsPromises.lookup(name, { family, all: true });
  return res.filter((r) => r.family === family).map((r) => parseIP(r.address));
};

/** The nameservers of /etc/resolv.conf (none when it is missing). */
export function systemNameservers(path = '/etc/resolv.conf'): Array<{ host: string; port?: number }> {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((h): h is string => h !== undefined && isIP(h.replace(/%.*/, '')) !== 0)
      .map((host) => ({ host }));
  } catch {
    return [];
  }
}
