import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, ManualClock, Stack, Wire, parseMAC } from '../../src/index.js';
import { DNS_TYPE_A, DNS_TYPE_AAAA, decodeFirstAddress, decodeQuestion, encodeQuery, responseCode } from '../../src/headers/dns.js';
import { DnsRelay, type Lookup } from '../../src/sandbox/dns-relay.js';

const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length) closers.pop()!();
});

function setup(options: { lookup?: Lookup; upstream?: Array<{ host: string; port: number }>; timeoutMs?: number } = {}) {
  const clock = new ManualClock();
  const wire = new Wire({ clock });
  const host = new Stack({ clock, seed: 1 });
  const guest = new Stack({ clock, seed: 2 });
  host.createNIC({ name: 'tap0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('52:55:0a:00:02:02') }) }).addAddress('10.0.2.3/24');
  guest.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('52:54:00:12:34:56') }) }).addAddress('10.0.2.100/24');
  const relay = new DnsRelay(host, { address: '10.0.2.3', upstream: options.upstream ?? [], ...(options.lookup ? { lookup: options.lookup } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
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
