import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dnsOverUdp } from '../../examples/dns-over-udp.js';
import { lossyTransfer } from '../../examples/lossy-transfer.js';
import { routerBetweenSubnets } from '../../examples/router.js';
import { CHECKSUM_PREFS, haveTshark } from '../helpers/tshark.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-determinism-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const scenarios: Record<string, (seed: number, capture: string) => Promise<unknown>> = {
  'lossy TCP transfer': (seed, capture) => lossyTransfer({ seed, capture, bytes: 300_000 }),
  'router between subnets': (seed, capture) => routerBetweenSubnets({ seed, capture }),
  'DNS over a lossy link': (seed, capture) => dnsOverUdp({ seed, capture }),
};

/** tshark's view: protocols and checksum verdicts per frame. */
function judge(path: string): string[] {
  return execFileSync(
    'tshark',
    ['-n', '-r', path, ...CHECKSUM_PREFS, '-T', 'fields', '-e', 'frame.protocols', '-e', 'ip.checksum.status', '-e', 'tcp.checksum.status', '-e', 'udp.checksum.status', '-e', '_ws.malformed'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  )
    .trim()
    .split('\n');
}

describe('determinism: the same seed writes byte-identical captures', () => {
  for (const [name, run] of Object.entries(scenarios)) {
    it(name, async () => {
      const slug = name.replace(/\W+/g, '-');
      const r1 = await run(5, join(dir, `${slug}-1.pcap`));
      const r2 = await run(5, join(dir, `${slug}-2.pcap`));
      await run(6, join(dir, `${slug}-3.pcap`));
      expect(r2).toEqual(r1);
      const one = readFileSync(join(dir, `${slug}-1.pcap`));
      expect(one.length).toBeGreaterThan(24 + 10 * 58);
      expect(one.equals(readFileSync(join(dir, `${slug}-2.pcap`)))).toBe(true);
      expect(one.equals(readFileSync(join(dir, `${slug}-3.pcap`)))).toBe(false);
      if (!haveTshark()) return;
      for (const line of judge(join(dir, `${slug}-1.pcap`))) {
        const [protos, ipc, tcpc, udpc, malformed] = line.split('\t');
        expect(protos).not.toContain('malformed');
        expect(malformed ?? '').toBe('');
        for (const c of [ipc, tcpc, udpc]) for (const v of (c ?? '').split(',').filter(Boolean)) expect(v).toBe('1');
      }
    });
  }
});
