/**
 * Benchmark runner: `npm run bench [name ...]`.
 *
 * Runs every bench/*.bench.ts (or the ones named: "checksum" or "checksum.bench.ts") and prints
 * their rows. A bench file's default export is a function returning rows; each row gives a figure
 * of tunstack's and, where there is one, the reference measured in the same run and their ratio.
 */
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchRow {
  name: string;
  /** tunstack's figure. */
  value: number;
  unit: string;
  /** The reference's figure in the same unit, measured in the same run. */
  reference?: number;
  /** What the reference is ("byte-wise loop", "Linux kernel", ...). */
  referenceName?: string;
  /** value / reference (or whatever the bench defines as "higher is better"). */
  ratio?: number;
}

export type BenchFunction = () => BenchRow[] | Promise<BenchRow[]>;

export interface TimingResult {
  /** Operations per second (best of the rounds). */
  opsPerSec: number;
  /** Every round's operations per second. */
  rounds: number[];
}

/**
 * Time `fns` interleaved (round-robin, so that load from other processes hits them alike):
 * `rounds` rounds, each running a function for about `roundMs`. Returns the best rate of each.
 */
export function timeInterleaved(fns: (() => void)[], rounds = 5, roundMs = 200): TimingResult[] {
  const results: TimingResult[] = fns.map(() => ({ opsPerSec: 0, rounds: [] }));
  // Warm up (JIT) each function.
  for (const fn of fns) {
    const end = performance.now() + roundMs / 2;
    while (performance.now() < end) for (let i = 0; i < 100; i++) fn();
  }
  for (let r = 0; r < rounds; r++) {
    fns.forEach((fn, k) => {
      let ops = 0;
      const start = performance.now();
      let now = start;
      const end = start + roundMs;
      while (now < end) {
        for (let i = 0; i < 100; i++) fn();
        ops += 100;
        now = performance.now();
      }
      const rate = ops / ((now - start) / 1000);
      results[k]!.rounds.push(rate);
      if (rate > results[k]!.opsPerSec) results[k]!.opsPerSec = rate;
    });
  }
  return results;
}

function fmt(n: number | undefined): string {
  if (n === undefined) return '';
  if (n === 0) return '0';
  const a = Math.abs(n);
  if (a >= 1000) return n.toFixed(0);
  if (a >= 100) return n.toFixed(1);
  if (a >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

export function printRows(bench: string, rows: BenchRow[]): void {
  const table = rows.map((r) => [
    r.name,
    `${fmt(r.value)} ${r.unit}`,
    r.reference === undefined ? '' : `${fmt(r.reference)} ${r.unit}${r.referenceName ? ` (${r.referenceName})` : ''}`,
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`,
  ]);
  const head = ['benchmark', 'tunstack', 'reference', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cols: string[]): string => cols.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(`\n# ${bench}`);
  console.log(line(head));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of table) console.log(line(row));
}

async function main(): Promise<void> {
  const dir = dirname(fileURLToPath(import.meta.url));
  const all = readdirSync(dir)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort();
  const wanted = process.argv.slice(2).map((a) => basename(a).replace(/\.bench\.ts$/, ''));
  const chosen = wanted.length === 0 ? all : all.filter((f) => wanted.includes(f.replace(/\.bench\.ts$/, '')));
  const unknown = wanted.filter((w) => !all.includes(`${w}.bench.ts`));
  if (unknown.length > 0) {
    console.error(`unknown bench: ${unknown.join(', ')} (have: ${all.map((f) => f.replace(/\.bench\.ts$/, '')).join(', ')})`);
    process.exitCode = 2;
    return;
  }
  console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
  for (const file of chosen) {
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as { default?: BenchFunction };
    if (typeof mod.default !== 'function') {
      console.error(`${file}: no default export function`);
      process.exitCode = 1;
      continue;
    }
    const rows = await mod.default();
    printRows(file.replace(/\.bench\.ts$/, ''), rows);
  }
}

const invoked = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invoked) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
