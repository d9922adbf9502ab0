import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PI_LENGTH,
  TUN_PKT_STRIP,
  TunPacketInfo,
  buildTunPacketInfo,
  encodeTunPacketInfo,
} from '../../src/headers/tunpi.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/headers/ethernet.js';

/**
 * Compile and run a C program against the system's <linux/if_tun.h>; its stdout, or null (with
 * the reason printed) when there is no C compiler or header here.
 */
function runC(source: string): string | null {
  if (spawnSync('cc', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.warn('no C compiler (cc): kernel struct layout checks skipped');
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tunstack-tunpi-'));
  try {
    writeFileSync(join(dir, 'p.c'), source);
    const cc = spawnSync('cc', ['-o', join(dir, 'p'), join(dir, 'p.c')], { encoding: 'utf8' });
    if (cc.status !== 0) {
      console.warn(`cannot compile against <linux/if_tun.h>: ${cc.stderr}`);
      return null;
    }
    return execFileSync(join(dir, 'p'), { encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The kernel header's view of the struct, printed by a C program compiled here (null: cannot). */
const kernelOut = runC(`
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <arpa/inet.h>
#include <linux/if_tun.h>
int main(void) {
  struct tun_pi pi;
  memset(&pi, 0, sizeof pi);
  pi.flags = TUN_PKT_STRIP;
  pi.proto = htons(0x86dd);
  printf("%zu %zu %zu %d ", sizeof pi, offsetof(struct tun_pi, flags), offsetof(struct tun_pi, proto), TUN_PKT_STRIP);
  for (size_t i = 0; i < sizeof pi; i++) printf("%02x", ((unsigned char *)&pi)[i]);
  printf("\\n");
  return 0;
}
`);

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

describe('tun packet information header', () => {
  it('encodes hand-computed bytes (flags u16 BE by default, then EtherType u16 BE)', () => {
    // struct tun_pi { __u16 flags; __be16 proto; }: 4 bytes, proto at offset 2.
    expect(hex(buildTunPacketInfo({ protocol: ETHERTYPE_IPV6 }))).toBe('000086dd');
    expect(hex(buildTunPacketInfo({ flags: TUN_PKT_STRIP, protocol: ETHERTYPE_IPV4 }))).toBe('00010800');
    expect(hex(buildTunPacketInfo({ flags: TUN_PKT_STRIP, protocol: ETHERTYPE_IPV6, flagsLittleEndian: true }))).toBe('010086dd');
    expect(hex(buildTunPacketInfo({ flags: 0xabcd, protocol: 0x1234 }, Uint8Array.of(0x60, 0)))).toBe('abcd12346000');
    const buf = new Uint8Array(10).fill(0xee);
    expect(encodeTunPacketInfo(buf, 3, { protocol: 0x0806 })).toBe(PI_LENGTH);
    expect(hex(buf)).toBe('eeeeee00000806eeeeee');
  });

  it('decodes flags, protocol and payload; setters write in place', () => {
    const pkt = Uint8Array.of(0x00, 0x01, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00);
    const pi = new TunPacketInfo(pkt);
    expect(pi.isValid()).toBe(true);
    expect([pi.flags, pi.truncated, pi.protocol, pi.headerLength, pi.payload.length]).toEqual([TUN_PKT_STRIP, true, ETHERTYPE_IPV6, 4, 4]);
    pi.littleEndianFlags = true;
    expect([pi.flags, pi.truncated]).toEqual([0x0100, false]);
    pi.flags = TUN_PKT_STRIP;
    expect(hex(pkt.subarray(0, 2))).toBe('0100');
    expect(pi.truncated).toBe(true);
    pi.littleEndianFlags = false;
    pi.flags = 0;
    pi.protocol = ETHERTYPE_IPV4;
    expect(hex(pkt.subarray(0, 4))).toBe('00000800');
    expect(new TunPacketInfo(pkt, 0, 3).isValid()).toBe(false);
    expect(new TunPacketInfo(pkt, 6).isValid()).toBe(false);
    expect(pi.reset(pkt, 4).isValid()).toBe(true);
  });

  it.skipIf(kernelOut === null)('matches the kernel struct tun_pi compiled here (layout; flags in host order) (no cc or kernel header: skipped)', () => {
    const out = kernelOut!;
    const [size, flagsOff, protoOff, strip, bytes] = out.trim().split(' ');
    expect(Number(size)).toBe(PI_LENGTH);
    expect(Number(flagsOff)).toBe(0);
    expect(Number(protoOff)).toBe(2);
    expect(Number(strip)).toBe(TUN_PKT_STRIP);
    // The kernel's flags field is host order: our little-endian form matches it on LE hosts.
    const le = endianness() === 'LE';
    expect(bytes).toBe(hex(buildTunPacketInfo({ flags: TUN_PKT_STRIP, protocol: ETHERTYPE_IPV6, flagsLittleEndian: le })));
    const view = new TunPacketInfo(Uint8Array.from(Buffer.from(bytes!, 'hex')));
    view.littleEndianFlags = le;
    expect([view.flags, view.protocol]).toEqual([TUN_PKT_STRIP, ETHERTYPE_IPV6]);
  });

  it('round trips any flags and protocol in both byte orders; never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.boolean(), fc.uint8Array({ maxLength: 20 }), (flags, protocol, le, payload) => {
        const b = buildTunPacketInfo({ flags, protocol, flagsLittleEndian: le }, payload);
        const v = new TunPacketInfo(b);
        v.littleEndianFlags = le;
        expect(v.isValid()).toBe(true);
        expect([v.flags, v.protocol, v.truncated]).toEqual([flags, protocol, (flags & 1) === 1]);
        expect(hex(v.payload)).toBe(hex(payload));
        v.flags = flags ^ 0xffff;
        expect(v.flags).toBe(flags ^ 0xffff);
        expect(v.protocol).toBe(protocol);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), fc.nat(10), (bytes, off) => {
        const v = new TunPacketInfo(bytes, off);
        if (v.isValid()) {
          expect(v.flags).toBeLessThanOrEqual(0xffff);
          expect(v.payload.length).toBe(bytes.length - off - 4);
        }
      }),
      { numRuns: 500 },
    );
  });
});
