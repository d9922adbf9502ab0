/**
 * The core in a real browser: the browser bundle (dist/browser/tunstack.js, built in memory) runs
 * in headless Chromium, and what it does there is checked against outside truths: Node's own
 * sha256 of the bytes sent, a reply parsed and checksummed here, and the same ManualClock scenario
 * run in this Node process with src/web/index.ts.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as lib from '../../src/web/index.js';
import { chromiumSkipReason, openBrowserPage, type BrowserPage } from './harness.js';
import { patternBytes, pcapScenario, type ExchangeResult } from './scenarios.js';

const skip = chromiumSkipReason();
if (skip !== '') console.warn(`test/browser/browser.test.ts: browser tests skipped: ${skip}`);

const MiB = 1024 * 1024;

/** The RFC 1071 sum of `b[off, off+len)` folded, not complemented (0xffff when the checksum holds). */
function onesSum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (b[off + i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

describe.skipIf(skip !== '')('the core in headless Chromium', () => {
  let page: BrowserPage;
  beforeAll(async () => {
    page = await openBrowserPage();
  }, 120_000);
  afterAll(async () => {
    await page?.close();
  });

  it('two stacks on a Wire: ARP, ping, UDP and 16 MiB of TCP through the Web Streams face, sha256 checked', async () => {
    const r = await page.run<ExchangeResult>('exchange', 16 * MiB);
    expect(page.errors).toEqual([]);
    // ARP: a asked (op 1, its own MAC) and b answered (op 2, b's MAC); one resolved neighbour.
    expect(r.arp).toEqual([
      { outbound: true, op: 1, senderMac: '02:00:00:00:00:0a' },
      { outbound: false, op: 2, senderMac: '02:00:00:00:00:0b' },
    ]);
    expect(r.arpResolvedA).toBe(1);
    expect(r.ping).toEqual({ from: '10.0.0.2', ttl: 64, bytes: 64 });
    expect(r.udp?.text).toBe('hello over udp');
    expect(r.udp?.address).toBe('10.0.0.1');
    expect(r.tcpBytes).toBe(16 * MiB);
    // The page hashed what it sent and what it received (crypto.subtle); Node hashes the same bytes.
    const truth = createHash('sha256').update(patternBytes(16 * MiB)).digest('hex');
    expect(r.sentSha256).toBe(truth);
    expect(r.receivedSha256).toBe(truth);
  }, 120_000);

  it('a virtual TUN device in the page answers a ping written into its WritableStream', async () => {
    const reply = Uint8Array.from(await page.run<number[]>('tunPing'));
    expect(page.errors).toEqual([]);
    expect(reply.length).toBe(20 + 8 + 18);
    expect(reply[0]).toBe(0x45);
    expect(reply[9]).toBe(1); // ICMP
    expect([...reply.subarray(12, 16)]).toEqual([198, 18, 0, 1]);
    expect([...reply.subarray(16, 20)]).toEqual([198, 18, 0, 2]);
    expect(onesSum(reply, 0, 20)).toBe(0xffff); // IPv4 header checksum
    expect(reply[20]).toBe(0); // echo reply
    expect(onesSum(reply, 20, reply.length - 20)).toBe(0xffff); // ICMP checksum
    expect((reply[24]! << 8) | reply[25]!).toBe(0x1234);
    expect((reply[26]! << 8) | reply[27]!).toBe(7);
    expect(new TextDecoder().decode(reply.subarray(28))).toBe('ping from the page');
  }, 60_000);

  it('a ManualClock scenario writes the same pcap bytes in the page as in Node', async () => {
    const inPage = await page.run<{ sha256: string; length: number; packets: number }>('pcapScenario');
    expect(page.errors).toEqual([]);
    const inNode = await pcapScenario(lib);
    expect(inNode.packets).toBeGreaterThan(20); // ARP, ping, UDP, handshake, data, FINs
    expect(inPage).toEqual(inNode);
  }, 60_000);
});
