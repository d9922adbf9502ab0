import { createSocket } from 'node:dgram';
import { promises as dnsPromises } from 'node:dns';
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP } from 'node:net';
import { TunstackError } from '../core/errors.js';
import { addrEqual, parseIP } from '../core/address.js';
import { DNS_RCODE_NOERROR, DNS_RCODE_SERVFAIL, DNS_TYPE_A, DNS_TYPE_AAAA, decodeQuestion, encodeAnswer, sameQuestion } from '../headers/dns.js';
import type { Clock, Timer } from '../core/clock.js';
import { upstreamIdSource } from '../core/random.js';
import type { Stack } from '../adapters/stack.js';
import type { TcpEndpoint } from '../transport/tcp/endpoint.js';
import type { UdpEndpoint } from '../transport/udp.js';

export { upstreamIdSource };

export type Lookup = (name: string, family: 4 | 6) => Promise<Uint8Array[]>;

export interface DnsRelayOptions {
  /** The address the guest sends queries to (e.g. 10.0.2.3); it must be on a NIC of the stack. */
  address: string;
  /** A/AAAA resolution; default Node's dns.lookup (getaddrinfo: /etc/hosts, then the resolver). */
  lookup?: Lookup;
  /**
   * Resolvers for other query types (IP literals; the first is used); default the nameservers of
   * /etc/resolv.conf.
   */
  upstream?: Array<{ host: string; port?: number }>;
  /** Forward every query upstream, A and AAAA included (a resolver the user chose); default false. */
  forwardAll?: boolean;
  /** Queries forwarded upstream and waiting, at most, each with its own socket (default 256). */
  maxInFlight?: number;
  /** How long an upstream answer may take (default 5000 ms, on the real clock). */
  timeoutMs?: number;
}

export interface DnsRelayStats {
  queries: number;
  /** Of `queries`, those that came over TCP; TCP connections taken, and refused (over the bound). */
  tcpQueries: number;
  tcpConnections: number;
  tcpRefused: number;
  /** UDP answers too long for the query's limit, sent truncated (TC) so the guest retries over TCP. */
  truncated: number;
  malformed: number;
  answeredLocally: number;
  nxdomain: number;
  forwarded: number;
  upstreamAnswers: number;
  upstreamTimeouts: number;
  /** Upstream queries that failed at once (send error, TCP connection refused, reset or closed). */
  upstreamErrors: number;
  /**
   * Upstream messages dropped as not the answer asked for (possible spoofing): from another
   * address or port than the server asked, with another transaction ID, or not a response to the
   * question asked.
   */
  upstreamBadSource: number;
  upstreamBadId: number;
  upstreamBadQuestion: number;
  /** Queries answered SERVFAIL at once: no upstream, or `maxInFlight` queries already waiting. */
  dropped: number;
}

/** Sends one answer back the way its query came. */
type Respond = (msg: Uint8Array) => void;

/** An upstream server: its address as given (for connecting) and as bytes (for matching sources). */
interface Upstream {
  host: string;
  port: number;
  family: 4 | 6;
  bytes: Uint8Array;
}

/** How a forwarded query ended: an answer (already validated), or why not. */
type Outcome = Uint8Array | 'timeout' | 'error' | 'closed';

/** DNS over TCP (RFC 7766): connections at once, idle timeout, queries in progress per connection. */
const TCP_MAX_CONNECTIONS = 64;
const TCP_IDLE_MS = 10_000;
const TCP_MAX_IN_PROGRESS = 16;
/** UDP answer limits: 512 bytes (RFC 1035), or 1232 when the query has an additional record (EDNS). */
const UDP_LIMIT = 512;
const UDP_LIMIT_EDNS = 1232;

/**
 * A DNS relay for a sandbox guest (the job of slirp's 10.0.2.3), over UDP and TCP port 53: A and
 * AAAA queries are answered with the host's own name resolution (so /etc/hosts entries work),
 * anything else is forwarded to the host's nameservers (over UDP, or over TCP for queries that
 * came over TCP) and the answer passed back. A UDP answer too long for the query is truncated
 * (TC) so the guest asks again over TCP. Bounded: at most `maxInFlight` forwarded queries wait,
 * at most 64 TCP connections, each idle for 10 s at most and with 16 queries in progress.
 *
 * Against spoofed answers (Kaminsky-style cache poisoning of the guest), each forwarded query goes
 * out with a fresh unpredictable transaction ID from a fresh socket on an OS-chosen (random)
 * ephemeral port, closed once the query ends; an upstream message is taken as the answer only
 * when it comes from the exact address and port asked, carries that ID and is a response to the
 * same question (name ignoring case, type, class). Anything else is dropped and counted, and the
 * query keeps waiting for its real answer.
 */
export class DnsRelay {
  readonly stats: DnsRelayStats = {
    queries: 0,
    tcpQueries: 0,
    tcpConnections: 0,
    tcpRefused: 0,
    truncated: 0,
    malformed: 0,
    answeredLocally: 0,
    nxdomain: 0,
    forwarded: 0,
    upstreamAnswers: 0,
    upstreamTimeouts: 0,
    upstreamErrors: 0,
    upstreamBadSource: 0,
    upstreamBadId: 0,
    upstreamBadQuestion: 0,
    dropped: 0,
  };
  private readonly ep: UdpEndpoint;
  private readonly listener: TcpEndpoint;
  private readonly conns = new Set<DnsTcpConnection>();
  private readonly lookup: Lookup;
  private readonly upstream: Upstream[];
  /** Forwarded queries waiting, each with the function that ends it. */
  private readonly waiting = new Set<(o: Outcome) => void>();
  private ids: (() => number) | null = null;
  private closed = false;

  constructor(
    private readonly stack: Stack,
    private readonly options: DnsRelayOptions,
  ) {
    this.lookup = options.lookup ?? defaultLookup;
    this.upstream = (options.upstream ?? systemNameservers()).map((u) => {
      const bare = u.host.replace(/%.*/, '');
      const family = isIP(bare);
      if (family === 0) throw new TunstackError('EINVAL', `DNS upstream host "${u.host}" is not an IP address`);
      const port = u.port ?? 53;
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TunstackError('EINVAL', `DNS upstream port ${port} out of range`);
      return { host: u.host, port, family: family === 6 ? 6 : 4, bytes: parseIP(bare) };
    });
    this.ep = stack.udp({ family: isIP(options.address) === 6 ? 6 : 4 });
    this.ep.bind(options.address, 53);
    this.ep.on('readable', () => this.drain());
    this.listener = stack.tcp({ family: isIP(options.address) === 6 ? 6 : 4 });
    this.listener.bind(options.address, 53);
    this.listener.listen(TCP_MAX_CONNECTIONS);
    this.listener.on('connection', (c) => {
      if (this.closed || this.conns.size >= TCP_MAX_CONNECTIONS) {
        this.stats.tcpRefused++;
        c.abort();
        return;
      }
      this.stats.tcpConnections++;
      this.conns.add(new DnsTcpConnection(this, c, stack.clock));
    });
  }

  close(): void {
    this.closed = true;
    this.ep.close();
    this.listener.close();
    for (const c of [...this.conns]) c.abort();
    for (const end of [...this.waiting]) end('closed');
  }

  private drain(): void {
    for (let m = this.ep.recv(); m !== null; m = this.ep.recv()) {
      const { address, port, data } = m;
      this.handle(data, (msg) => this.sendUdp(udpFit(data, msg, this.stats), port, address), false);
    }
  }

  /** @internal A query from either transport; false when it was not one (malformed, a response). */
  handle(query: Uint8Array, respond: Respond, tcp: boolean): boolean {
    this.stats.queries++;
    if (tcp) this.stats.tcpQueries++;
    let q: ReturnType<typeof decodeQuestion>;
    try {
      q = decodeQuestion(query);
    } catch {
      this.stats.malformed++;
      return false;
    }
    if (q.response) {
      this.stats.malformed++;
      return false;
    }
    if ((q.type === DNS_TYPE_A || q.type === DNS_TYPE_AAAA) && this.options.forwardAll !== true) void this.answerLocally(query, q.name, q.type === DNS_TYPE_A ? 4 : 6, respond);
    else this.forward(query, respond, tcp);
    return true;
  }

  /** @internal */
  connectionClosed(c: DnsTcpConnection): void {
    this.conns.delete(c);
  }

  private async answerLocally(query: Uint8Array, name: string, family: 4 | 6, respond: Respond): Promise<void> {
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
    if (!this.closed) respond(encodeAnswer(query, addrs, 60, rcode));
  }

  /**
   * Send `query` upstream (UDP, or TCP for a query that came over TCP) under a fresh random ID and
   * pass the validated answer back with the guest's ID; SERVFAIL on timeout, error or no room.
   */
  private forward(query: Uint8Array, respond: Respond, tcp: boolean): void {
    const up = this.upstream[0];
    if (!up || this.waiting.size >= (this.options.maxInFlight ?? 256)) {
      this.stats.dropped++;
      respond(withRcode(query, DNS_RCODE_SERVFAIL));
      return;
    }
    this.ids ??= upstreamIdSource(this.stack);
    const sent = Buffer.from(query);
    sent.writeUInt16BE(this.ids(), 0);
    this.stats.forwarded++;
    let release = (): void => {};
    const end = (o: Outcome): void => {
      if (!this.waiting.delete(end)) return;
      clearTimeout(timer);
      release();
      if (o === 'timeout') this.stats.upstreamTimeouts++;
      else if (o === 'error') this.stats.upstreamErrors++;
      else if (o !== 'closed') this.stats.upstreamAnswers++;
      if (this.closed) return;
      if (typeof o === 'string') respond(withRcode(query, DNS_RCODE_SERVFAIL));
      else {
        const out = Buffer.from(o);
        out[0] = query[0]!;
        out[1] = query[1]!;
        respond(out);
      }
    };
    const timer = setTimeout(() => end('timeout'), this.options.timeoutMs ?? 5000);
    timer.unref();
    this.waiting.add(end);
    release = tcp ? this.queryTcp(up, sent, end) : this.queryUdp(up, sent, end);
  }

  /** Whether an upstream message is the answer to `sent`; counts the reason when not. */
  private isAnswer(sent: Uint8Array, msg: Uint8Array): boolean {
    if (msg.length < 12 || msg[0] !== sent[0] || msg[1] !== sent[1]) {
      this.stats.upstreamBadId++;
      return false;
    }
    if ((msg[2]! & 0x80) === 0 || !sameQuestion(sent, msg)) {
      this.stats.upstreamBadQuestion++;
      return false;
    }
    return true;
  }

  /** The query over UDP from a socket of its own (a random ephemeral port); returns its closer. */
  private queryUdp(up: Upstream, sent: Uint8Array, end: (o: Outcome) => void): () => void {
    const sock = createSocket(up.family === 6 ? 'udp6' : 'udp4');
    sock.on('message', (msg, rinfo) => {
      const from = parseIP(rinfo.address.replace(/%.*/, ''));
      if (rinfo.port !== up.port || from.length !== up.bytes.length || !addrEqual(up.bytes, from)) {
        this.stats.upstreamBadSource++;
        return;
      }
      if (this.isAnswer(sent, msg)) end(msg);
    });
    sock.on('error', () => end('error'));
    sock.unref();
    sock.send(sent, up.port, up.host, (err) => {
      if (err) end('error');
    });
    return () => {
      try {
        sock.close();
      } catch {
        // already closed after an error
      }
    };
  }

  /** The query over a TCP connection of its own (length-prefixed, RFC 1035 4.2.2); returns its closer. */
  private queryTcp(up: Upstream, sent: Uint8Array, end: (o: Outcome) => void): () => void {
    const sock = netConnect({ host: up.host, port: up.port });
    let got: Buffer = Buffer.alloc(0);
    sock.on('error', () => end('error'));
    sock.on('end', () => end('error'));
    sock.on('data', (b: Buffer) => {
      got = got.length === 0 ? b : Buffer.concat([got, b]);
      while (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        const msg = got.subarray(2, 2 + got.readUInt16BE(0));
        got = got.subarray(2 + msg.length);
        if (this.isAnswer(sent, msg)) {
          end(msg);
          return;
        }
      }
    });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(sent.length, 0);
    sock.end(Buffer.concat([len, sent]));
    return () => sock.destroy();
  }

  private sendUdp(msg: Uint8Array, port: number, address: string): void {
    if (this.closed) return;
    try {
      this.ep.send(msg, port, address);
    } catch {
      this.stats.dropped++;
    }
  }
}

/**
 * One guest TCP connection to the DNS address: length-prefixed queries (pipelined, answered as
 * they are ready, possibly out of order as RFC 7766 allows), at most TCP_MAX_IN_PROGRESS at once
 * (no more is read meanwhile), closed after TCP_IDLE_MS without a query in progress.
 */
class DnsTcpConnection {
  private stage: Uint8Array = new Uint8Array(0);
  private inProgress = 0;
  private ended = false;
  private done = false;
  private readonly idleTimer: Timer;

  constructor(
    private readonly relay: DnsRelay,
    private readonly ep: TcpEndpoint,
    clock: Clock,
  ) {
    this.idleTimer = clock.timer(() => {
      // Idle with nothing in progress: close (a query in progress rearms it when answered).
      if (this.inProgress === 0) {
        this.ended = true;
        this.maybeClose();
      } else {
        this.armIdle();
      }
    });
    ep.on('readable', () => this.pump());
    ep.on('end', () => {
      this.ended = true;
      this.maybeClose();
    });
    ep.on('error', () => {});
    ep.on('close', () => this.abort());
    this.armIdle();
    this.pump();
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.idleTimer.cancel();
    this.ep.abort();
    this.relay.connectionClosed(this);
  }

  private armIdle(): void {
    this.idleTimer.schedule(TCP_IDLE_MS);
  }

  /** Read and handle whole messages while fewer than the limit are in progress. */
  private pump(): void {
    while (!this.done && this.inProgress < TCP_MAX_IN_PROGRESS) {
      const msg = this.nextMessage();
      if (msg === null) break;
      this.armIdle();
      this.inProgress++;
      let answered = false;
      const ok = this.relay.handle(msg, (answer) => {
        if (answered) return;
        answered = true;
        this.inProgress--;
        this.armIdle();
        this.send(answer);
        this.pump();
        this.maybeClose();
      }, true);
      if (!ok && !answered) {
        // Not a query: no answer will come (RFC 7766 lets the server close; keep serving others).
        this.inProgress--;
      }
    }
    this.maybeClose();
  }

  /** The next complete message, reading from the endpoint as needed; null when none is whole. */
  private nextMessage(): Uint8Array | null {
    for (;;) {
      const st = this.stage;
      if (st.length >= 2) {
        const len = (st[0]! << 8) | st[1]!;
        if (st.length >= 2 + len) {
          this.stage = st.subarray(2 + len);
          return st.slice(2, 2 + len);
        }
      }
      const chunk = this.ep.read();
      if (chunk === null || chunk.length === 0) return null;
      if (st.length === 0) this.stage = chunk;
      else {
        const m = new Uint8Array(st.length + chunk.length);
        m.set(st, 0);
        m.set(chunk, st.length);
        this.stage = m;
      }
    }
  }

  private send(answer: Uint8Array): void {
    if (this.done) return;
    const out = new Uint8Array(2 + answer.length);
    out[0] = answer.length >>> 8;
    out[1] = answer.length & 0xff;
    out.set(answer, 2);
    try {
      if (this.ep.write(out) < out.length) this.abort(); // a guest that reads nothing: drop it
    } catch {
      this.abort();
    }
  }

  private maybeClose(): void {
    if (this.done || this.inProgress > 0) return;
    if (this.ended) {
      this.done = true;
      this.idleTimer.cancel();
      try {
        this.ep.close();
      } catch {
        this.ep.abort();
      }
      this.relay.connectionClosed(this);
    }
  }
}

/** The answer as UDP may carry it: too long for the query's limit, a truncated (TC) empty answer. */
function udpFit(query: Uint8Array, answer: Uint8Array, stats: DnsRelayStats): Uint8Array {
  const edns = query.length >= 12 && ((query[10]! << 8) | query[11]!) > 0;
  if (answer.length <= (edns ? UDP_LIMIT_EDNS : UDP_LIMIT)) return answer;
  let end: number;
  try {
    end = decodeQuestion(answer).end;
  } catch {
    return answer;
  }
  stats.truncated++;
  const out = answer.slice(0, end);
  out[2] = out[2]! | 0x02; // TC
  out.fill(0, 6, 12); // no answer, authority or additional records
  return out;
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
