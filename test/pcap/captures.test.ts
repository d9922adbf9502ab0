/**
 * The reader against captures we did not make (gopacket's test files, including the pcapng
 * generator's deliberately odd ones), judged by tshark and capinfos: packet count, per-packet
 * timestamps, lengths, interface, link type and the captured bytes (MD5) must agree; where tshark
 * reports a file corrupt, our reader must deliver the same packets first and then a ParseError.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../src/core/errors.js';
import { PcapReader, readPcap, formatEpochNs, type PcapInterface, type PcapRecord } from '../../src/pcap/index.js';
import { haveTshark } from '../helpers/tshark.js';
import {
  allCaptures,
  capinfos,
  capture,
  haveCapinfos,
  haveCaptures,
  tsharkRead,
  WTAP_ENCAP,
} from '../helpers/captures.js';

interface OurRead {
  records: PcapRecord[];
  interfaces: PcapInterface[];
  error: unknown;
  format: string | undefined;
}

function readOurs(path: string): OurRead {
  const interfaces: PcapInterface[] = [];
  const records: PcapRecord[] = [];
  let error: unknown = undefined;
  let format: string | undefined;
  try {
    // A small window, so that records straddle refills.
    const r = PcapReader.open(path, { bufferSize: 128, onInterface: (i) => interfaces.push(i) });
    format = r.format;
    for (const p of r) records.push(p);
  } catch (e) {
    error = e;
  }
  return { records, interfaces, error, format };
}

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');
const files = allCaptures();
const skipReason = !haveCaptures() ? 'captures missing' : !haveTshark() ? 'tshark missing' : '';

describe.skipIf(skipReason !== '')(`third-party captures (${skipReason || 'all present'})`, () => {
  it('has the expected set of files', () => {
    expect(files).toContain('test_ethernet.pcap');
    expect(files).toContain('test_loopback.pcap');
    expect(files).toContain('pcapng/le/test001.pcapng');
    expect(files).toContain('pcapng/be/test202.pcapng');
    expect(files.length).toBeGreaterThanOrEqual(3 + 2 * 20);
  });

  for (const name of files) {
    it(`${name}: agrees with tshark and capinfos`, () => {
      const path = capture(name);
      const ts = tsharkRead(path);
      const ours = readOurs(path);

      if (ts.status !== 0) {
        // tshark found the file corrupt or unsupported after reading some packets.
        expect(ours.error, `tshark: ${ts.stderr.trim()}`).toBeInstanceOf(ParseError);
      } else if (ours.error !== undefined) {
        throw ours.error;
      }
      expect(ours.records.length).toBe(ts.frames.length);
      ours.records.forEach((p, i) => {
        const t = ts.frames[i]!;
        const where = `${name} packet ${i + 1}`;
        expect(p.hasTimestamp ? formatEpochNs(p.timestampNs) : '', where).toBe(t.time);
        expect(p.originalLength, where).toBe(t.len);
        expect(p.data.length, where).toBe(t.capLen);
        expect(ours.format === 'pcapng' ? String(p.interfaceId) : '', where).toBe(t.interfaceId);
        expect(WTAP_ENCAP[p.linkType]?.encap, `${where} link type ${p.linkType}`).toBe(t.encap);
        expect(md5(p.data), where).toBe(t.md5);
        if (p.hasTimestamp) expect(Math.abs(p.timestampMs - Number(t.time) * 1000), where).toBeLessThan(0.001);
      });

      if (haveCapinfos()) {
        const ci = capinfos(path);
        if (ci.status === 0) expect(ours.records.length).toBe(ci.packets);
        // capinfos numbers interfaces across sections, in file order, as onInterface reports them.
        if (ci.status === 0) {
          expect(ours.interfaces.length).toBe(ci.interfaces.length);
          ours.interfaces.forEach((iface, k) => {
            const c = ci.interfaces[k]!;
            expect(WTAP_ENCAP[iface.linkType]?.name, `${name} interface ${k}`).toBe(c.encapName);
            expect(iface.snapLength, `${name} interface ${k}`).toBe(c.snapLength);
            if (c.ticksPerSecond !== undefined) expect(Number(iface.ticksPerSecond)).toBe(c.ticksPerSecond);
          });
        }
      }
    });
  }

  it('the async stream reader gives the same packets as the sync reader', async () => {
    for (const name of ['test_loopback.pcap', 'pcapng/be/test202.pcapng', 'pcapng/le/test102.pcapng']) {
      const sync = PcapReader.open(capture(name)).readAll();
      const asyncRecs: PcapRecord[] = [];
      // Tiny chunks: every block straddles several of them.
      for await (const p of readPcap(createReadStream(capture(name), { highWaterMark: 7 }))) asyncRecs.push(p);
      expect(asyncRecs.length).toBe(sync.length);
      asyncRecs.forEach((p, i) => {
        expect(p.timestampNs).toBe(sync[i]!.timestampNs);
        expect(p.data).toEqual(sync[i]!.data);
        expect(p.interfaceId).toBe(sync[i]!.interfaceId);
        expect(p.linkType).toBe(sync[i]!.linkType);
      });
    }
  });

  it('the async reader reports the same corruption as the sync reader (test901: SHB version 2.0)', async () => {
    const got: PcapRecord[] = [];
    let err: unknown;
    try {
      for await (const p of readPcap(createReadStream(capture('pcapng/le/test901.pcapng'), { highWaterMark: 64 }))) got.push(p);
    } catch (e) {
      err = e;
    }
    expect(got.length).toBe(1);
    expect(err).toBeInstanceOf(ParseError);
    expect((err as ParseError).message).toMatch(/version 2\.0/);
    expect((err as ParseError).offset).toBeGreaterThan(0);
  });

  it('reads classic pcap header fields', () => {
    const r = PcapReader.open(capture('test_loopback.pcap'));
    expect(r.format).toBe('pcap');
    expect(r.linkType).toBe(0);
    expect(r.snapLength).toBe(65535);
    expect(r.versionMajor).toBe(2);
    expect(r.nanosecond).toBe(false);
    r.close();
  });
});
