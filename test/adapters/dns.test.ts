import * as nodeDgram from 'node:dgram';
import * as nodeDns from 'node:dns';
import { once } from 'node:events';
import * as nodeNet from 'node:net';
import * as packet from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock, Stack, parseMAC, type IPv6Protocol } from '../../src/index.js';
import { Wire } from '../../src/link/wire.js';
import { EthernetEndpoint } from '../../src/link/ethernet.js';
import { decodeDnsResponse } from '../../src/headers/dns-message.js';

/**
 * stack.dns against Node's own dns: one small authoritative server (dns-packet) runs on
 * node:dgram/node:net over 127.0.0.1 for Node's dns.Resolver, and the same code runs on a tunstack
 * stack (stack.dgram/stack.net) for the other stack's stack.dns; both must give the same results
 * and the same errors.
 */

const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length) closers.pop()!();
});

type Rr = packet.Answer;
const Z = 'zone.test';
const BIG_A = Array.from({ length: 100 }, (_, i) => `198.18.9.${i + 1}`);
const zone: Rr[] = [
  { name: `www.${Z}`, type: 'A', ttl: 300, data: '198.18.5.1' },
  { name: `www.${Z}`, type: 'A', ttl: 300, data: '198.18.5.2' },
  { name: `www.${Z}`, type: 'AAAA', ttl: 200, data: '2001:db8::1' },
  { name: `alias.${Z}`, type: 'CNAME', ttl: 60, data: `alias2.${Z}` },
  { name: `alias2.${Z}`, type: 'CNAME', ttl: 120, data: `www.${Z}` },
  { name: `v4only.${Z}`, type: 'A', ttl: 30, data: '198.18.5.9' },
  { name: Z, type: 'MX', ttl: 300, data: { preference: 10, exchange: `mx1.${Z}` } },
  { name: Z, type: 'MX', ttl: 300, data: { preference: 20, exchange: `mx2.${Z}` } },
  { name: Z, type: 'NS', ttl: 300, data: `ns1.${Z}` },
  { name: Z, type: 'NS', ttl: 300, data: `ns2.${Z}` },
  { name: Z, type: 'SOA', ttl: 300, data: { mname: `ns1.${Z}`, rname: `hostmaster.${Z}`, serial: 2026120401, refresh: 7200, retry: 900, expire: 1209600, minimum: 60 } },
  { name: Z, type: 'TXT', ttl: 300, data: ['v=spf1 -all'] },
  { name: Z, type: 'TXT', ttl: 300, data: ['part one', 'part two', 'part three'] },
  { name: Z, type: 'CAA', ttl: 300, data: { flags: 0, tag: 'issue', value: 'ca.example' } },
  { name: Z, type: 'CAA', ttl: 300, data: { flags: 128, tag: 'iodef', value: 'mailto:sec@zone.test' } },
  { name: `_sip._tcp.${Z}`, type: 'SRV', ttl: 300, data: { priority: 10, weight: 60, port: 5060, target: `sip.${Z}` } },
  { name: `_sip._tcp.${Z}`, type: 'SRV', ttl: 300, data: { priority: 20, weight: 0, port: 5061, target: `sip2.${Z}` } },
  { name: '1.5.18.198.in-addr.arpa', type: 'PTR', ttl: 300, data: `www.${Z}` },
  { name: '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', type: 'PTR', ttl: 300, data: `www.${Z}` },
  ...BIG_A.map((data): Rr => ({ name: `big.${Z}`, type: 'A', ttl: 300, data })),
  { name: `big.${Z}`, type: 'TXT', ttl: 300, data: Array.from({ length: 30 }, (_, i) => `chunk ${i} `.padEnd(60, 'x')) },
];

const lc = (s: string): string => s.toLowerCase().replace(/\.$/, '');

/** The authoritative answer to one query (null: no answer at all). */
function answer(query: Buffer, overTcp: boolean): Buffer | null {
  let q: packet.DecodedPacket;
  try {
    q = packet.decode(query);
  } catch {
    return null;
  }
  const question = q.questions?.[0];
  if (!question) return null;
  const name = lc(question.name);
  const base = { id: q.id, type: 'response' as const, questions: [question] };
  const flags = packet.AUTHORITATIVE_ANSWER | ((q.flags ?? 0) & packet.RECURSION_DESIRED);
  // dns-packet takes the RCODE in the low bits of flags.
  if (name === `fail.${Z}`) return packet.encode({ ...base, flags: flags | 2 });
  if (name === `refused.${Z}`) return packet.encode({ ...base, flags: flags | 5 });
  if (name === `loop.${Z}`) {
    // An answer whose owner name is a compression pointer to itself.
    const head = packet.encode({ ...base, flags });
    const rr = Buffer.from([0, 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    const out = Buffer.concat([head, Buffer.from([0xc0 | (head.length >> 8), head.length & 0xff]), rr]);
    out.writeUInt16BE(1, 6);
    return out;
  }
  if (name === `shorta.${Z}`) {
    // An A record with 3 bytes of data.
    const head = packet.encode({ ...base, flags });
    const out = Buffer.concat([head, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 3, 1, 2, 3])]);
    out.writeUInt16BE(1, 6);
    return out;
  }
  const answers: Rr[] = [];
  let cur = name;
  for (let hop = 0; hop < 8; hop++) {
    const here = zone.filter((r) => lc(r.name) === cur);
    const match = here.filter((r) => r.type === question.type);
    if (match.length > 0) {
      answers.push(...match);
      break;
    }
    const cname = here.find((r) => r.type === 'CNAME');
    if (!cname) break;
    answers.push(cname);
    cur = lc((cname as { data: string }).data);
  }
  const exists = zone.some((r) => lc(r.name) === name || lc(r.name).endsWith(`.${name}`));
  let out = packet.encode({ ...base, flags: flags | (exists ? 0 : 3), answers });
  const opt = q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  const limit = opt ? Math.max(512, opt.udpPayloadSize ?? 512) : 512;
  if (!overTcp && out.length > limit) out = packet.encode({ ...base, flags: flags | packet.TRUNCATED_RESPONSE } as packet.Packet);
  return out;
}

/** Length-prefixed queries from a TCP stream (RFC 7766), each answered in turn. */
function serveTcp(sock: { on(e: 'data', f: (b: Buffer) => void): void; on(e: 'error', f: () => void): void; write(b: Buffer): void }): void {
  let buf = Buffer.alloc(0);
  sock.on('error', () => {});
  sock.on('data', (b: Buffer) => {
    buf = Buffer.concat([buf, b]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const a = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)), true);
      buf = buf.subarray(2 + buf.readUInt16BE(0));
      if (a) sock.write(Buffer.concat([Buffer.from([a.length >> 8, a.length & 0xff]), a]));
    }
  });
}

/** The same server on Node's loopback. */
async function nodeServer(): Promise<string> {
  for (;;) {
    const udp = nodeDgram.createSocket('udp4');
    udp.on('message', (m, r) => {
      const a = answer(m, false);
      if (a) udp.send(a, r.port, r.address);
    });
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    const port = udp.address().port;
    const tcp = nodeNet.createServer((s) => serveTcp(s));
    const ok = await new Promise<boolean>((res) => {
      tcp.once('error', () => res(false));
      tcp.listen(port, '127.0.0.1', () => res(true));
    });
    if (!ok) {
      udp.close();
      continue;
    }
    closers.push(() => {
      udp.close();
      tcp.close();
    });
    return `127.0.0.1:${port}`;
  }
}

function pair(options: { routerB?: boolean } = {}) {
  const clock = new ManualClock();
  const wire = new Wire({ clock });
  const a = new Stack({ clock, seed: 21 });
  const b = new Stack({ clock, seed: 22, forwarding: options.routerB === true });
  a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:00:0a') }) }).addAddress('198.18.0.1/24');
  b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:00:0b') }) }).addAddress('198.18.0.2/24');
  closers.push(() => {
    a.close();
    b.close();
  });
  return { clock, a, b };
}

/** The same server on stack B at 198.18.0.2:53 (or another address of B). */
async function stackServer(b: Stack, address = '198.18.0.2'): Promise<string> {
  const udp = b.dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  udp.on('message', (m, r) => {
    const a = answer(m, false);
    if (a) udp.send(a, r.port, r.address);
  });
  udp.bind(53, address);
  await once(udp, 'listening');
  const tcp = b.net.createServer((s) => serveTcp(s));
  tcp.listen(53, address);
  return address;
}

interface Resolverish {
  resolve(n: string, t?: string): Promise<unknown>;
  resolve4(n: string, o?: { ttl: boolean }): Promise<unknown>;
  resolve6(n: string, o?: { ttl: boolean }): Promise<unknown>;
  resolveCname(n: string): Promise<unknown>;
  resolveMx(n: string): Promise<unknown>;
  resolveNs(n: string): Promise<unknown>;
  resolvePtr(n: string): Promise<unknown>;
  resolveSoa(n: string): Promise<unknown>;
  resolveSrv(n: string): Promise<unknown>;
  resolveTxt(n: string): Promise<unknown>;
  resolveCaa(n: string): Promise<unknown>;
  reverse(ip: string): Promise<unknown>;
}

const cases: Array<[string, (r: Resolverish) => Promise<unknown>]> = [
  ['A', (r) => r.resolve4(`www.${Z}`)],
  ['A ttl', (r) => r.resolve4(`www.${Z}`, { ttl: true })],
  ['AAAA ttl', (r) => r.resolve6(`www.${Z}`, { ttl: true })],
  ['A upper case', (r) => r.resolve4(`WWW.Zone.Test`)],
  ['A via CNAME chain', (r) => r.resolve4(`alias.${Z}`)],
  ['A via CNAME chain ttl', (r) => r.resolve4(`alias.${Z}`, { ttl: true })],
  ['CNAME', (r) => r.resolveCname(`alias.${Z}`)],
  ['CNAME none', (r) => r.resolveCname(`www.${Z}`)],
  ['MX', (r) => r.resolveMx(Z)],
  ['NS', (r) => r.resolveNs(Z)],
  ['SOA', (r) => r.resolveSoa(Z)],
  ['TXT', (r) => r.resolveTxt(Z)],
  ['CAA', (r) => r.resolveCaa(Z)],
  ['SRV', (r) => r.resolveSrv(`_sip._tcp.${Z}`)],
  ['PTR', (r) => r.resolvePtr('1.5.18.198.in-addr.arpa')],
  ['reverse v4', (r) => r.reverse('198.18.5.1')],
  ['reverse v6', (r) => r.reverse('2001:db8::1')],
  ['resolve MX', (r) => r.resolve(Z, 'MX')],
  ['resolve default', (r) => r.resolve(`www.${Z}`)],
  ['truncated A over TCP', (r) => r.resolve4(`big.${Z}`)],
  ['truncated TXT over TCP', (r) => r.resolveTxt(`big.${Z}`)],
  ['NXDOMAIN', (r) => r.resolve4(`missing.${Z}`)],
  ['NXDOMAIN MX', (r) => r.resolveMx(`missing.${Z}`)],
  ['NODATA AAAA', (r) => r.resolve6(`v4only.${Z}`)],
  ['NODATA MX', (r) => r.resolveMx(`www.${Z}`)],
  ['NODATA SOA', (r) => r.resolveSoa(`www.${Z}`)],
  ['SERVFAIL', (r) => r.resolve4(`fail.${Z}`)],
  ['REFUSED', (r) => r.resolveTxt(`refused.${Z}`)],
  ['reverse NXDOMAIN', (r) => r.reverse('198.18.5.77')],
  ['pointer loop', (r) => r.resolve4(`loop.${Z}`)],
  ['short A record', (r) => r.resolve4(`shorta.${Z}`)],
  ['bad name', (r) => r.resolve4('a..b')],
];

async function outcome(f: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await f() };
  } catch (e) {
    const x = e as { code?: string; syscall?: string; hostname?: string; message: string; errno?: number };
    return { code: x.code, syscall: x.syscall, hostname: x.hostname, message: x.message, errno: x.errno };
  }
}

describe('stack.dns against node:dns', () => {
  it('gives the same results and errors as Node for the same zone', async () => {
    const nodeR = new nodeDns.promises.Resolver({ timeout: 2000, tries: 1 });
    nodeR.setServers([await nodeServer()]);
    const { a, b } = pair();
    const r = new a.dns.promises.Resolver({ tries: 1 });
    r.setServers([await stackServer(b)]);
    const mine: Record<string, unknown> = {};
    const theirs: Record<string, unknown> = {};
    for (const [name, f] of cases) {
      theirs[name] = await outcome(() => f(nodeR));
      mine[name] = await outcome(() => f(r as unknown as Resolverish));
    }
    expect(mine).toEqual(theirs);
    // Sanity: the comparison covered real answers, truncation and errors.
    expect(theirs['truncated A over TCP']).toEqual({ ok: BIG_A });
    expect(theirs['reverse v6']).toEqual({ ok: [`www.${Z}`] });
    expect((theirs['NXDOMAIN'] as { code: string }).code).toBe('ENOTFOUND');
    expect((theirs['NODATA MX'] as { code: string }).code).toBe('ENODATA');
    expect(a.dns.stats.tcpQueries).toBe(2);
    expect((theirs['SERVFAIL'] as { code: string }).code).toBe('ESERVFAIL');
  });

  it('throws as Node does for a bad rrtype and a non-address to reverse, and formats servers alike', async () => {
    const { a } = pair();
    const mine = new a.dns.Resolver();
    const theirs = new nodeDns.Resolver();
    const servers = ['198.18.0.2', '198.18.0.3:5353', '[2001:db8::53]:53', '[2001:db8::54]:5353'];
    mine.setServers(servers);
    theirs.setServers(servers);
    expect(mine.getServers()).toEqual(theirs.getServers());
    const thrown = (f: () => void): unknown => {
      try {
        f();
        return null;
      } catch (e) {
        const x = e as { code?: string; message: string; syscall?: string };
        return { code: x.code, message: x.message, syscall: x.syscall };
      }
    };
    expect(thrown(() => mine.resolve('x', 'BAD', () => {}))).toEqual(thrown(() => theirs.resolve('x', 'BAD', () => {})));
    expect(thrown(() => mine.reverse('nope', () => {}))).toEqual(thrown(() => theirs.reverse('nope', () => {})));
    expect(thrown(() => mine.setServers(['not-an-ip']))).toEqual(thrown(() => theirs.setServers(['not-an-ip'])));
  });

  it('gives ECONNREFUSED with no servers, and the stack RDNSS servers by default', async () => {
    const { a } = pair();
    expect(a.dns.getServers()).toEqual([]);
    const e = await outcome(() => a.dns.promises.resolve4('www.zone.test'));
    expect(e).toMatchObject({ code: 'ECONNREFUSED', syscall: 'queryA', hostname: 'www.zone.test', message: 'queryA ECONNREFUSED www.zone.test' });
  });

  it('gives ECONNREFUSED as Node does when the server port is closed (ICMP port unreachable)', async () => {
    const probe = nodeDgram.createSocket('udp4');
    probe.bind(0, '127.0.0.1');
    await once(probe, 'listening');
    const closedPort = probe.address().port;
    probe.close();
    const theirs = new nodeDns.promises.Resolver({ timeout: 2000, tries: 1 });
    theirs.setServers([`127.0.0.1:${closedPort}`]);
    const { a } = pair();
    const mine = new a.dns.promises.Resolver({ tries: 1 });
    mine.setServers(['198.18.0.2:1']);
    const strip = (o: unknown) => ({ ...(o as object), message: undefined, hostname: undefined });
    const t = await outcome(() => theirs.resolveSrv('_x._udp.zone.test'));
    expect((t as { code: string }).code).toBe('ECONNREFUSED');
    expect(strip(await outcome(() => mine.resolveSrv('_x._udp.zone.test')))).toEqual(strip(t));
  });

  it('uses the DNS servers learned from IPv6 router advertisements (RDNSS) when none are set', async () => {
    const { a, b, clock } = pair({ routerB: true });
    b.nic('eth0')!.addAddress('2001:db8:1::1/64');
    b.requireNetwork<IPv6Protocol>(0x86dd).ndp.startRouter(b.nic('eth0')!, { prefixes: ['2001:db8:1::/64'], dnsServers: ['2001:db8:1::1'] });
    clock.advance(10_000);
    expect(a.dns.getServers()).toEqual(['2001:db8:1::1']);
    await stackServer(b, '2001:db8:1::1');
    expect(await a.dns.promises.resolveMx(Z)).toEqual([
      { exchange: `mx1.${Z}`, priority: 10 },
      { exchange: `mx2.${Z}`, priority: 20 },
    ]);
    expect(await a.dns.promises.lookup(`big.${Z}`, { family: 4 })).toEqual({ address: BIG_A[0], family: 4 });
    expect(a.dns.stats.tcpQueries).toBe(1);
  });

  it('times out on the clock after tries, ignoring answers with the wrong ID', async () => {
    const { a, b, clock } = pair();
    const srv = b.dgram.createSocket('udp4');
    const seen: number[] = [];
    srv.on('message', (m, rinfo) => {
      const id = m.readUInt16BE(0);
      seen.push(id);
      // Two wrong answers: another ID; the right ID for another question.
      const spoof = Buffer.from(m);
      spoof.writeUInt16BE((id + 1) & 0xffff, 0);
      spoof[2]! |= 0x80;
      srv.send(spoof, rinfo.port, rinfo.address);
      const other = packet.encode({ id, type: 'response', questions: [{ name: 'evil.zone.test', type: 'A' }], answers: [{ name: 'evil.zone.test', type: 'A', data: '198.18.66.6' }] });
      srv.send(other, rinfo.port, rinfo.address);
    });
    srv.bind(53, '198.18.0.2');
    await once(srv, 'listening');
    const r = new a.dns.promises.Resolver({ timeout: 1000, tries: 3 });
    r.setServers(['198.18.0.2']);
    const p = outcome(() => r.resolve4('slow.zone.test'));
    let settled = false;
    void p.then(() => (settled = true));
    for (let i = 0; i < 40 && !settled; i++) {
      await new Promise((res) => setImmediate(res));
      clock.advance(250);
    }
    expect(await p).toMatchObject({ code: 'ETIMEOUT', syscall: 'queryA', hostname: 'slow.zone.test', message: 'queryA ETIMEOUT slow.zone.test' });
    expect(seen.length).toBe(3);
    expect(new Set(seen).size).toBe(3);
    expect(a.dns.stats.badId).toBe(3);
    expect(a.dns.stats.badQuestion).toBe(3);
  });

  it('cancel() ends queries in progress with ECANCELLED', async () => {
    const { a, b } = pair();
    const srv = b.dgram.createSocket('udp4');
    srv.bind(53, '198.18.0.2');
    await once(srv, 'listening');
    const r = new a.dns.Resolver();
    r.setServers(['198.18.0.2']);
    const got = new Promise<unknown>((res) => r.resolveMx('zone.test', (err) => res(err)));
    await new Promise((res) => setImmediate(res));
    r.cancel();
    expect(await got).toMatchObject({ code: 'ECANCELLED', syscall: 'queryMx', hostname: 'zone.test' });
  });
});

describe('stack.dns.lookup', () => {
  async function setup() {
    const { a, b } = pair();
    a.dns.setServers([await stackServer(b)]);
    return a;
  }
  const lookup = (s: Stack, name: string, options: object = {}) =>
    new Promise<unknown>((res) => s.dns.lookup(name, options, (err, address, family) => res(err ? { code: err.code, syscall: err.syscall, errno: err.errno, message: err.message } : { address, family })));

  it('resolves names over DNS with family, all and order', async () => {
    const a = await setup();
    expect(await lookup(a, `www.${Z}`, { family: 4 })).toEqual({ address: '198.18.5.1', family: 4 });
    expect(await lookup(a, `www.${Z}`, { family: 6 })).toEqual({ address: '2001:db8::1', family: 6 });
    expect(await lookup(a, `alias.${Z}`, { all: true, order: 'ipv6first' })).toEqual({
      address: [
        { address: '2001:db8::1', family: 6 },
        { address: '198.18.5.1', family: 4 },
        { address: '198.18.5.2', family: 4 },
      ],
      family: undefined,
    });
    expect(await a.dns.promises.lookup(`v4only.${Z}`, { family: 6, hints: a.dns.V4MAPPED })).toEqual({ address: '::ffff:198.18.5.9', family: 6 });
    expect(await a.dns.promises.lookup(`v4only.${Z}`, { all: true })).toEqual([{ address: '198.18.5.9', family: 4 }]);
  });

  it('errors as getaddrinfo does', async () => {
    const a = await setup();
    expect(await lookup(a, `missing.${Z}`)).toEqual({ code: 'ENOTFOUND', syscall: 'getaddrinfo', errno: -3008, message: `getaddrinfo ENOTFOUND missing.${Z}` });
    expect(await lookup(a, `v4only.${Z}`, { family: 6 })).toMatchObject({ code: 'ENOTFOUND' });
    expect(await lookup(a, `fail.${Z}`)).toEqual({ code: 'EAI_AGAIN', syscall: 'getaddrinfo', errno: -3001, message: `getaddrinfo EAI_AGAIN fail.${Z}` });
    // Node's own shape for the same failure.
    const theirs = await new Promise<nodeDns.LookupAddress | NodeJS.ErrnoException>((res) => nodeDns.lookup('198.18.0.1', (err, address, family) => res(err ?? { address, family })));
    expect(await lookup(a, '198.18.0.1')).toEqual(theirs);
  });

  it('answers IP literals and the hosts table without DNS, localhost included', async () => {
    const { a } = pair(); // no servers at all: any DNS query would fail
    expect(await lookup(a, '2001:db8::5', { family: 4 })).toEqual({ address: '2001:db8::5', family: 6 });
    expect(await a.dns.promises.lookup('localhost', { all: true })).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    expect(await lookup(a, 'localhost', { family: 6 })).toEqual({ address: '::1', family: 6 });
    a.dns.hosts.add('Printer.LAN', '198.18.7.7');
    a.dns.hosts.add('printer.lan.', '2001:db8::7');
    expect(await a.dns.promises.lookup('printer.lan', { all: true, order: 'ipv6first' })).toEqual([
      { address: '2001:db8::7', family: 6 },
      { address: '198.18.7.7', family: 4 },
    ]);
    expect(a.dns.stats.queries).toBe(0);
    expect(await lookup(a, 'elsewhere.lan')).toMatchObject({ code: 'EAI_AGAIN' });
  });
});

describe('DNS message decoding', () => {
  it('rejects compression loops and overlong names with ParseError, never anything else', () => {
    const head = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]);
    const selfLoop = Buffer.concat([head, Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    expect(() => decodeDnsResponse(selfLoop)).toThrow(/pointer/);
    const labels: number[] = [];
    for (let i = 0; i < 5; i++) labels.push(63, ...new Array<number>(63).fill(0x61));
    const long = Buffer.concat([head, Buffer.from([...labels, 0, 0, 1, 0, 1])]);
    expect(() => decodeDnsResponse(long)).toThrow(/255/);
    for (let n = 0; n < 200; n++) {
      const junk = Buffer.from(Array.from({ length: 12 + (n % 40) }, (_, i) => (i * 7 + n * 13) & 0xff));
      try {
        decodeDnsResponse(junk);
      } catch (e) {
        expect((e as { code?: string }).code).toBe('EBADMSG');
      }
    }
  });
});
