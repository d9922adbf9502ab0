/**
 * Every TypeScript block in README.md runs as written: each is saved as a module (with
 * `from 'tunstack'` and `from 'tunstack/sim'` etc. pointing at the sources of those entries) and run with tsx in a child process, which must exit
 * by itself with status 0 within 30 s. An HTML comment right before a block can say more:
 *
 *   <!-- readme-test: after "Using it" -->   run the "Using it" block first, in the same module
 *   <!-- readme-test: prints "text" -->      stdout must contain the text
 *   <!-- readme-test: root -->               run only as root, in a network namespace made for it
 *   <!-- readme-test: not run, REASON -->    do not run (the reason is printed)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ENTRIES } from '../tools/entries.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// Inside the checkout (ignored .cache/), so that the blocks are ES modules and find tsx.
mkdirSync(join(ROOT, '.cache'), { recursive: true });
const dir = mkdtempSync(join(ROOT, '.cache', 'readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Block {
  line: number;
  code: string;
  after: string | null;
  prints: string[];
  root: boolean;
  notRun: string | null;
  section: string;
}

function blocks(): Block[] {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n');
  const out: Block[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('## ')) section = l.slice(3).trim();
    if (l.trim() !== '```ts') continue;
    const b: Block = { line: i + 1, code: '', after: null, prints: [], root: false, notRun: null, section };
    for (let k = i - 1; k >= 0 && lines[k]!.trim().startsWith('<!-- readme-test:'); k--) {
      const d = /<!-- readme-test: (.*) -->/.exec(lines[k]!)?.[1]?.trim() ?? '';
      const after = /^after "(.*)"$/.exec(d);
      const prints = /^prints "(.*)"$/.exec(d);
      if (after) b.after = after[1]!;
      else if (prints) b.prints.push(prints[1]!);
      else if (d === 'root') b.root = true;
      else if (d.startsWith('not run')) b.notRun = d;
      else throw new Error(`README.md:${k + 1}: unknown readme-test directive "${d}"`);
    }
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) body.push(lines[i]!);
    b.code = body.join('\n');
    out.push(b);
  }
  return out;
}

const all = blocks();
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const entries = new Map(ENTRIES.map((e) => [e.specifier, pathToFileURL(join(ROOT, e.source)).href]));

/** Imports merged: a continuation may import names the first block imported already. */
function assemble(b: Block): string {
  const parts: string[] = [];
  if (b.after !== null) {
    const first = all.find((x) => x.section === b.after);
    if (first === undefined) throw new Error(`README.md:${b.line}: no block in section "${b.after}"`);
    parts.push(first.code);
  }
  parts.push(b.code);
  const imports = new Map<string, Set<string>>();
  const defaults = new Map<string, string>();
  const rest: string[] = [];
  for (const line of parts.join('\n').split('\n')) {
    const named = /^import \{([^}]*)\} from '([^']+)';$/.exec(line);
    const def = /^import (\w+) from '([^']+)';$/.exec(line);
    if (named) {
      const set = imports.get(named[2]!) ?? new Set<string>();
      for (const n of named[1]!.split(',').map((s) => s.trim()).filter(Boolean)) set.add(n);
      imports.set(named[2]!, set);
    } else if (def) defaults.set(def[2]!, def[1]!);
    else rest.push(line);
  }
  const head: string[] = [];
  for (const [from, name] of defaults) head.push(`import ${name} from '${entries.get(from) ?? from}';`);
  for (const [from, names] of imports) head.push(`import { ${[...names].join(', ')} } from '${entries.get(from) ?? from}';`);
  return `${head.join('\n')}\n${rest.join('\n')}\n`;
}

describe('README.md code blocks run as written', () => {
  it('has TypeScript blocks to check', () => {
    expect(all.length).toBeGreaterThan(4);
  });
  for (const b of all) {
    const title = `README.md:${b.line} (${b.section})`;
    if (b.notRun !== null) {
      it.skip(`${title}: ${b.notRun}`, () => {});
      continue;
    }
    it.skipIf(b.root && !isRoot)(title, () => {
      const file = join(dir, `block-${b.line}.ts`);
      writeFileSync(file, assemble(b));
      // Files a block writes land in the scratch directory (node_modules is found above it).
      const node = [process.execPath, '--import', 'tsx', file];
      const ns = b.root ? `tsreadme${process.pid % 100000}x${b.line}` : '';
      if (ns !== '') spawnSync('ip', ['netns', 'add', ns]);
      let r;
      try {
        const [cmd, ...args] = ns !== '' ? ['ip', 'netns', 'exec', ns, ...node] : node;
        r = spawnSync(cmd!, args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
      } finally {
        if (ns !== '') spawnSync('ip', ['netns', 'del', ns]);
      }
      const why = `${r.stderr}\n${r.error?.message ?? ''}`;
      expect(r.signal, `killed (did not exit by itself within 30 s): ${why}`).toBeNull();
      expect(r.status, why).toBe(0);
      for (const p of b.prints) expect(r.stdout, `stdout of ${title}`).toContain(p);
    }, 40_000);
  }
});
