import { describe, expect, it } from 'vitest';
import { dnsOverUdp } from './dns-over-udp.js';

describe('example: DNS over UDP on a lossy link', () => {
  it('resolves every name despite 25% loss, retrying; the same seed gives the same run', async () => {
    const r = await dnsOverUdp({ seed: 1 });
    expect(r.answers).toEqual({
      'www.example.': '192.0.2.10',
      'mail.example.': '192.0.2.25',
      'db.example.': '192.0.2.53',
      'nope.example.': 'NXDOMAIN',
    });
    // Four questions, and retries for the queries and answers the link lost.
    expect(r.lost.toResolver + r.lost.toClient).toBeGreaterThan(0);
    expect(r.queries).toBeGreaterThan(4);
    expect(await dnsOverUdp({ seed: 1 })).toEqual(r);
  });
});
