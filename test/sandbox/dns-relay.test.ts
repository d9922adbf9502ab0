import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, ManualClock, Stack, Wire, parseMAC } from '../../src/index.js';
import { DNS_TYPE_A, DNS_TYPE_AAAA, decodeFirstAddress, decodeQuestion, encodeQuery, responseCode } from '../../src/headers/dns.js';
import { DnsRelay, upstreamIdSource, type Lookup } from '../../src/sandbox/dns-relay.js';

const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length) closers.pop()!();
});

function setup(options: { lookup?: Lookup; upstream?: Array<{ host: string; port: number }>; timeoutMs?: number; maxInFlight?: number } = {}) {
  const clock = new ManualClock();
  const wire = new Wire({ clock });
  const host = new Stack({ clock, seed: 1 });
  const guest = new Stack({ clock, seed: 2 });
  host.createNIC({ name: 'tap0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('52:55:0a:00:02:02') }) }).addAddress('10.0.2.3/24');
  guest.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('52:54:00:12:34:56') }) }).addAddress('10.0.2.100/24');
  const relay = new DnsRelay(host, { address: '10.0.2.3', upstream: options.upstream ?? [], ...(options.lookup ? { lookup: options.lookup } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}), ...(options.maxInFlight ? { maxInFlight: options.maxInFlight } : {}) });
  const client = guest.dgram.createSocket('udp4');
  closers.push(() => relay.close());
  const ask = async (q: Uint8Array): Promise<Buffer> => {
    const got = once(client, 'message');
    client.send(q, 53, '10.0.2.3');
    return (await got)[0] as Buffer;
  };
  /** A TCP connection from the guest to 10.0.2.3:53 that collects length-prefixed answers. */
  const tcp = () => {
    const sock = guest.net.connect({ host: '10.0.2.3', port: 53 });
    let buf = Buffer.alloc(0);
    const answers: Buffer[] = [];
    let ended = false;
    sock.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        answers.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
    });
    sock.on('end', () => (ended = true));
    sock.on('error', () => {});
    const send = (q: Uint8Array): void => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length, 0);
      sock.write(Buffer.concat([len, q]));
    };
    const waitFor = async (n: number): Promise<void> => {
      for (let i = 0; i < 5000 && answers.length < n; i++) {
        clock.advance(1);
        await new Promise((r) => setImmediate(r));
      }
    };
    return { sock, send, answers, waitFor, isEnded: () => ended };
  };
  return { relay, ask, client, tcp, clock };
}

const many6: Lookup = async (_name, family) => {
  if (family === 4) throw Object.assign(new Error('no A'), { code: 'ENODATA' });
  return Array.from({ length: 40 }, (_, i) => Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), i + 1]));
};

describe('DNS relay', () => {
  it('answers A queries with the host resolver (so /etc/hosts names work)', async () => {
    const { relay, ask } = setup();
    const r = await ask(encodeQuery({ id: 7, name: 'localhost.', type: DNS_TYPE_A }));
    expect(r.readUInt16BE(0)).toBe(7);
    expect(responseCode(r)).toBe(0);
    expect([...decodeFirstAddress(r)!].join('.')).toBe('127.0.0.1');
    expect(relay.stats.answeredLocally).toBe(1);
  });

  it('answers NXDOMAIN for unknown names and NOERROR/no answer when only the other family exists', async () => {
    const lookup: Lookup = async (name, family) => {
      if (name === 'v6only.test' && family === 4) throw Object.assign(new Error('no A'), { code: 'ENODATA' });
      throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
    };
    const { relay, ask } = setup({ lookup });
    const nx = await ask(encodeQuery({ id: 1, name: 'missing.test.', type: DNS_TYPE_A }));
    expect(responseCode(nx)).toBe(3);
    const nodata = await ask(encodeQuery({ id: 2, name: 'v6only.test.', type: DNS_TYPE_A }));
    expect(responseCode(nodata)).toBe(0);
    expect(decodeFirstAddress(nodata)).toBeNull();
    expect(relay.stats.nxdomain).toBe(1);
  });

  it('forwards other query types upstream and passes the answer back with the guest id', async () => {
    const upstream = createSocket('udp4');
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
    closers.push(() => upstream.close());
    let seenId = -1;
    upstream.on('message', (msg, rinfo) => {
      seenId = msg.readUInt16BE(0);
      const resp = Buffer.from(msg);
      resp[2] = 0x81;
      resp[3] = 0x80;
      upstream.send(resp, rinfo.port, rinfo.address);
    });
    const { relay, ask } = setup({ upstream: [{ host: '127.0.0.1', port: upstream.address().port }] });
    const r = await ask(encodeQuery({ id: 0x4444, name: 'example.test.', type: 16 /* TXT */ }));
    expect(r.readUInt16BE(0)).toBe(0x4444);
    expect(seenId).not.toBe(-1);
    expect(r[2]! & 0x80).toBe(0x80);
    expect(relay.stats.upstreamAnswers).toBe(1);
  });

  it('answers SERVFAIL when upstream is silent, and counts malformed queries', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    closers.push(() => silent.close());
    const { relay, ask, client } = setup({ upstream: [{ host: '127.0.0.1', port: silent.address().port }], timeoutMs: 50 });
    const r = await ask(encodeQuery({ id: 9, name: 'slow.test.', type: 16 }));
    expect(responseCode(r)).toBe(2);
    expect(relay.stats.upstreamTimeouts).toBe(1);
    client.send(Buffer.alloc(5), 53, '10.0.2.3');
    client.send(Buffer.from(r), 53, '10.0.2.3'); // a response is not a query
    await new Promise((res) => setImmediate(res));
    expect(relay.stats.malformed).toBe(2);
  });

  it('TCP: pipelined queries get length-prefixed answers; other types go upstream over TCP with the guest id', async () => {
    let upstreamQueries = 0;
    const upstream = createServer((c) => {
      let b = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        b = Buffer.concat([b, d]);
        if (b.length < 2 || b.length < 2 + b.readUInt16BE(0)) return;
        upstreamQueries++;
        const q = b.subarray(2, 2 + b.readUInt16BE(0));
        // An answer longer than UDP's 512 bytes: the question plus 600 bytes of padding record.
        const resp = Buffer.concat([Buffer.from(q), Buffer.alloc(600, 0x61)]);
        resp[2] = 0x81;
        resp[3] = 0x80;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(resp.length, 0);
        c.end(Buffer.concat([len, resp]));
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    closers.push(() => upstream.close());
    const { relay, tcp } = setup({
      upstream: [{ host: '127.0.0.1', port: (upstream.address() as AddressInfo).port }],
      lookup: async () => [Uint8Array.of(127, 0, 0, 1)],
    });
    const c = tcp();
    c.send(encodeQuery({ id: 0x1111, name: 'example.test.', type: 16 /* TXT */ }));
    c.send(encodeQuery({ id: 0x2222, name: 'localhost.', type: DNS_TYPE_A }));
    await c.waitFor(2);
    expect(c.answers.length).toBe(2);
    const byId = new Map(c.answers.map((a) => [a.readUInt16BE(0), a]));
    expect([...decodeFirstAddress(byId.get(0x2222)!)!].join('.')).toBe('127.0.0.1');
    const txt = byId.get(0x1111)!;
    expect(txt.length).toBeGreaterThan(600);
    expect(decodeQuestion(txt).name).toBe('example.test.');
    expect(upstreamQueries).toBe(1);
    expect(relay.stats.tcpQueries).toBe(2);
    expect(relay.stats.tcpConnections).toBe(1);
  });

  it('a UDP answer too long for 512 bytes is truncated (TC); over TCP the guest gets every record', async () => {
    const { relay, ask, tcp } = setup({ lookup: many6 });
    const q = encodeQuery({ id: 5, name: 'big.test.', type: DNS_TYPE_AAAA });
    const r = await ask(q);
    expect(r[2]! & 0x02).toBe(0x02);
    expect(r.readUInt16BE(6)).toBe(0);
    expect(r.length).toBeLessThanOrEqual(512);
    expect(relay.stats.truncated).toBe(1);
    const c = tcp();
    c.send(q);
    await c.waitFor(1);
    const a = c.answers[0]!;
    expect(a[2]! & 0x02).toBe(0);
    expect(a.readUInt16BE(6)).toBe(40);
    expect([...decodeFirstAddress(a)!].slice(0, 4)).toEqual([0x20, 0x01, 0x0d, 0xb8]);
  });

  it('TCP connections close after 10 s idle (on the stack clock) and after the guest half-closes', async () => {
    // (A resolver that answers at once: the test steps the clock around the answer.)
    const { relay, tcp, clock } = setup({ lookup: async () => [Uint8Array.of(127, 0, 0, 1)] });
    const idle = tcp();
    idle.send(encodeQuery({ id: 1, name: 'localhost.', type: DNS_TYPE_A }));
    await idle.waitFor(1);
    clock.advance(9_000);
    await new Promise((r) => setImmediate(r));
    expect(idle.isEnded()).toBe(false);
    clock.advance(1_100);
    for (let i = 0; i < 200 && !idle.isEnded(); i++) await new Promise((r) => setImmediate(r));
    expect(idle.isEnded()).toBe(true);
    const half = tcp();
    half.send(encodeQuery({ id: 2, name: 'localhost.', type: DNS_TYPE_A }));
    half.sock.end();
    await half.waitFor(1);
    for (let i = 0; i < 200 && !half.isEnded(); i++) {
      clock.advance(1);
      await new Promise((r) => setImmediate(r));
    }
    expect(half.answers.length).toBe(1);
    expect(half.isEnded()).toBe(true);
    expect(relay.stats.tcpConnections).toBe(2);
  });
});

/** A TXT answer to `query` carrying `text`; `edit` forges the ID, name, type or QR bit. */
function txtAnswer(query: Uint8Array, text: string, edit: { id?: number; name?: string; type?: number; qr?: boolean } = {}): Buffer {
  const q = decodeQuestion(query);
  const head = Buffer.from(encodeQuery({ id: edit.id ?? q.id, name: edit.name ?? q.name, type: edit.type ?? q.type }));
  head.writeUInt16BE(edit.qr === false ? 0x0100 : 0x8180, 2);
  head.writeUInt16BE(1, 6); // ANCOUNT
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0); // the question's name
  rr.writeUInt16BE(16, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(text.length + 1, 10);
  return Buffer.concat([head, rr, Buffer.from([text.length]), Buffer.from(text, 'ascii')]);
}

const turn = () => new Promise<void>((r) => setImmediate(r));
/** Let I/O run until `cond` holds (bounded: false if it never did). */
async function until(cond: () => boolean, turns = 2000): Promise<boolean> {
  for (let i = 0; i < turns && !cond(); i++) await turn();
  return cond();
}

async function udpSocket(address = '127.0.0.1', port = 0) {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(port, address, () => r()));
  closers.push(() => s.close());
  return s;
}

/** A fake upstream DNS server on loopback that records each query and answers only when told. */
async function slowUpstream() {
  const sock = await udpSocket();
  const queries: Array<{ msg: Buffer; id: number; port: number }> = [];
  sock.on('message', (msg, rinfo) => queries.push({ msg, id: msg.readUInt16BE(0), port: rinfo.port }));
  return { sock, queries, port: sock.address().port };
}

/** Send `msgs` to 127.0.0.1:port in batches the relay keeps up with (`seen` counts arrivals). */
async function sendPaced(from: ReturnType<typeof createSocket>, port: number, msgs: Iterable<Buffer>, seen: () => number, stop: () => boolean): Promise<number> {
  let sent = 0;
  let batch = 0;
  for (const m of msgs) {
    from.send(m, port, '127.0.0.1');
    sent++;
    if (++batch === 128) {
      batch = 0;
      // Stay under the socket's receive buffer: wait until the relay has read this batch.
      await until(() => seen() >= sent || stop(), 500);
      if (stop()) break;
    }
  }
  await until(() => seen() >= sent || stop(), 500);
  return sent;
}

describe('DNS relay against spoofed upstream answers', () => {
  it('a spoofer racing forged answers (all 65536 IDs to the right port, predicted IDs from the real source) loses every time', async () => {
    const up = await slowUpstream();
    const spoofer = await udpSocket();
    const { relay, client } = setup({ upstream: [{ host: '127.0.0.1', port: up.port }] });
    const got: Buffer[] = [];
    client.on('message', (m: Buffer) => got.push(m));
    let prev: { id: number; port: number } | null = null;
    const rounds = 2;
    for (let k = 0; k < rounds; k++) {
      got.length = 0;
      const guestId = 0x1000 + k;
      client.send(encodeQuery({ id: guestId, name: `victim${k}.example.test.`, type: 16 }), 53, '10.0.2.3');
      expect(await until(() => up.queries.length === k + 1)).toBe(true);
      const q = up.queries[k]!;
      // The attacker knows the relay's port for this query (the strongest case) and tries every ID
      // from its own socket; the relay must take none of them, whatever the ID.
      const source0 = relay.stats.upstreamBadSource;
      const allIds = function* () {
        for (let id = 0; id < 0x10000; id++) yield txtAnswer(q.msg, 'forged', { id });
      };
      const flooded = await sendPaced(spoofer, q.port, allIds(), () => relay.stats.upstreamBadSource - source0, () => got.length > 0);
      expect(got).toEqual([]);
      expect(flooded).toBe(0x10000);
      expect(relay.stats.upstreamBadSource - source0).toBe(0x10000);
      // An attacker who can forge the server's own address predicts from the previous query: the
      // same port and the next IDs. Sent from the server's socket (a perfect source spoof).
      if (prev !== null) {
        const next = Array.from({ length: 16 }, (_, i) => txtAnswer(q.msg, 'forged', { id: (prev!.id + 1 + i) & 0xffff }));
        for (const m of next) up.sock.send(m, prev.port, '127.0.0.1');
        for (const m of next) up.sock.send(m, q.port, '127.0.0.1');
        await until(() => got.length > 0, 200);
        expect(got).toEqual([]);
      }
      // Only now does the real server answer.
      up.sock.send(txtAnswer(q.msg, 'truth'), q.port, '127.0.0.1');
      expect(await until(() => got.length > 0)).toBe(true);
      await until(() => false, 50);
      expect(got.length).toBe(1);
      expect(got[0]!.readUInt16BE(0)).toBe(guestId);
      expect(got[0]!.includes('truth')).toBe(true);
      expect(got[0]!.includes('forged')).toBe(false);
      prev = { id: q.id, port: q.port };
    }
    expect(relay.stats.upstreamAnswers).toBe(rounds);
    expect(relay.stats.upstreamBadSource).toBe(rounds * 0x10000);
  }, 60_000);

  it('drops answers from another address or port, with another ID or question, and takes the real one (name in any case)', async () => {
    const up = await slowUpstream();
    const otherPort = await udpSocket();
    const otherAddress = await udpSocket('127.0.0.2', up.port);
    const { relay, client } = setup({ upstream: [{ host: '127.0.0.1', port: up.port }] });
    const got: Buffer[] = [];
    client.on('message', (m: Buffer) => got.push(m));
    client.send(encodeQuery({ id: 77, name: 'victim.example.test.', type: 16 }), 53, '10.0.2.3');
    expect(await until(() => up.queries.length === 1)).toBe(true);
    const q = up.queries[0]!;
    const stat = () => relay.stats.upstreamBadSource + relay.stats.upstreamBadId + relay.stats.upstreamBadQuestion;
    const forged: Array<[ReturnType<typeof createSocket>, Buffer]> = [
      [otherAddress, txtAnswer(q.msg, 'forged')], // right port, wrong address
      [otherPort, txtAnswer(q.msg, 'forged')], // right address, wrong port
      [up.sock, txtAnswer(q.msg, 'forged', { id: q.id ^ 1 })],
      [up.sock, txtAnswer(q.msg, 'forged', { name: 'other.example.test.' })],
      [up.sock, txtAnswer(q.msg, 'forged', { name: 'victim.example.tesu.' })],
      [up.sock, txtAnswer(q.msg, 'forged', { type: 15 })],
      [up.sock, txtAnswer(q.msg, 'forged', { qr: false })],
      [up.sock, txtAnswer(q.msg, 'forged').subarray(0, 11)],
    ];
    for (const [from, m] of forged) from.send(m, q.port, '127.0.0.1');
    expect(await until(() => stat() === forged.length || got.length > 0)).toBe(true);
    expect(got).toEqual([]);
    expect(relay.stats.upstreamBadSource).toBe(2);
    expect(relay.stats.upstreamBadId).toBe(2);
    expect(relay.stats.upstreamBadQuestion).toBe(4);
    // DNS names compare without regard to case (RFC 4343): the server may echo another case.
    up.sock.send(txtAnswer(q.msg, 'truth', { name: 'VICTIM.Example.TEST.' }), q.port, '127.0.0.1');
    expect(await until(() => got.length > 0)).toBe(true);
    expect(got[0]!.readUInt16BE(0)).toBe(77);
    expect(got[0]!.includes('truth')).toBe(true);
    expect(relay.stats.upstreamAnswers).toBe(1);
  });

  it('upstream IDs are unpredictable and every query has a fresh source port, closed after its answer', async () => {
    const up = await slowUpstream();
    up.sock.on('message', (msg, rinfo) => up.sock.send(txtAnswer(msg, 'truth'), rinfo.port, rinfo.address));
    const { relay, ask } = setup({ upstream: [{ host: '127.0.0.1', port: up.port }] });
    for (let i = 0; i < 100; i++) {
      const r = await ask(encodeQuery({ id: i, name: `q${i}.example.test.`, type: 16 }));
      expect(r.readUInt16BE(0)).toBe(i);
    }
    const ids = up.queries.map((q) => q.id);
    const ports = up.queries.map((q) => q.port);
    expect(ids.length).toBe(100);
    for (let i = 1; i < ids.length; i++) {
      const step = (ids[i]! - ids[i - 1]!) & 0xffff;
      expect(step === 1 || step === 0xffff, `IDs ${ids[i - 1]} then ${ids[i]}`).toBe(false);
    }
    expect(new Set(ids).size).toBeGreaterThanOrEqual(95);
    // The OS picks each ephemeral port at random; a closed one may come back, rarely.
    expect(new Set(ports).size).toBeGreaterThanOrEqual(90);
    // A late answer to the first query finds its socket closed: nothing reads it.
    const first = up.queries[0]!;
    up.sock.send(txtAnswer(first.msg, 'late', { id: first.id ^ 1 }), first.port, '127.0.0.1');
    await until(() => false, 100);
    expect(relay.stats.upstreamBadId).toBe(0);
    expect(relay.stats.upstreamAnswers).toBe(100);
  });

  it('an IPv6 upstream ([::1]) is matched by address and port too', async () => {
    const up = createSocket('udp6');
    await new Promise<void>((r) => up.bind(0, '::1', () => r()));
    closers.push(() => up.close());
    const spoofer = createSocket('udp6');
    await new Promise<void>((r) => spoofer.bind(0, '::1', () => r()));
    closers.push(() => spoofer.close());
    up.on('message', (msg, rinfo) => {
      spoofer.send(txtAnswer(msg, 'forged'), rinfo.port, '::1');
      setImmediate(() => up.send(txtAnswer(msg, 'truth'), rinfo.port, '::1'));
    });
    const { relay, ask } = setup({ upstream: [{ host: '::1', port: up.address().port }] });
    const r = await ask(encodeQuery({ id: 6, name: 'v6.example.test.', type: 16 }));
    expect(r.includes('truth')).toBe(true);
    expect(relay.stats.upstreamBadSource).toBe(1);
  });

  it('IDs come from the CSPRNG on a real clock and from the seeded source only under a ManualClock', () => {
    const seq = (s: Stack) => {
      const next = upstreamIdSource(s);
      return Array.from({ length: 16 }, () => next());
    };
    expect(seq(new Stack({ clock: new ManualClock(), seed: 5 }))).toEqual(seq(new Stack({ clock: new ManualClock(), seed: 5 })));
    expect(seq(new Stack({ seed: 5 }))).not.toEqual(seq(new Stack({ seed: 5 })));
  });

  it('TCP upstream: the query goes out under a new ID and an answer with another ID or question is skipped', async () => {
    let seenId = -1;
    const upstream = createServer((c) => {
      c.once('data', (d: Buffer) => {
        const q = d.subarray(2, 2 + d.readUInt16BE(0));
        seenId = q.readUInt16BE(0);
        const frame = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);
        c.end(Buffer.concat([frame(txtAnswer(q, 'forged', { id: seenId ^ 0x8000 })), frame(txtAnswer(q, 'forged', { type: 1 })), frame(txtAnswer(q, 'truth'))]));
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    closers.push(() => upstream.close());
    const { relay, tcp } = setup({ upstream: [{ host: '127.0.0.1', port: (upstream.address() as AddressInfo).port }] });
    const c = tcp();
    c.send(encodeQuery({ id: 0x0101, name: 'victim.example.test.', type: 16 }));
    await c.waitFor(1);
    expect(c.answers.length).toBe(1);
    expect(c.answers[0]!.readUInt16BE(0)).toBe(0x0101);
    expect(c.answers[0]!.includes('truth')).toBe(true);
    expect(seenId).not.toBe(0x0101);
    expect(relay.stats.upstreamBadId).toBe(1);
    expect(relay.stats.upstreamBadQuestion).toBe(1);
  });

  it('forwarded queries in flight are bounded: beyond maxInFlight the guest gets SERVFAIL at once, counted', async () => {
    const up = await slowUpstream();
    const { relay, ask, client } = setup({ upstream: [{ host: '127.0.0.1', port: up.port }], maxInFlight: 2 });
    client.send(encodeQuery({ id: 1, name: 'a.example.test.', type: 16 }), 53, '10.0.2.3');
    client.send(encodeQuery({ id: 2, name: 'b.example.test.', type: 16 }), 53, '10.0.2.3');
    expect(await until(() => up.queries.length === 2)).toBe(true);
    const r = await ask(encodeQuery({ id: 3, name: 'c.example.test.', type: 16 }));
    expect(r.readUInt16BE(0)).toBe(3);
    expect(responseCode(r)).toBe(2);
    expect(relay.stats.dropped).toBe(1);
    expect(new Set(up.queries.map((q) => q.port)).size).toBe(2);
  });

  it('refuses an upstream that is not an IP address', () => {
    expect(() => setup({ upstream: [{ host: 'dns.example.test', port: 53 }] })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => setup({ upstream: [{ host: '127.0.0.1', port: 70000 }] })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
