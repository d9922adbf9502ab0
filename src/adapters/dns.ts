import { isIP } from 'node:net';
import type { CaaData, MxData, SoaData, SrvData } from '../headers/dns-message.js';
import type { IPv6Protocol } from '../network/ipv6.js';
import { upstreamIdSource } from '../core/random.js';
import type { Stack } from './stack.js';
import {
  EAI_ERRNO,
  PromisesResolver,
  argError,
  arpaName,
  dnsError,
  lower,
  parseServer,
  type DnsError,
  type DnsStats,
  type RecordWithTtl,
  type ResolverOptions,
  type Server,
} from './dns-resolver.js';

export { PromisesResolver, type DnsError, type DnsStats, type RRType, type RecordWithTtl, type ResolverOptions } from './dns-resolver.js';

/**
 * Node's `dns` and `dns/promises` bound to a stack: a stub resolver speaking DNS over the stack's
 * own UDP (TCP when an answer comes back truncated, RFC 7766 framing), on the stack's clock, and
 * `lookup` (hosts table, IP literals, then A/AAAA queries) in place of getaddrinfo.
 *
 * Against spoofed answers each query goes out from a fresh endpoint on a random ephemeral port
 * with an unpredictable ID (node:crypto; the seeded Random only under a ManualClock), and a
 * message is taken as the answer only when it comes from the server's address and port, carries
 * the ID and is a response to the same question; anything else is dropped and counted.
 *
 * This file has the Node faces (callback Resolver, hosts table, lookup, DnsModule, DnsPromises);
 * the resolver core (PromisesResolver, queries, answer matching) is dns-resolver.ts.
 */

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
