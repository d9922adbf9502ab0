import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_F_RSC_INFO,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  VIRTIO_NET_HDR_LENGTH,
  VIRTIO_NET_HDR_MRG_RXBUF_LENGTH,
  VirtioNetHeader,
  buildVirtioNetHeader,
  encodeVirtioNetHeader,
  type VirtioNetHeaderFields,
} from '../../src/headers/virtio.js';

/** Compile and run a C program against <linux/virtio_net.h>; stdout, or null with a reason. */
function runC(source: string): string | null {
  if (spawnSync('cc', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.warn('no C compiler (cc): kernel struct layout checks skipped');
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tunstack-virtio-'));
  try {
    writeFileSync(join(dir, 'p.c'), source);
    const cc = spawnSync('cc', ['-o', join(dir, 'p'), join(dir, 'p.c')], { encoding: 'utf8' });
    if (cc.status !== 0) {
      console.warn(`cannot compile against <linux/virtio_net.h>: ${cc.stderr}`);
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
#include <linux/virtio_net.h>
int main(void) {
  struct virtio_net_hdr_mrg_rxbuf m;
  memset(&m, 0, sizeof m);
  m.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  m.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN;
  m.hdr.hdr_len = 0x1234;
  m.hdr.gso_size = 0x5678;
  m.hdr.csum_start = 0x9abc;
  m.hdr.csum_offset = 0xdef0;
  m.num_buffers = 0x0102;
  printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu ", sizeof(struct virtio_net_hdr), sizeof m,
    offsetof(struct virtio_net_hdr, flags), offsetof(struct virtio_net_hdr, gso_type),
    offsetof(struct virtio_net_hdr, hdr_len), offsetof(struct virtio_net_hdr, gso_size),
    offsetof(struct virtio_net_hdr, csum_start), offsetof(struct virtio_net_hdr, csum_offset),
    offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers));
  printf("%d %d %d %d %d %d %d ", VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_UDP, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_ECN);
  for (size_t i = 0; i < sizeof m; i++) printf("%02x", ((unsigned char *)&m)[i]);
  printf("\\n");
  return 0;
}
`);

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

const sample: VirtioNetHeaderFields = {
  flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
  gsoType: VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN,
  hdrLen: 0x1234,
  gsoSize: 0x5678,
  csumStart: 0x9abc,
  csumOffset: 0xdef0,
  numBuffers: 0x0102,
};

describe('virtio_net_hdr', () => {
  it('has the constants of <linux/virtio_net.h>', () => {
    expect([VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_RSC_INFO]).toEqual([1, 2, 4]);
    expect([VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_UDP, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP_L4, VIRTIO_NET_HDR_GSO_ECN]).toEqual([
      0, 1, 3, 4, 5, 0x80,
    ]);
    expect([VIRTIO_NET_HDR_LENGTH, VIRTIO_NET_HDR_MRG_RXBUF_LENGTH]).toEqual([10, 12]);
  });

  it('lays out the 10-byte form: u8 flags, u8 gso_type, then LE u16 hdr_len, gso_size, csum_start, csum_offset', () => {
    const b = buildVirtioNetHeader(sample);
    expect(b.length).toBe(10);
    // Offsets: flags 0, gso_type 1, hdr_len 2, gso_size 4, csum_start 6, csum_offset 8; num_buffers absent.
    expect(hex(b)).toBe('0184' + '3412' + '7856' + 'bc9a' + 'f0de');
  });

  it('lays out the 12-byte form with num_buffers at offset 10, and larger sizes zero-filled', () => {
    expect(hex(buildVirtioNetHeader(sample, undefined, 12))).toBe('01843412' + '7856bc9a' + 'f0de' + '0201');
    const p = Uint8Array.of(0x45, 0x00);
    const b16 = buildVirtioNetHeader(sample, p, 16);
    expect(hex(b16)).toBe('018434127856bc9af0de0201' + '00000000' + '4500');
    const buf = new Uint8Array(16).fill(0xee);
    expect(encodeVirtioNetHeader(buf, 2, {}, 12)).toBe(12);
    expect(hex(buf)).toBe('eeee' + '00'.repeat(12) + 'eeee');
  });

  it('reads every field from both forms; setters write in place', () => {
    const b = buildVirtioNetHeader(sample, Uint8Array.of(1, 2, 3), 12);
    const h = new VirtioNetHeader(b, 0, b.length, 12);
    expect(h.isValid()).toBe(true);
    expect([h.flags, h.needsCsum, h.dataValid, h.gsoType, h.gsoProtocol, h.gsoEcn, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset, h.numBuffers]).toEqual([
      1, true, false, 0x84, VIRTIO_NET_HDR_GSO_TCPV6, true, 0x1234, 0x5678, 0x9abc, 0xdef0, 0x0102,
    ]);
    expect(hex(h.payload)).toBe('010203');
    // Read as the 10-byte form, num_buffers is not there and the payload starts at 10.
    h.reset(b, 0, b.length, 10);
    expect(h.numBuffers).toBe(0);
    expect(h.payload.length).toBe(5);
    h.numBuffers = 7; // ignored in the 10-byte form
    expect(hex(b.subarray(10, 12))).toBe('0201');
    h.reset(b, 0, b.length, 12);
    h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    h.gsoType = VIRTIO_NET_HDR_GSO_UDP_L4;
    h.hdrLen = 1;
    h.gsoSize = 0x0203;
    h.csumStart = 0x0405;
    h.csumOffset = 0x0607;
    h.numBuffers = 0x0809;
    expect(hex(b.subarray(0, 12))).toBe('020501000302050407060908');
    expect([h.dataValid, h.needsCsum, h.gsoEcn]).toEqual([true, false, false]);
  });

  it('isValid needs the configured header size and at least 10', () => {
    const b = new Uint8Array(12);
    expect(new VirtioNetHeader(b, 0, 9).isValid()).toBe(false);
    expect(new VirtioNetHeader(b, 0, 10).isValid()).toBe(true);
    expect(new VirtioNetHeader(b, 0, 11, 12).isValid()).toBe(false);
    expect(new VirtioNetHeader(b, 0, 12, 12).isValid()).toBe(true);
    expect(new VirtioNetHeader(b, 0, 12, 8).isValid()).toBe(false);
    expect(new VirtioNetHeader(b, 4, 10).isValid()).toBe(false);
  });

  it.skipIf(kernelOut === null)('matches the kernel structs compiled here (offsets and bytes, legacy host order) (no cc or kernel header: skipped)', () => {
    const out = kernelOut!;
    const parts = out.trim().split(' ');
    const nums = parts.slice(0, 16).map(Number);
    expect(nums.slice(0, 9)).toEqual([10, 12, 0, 1, 2, 4, 6, 8, 10]);
    expect(nums.slice(9, 16)).toEqual([
      VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4,
      VIRTIO_NET_HDR_GSO_UDP, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_ECN,
    ]);
    if (endianness() !== 'LE') {
      console.warn('big-endian host: legacy virtio fields are host order there; byte comparison skipped');
      return;
    }
    expect(parts[16]).toBe(hex(buildVirtioNetHeader(sample, undefined, 12)));
  });

  it('round trips random fields for 10, 12 and 16 byte headers; never throws on random bytes', () => {
    const u16 = fc.integer({ min: 0, max: 0xffff });
    fc.assert(
      fc.property(
        fc.record({ flags: fc.integer({ min: 0, max: 255 }), gsoType: fc.integer({ min: 0, max: 255 }), hdrLen: u16, gsoSize: u16, csumStart: u16, csumOffset: u16, numBuffers: u16 }),
        fc.constantFrom(10, 12, 16),
        fc.uint8Array({ maxLength: 16 }),
        (f, size, payload) => {
          const b = buildVirtioNetHeader(f, payload, size);
          const h = new VirtioNetHeader(b, 0, b.length, size);
          expect(h.isValid()).toBe(true);
          expect([h.flags, h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset, h.numBuffers]).toEqual([
            f.flags, f.gsoType, f.hdrLen, f.gsoSize, f.csumStart, f.csumOffset, size >= 12 ? f.numBuffers : 0,
          ]);
          expect(hex(h.payload)).toBe(hex(payload));
        },
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20 }), fc.integer({ min: 0, max: 20 }), (bytes, size) => {
        const h = new VirtioNetHeader(bytes, 0, bytes.length, size);
        if (h.isValid()) {
          void [h.flags, h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset, h.numBuffers];
          expect(h.payload.length).toBe(bytes.length - size);
        }
      }),
      { numRuns: 500 },
    );
  });
});
