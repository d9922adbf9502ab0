import { isIP } from 'node:net';
import { ParseError } from '../errors.js';
import { addrEqual, parseIP } from '../headers/address.js';
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
import type { IPv6Protocol } from '../network/ipv6.js';
import { upstreamIdSource } from '../stack/random.js';
import type { Stack } from '../stack/stack.js';

/**
 * Node's `dns` and `dns/promises` bound to a stack: a stub resolver speaking DNS over the stack's
 * own UDP (TCP when an answer comes back truncated, RFC 7766 framing), on the stack's clock, and
 * `lookup` (hosts table, IP literals, then A/AAAA queries) in place of getaddrinfo.
 *
 * Against spoofed answers each query goes out from a fresh endpoint on a random ephemeral port
 * with an unpredictable ID (node:crypto; the seeded Random only under a ManualClock), and a
 * message is taken as the answer only when it comes from the server's address and port, carries
 * the ID and is a response to the same question; anything else is dropped and counted.
 */

export interface DnsError extends Error {
  code: string;
  errno: number | undefined;
  syscall: string;
  hostname: string;
}

/** An error shaped as Node's dns errors: `${syscall} ${code} ${hostname}`. */
function dnsError(code: string, syscall: string, hostname: string, errno?: number): DnsError {
  const e = new Error(`${syscall} ${code} ${hostname}`) as DnsError;
  e.errno = errno;
  e.code = code;
  e.syscall = syscall;
  e.hostname = hostname;
  return e;
}

function argError(code: string, message: string): TypeError {
  const e = new TypeError(message) as TypeError & { code: string };
  e.code = code;
  return e;
}

/** getaddrinfo's errno values as Node reports them (libuv's UV_EAI_*). */
const EAI_ERRNO: Record<string, number> = { ENOTFOUND: -3008, EAI_AGAIN: -3001 };

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

interface Server {
  host: string;
  port: number;
  family: 4 | 6;
  bytes: Uint8Array;
}

/** A server as setServers takes it: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]` or `[v6]:port`. */
function parseServer(s: unknown): Server {
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

function lower(name: string): string {
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

  constructor(
    private readonly module: DnsModule,
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
function arpaName(ip: string): string | null {
  const f = isIP(ip);
  if (f === 0) return null;
  const b = parseIP(ip);
  if (f === 4) return `${[...b].reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (const x of b) nibbles.push((x >> 4).toString(16), (x & 15).toString(16));
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

type Callback<T> = (err: DnsError | null, result?: T) => void;

/** Deliver a promise's outcome to a Node-style callback, never synchronously. */
function toCallback<T>(p: () => Promise<T>, cb: unknown): void {
  if (typeof cb !== 'function') throw argError('ERR_INVALID_ARG_TYPE', 'The "callback" argument must be of type function.');
  const f = cb as Callback<T>;
  p().then(
    (v) => f(null, v),
    (e: DnsError) => f(e),
  );
}

/** Node's callback dns.Resolver over a PromisesResolver. */
export class Resolver {
  /** @internal */
  readonly core: PromisesResolver;

  constructor(module: DnsModule, options?: ResolverOptions) {
    this.core = new PromisesResolver(module, options);
  }

  getServers(): string[] {
    return this.core.getServers();
  }
  setServers(servers: readonly string[]): void {
    this.core.setServers(servers);
  }
  cancel(): void {
    this.core.cancel();
  }
  resolve(hostname: string, rrtype: string | Callback<unknown>, cb?: Callback<unknown>): void {
    const type = typeof rrtype === 'function' ? 'A' : rrtype;
    const callback = typeof rrtype === 'function' ? rrtype : cb;
    const p = this.core.resolve(hostname, type);
    toCallback(() => p, callback);
  }
  resolve4(hostname: string, options: { ttl?: boolean } | Callback<string[] | RecordWithTtl[]>, cb?: Callback<string[] | RecordWithTtl[]>): void {
    const o = typeof options === 'function' ? {} : options;
    toCallback(() => this.core.resolve4(hostname, o), typeof options === 'function' ? options : cb);
  }
  resolve6(hostname: string, options: { ttl?: boolean } | Callback<string[] | RecordWithTtl[]>, cb?: Callback<string[] | RecordWithTtl[]>): void {
    const o = typeof options === 'function' ? {} : options;
    toCallback(() => this.core.resolve6(hostname, o), typeof options === 'function' ? options : cb);
  }
  resolveCname(hostname: string, cb: Callback<string[]>): void {
    toCallback(() => this.core.resolveCname(hostname), cb);
  }
  resolveMx(hostname: string, cb: Callback<MxData[]>): void {
    toCallback(() => this.core.resolveMx(hostname), cb);
  }
  resolveNs(hostname: string, cb: Callback<string[]>): void {
    toCallback(() => this.core.resolveNs(hostname), cb);
  }
  resolvePtr(hostname: string, cb: Callback<string[]>): void {
    toCallback(() => this.core.resolvePtr(hostname), cb);
  }
  resolveSoa(hostname: string, cb: Callback<SoaData>): void {
    toCallback(() => this.core.resolveSoa(hostname), cb);
  }
  resolveSrv(hostname: string, cb: Callback<SrvData[]>): void {
    toCallback(() => this.core.resolveSrv(hostname), cb);
  }
  resolveTxt(hostname: string, cb: Callback<string[][]>): void {
    toCallback(() => this.core.resolveTxt(hostname), cb);
  }
  resolveCaa(hostname: string, cb: Callback<CaaData[]>): void {
    toCallback(() => this.core.resolveCaa(hostname), cb);
  }
  reverse(ip: string, cb: Callback<string[]>): void {
    // As Node: a non-address is thrown at once.
    if (arpaName(ip) === null) throw dnsError('EINVAL', 'getHostByAddr', ip, -22);
    toCallback(() => this.core.reverse(ip), cb);
  }
}

/**
 * Names looked up before DNS (/etc/hosts for `lookup`): `localhost` is 127.0.0.1 and ::1 unless
 * changed. Names compare ignoring case and a trailing dot.
 */
export class HostsTable {
  private readonly map = new Map<string, string[]>([['localhost', ['127.0.0.1', '::1']]]);

  /** Add an address for a name (after those it has). */
  add(name: string, address: string): void {
    if (isIP(address) === 0) throw argError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${address}`);
    const k = lower(name);
    const list = this.map.get(k) ?? [];
    if (!list.includes(address)) list.push(address);
    this.map.set(k, list);
  }

  /** Replace the addresses of a name (an empty list removes it). */
  set(name: string, addresses: readonly string[]): void {
    this.map.delete(lower(name));
    for (const a of addresses) this.add(name, a);
  }

  delete(name: string): boolean {
    return this.map.delete(lower(name));
  }

  get(name: string): string[] {
    return [...(this.map.get(lower(name)) ?? [])];
  }

  clear(): void {
    this.map.clear();
  }
}

export interface LookupOptions {
  family?: 0 | 4 | 6 | 'IPv4' | 'IPv6';
  hints?: number;
  all?: boolean;
  order?: 'verbatim' | 'ipv4first' | 'ipv6first';
  verbatim?: boolean;
}

export interface LookupAddress {
  address: string;
  family: 4 | 6;
}

type LookupCallback = (err: DnsError | null, address?: string | LookupAddress[] | null, family?: number) => void;

/** getaddrinfo hint flags as Node on Linux exposes them (dns.ADDRCONFIG, V4MAPPED, ALL). */
const ADDRCONFIG = 32;
const V4MAPPED = 8;
const ALL = 16;

function lookupOptions(options: unknown): Required<Pick<LookupOptions, 'all' | 'order'>> & { family: 0 | 4 | 6; hints: number } {
  if (typeof options === 'number') options = { family: options };
  const o = (options ?? {}) as LookupOptions;
  const fam = o.family === 'IPv4' ? 4 : o.family === 'IPv6' ? 6 : (o.family ?? 0);
  if (fam !== 0 && fam !== 4 && fam !== 6) throw argError('ERR_INVALID_ARG_VALUE', `The property 'options.family' must be one of: 0, 4, 6. Received ${String(o.family)}`);
  const hints = o.hints ?? 0;
  if (typeof hints !== 'number' || (hints & ~(ADDRCONFIG | V4MAPPED | ALL)) !== 0) throw argError('ERR_INVALID_ARG_VALUE', `The argument 'hints' is invalid. Received ${String(hints)}`);
  const order = o.order ?? (o.verbatim === false ? 'ipv4first' : 'verbatim');
  return { family: fam, hints, all: o.all === true, order };
}

/** Node's `dns` for one stack (`stack.dns`). */
export class DnsModule {
  readonly stats: DnsStats = { queries: 0, tcpQueries: 0, timeouts: 0, badSource: 0, badId: 0, badQuestion: 0, badResponses: 0 };
  /** Consulted by lookup before DNS. */
  readonly hosts = new HostsTable();
  /** `new stack.dns.Resolver(options)`: Node's callback Resolver on this stack. */
  readonly Resolver: new (options?: ResolverOptions) => Resolver;
  readonly promises: DnsPromises;
  readonly ADDRCONFIG = ADDRCONFIG;
  readonly V4MAPPED = V4MAPPED;
  readonly ALL = ALL;
  readonly NODATA = 'ENODATA';
  readonly FORMERR = 'EFORMERR';
  readonly SERVFAIL = 'ESERVFAIL';
  readonly NOTFOUND = 'ENOTFOUND';
  readonly NOTIMP = 'ENOTIMP';
  readonly REFUSED = 'EREFUSED';
  readonly BADRESP = 'EBADRESP';
  readonly CONNREFUSED = 'ECONNREFUSED';
  readonly TIMEOUT = 'ETIMEOUT';
  readonly BADNAME = 'EBADNAME';
  readonly CANCELLED = 'ECANCELLED';
  private readonly ids: () => number;
  /** The resolver behind the module-level functions (dns.setServers changes its servers). */
  private readonly main: Resolver;

  constructor(readonly stack: Stack) {
    this.ids = upstreamIdSource(stack);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const module = this;
    this.Resolver = class extends Resolver {
      constructor(options?: ResolverOptions) {
        super(module, options);
      }
    };
    this.main = new this.Resolver();
    this.promises = new DnsPromises(this, this.main.core);
  }

  /** @internal */
  nextId(): number {
    return this.ids();
  }

  /** @internal The stack's own DNS servers: recursive DNS servers learned from IPv6 RAs (RFC 8106) on its NICs. */
  systemServers(): Server[] {
    const ip6 = this.stack.networkProtocol(0x86dd) as IPv6Protocol | undefined;
    const out: Server[] = [];
    if (ip6 === undefined) return out;
    for (const nic of this.stack.nics) {
      for (const a of ip6.ndp.dnsServers(nic)) if (!out.some((s) => s.host === a)) out.push(parseServer(a));
    }
    return out;
  }

  getServers(): string[] {
    return this.main.getServers();
  }
  setServers(servers: readonly string[]): void {
    this.main.setServers(servers);
  }

  /**
   * getaddrinfo as Node calls it: an IP literal is returned as is; else the hosts table; else A
   * and/or AAAA queries. Errors are `getaddrinfo ENOTFOUND name` (no such name or no address of
   * the family) or `getaddrinfo EAI_AGAIN name` (servers failing or not answering).
   */
  lookup(hostname: string, options: unknown, callback?: LookupCallback): void {
    const cb = (typeof options === 'function' ? options : callback) as LookupCallback | undefined;
    if (typeof cb !== 'function') throw argError('ERR_INVALID_ARG_TYPE', 'The "callback" argument must be of type function.');
    const o = lookupOptions(typeof options === 'function' ? undefined : options);
    const p = this.lookupAll(hostname, o);
    p.then(
      (list) => {
        if (o.all) cb(null, list);
        else if (list.length === 0) cb(null, null, o.family === 6 ? 6 : 4);
        else cb(null, list[0]!.address, list[0]!.family);
      },
      (e: DnsError) => cb(e),
    );
  }

  /** @internal */
  async lookupAll(hostname: string, o: ReturnType<typeof lookupOptions>): Promise<LookupAddress[]> {
    if (typeof hostname !== 'string') throw argError('ERR_INVALID_ARG_TYPE', 'The "hostname" argument must be of type string.');
    if (hostname === '') return [];
    const literal = isIP(hostname);
    if (literal !== 0) return [{ address: hostname, family: literal === 6 ? 6 : 4 }];
    const want = (f: 4 | 6): boolean => o.family === 0 || o.family === f;
    let list: LookupAddress[] = this.hosts
      .get(hostname)
      .map((address): LookupAddress => ({ address, family: isIP(address) === 6 ? 6 : 4 }))
      .filter((a) => want(a.family));
    if (list.length === 0) list = await this.lookupDns(hostname, o.family, o.hints);
    if (o.order === 'ipv4first') list.sort((a, b) => a.family - b.family);
    else if (o.order === 'ipv6first') list.sort((a, b) => b.family - a.family);
    return o.all ? list : list.slice(0, 1);
  }

  private async lookupDns(hostname: string, family: 0 | 4 | 6, hints: number): Promise<LookupAddress[]> {
    const core = this.main.core;
    const ask = async (f: 4 | 6): Promise<LookupAddress[] | DnsError> => {
      try {
        const r = (await (f === 4 ? core.resolve4(hostname) : core.resolve6(hostname))) as string[];
        return r.map((address) => ({ address, family: f }));
      } catch (e) {
        return e as DnsError;
      }
    };
    const results = await Promise.all(family === 0 ? [ask(4), ask(6)] : [ask(family)]);
    if (family === 6 && (hints & V4MAPPED) !== 0 && !Array.isArray(results[0])) {
      const v4 = await ask(4);
      if (Array.isArray(v4)) return v4.map((a) => ({ address: `::ffff:${a.address}`, family: 6 }));
    }
    const found = results.filter((r): r is LookupAddress[] => Array.isArray(r)).flat();
    if (found.length > 0) return found;
    const errs = results as DnsError[];
    const gone = errs.every((e) => e.code === 'ENOTFOUND' || e.code === 'ENODATA' || e.code === 'EBADNAME');
    const code = gone ? 'ENOTFOUND' : 'EAI_AGAIN';
    throw dnsError(code, 'getaddrinfo', hostname, EAI_ERRNO[code]);
  }

  resolve(hostname: string, rrtype: string | Callback<unknown>, cb?: Callback<unknown>): void {
    this.main.resolve(hostname, rrtype, cb);
  }
  resolve4(hostname: string, options: { ttl?: boolean } | Callback<string[] | RecordWithTtl[]>, cb?: Callback<string[] | RecordWithTtl[]>): void {
    this.main.resolve4(hostname, options, cb);
  }
  resolve6(hostname: string, options: { ttl?: boolean } | Callback<string[] | RecordWithTtl[]>, cb?: Callback<string[] | RecordWithTtl[]>): void {
    this.main.resolve6(hostname, options, cb);
  }
  resolveCname(hostname: string, cb: Callback<string[]>): void {
    this.main.resolveCname(hostname, cb);
  }
  resolveMx(hostname: string, cb: Callback<MxData[]>): void {
    this.main.resolveMx(hostname, cb);
  }
  resolveNs(hostname: string, cb: Callback<string[]>): void {
    this.main.resolveNs(hostname, cb);
  }
  resolvePtr(hostname: string, cb: Callback<string[]>): void {
    this.main.resolvePtr(hostname, cb);
  }
  resolveSoa(hostname: string, cb: Callback<SoaData>): void {
    this.main.resolveSoa(hostname, cb);
  }
  resolveSrv(hostname: string, cb: Callback<SrvData[]>): void {
    this.main.resolveSrv(hostname, cb);
  }
  resolveTxt(hostname: string, cb: Callback<string[][]>): void {
    this.main.resolveTxt(hostname, cb);
  }
  resolveCaa(hostname: string, cb: Callback<CaaData[]>): void {
    this.main.resolveCaa(hostname, cb);
  }
  reverse(ip: string, cb: Callback<string[]>): void {
    this.main.reverse(ip, cb);
  }
}

/** Node's `dns.promises` for one stack (`stack.dns.promises`). */
export class DnsPromises {
  /** `new stack.dns.promises.Resolver(options)`. */
  readonly Resolver: new (options?: ResolverOptions) => PromisesResolver;

  constructor(
    private readonly module: DnsModule,
    private readonly main: PromisesResolver,
  ) {
    this.Resolver = class extends PromisesResolver {
      constructor(options?: ResolverOptions) {
        super(module, options);
      }
    };
  }

  async lookup(hostname: string, options?: unknown): Promise<LookupAddress | LookupAddress[] | { address: null; family: 4 | 6 }> {
    const o = lookupOptions(options);
    const list = await this.module.lookupAll(hostname, o);
    if (o.all) return list;
    return list[0] ?? { address: null, family: o.family === 6 ? 6 : 4 };
  }

  getServers(): string[] {
    return this.main.getServers();
  }
  setServers(servers: readonly string[]): void {
    this.main.setServers(servers);
  }
  resolve(hostname: string, rrtype?: string): Promise<unknown> {
    return this.main.resolve(hostname, rrtype);
  }
  resolve4(hostname: string, options?: { ttl?: boolean }): Promise<string[] | RecordWithTtl[]> {
    return this.main.resolve4(hostname, options);
  }
  resolve6(hostname: string, options?: { ttl?: boolean }): Promise<string[] | RecordWithTtl[]> {
    return this.main.resolve6(hostname, options);
  }
  resolveCname(hostname: string): Promise<string[]> {
    return this.main.resolveCname(hostname);
  }
  resolveMx(hostname: string): Promise<MxData[]> {
    return this.main.resolveMx(hostname);
  }
  resolveNs(hostname: string): Promise<string[]> {
    return this.main.resolveNs(hostname);
  }
  resolvePtr(hostname: string): Promise<string[]> {
    return this.main.resolvePtr(hostname);
  }
  resolveSoa(hostname: string): Promise<SoaData> {
    return this.main.resolveSoa(hostname);
  }
  resolveSrv(hostname: string): Promise<SrvData[]> {
    return this.main.resolveSrv(hostname);
  }
  resolveTxt(hostname: string): Promise<string[][]> {
    return this.main.resolveTxt(hostname);
  }
  resolveCaa(hostname: string): Promise<CaaData[]> {
    return this.main.resolveCaa(hostname);
  }
  reverse(ip: string): Promise<string[]> {
    return this.main.reverse(ip);
  }
}
