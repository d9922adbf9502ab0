import { describe, expect, it } from 'vitest';
import { dissect, haveTshark } from './tshark.js';
import { buildEthernet } from '../../src/headers/ethernet.js';
import { checksum } from '../../src/headers/checksum.js';
import { xorAt } from './bytes.js';

// The judge itself must be able to fail: a bad IPv4 checksum and a truncated header are reported.
describe.skipIf(!haveTshark())('tshark helper', () => {
  const mac = new Uint8Array([2, 0, 0, 0, 0, 1]);
  const ip = Uint8Array.from([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0]);
  it('reports a bad IP checksum as an expert error', () => {
    const good = ip.slice();
    const c = checksum(good, 0, 20);
    good[10] = c >>> 8;
    good[11] = c & 0xff;
    const bad = good.slice();
    xorAt(bad, 11, 0x55);
    const d = dissect([buildEthernet({ destination: mac, source: mac, etherType: 0x800 }, good), buildEthernet({ destination: mac, source: mac, etherType: 0x800 }, bad)], ['ip.checksum.status']);
    expect(d.expert.filter((e) => e.startsWith('packet 1'))).toEqual([]);
    expect(d.expert.some((e) => e.startsWith('packet 2'))).toBe(true);
  });
  it('reports a malformed packet', () => {
    const d = dissect([buildEthernet({ destination: mac, source: mac, etherType: 0x800 }, ip.subarray(0, 10))], []);
    expect(d.expert.length).toBeGreaterThan(0);
  });
});
