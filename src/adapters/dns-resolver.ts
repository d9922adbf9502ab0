import { isIP } from 'node:net';
import { ParseError } from '../core/errors.js';
import { addrEqual, parseIP } from '../core/address.js';
import { sameQuestion } from '../headers/dns.js';
import {
  DNS_CLASS_IN,
  DNS_TYPES,
  type CaaData,
  type DnsRecord,
  type DnsResponse,
  type MxData,
  type SoaData,
  type SrvData,
  decodeDnsResponse,
  decodeRecordData,
  encodeDnsQuery,
} from '../headers/dns-message.js';
import type { Stack } from './stack.js';

/**
 * The stub resolver behind Node's `dns` faces (src/adapters/dns.ts): server list parsing, query
 * over the stack's UDP with retries and a TCP retry for truncated answers (RFC 7766 framing),
 * answer matching against spoofing, CNAME chains and the resolve* record types.
 */

export interface DnsError extends Error {
  code: string;
  errno: number | undefined;
  syscall: string;
  hostname: string;
}

/** An error shaped as Node's dns errors: `${syscall} ${code} ${hostname}`. */
/** @internal */
export function dnsError(code: string, syscall: string, hostname: string, errno?: number): DnsError {
  const e = new Error(`${syscall} ${code} ${hostname}`) as DnsError;
  e.errno = errno;
  e.code = code;
  e.syscall = syscall;
  e.hostname = hostname;
  return e;
}

/** @internal */
export function argError(code: string, message: string): TypeError {
  const e = new TypeError(message) as TypeError & { code: string };
  e.code = code;
  return e;
}

/** getaddrinfo's errno values as Node reports them (libuv's UV_EAI_*). */
/** @internal */
export const EAI_ERRNO: Record<string, number> = { ENOTFOUND: -3008, EAI_AGAIN: -3001 };

export interface DnsStats {
  queries: number;
  /** Of the query attempts, those over TCP after a truncated UDP answer. */
  tcpQueries: number;
  timeouts: number;
  /** Messages dropped as not the answer asked for (possible spoofing). */
  badSource: number;
  badId: number;
  badQuestion: number;
  /** Answers that did not decode (reported as EBADRESP). */
  badResponses: number;
}

/** @internal What a resolver needs of its DnsModule (dns.ts): the stack, counters, IDs, servers. */
export interface ResolverHost {
  readonly stack: Stack;
  readonly stats: DnsStats;
  nextId(): number;
  systemServers(): Server[];
}

/** @internal */
export interface Server {
  host: string;
  port: number;
  family: 4 | 6;
  bytes: Uint8Array;
}

/** A server as setServers takes it: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]` or `[v6]:port`. */
/** @internal */
export function parseServer(s: unknown): Server {
  if (typeof s !== 'string') throw argError('ERR_INVALID_ARG_TYPE', 'The "servers[i]" argument must be of type string.');
  let host = s;
  let port = 53;
  const m6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  const m4 = /^([\d.]+):(\d+)$/.exec(s);
  if (m6) {
    host = m6[1]!;
    if (m6[2] !== undefined) port = Number(m6[2]);
  } else if (m4) {
    host = m4[1]!;
    port = Number(m4[2]);
  }
  const family = isIP(host);
  if (family === 0 || (m6 && family !== 6) || port < 1 || port > 65535) throw argError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${s}`);
  return { host, port, family: family === 6 ? 6 : 4, bytes: parseIP(host) };
}

function formatServer(s: Server): string {
  if (s.port === 53) return s.host;
  return s.family === 6 ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** How one attempt at one server ended. */
type Attempt =
  | { kind: 'answer'; msg: Uint8Array; res: DnsResponse }
  | { kind: 'truncated' | 'timeout' | 'refused' | 'badresp' | 'cancelled' };

export interface ResolverOptions {
  /** Per-attempt timeout in ms (default 5000; -1 means the default). */
  timeout?: number;
  /** Attempts per server (default 4). */
  tries?: number;
}

interface Answer {
  msg: Uint8Array;
  res: DnsResponse;
}

const RRTYPES = ['A', 'AAAA', 'CNAME', 'MX', 'NS', 'PTR', 'SOA', 'SRV', 'TXT', 'CAA'] as const;
export type RRType = (typeof RRTYPES)[number];

export interface RecordWithTtl {
  address: string;
  ttl: number;
}

/** A CNAME chain is followed at most this far within one answer. */
const MAX_CHAIN = 16;

/** @internal */
export function lower(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/**
 * The resolver core (Node's dns.promises.Resolver): servers, timeouts, retries, cancel, and the
 * resolve* methods returning promises.
 */
export class PromisesResolver {
  private servers: Server[] | null = null;
  private readonly active = new Set<() => void>();
  private readonly timeoutMs: number;
  private readonly tries: number;

  /** @internal Built by a DnsModule (dns.Resolver / dns.promises.Resolver construct it for users). */
  constructor(
    private readonly module: ResolverHost,
    options: ResolverOptions = {},
  ) {
    const t = options.timeout ?? -1;
    if (!Number.isInteger(t) || t < -1) throw argError('ERR_OUT_OF_RANGE', `The value of "options.timeout" is out of range. Received ${t}`);
    const tries = options.tries ?? 4;
    if (!Number.isInteger(tries) || tries < 1) throw argError('ERR_OUT_OF_RANGE', `The value of "options.tries" is out of range. Received ${tries}`);
    this.timeoutMs = t === -1 ? 5000 : t;
    this.tries = tries;
  }

  /** Servers in use: as set, else the stack's (IPv6 RDNSS), read at each query. */
  getServers(): string[] {
    return this.currentServers().map(formatServer);
  }

  setServers(servers: readonly string[]): void {
    if (!Array.isArray(servers)) throw argError('ERR_INVALID_ARG_TYPE', 'The "servers" argument must be an instance of Array.');
    this.servers = servers.map(parseServer);
  }

  /** End every query in progress with ECANCELLED. */
  cancel(): void {
    for (const c of [...this.active]) c();
  }

  private currentServers(): Server[] {
    return this.servers ?? this.module.systemServers();
  }

  resolve(hostname: string, rrtype: string = 'A'): Promise<unknown> {
    const method = RRTYPE_METHOD[rrtype as RRType];
    if (typeof rrtype !== 'string' || method === undefined) {
      throw argError('ERR_INVALID_ARG_VALUE', `The argument 'rrtype' is invalid. Received '${String(rrtype)}'`);
    }
    return method(this, hostname);
  }

  resolve4(hostname: string, options?: { ttl?: boolean }): Promise<string[] | RecordWithTtl[]> {
    return this.addresses(hostname, DNS_TYPES.A, 'queryA', options?.ttl === true);
  }

  resolve6(hostname: string, options?: { ttl?: boolean }): Promise<string[] | RecordWithTtl[]> {
    return this.addresses(hostname, DNS_TYPES.AAAA, 'queryAaaa', options?.ttl === true);
  }

  async resolveCname(hostname: string): Promise<string[]> {
    const a = await this.query(hostname, DNS_TYPES.CNAME, 'queryCname');
    // The end of the chain in the answer (c-ares reads a CNAME answer as an A one: its h_name).
    const { chain } = this.parse('queryCname', hostname, () => this.follow(a, hostname, 0));
    if (chain.length === 0) throw dnsError('ENODATA', 'queryCname', hostname);
    return [chain[chain.length - 1]!.target];
  }

  resolveMx(hostname: string): Promise<MxData[]> {
    return this.records<MxData>(hostname, DNS_TYPES.MX, 'queryMx');
  }

  resolveNs(hostname: string): Promise<string[]> {
    return this.records<string>(hostname, DNS_TYPES.NS, 'queryNs');
  }

  async resolvePtr(hostname: string): Promise<string[]> {
    return this.ptr(hostname, 'queryPtr', hostname);
  }

  async resolveSoa(hostname: string): Promise<SoaData> {
    const soa = await this.records<SoaData>(hostname, DNS_TYPES.SOA, 'querySoa', 'EBADRESP');
    return soa[0]!;
  }

  resolveSrv(hostname: string): Promise<SrvData[]> {
    return this.records<SrvData>(hostname, DNS_TYPES.SRV, 'querySrv');
  }

  resolveTxt(hostname: string): Promise<string[][]> {
    return this.records<string[]>(hostname, DNS_TYPES.TXT, 'queryTxt');
  }

  resolveCaa(hostname: string): Promise<CaaData[]> {
    return this.records<CaaData>(hostname, DNS_TYPES.CAA, 'queryCaa');
  }

  /** Names of an address, from PTR records under in-addr.arpa / ip6.arpa; EINVAL for a non-address. */
  async reverse(ip: string): Promise<string[]> {
    const name = arpaName(ip);
    if (name === null) throw dnsError('EINVAL', 'getHostByAddr', ip, -22);
    return this.ptr(name, 'getHostByAddr', ip);
  }

  private async ptr(name: string, syscall: string, shown: string): Promise<string[]> {
    let a: Answer;
    try {
      a = await this.query(name, DNS_TYPES.PTR, syscall, shown);
    } catch (e) {
      // As c-ares's gethostbyaddr: no such name and no PTR record are both ENOTFOUND.
      if (syscall === 'getHostByAddr' && (e as DnsError).code === 'ENODATA') throw dnsError('ENOTFOUND', syscall, shown);
      throw e;
    }
    return this.parse(syscall, shown, () => {
      const { records } = this.follow(a, name, DNS_TYPES.PTR);
      if (records.length === 0) throw dnsError(syscall === 'getHostByAddr' ? 'ENOTFOUND' : 'ENODATA', syscall, shown);
      return records.map((r) => decodeRecordData(a.msg, r) as string);
    });
  }

  private async addresses(hostname: string, type: number, syscall: string, ttl: boolean): Promise<string[] | RecordWithTtl[]> {
    const a = await this.query(hostname, type, syscall);
    return this.parse(syscall, hostname, () => {
      const { records, chain } = this.follow(a, hostname, type);
      if (records.length === 0) throw dnsError('ENODATA', syscall, hostname);
      if (!ttl) return records.map((r) => decodeRecordData(a.msg, r) as string);
      // As c-ares: an address's TTL is capped by the TTLs of the CNAMEs that led to it.
      const cap = chain.reduce((m, c) => Math.min(m, c.ttl), Infinity);
      return records.map((r) => ({ address: decodeRecordData(a.msg, r) as string, ttl: Math.min(r.ttl, cap) }));
    });
  }

  /** Every answer record of `type` (as c-ares does for these types, whatever its owner name). */
  private async records<T>(hostname: string, type: number, syscall: string, none = 'ENODATA'): Promise<T[]> {
    const a = await this.query(hostname, type, syscall);
    const out = this.parse(syscall, hostname, () => a.res.answers.filter((r) => r.type === type && r.class === DNS_CLASS_IN).map((r) => decodeRecordData(a.msg, r) as T));
    if (out.length === 0) throw dnsError(none, syscall, hostname);
    return out;
  }

  /** Run a reading of record data; record data that does not decode is EBADRESP (and counted). */
  private parse<T>(syscall: string, hostname: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof ParseError) {
        this.module.stats.badResponses++;
        throw dnsError('EBADRESP', syscall, hostname);
      }
      throw e;
    }
  }

  /** The records of `type` owned by `name`, following CNAMEs in the answer; and the CNAMEs followed. */
  private follow(a: Answer, name: string, type: number): { records: DnsRecord[]; chain: Array<{ target: string; ttl: number }> } {
    let cur = lower(name);
    const chain: Array<{ target: string; ttl: number }> = [];
    for (let hop = 0; hop <= MAX_CHAIN; hop++) {
      const here = a.res.answers.filter((r) => r.class === DNS_CLASS_IN && lower(r.name) === cur);
      const records = here.filter((r) => r.type === type);
      if (records.length > 0) return { records, chain };
      const cname = here.find((r) => r.type === DNS_TYPES.CNAME);
      if (cname === undefined) break;
      const target = decodeRecordData(a.msg, cname) as string;
      chain.push({ target, ttl: cname.ttl });
      cur = lower(target);
    }
    return { records: [], chain };
  }

  /**
   * Ask the servers in turn (`tries` rounds) until one answers NOERROR or NXDOMAIN; an rcode error
   * from every server, a timeout or a refusal end the query with Node's code for it.
   */
  private async query(hostname: string, type: number, syscall: string, shown = hostname): Promise<Answer> {
    if (typeof hostname !== 'string') throw argError('ERR_INVALID_ARG_TYPE', 'The "name" argument must be of type string.');
    let query: Uint8Array;
    try {
      query = encodeDnsQuery(0, hostname, type);
    } catch {
      throw dnsError('EBADNAME', syscall, shown);
    }
    const servers = this.currentServers();
    // Node's c-ares answers ECONNREFUSED with no server to ask (older versions; see README).
    if (servers.length === 0) throw dnsError('ECONNREFUSED', syscall, shown);
    let sawTimeout = false;
    for (let t = 0; t < this.tries; t++) {
      let rcodeError: string | null = null;
      for (const srv of servers) {
        this.module.stats.queries++;
        let o = await this.attempt(srv, query, false);
        if (o.kind === 'truncated') {
          this.module.stats.tcpQueries++;
          o = await this.attempt(srv, query, true);
        }
        switch (o.kind) {
          case 'cancelled':
            throw dnsError('ECANCELLED', syscall, shown);
          case 'badresp':
            throw dnsError('EBADRESP', syscall, shown);
          case 'timeout':
            this.module.stats.timeouts++;
            sawTimeout = true;
            continue;
          case 'refused':
          case 'truncated':
            continue;
          case 'answer': {
            const code = RCODES[o.res.rcode];
            if (o.res.rcode === 0 && o.res.answers.length === 0) throw dnsError('ENODATA', syscall, shown);
            if (o.res.rcode === 0) return o;
            if (o.res.rcode === 3) throw dnsError('ENOTFOUND', syscall, shown);
            rcodeError = code ?? 'EBADRESP';
            continue;
          }
        }
      }
      if (rcodeError !== null) throw dnsError(rcodeError, syscall, shown);
    }
    throw dnsError(sawTimeout ? 'ETIMEOUT' : 'ECONNREFUSED', syscall, shown);
  }

  /** One exchange with one server under a fresh ID, over UDP or TCP, bounded by the timeout. */
  private attempt(srv: Server, query: Uint8Array, tcp: boolean): Promise<Attempt> {
    const sent = query.slice();
    const id = this.module.nextId();
    sent[0] = id >> 8;
    sent[1] = id & 0xff;
    return new Promise((resolve) => {
      let done = false;
      const closers: Array<() => void> = [];
      const finish = (o: Attempt): void => {
        if (done) return;
        done = true;
        timer.cancel();
        this.active.delete(cancel);
        for (const c of closers) c();
        resolve(o);
      };
      const cancel = (): void => finish({ kind: 'cancelled' });
      this.active.add(cancel);
      const timer = this.module.stack.clock.setTimeout(() => finish({ kind: 'timeout' }), this.timeoutMs);
      /** A message from the server: the answer when it is one (ID, QR, same question). */
      const take = (msg: Uint8Array): void => {
        const st = this.module.stats;
        if (msg.length < 12 || msg[0] !== sent[0] || msg[1] !== sent[1]) {
          st.badId++;
          return;
        }
        if ((msg[2]! & 0x80) === 0 || !sameQuestion(sent, msg)) {
          st.badQuestion++;
          return;
        }
        let res: DnsResponse;
        try {
          res = decodeDnsResponse(msg);
        } catch {
          st.badResponses++;
          finish({ kind: 'badresp' });
          return;
        }
        finish(res.truncated && !tcp ? { kind: 'truncated' } : { kind: 'answer', msg, res });
      };
      try {
        if (tcp) this.tcpExchange(srv, sent, take, finish, closers);
        else this.udpExchange(srv, sent, take, finish, closers);
      } catch {
        finish({ kind: 'refused' });
      }
      if (done) for (const c of closers) c();
    });
  }

  private udpExchange(srv: Server, sent: Uint8Array, take: (m: Uint8Array) => void, finish: (o: Attempt) => void, closers: Array<() => void>): void {
    const ep = this.module.stack.udp({ family: srv.family });
    closers.push(() => ep.close());
    ep.on('error', () => finish({ kind: 'refused' }));
    ep.on('readable', () => {
      for (let m = ep.recv(); m !== null && !ep.isClosed; m = ep.recv()) {
        const from = parseIP(m.address);
        if (m.port !== srv.port || !addrEqual(srv.bytes, from) || from.length !== srv.bytes.length) {
          this.module.stats.badSource++;
          continue;
        }
        take(m.data);
      }
    });
    ep.connect(srv.bytes, srv.port);
    ep.send(sent);
  }

  private tcpExchange(srv: Server, sent: Uint8Array, take: (m: Uint8Array) => void, finish: (o: Attempt) => void, closers: Array<() => void>): void {
    const ep = this.module.stack.tcp({ family: srv.family });
    closers.push(() => ep.abort());
    let got = new Uint8Array(0);
    ep.on('error', () => finish({ kind: 'refused' }));
    ep.on('end', () => finish({ kind: 'refused' }));
    ep.on('close', () => finish({ kind: 'refused' }));
    ep.on('connect', () => {
      const framed = new Uint8Array(2 + sent.length);
      framed[0] = sent.length >> 8;
      framed[1] = sent.length & 0xff;
      framed.set(sent, 2);
      ep.write(framed);
    });
    ep.on('readable', () => {
      for (let c = ep.read(); c !== null; c = ep.read()) {
        // At most one message (2 + 65535 bytes) is kept.
        const joined = new Uint8Array(got.length + c.length);
        joined.set(got);
        joined.set(c, got.length);
        got = joined;
        while (got.length >= 2 && got.length >= 2 + ((got[0]! << 8) | got[1]!)) {
          const n = (got[0]! << 8) | got[1]!;
          take(got.subarray(2, 2 + n));
          got = got.slice(2 + n);
        }
      }
    });
    ep.connect(srv.host, srv.port);
  }
}

const RCODES: Record<number, string> = { 1: 'EFORMERR', 2: 'ESERVFAIL', 4: 'ENOTIMP', 5: 'EREFUSED' };

const RRTYPE_METHOD: Record<RRType, (r: PromisesResolver, name: string) => Promise<unknown>> = {
  A: (r, n) => r.resolve4(n),
  AAAA: (r, n) => r.resolve6(n),
  CNAME: (r, n) => r.resolveCname(n),
  MX: (r, n) => r.resolveMx(n),
  NS: (r, n) => r.resolveNs(n),
  PTR: (r, n) => r.resolvePtr(n),
  SOA: (r, n) => r.resolveSoa(n),
  SRV: (r, n) => r.resolveSrv(n),
  TXT: (r, n) => r.resolveTxt(n),
  CAA: (r, n) => r.resolveCaa(n),
};

/** The in-addr.arpa / ip6.arpa name of an address, or null when `ip` is not one. */
/** @internal */
export function arpaName(ip: string): string | null {
  const f = isIP(ip);
  if (f === 0) return null;
  const b = parseIP(ip);
  if (f === 4) return `${[...b].reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (const x of b) nibbles.push((x >> 4).toString(16), (x & 15).toString(16));
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}
