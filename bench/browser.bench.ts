/**
 * The core in a browser page against the same core in Node (issue 13): TCP bulk A->B between two
 * stacks at MTU 1500, checksums computed and verified, in headless Chromium (the browser bundle,
 * /usr/bin/chromium via puppeteer-core, test/browser/harness.ts) and in this Node process
 * (src/web/index.ts), in the same run. The two alternate REPS times (BROWSER_BENCH_REPS, default
 * 3); each rep is the best of ROUNDS rounds of ROUND_MS (BROWSER_BENCH_ROUNDS 5, BROWSER_BENCH_MS
 * 400), and the rows give the median rep with the spread (min-max) printed beside it. The ratio is
 * page / Node. Skipped (no rows) without Chromium. Run under `flock /tmp/heavy.lock`.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lib from '../src/web/index.js';
import { chromiumSkipReason, openBrowserPage } from '../test/browser/harness.js';
import { tcpBulk, type BulkResult } from './browser-bulk.js';
import type { BenchRow } from './run.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPS = Number(process.env.BROWSER_BENCH_REPS ?? 3);
const ROUNDS = Number(process.env.BROWSER_BENCH_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.BROWSER_BENCH_MS ?? 400);
const WARM_MS = 300;

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const best = (r: BulkResult): number => Math.max(...r.rounds);
const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;

export default async function browserBench(): Promise<BenchRow[]> {
  const skip = chromiumSkipReason();
  if (skip !== '') {
    console.log(`browser bench skipped: ${skip}`);
    return [];
  }
  const page = await openBrowserPage({ modules: { '/bulk.js': join(HERE, 'browser-bulk.ts') } });
  try {
    const inPage: number[] = [];
    const inNode: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const p = await page.runIn<BulkResult>('/bulk.js', 'tcpBulk', 1500, ROUNDS, ROUND_MS, WARM_MS);
      const n = tcpBulk(lib, 1500, ROUNDS, ROUND_MS, WARM_MS);
      if (!p.intact || !n.intact || p.received === 0 || n.received === 0) throw new Error(`bulk transfer corrupt or empty (page ${JSON.stringify(p)}, node ${JSON.stringify(n)})`);
      inPage.push(best(p));
      inNode.push(best(n));
    }
    if (page.errors.length > 0) throw new Error(`page errors: ${page.errors.join('; ')}`);
    const version = await page.browser.version();
    const mp = median(inPage);
    const mn = median(inNode);
    const ratios = inPage.map((p, i) => p / inNode[i]!);
    console.log(`${version}: page ${inPage.map((x) => x.toFixed(2)).join(', ')} Gbit/s (median ${mp.toFixed(2)}, spread ${spread(inPage)}); Node ${inNode.map((x) => x.toFixed(2)).join(', ')} Gbit/s (median ${mn.toFixed(2)}, spread ${spread(inNode)}); page/Node per rep ${ratios.map((x) => x.toFixed(2)).join(', ')}`);
    return [
      {
        name: `TCP bulk A->B, MTU 1500, two stacks in headless Chromium (median of ${REPS}, spread ${spread(inPage)})`,
        value: mp,
        unit: 'Gbit/s',
        reference: mn,
        referenceName: `the same in Node ${process.version}, spread ${spread(inNode)}`,
        ratio: mp / mn,
      },
    ];
  } finally {
    await page.close();
  }
}
