/**
 * README's "tunstack beside slirp4netns and pasta" table: every row names a test (file and a
 * piece of its title) that exists, except the gaps listed here, which the table must mark "—".
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

/** Rows with no tunstack test yet (their tunstack column says why). */
const GAPS: string[] = [];

describe('README feature table', () => {
  it('names an existing test for every row but the known gaps', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('### tunstack beside slirp4netns and pasta');
    expect(start).toBeGreaterThan(0);
    const lines = readme.slice(start).split('\n');
    const head = lines.findIndex((l) => l.startsWith('| feature |'));
    const end = lines.findIndex((l, i) => i > head && !l.startsWith('|'));
    const table = lines.slice(head + 2, end);
    expect(table.length).toBeGreaterThan(20);
    const gaps: string[] = [];
    for (const row of table) {
      const cells = row.split(/(?<!\\)\|/).map((c) => c.trim()).slice(1, -1);
      expect(cells, row).toHaveLength(5);
      const [feature, , , , test] = cells as [string, string, string, string, string];
      if (test === '—') {
        gaps.push(feature);
        continue;
      }
      const m = /^`([^`]+)` "([^"]+)"$/.exec(test);
      expect(m, `row "${feature}": want \`file\` "title piece", got ${test}`).not.toBeNull();
      const file = join(ROOT, m![1]!);
      expect(existsSync(file), `${m![1]} (row "${feature}")`).toBe(true);
      const text = readFileSync(file, 'utf8');
      expect(text.includes(m![2]!), `${m![1]} has no test titled with "${m![2]}" (row "${feature}")`).toBe(true);
    }
    expect(gaps).toEqual(GAPS);
  });
});
