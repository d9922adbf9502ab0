import { afterEach, describe, expect, it } from 'vitest';
import { httpOverLossyLink, type HttpScenario } from './http-over-lossy-link.js';

let s: HttpScenario | null = null;
afterEach(() => {
  s?.close();
  s = null;
});

describe('example: Node http client and server over a lossy link', () => {
  it('GET /hello returns JSON; the server sees the client address', async () => {
    s = httpOverLossyLink({ seed: 1 });
    const r = await s.net.runUntil(s.get('/hello'));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(JSON.parse(r.text)).toEqual({ hello: 'from tunstack', via: s.client.address });
    // Handshake, request and response: at least two round trips of 60 ms (plus ARP).
    expect(r.atMs).toBeGreaterThanOrEqual(120);
  });

  it('GET /big: 1 MB intact through 3% loss, over a kept-alive connection, in virtual time', async () => {
    s = httpOverLossyLink({ seed: 2 });
    const t0 = performance.now();
    const first = await s.net.runUntil(s.get('/hello'));
    const big = await s.net.runUntil(s.get('/big'));
    const real = performance.now() - t0;
    expect(first.status).toBe(200);
    expect(big.status).toBe(200);
    expect(big.bytes).toBe(1_000_000);
    expect(big.sha256).toBe(s.bigSha256);
    const link = s.net.links[0]!;
    expect(link.stats.bToA.lost).toBeGreaterThan(0);
    // One TCP connection for both requests (keep-alive): a single SYN from the client.
    expect(s.client.stack.requireTransport<import('../src/index.js').TcpProtocol>(6).stats.activeOpens).toBe(1);
    // 1 MB at 20 Mbit/s is 400 ms on the wire at least; loss and slow start add to it.
    expect(big.atMs - first.atMs).toBeGreaterThan(400);
    expect(real).toBeLessThan(10_000);
  });

  it('a 404 for anything else', async () => {
    s = httpOverLossyLink({ seed: 3, loss: 0 });
    expect((await s.net.runUntil(s.get('/nope'))).status).toBe(404);
  });
});
