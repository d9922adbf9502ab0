import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capture, haveCaptures } from '../helpers/captures.js';
import { tunstack } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-cli-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tunstack flow', () => {
  it.skipIf(!haveCaptures())('prints the ladder and writes the SVG (exit 0)', () => {
    const svg = join(dir, 'eth.svg');
    const r = tunstack(['flow', capture('test_ethernet.pcap'), '--svg', svg]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('10.1.1.2');
    expect(r.stdout).toMatch(/\|-+\[SYN\] seq=0 len=0-+>\|/);
    expect(r.stdout).toMatch(/\|<-+\[SYN, ACK\] seq=0 ack=1 len=0-+\|/);
    expect(r.stdout).toContain(`SVG written to ${svg}`);
    const text = readFileSync(svg, 'utf8');
    expect(text.startsWith('<?xml')).toBe(true);
    expect(text.match(/<path class="arrow /g)).toHaveLength(10);
  });

  it('--help (exit 0), usage errors (exit 2)', () => {
    const help = tunstack(['flow', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tunstack flow FILE/);
    for (const args of [['flow'], ['flow', 'x.pcap', '--bogus'], ['flow', 'x.pcap', '--columns', 'sideways'], ['flow', 'x.pcap', '--max', '0'], ['flow', 'a', 'b']]) {
      const r = tunstack(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('Usage: tunstack flow');
    }
  });

  it('a missing or corrupt capture (exit 1, with the frame number)', () => {
    const missing = tunstack(['flow', join(dir, 'nope.pcap')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/no such file/);
    const bad = join(dir, 'bad.pcap');
    writeFileSync(bad, Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000' + '00000000000000000000100000001000', 'hex'));
    const r = tunstack(['flow', bad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/frame 1: corrupt capture/);
  });

  it('the main command lists flow and replay; unknown commands exit 2', () => {
    const help = tunstack(['help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/flow\s+ladder diagram/);
    expect(help.stdout).toMatch(/replay\s+replay a capture/);
    expect(tunstack(['frobnicate']).status).toBe(2);
  });
});
