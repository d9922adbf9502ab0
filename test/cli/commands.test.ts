/**
 * What every subcommand answers alike: --version, --name=value as well as --name value, usage
 * errors with status 2; the demo's output width and its closing hint; flow's folding of special
 * addresses, its dedup of a router's two interfaces, and the SVG header; replay's progress by time.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIPv4, parseMAC } from '../../src/index.js';
import { ETHERTYPE_IPV4, buildEthernet, buildIPv4, buildIcmpV4Echo } from '../../src/headers/index.js';
import { LinkType, PcapWriter } from '../../src/pcap/index.js';
import { SPECIAL_COLUMN } from '../../src/replay/flow.js';
import { tunstack } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const dir = mkdtempSync(join(tmpdir(), 'tunstack-cli-'));
const demoPcap = join(dir, 'demo.pcap');
let demoOut = '';

beforeAll(() => {
  const r = tunstack(['demo', `--out=${demoPcap}`, '--seed=3']);
  expect(r.status, r.stderr).toBe(0);
  demoOut = r.stdout;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('every subcommand', () => {
  it('--version, -V and `version` print the package version', () => {
    for (const args of [['--version'], ['-V'], ['version'], ['demo', '--version'], ['flow', '-V'], ['replay', '--version'], ['sandbox', '--version'], ['vm', '--version']]) {
      const r = tunstack(args);
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout.trim(), args.join(' ')).toBe(`tunstack ${VERSION}`);
    }
  });

  it('usage errors exit 2 with the message and the usage on stderr', () => {
    const cases: Array<[string[], RegExp]> = [
      [['demo', '--bogus'], /Unknown option '--bogus'/],
      [['demo', '--seed'], /--seed/],
      [['demo', '--seed=x'], /--seed needs an integer/],
      [['demo', '--loss=1.5'], /--loss needs a probability/],
      [['demo', 'extra'], /unexpected argument extra/],
      [['flow', demoPcap, '--max=0'], /--max needs a positive integer/],
      [['replay', demoPcap, '--as=10.0.1.1', '--speed=fast'], /--speed needs a number/],
      [['replay', demoPcap], /--as is required/],
      [['nonsense'], /unknown command "nonsense"/],
    ];
    for (const [args, why] of cases) {
      const r = tunstack(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(why);
      expect(r.stderr, args.join(' ')).toMatch(/Usage: tunstack/);
    }
  });
});

describe('tunstack sandbox', () => {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) console.warn('test/cli/commands.test.ts: the sandbox exit-status test is skipped: not root (a network namespace and a TAP need it)');
  it.skipIf(!root)('exits 127 for a command that cannot be run, as env does', () => {
    const r = tunstack(['sandbox', '--', '/nonexistent/tunstack-test-command']);
    expect(r.status, r.stderr).toBe(127);
  });
});

describe('tunstack demo', () => {
  it('fits 80 columns and ends by saying what to try next', () => {
    // Lines naming the capture may be longer by as much as its path is longer than the default.
    const extra = demoPcap.length - 'pcaps/demo.pcap'.length;
    const wide = demoOut.split('\n').filter((l) => l.length > 80 + (l.includes(demoPcap) ? extra : 0));
    expect(wide).toEqual([]);
    const tail = demoOut.trimEnd().split('\n').slice(-3);
    expect(tail[0]).toBe('Try next:');
    expect(tail[1]).toContain(`tunstack flow ${demoPcap}`);
    // The counter table has one column per host.
    expect(demoOut).toMatch(/^\s+alpha\s+r\s+beta$/m);
    expect(demoOut).toMatch(/^TCP segments in\s+\d+\s+0\s+\d+$/m);
  });

  it('--name=value and --name value give the same capture', () => {
    const other = join(dir, 'demo2.pcap');
    const r = tunstack(['demo', '--out', other, '--seed', '3', '--json']);
    expect(r.status, `${r.stderr} ${r.stdout.slice(0, 200)}`).toBe(0);
    expect(JSON.parse(r.stdout).pcap).toBe(other);
    expect(Buffer.compare(readFileSync(other), readFileSync(demoPcap))).toBe(0);
  });
});

describe('tunstack flow', () => {
  it('folds multicast and link-local addresses into one column, unless --keep-special', () => {
    const folded = tunstack(['flow', demoPcap, '--quiet', `--svg=${join(dir, 'f.svg')}`]);
    expect(folded.status, folded.stderr).toBe(0);
    const text = tunstack(['flow', demoPcap]).stdout;
    const header = text.split('\n')[1]!;
    expect(header).toContain(SPECIAL_COLUMN);
    expect(header).not.toMatch(/ff02::|fe80::/);
    const kept = tunstack(['flow', demoPcap, '--keep-special']).stdout.split('\n')[1]!;
    expect(kept).toMatch(/ff02::/);
  });

  it('shows a datagram forwarded between the router\'s two captured interfaces once', () => {
    const text = tunstack(['flow', demoPcap]).stdout;
    const m = /\((\d+) frames not shown: the same datagram again on another interface, forwarded\)/.exec(text);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(100);
    // Each echo request of alpha's first ping appears once.
    const seq1 = text.split('\n').filter((l) => /ICMP echo request id=\d+ seq=1-/.test(l) && l.includes('|-'));
    expect(seq1.length).toBe(1);
  });

  it('keeps the SVG header clear of the first host box', () => {
    const svg = join(dir, 'long.svg');
    const r = tunstack(['flow', demoPcap, '--quiet', '--svg', svg, '--keep-special']);
    expect(r.status).toBe(0);
    const s = readFileSync(svg, 'utf8');
    const header = /<text class="time" x="(\d+(?:\.\d+)?)" y="\d+">frame {2}time \(s\)<\/text>/.exec(s);
    const rect = /<rect x="(-?\d+(?:\.\d+)?)"/.exec(s);
    expect(header).not.toBeNull();
    expect(rect).not.toBeNull();
    // 'frame  time (s)' is 15 characters of 6.6 px from x=10.
    expect(Number(rect![1])).toBeGreaterThan(Number(header![1]) + 15 * 6.6);
  });
});

describe('tunstack replay', () => {
  it('shows progress once a replay has run for a second, however short the capture', () => {
    const w = PcapWriter.inMemory({ linkType: LinkType.ETHERNET });
    const a = parseIPv4('198.18.7.1');
    const b = parseIPv4('198.18.7.2');
    for (let i = 0; i < 3; i++) {
      const ip = buildIPv4({ src: a, dst: b, protocol: 1 }, buildIcmpV4Echo({ ident: 7, sequence: i, data: new Uint8Array(8) }));
      w.write(buildEthernet({ destination: parseMAC('02:00:00:00:07:02'), source: parseMAC('02:00:00:00:07:01'), etherType: ETHERTYPE_IPV4 }, ip), 1_000_000 + i * 700);
    }
    const file = join(dir, 'slow.pcap');
    writeFileSync(file, w.bytes());
    const r = tunstack(['replay', file, '--as=198.18.7.2', '--realtime', '--tail=0']);
    expect(r.stderr).toMatch(/^replay: \d+\.\d s, capture time \d+\.\d s, frame \d+\/3/m);
  });
});
