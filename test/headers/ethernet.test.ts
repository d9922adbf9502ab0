import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EthernetHeader,
  buildEthernet,
  ETHERTYPE_IPV4,
  ETHERTYPE_ARP,
} from '../../src/headers/ethernet.js';
import { formatMAC, parseMAC } from '../../src/core/address.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';

const dst = parseMAC('02:00:00:00:00:02');
const src = parseMAC('02:00:00:00:00:01');

describe('Ethernet', () => {
  it('parses what it builds, with and without a VLAN tag', () => {
    const plain = new EthernetHeader(buildEthernet({ destination: dst, source: src, etherType: ETHERTYPE_ARP }, new Uint8Array(46)));
    expect(plain.isValid()).toBe(true);
    expect(plain.headerLength).toBe(14);
    expect(plain.etherType).toBe(ETHERTYPE_ARP);
    expect(plain.vlanId).toBe(-1);
    expect(formatMAC(plain.destination)).toBe('02:00:00:00:00:02');

    const tagged = new EthernetHeader(
      buildEthernet({ destination: dst, source: src, etherType: ETHERTYPE_IPV4, vlan: { id: 100, priority: 5, dei: true } }),
    );
    expect(tagged.isValid()).toBe(true);
    expect(tagged.headerLength).toBe(18);
    expect(tagged.etherType).toBe(ETHERTYPE_IPV4);
    expect(tagged.vlanId).toBe(100);
    expect(tagged.vlanPriority).toBe(5);
    expect(tagged.vlanDei).toBe(true);
  });

  it('rejects short frames and a truncated VLAN tag', () => {
    expect(new EthernetHeader(new Uint8Array(13)).isValid()).toBe(false);
    const f = buildEthernet({ destination: dst, source: src, etherType: ETHERTYPE_IPV4, vlan: { id: 1 } });
    expect(new EthernetHeader(f, 0, 16).isValid()).toBe(false);
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const h = new EthernetHeader(bytes);
        if (h.isValid()) {
          expect(h.headerLength).toBeLessThanOrEqual(bytes.length);
          void h.etherType;
          void h.vlanId;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it.skipIf(!haveTshark())('is dissected by tshark as built', () => {
    const payload = new Uint8Array(46).fill(0xab);
    const frames = [
      buildEthernet({ destination: dst, source: src, etherType: 0x88b5 }, payload),
      buildEthernet({ destination: dst, source: src, etherType: 0x88b5, vlan: { id: 42, priority: 3 } }, payload),
    ];
    const d = dissect(frames, ['eth.dst', 'eth.src', 'eth.type', 'vlan.id', 'vlan.priority', 'vlan.etype']);
    expect(d.expert).toEqual([]);
    expect(field(d, 0, 'eth.dst')).toBe('02:00:00:00:00:02');
    expect(field(d, 0, 'eth.src')).toBe('02:00:00:00:00:01');
    expect(field(d, 0, 'eth.type')).toBe('0x88b5');
    expect(field(d, 1, 'eth.type')).toBe('0x8100');
    expect(field(d, 1, 'vlan.id')).toBe('42');
    expect(field(d, 1, 'vlan.priority')).toBe('3');
    expect(field(d, 1, 'vlan.etype')).toBe('0x88b5');
  });
});
