import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseMAC } from '../../src/core/address.js';
import { buildEthernet, ETHERTYPE_IPV4 } from '../../src/headers/ethernet.js';
import { ChannelEndpoint } from '../../src/link/channel.js';
import { SnifferEndpoint } from '../../src/link/sniffer.js';
import { LinkType, PcapWriter } from '../../src/pcap/writer.js';
import { FileSink } from '../../src/pcap/file.js';
import { ManualClock } from '../../src/core/clock.js';
import { haveTshark } from '../helpers/tshark.js';
import { FakeDispatcher, ipv4Bytes, ipv4Packet, readPcap } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-sniffer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function haveCapinfos(): boolean {
  const ok = spawnSync('capinfos', ['-h'], { stdio: 'ignore' }).status === 0;
  if (!ok) console.warn('capinfos not found: install wireshark-common to run the capinfos check');
  return ok;
}

/** Microseconds since the epoch as tshark prints frame.time_epoch ("s.nnnnnnnnn"). */
function epochText(wallMs: number): string {
  const us = Math.round(wallMs * 1000);
  return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, '0')}000`;
}

describe('SnifferEndpoint', () => {
  it('passes packets through unaltered, both ways', () => {
    const clock = new ManualClock();
    const ch = new ChannelEndpoint();
    const writer = PcapWriter.inMemory({ linkType: LinkType.RAW });
    const s = new SnifferEndpoint(ch, { clock, writer });
    expect(s.wireFormat).toBe('ip');
    expect(s.mtu).toBe(1500);
    const d = new FakeDispatcher();
    s.attach(d);
    expect(ch.isAttached).toBe(true);
    const p = ipv4Packet(1);
    p.networkHeaderStart = p.start;
    p.remoteLinkAddress = new Uint8Array(6);
    const before = { data: p.data, start: p.start, end: p.end, bytes: p.data.slice() };
    expect(s.writePackets([p])).toBe(1);
    const out = ch.read()!;
    expect(out).toBe(p);
    expect(out.data).toBe(before.data);
    expect([out.start, out.end, out.networkHeaderStart]).toEqual([before.start, before.end, before.start]);
    expect(out.data).toEqual(before.bytes);
    const q = ipv4Packet(2);
    const qBytes = q.data.slice();
    ch.inject(0x0800, q);
    expect(d.received[0]!.pkt).toBe(q);
    expect(d.received[0]!.protocol).toBe(0x0800);
    expect(q.data).toEqual(qBytes);
    expect(s.stats).toEqual({ inbound: 1, outbound: 1 });
    expect(readPcap(writer.bytes()).records.length).toBe(2);
  });

  it('rejects a writer whose link type does not match the wire format, and a missing sink', () => {
    const ch = new ChannelEndpoint({ wireFormat: 'ethernet' });
    expect(() => new SnifferEndpoint(ch, { writer: PcapWriter.inMemory({ linkType: LinkType.RAW }) })).toThrow(/EINVAL/);
    expect(() => new SnifferEndpoint(ch, {})).toThrow(/EINVAL/);
  });

  it('records only the chosen direction', () => {
    const clock = new ManualClock();
    const ch = new ChannelEndpoint();
    const writer = PcapWriter.inMemory({ linkType: LinkType.RAW });
    const s = new SnifferEndpoint(ch, { clock, writer, direction: 'inbound' });
    s.attach(new FakeDispatcher());
    s.writePackets([ipv4Packet(1)]);
    ch.inject(0, ipv4Packet(2));
    const recs = readPcap(writer.bytes()).records;
    expect(recs.length).toBe(1);
    expect(recs[0]!.bytes).toEqual(ipv4Bytes(2));
  });

  it.skipIf(!haveTshark() || !haveCapinfos())(
    'writes a pcap file that tshark and capinfos read with the right count, lengths and clock times (tools missing: skipped)',
    () => {
      const clock = new ManualClock({ wallBase: Date.UTC(2021, 5, 1) });
      const ch = new ChannelEndpoint();
      const path = join(dir, 'ip.pcap');
      const s = new SnifferEndpoint(ch, { clock, sink: new FileSink(path) });
      s.attach(new FakeDispatcher());
      const steps = [0, 1.5, 1000.25, 2500.001, 0.999];
      const expected: { time: string; len: number }[] = [];
      steps.forEach((dt, i) => {
        clock.advance(dt);
        const len = 28 + i * 100;
        if (i % 2 === 0) s.writePackets([ipv4Packet(i, i * 100)]);
        else ch.injectBytes(ipv4Bytes(i, i * 100));
        expected.push({ time: epochText(clock.wallNow()), len });
      });
      s.close();
      const out = execFileSync('tshark', ['-n', '-r', path, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.len', '-e', 'ip.id'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      const rows = out.trim().split('\n').map((l) => l.split('\t'));
      expect(rows.length).toBe(5);
      rows.forEach((r, i) => {
        expect(r[0]).toBe(expected[i]!.time);
        expect(Number(r[1])).toBe(expected[i]!.len);
        expect(Number(r[2])).toBe(i);
      });
      const info = execFileSync('capinfos', ['-T', '-r', '-c', '-E', '-a', '-e', '-S', path], { encoding: 'utf8' }).trim().split('\t');
      expect(info[1]).toBe('rawip');
      expect(info[2]).toBe('5');
      expect(Number(info[3])).toBeCloseTo(Date.UTC(2021, 5, 1) / 1000, 6);
      expect(Number(info[4])).toBeCloseTo(clock.wallNow() / 1000, 6);
    },
  );

  it.skipIf(!haveTshark())('truncates to the snap length and records Ethernet frames as Ethernet', () => {
    const clock = new ManualClock();
    const ch = new ChannelEndpoint({ wireFormat: 'ethernet' });
    const path = join(dir, 'eth.pcap');
    const s = new SnifferEndpoint(ch, { clock, sink: new FileSink(path), snapLength: 64 });
    s.attach(new FakeDispatcher());
    const frame = buildEthernet(
      { destination: parseMAC('02:00:00:00:00:01'), source: parseMAC('02:00:00:00:00:02'), etherType: ETHERTYPE_IPV4 },
      ipv4Bytes(7, 200),
    );
    ch.injectBytes(frame);
    s.close();
    const file = readPcap(new Uint8Array(readFileSync(path)));
    expect(file.linkType).toBe(LinkType.ETHERNET);
    expect(file.snapLength).toBe(64);
    const out = execFileSync('tshark', ['-n', '-r', path, '-T', 'fields', '-e', 'frame.len', '-e', 'frame.cap_len', '-e', 'eth.src'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(out.trim().split('\t')).toEqual([String(frame.length), '64', '02:00:00:00:00:02']);
  });
});
