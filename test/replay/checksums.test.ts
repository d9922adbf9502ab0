import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pseudoHeaderSumV4 } from '../../src/headers/checksum.js';
import { PcapReader } from '../../src/pcap/index.js';
import { fixChecksums } from '../../src/replay/checksums.js';
import { decodeFrame } from '../../src/replay/decode.js';
import { replay } from '../../src/replay/replay.js';
import { capture, concat, haveCaptures, pcapHeader, pcapRecord } from '../helpers/captures.js';
import { haveTshark } from '../helpers/tshark.js';
import { tsharkFields } from './helpers.js';
import { xorAt } from '../helpers/bytes.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-csum-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of a capture whose TCP/UDP checksums hold what a NIC with offload leaves: the pseudo-header sum. */
function offloaded(path: string): { bytes: Uint8Array; frames: Uint8Array[]; originals: Uint8Array[] } {
  const recs = PcapReader.open(path).readAll();
  const parts: Uint8Array[] = [pcapHeader(true, false, 65535, 1)];
  const frames: Uint8Array[] = [];
  for (const r of recs) {
    const f = r.data.slice();
    const s = decodeFrame(1, f);
    if (s.proto === 'tcp' || s.proto === 'udp') {
      const l4 = s.proto === 'tcp' ? s.tcp!.headerOffset : s.payloadOffset - 8;
      const at = l4 + (s.proto === 'tcp' ? 16 : 6);
      const len = s.l3End - l4;
      const partial = pseudoHeaderSumV4(f, s.l3Offset + 12, f, s.l3Offset + 16, s.ipProto, len);
      f[at] = partial >>> 8;
      f[at + 1] = partial & 0xff;
    }
    frames.push(f);
    const sec = Math.floor(r.timestampMs / 1000);
    parts.push(pcapRecord(true, sec, Math.round((r.timestampMs - sec * 1000) * 1000), f));
  }
  return { bytes: concat(...parts), frames, originals: recs.map((r) => r.data) };
}

describe.skipIf(!haveCaptures())('captures taken with checksum offload', () => {
  it('fixChecksums restores the checksums the real hosts computed (tshark: good), byte for byte', () => {
    for (const name of ['test_ethernet.pcap', 'test_dns.pcap']) {
      const { bytes, frames, originals } = offloaded(capture(name));
      const path = join(dir, `offload-${name}`);
      writeFileSync(path, bytes);
      if (haveTshark()) {
        const status = tsharkFields(path, ['tcp.checksum.status', 'udp.checksum.status']).map((f) => f.join(''));
        expect(status.every((s) => s === '0')).toBe(true); // all bad
        const orig = tsharkFields(capture(name), ['tcp.checksum.status', 'udp.checksum.status']).map((f) => f.join(''));
        expect(orig.every((s) => s === '1')).toBe(true); // all good
      }
      frames.forEach((f, i) => {
        expect(fixChecksums(f, 14, f.length)).toBe(1);
        expect(Buffer.from(f).equals(Buffer.from(originals[i]!))).toBe(true);
        expect(fixChecksums(f, 14, f.length)).toBe(0);
      });
    }
  });

  it('fixes the IPv4 header, and leaves an IPv4 UDP checksum of 0 ("none") alone', () => {
    const f = PcapReader.open(capture('test_dns.pcap')).readAll()[0]!.data.slice();
    const clean = f.slice();
    xorAt(f, 24, 0xff); // IPv4 header checksum
    f[40] = 0;
    f[41] = 0; // UDP checksum: none
    expect(fixChecksums(f, 14, f.length)).toBe(1);
    expect(f.subarray(24, 26)).toEqual(clean.subarray(24, 26));
    expect([f[40], f[41]]).toEqual([0, 0]);
  });

  it('replay: fix (default) recomputes them, ignore trusts them, keep lets the stack drop them', async () => {
    const { bytes } = offloaded(capture('test_ethernet.pcap'));
    const path = join(dir, 'offload-http.pcap');
    writeFileSync(path, bytes);
    const fixed = await replay(path, { as: '10.1.1.1', serveCaptured: true });
    expect(fixed.ok).toBe(true);
    expect(fixed.checksumsFixed).toBe(5); // the five client segments
    const ignored = await replay(path, { as: '10.1.1.1', serveCaptured: true, checksums: 'ignore' });
    expect(ignored.ok).toBe(true);
    expect(ignored.checksumsFixed).toBe(0);
    const kept = await replay(path, { as: '10.1.1.1', serveCaptured: true, checksums: 'keep', gateTimeoutMs: 20 });
    expect(kept.ok).toBe(false);
    expect(kept.tcp[0]!.liveBytes).toBe(0);
    expect(kept.answers).toBe(0); // not even a reset: the SYN failed its checksum
  });
});
