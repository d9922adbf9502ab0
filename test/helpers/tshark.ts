/**
 * tshark as the outside judge of the packets we build. Writes packets to a pcap, runs tshark with
 * checksum validation on, and returns per-packet field values plus any expert info, so a test can
 * assert "no malformed packet, no expert error, fields equal the values set".
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapWriter, LinkType } from '../../src/pcap/writer.js';

export const CHECKSUM_PREFS = [
  '-o', 'ip.check_checksum:TRUE',
  '-o', 'tcp.check_checksum:TRUE',
  '-o', 'udp.check_checksum:TRUE',
];

let available: boolean | undefined;
/** True when tshark runs here. Tests that need it skip with a printed reason otherwise. */
export function haveTshark(): boolean {
  if (available === undefined) {
    const r = spawnSync('tshark', ['--version'], { stdio: 'ignore' });
    available = r.status === 0;
    if (!available) console.warn('tshark not found: install it (apt-get install tshark) to run dissection tests');
  }
  return available;
}

export function writePcapFile(
  packets: Uint8Array[],
  linkType: number = LinkType.ETHERNET,
): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tunstack-tshark-'));
  const path = join(dir, 'capture.pcap');
  const w = PcapWriter.inMemory({ linkType });
  packets.forEach((p, i) => w.write(p, 1_600_000_000_000 + i));
  writeFileSync(path, w.bytes());
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Dissection {
  /** fields[i][name] = the values tshark printed for packet i (occurrences split on ','). */
  fields: Record<string, string[]>[];
  /** Expert-info lines tshark reported (severity >= warning), with packet numbers. */
  expert: string[];
  /** Protocol stacks ("frame:eth:ethertype:ip:udp:data") per packet. */
  protocols: string[];
}

/**
 * Dissect packets with tshark. `fieldNames` are tshark display field names (e.g. "ip.ttl").
 * Expert info is collected from a second pass with `-z expert,warn`.
 */
export function dissect(
  packets: Uint8Array[],
  fieldNames: string[],
  options: { linkType?: number; decodeAs?: string[]; /** extra preferences, e.g. 'tcp.relative_sequence_numbers:FALSE' */ prefs?: string[] } = {},
): Dissection {
  const { path, cleanup } = writePcapFile(packets, options.linkType ?? LinkType.ETHERNET);
  try {
    const decode = (options.decodeAs ?? []).flatMap((d) => ['-d', d]);
    const prefs = (options.prefs ?? []).flatMap((p) => ['-o', p]);
    const names = ['frame.protocols', '_ws.malformed', '_ws.expert.severity', '_ws.expert.message', ...fieldNames];
    const args = ['-n', '-r', path, ...CHECKSUM_PREFS, ...prefs, ...decode, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,'];
    for (const f of names) args.push('-e', f);
    const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = out.split('\n').filter((l) => l.length > 0);
    const fields: Record<string, string[]>[] = [];
    const protocols: string[] = [];
    const expert: string[] = [];
    lines.forEach((line, i) => {
      const cols = line.split('\t');
      const rec: Record<string, string[]> = {};
      names.forEach((n, j) => {
        const v = cols[j] ?? '';
        rec[n] = v === '' ? [] : v.split(',');
      });
      protocols.push((rec['frame.protocols'] ?? []).join(','));
      if ((rec['_ws.malformed'] ?? []).length > 0 || (rec['frame.protocols'] ?? []).join(',').includes('_ws.malformed')) {
        expert.push(`packet ${i + 1}: malformed`);
      }
      const sev = rec['_ws.expert.severity'] ?? [];
      const msg = rec['_ws.expert.message'] ?? [];
      sev.forEach((s, k) => {
        // Severity values: 0x00200000 chat, 0x00400000 note, 0x00600000 warn, 0x00800000 error.
        const n = Number(s);
        if (n >= 0x00600000) expert.push(`packet ${i + 1}: ${msg[k] ?? s}`);
      });
      fields.push(rec);
    });
    if (fields.length !== packets.length) {
      expert.push(`tshark printed ${fields.length} packets for ${packets.length} written`);
    }
    return { fields, expert, protocols };
  } finally {
    cleanup();
  }
}

/** The single value of a field in one packet (first occurrence), or undefined. */
export function field(d: Dissection, packet: number, name: string, occurrence = 0): string | undefined {
  return d.fields[packet]?.[name]?.[occurrence];
}
