import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, ManualClock, Stack, Wire, parseMAC } from '../../src/index.js';
import { DNS_TYPE_A, decodeFirstAddress, encodeQuery, responseCode } from '../../src/headers/dns.js';
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
  return { relay, ask, client };
}

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
});
