import { describe, expect, it } from 'vitest';
import { lossyTransfer } from './lossy-transfer.js';

describe('example: TCP bulk transfer over a lossy link', () => {
  it('delivers every byte in order despite random and burst loss, in seconds of virtual time', async () => {
    const t0 = performance.now();
    const r = await lossyTransfer({ seed: 1 });
    const realMs = performance.now() - t0;
    expect(r.bytes).toBe(2_000_000);
    expect(r.receivedSha256).toBe(r.sentSha256);
    expect(r.lost + r.burstLost).toBeGreaterThan(0);
    expect(r.retransmits).toBeGreaterThan(0);
    // 2 MB at 10 Mbit/s is 1.6 s on the wire at least.
    expect(r.virtualMs).toBeGreaterThan(1600);
    expect(realMs).toBeLessThan(r.virtualMs);
  });
});
