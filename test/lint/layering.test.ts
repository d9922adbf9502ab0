/**
 * The import-direction check of `npm run lint` (dependency-cruiser with .dependency-cruiser.cjs):
 * it must fail on a fixture with an upward import, a folder cycle and a Node import in core, and
 * pass on src. Also: the platform-neutral folders name no Node global (which an import check
 * cannot see).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DEPCRUISE = join(ROOT, 'node_modules/.bin/depcruise');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');

function cruise(cwd: string): { status: number | null; out: string } {
  const r = spawnSync(DEPCRUISE, ['src', '--config', CONFIG, '--output-type', 'err'], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('layering check', () => {
  it('fails on an upward import, a folder cycle and a node: import in core', () => {
    const r = cruise(join(ROOT, 'test/lint/fixture'));
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/error layer-core: src\/core\/clock\.ts → src\/stack\/stack\.ts/);
    expect(r.out).toMatch(/error no-folder-cycle: /);
    expect(r.out).toMatch(/error portable-no-node: src\/core\/clock\.ts → (node:)?fs/);
    // The legal edge (stack -> core) is not reported as a layer violation.
    expect(r.out).not.toMatch(/layer-stack/);
  }, 120_000);

  it('passes on src', () => {
    const r = cruise(ROOT);
    expect(r.out).toMatch(/no dependency violations found/);
    expect(r.status).toBe(0);
  }, 120_000);

  it('the platform-neutral folders name no Node global', () => {
    const portable = ['core', 'headers', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'sim', 'web'];
    const hits: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts')) {
          readFileSync(p, 'utf8')
            .split('\n')
            .forEach((line, i) => {
              const code = line.replace(/'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`/g, "''").replace(/\/\/.*$/, '');
              if (/^\s*(\*|\/\*)/.test(code)) return;
              if (/(?<![.\w])(Buffer\s*[.(]|process\.)|\bNodeJS\.|(?<![.\w])(require|setImmediate)\(|\b__dirname\b/.test(code)) hits.push(`${p.slice(ROOT.length + 1)}:${i + 1}: ${line.trim()}`);
            });
        }
      }
    };
    for (const f of portable) walk(join(ROOT, 'src', f));
    expect(hits).toEqual([]);
  });
});

describe('file size', () => {
  // Issue 13: no source file over ~800 lines without the reason written in its opening comment.
  it('a source file over 800 lines says why in its opening comment', () => {
    const long: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts')) {
          const text = readFileSync(p, 'utf8');
          const lines = text.split('\n').length;
          if (lines <= 800) continue;
          const head = /^\s*\/\*\*?([\s\S]*?)\*\//.exec(text)?.[1] ?? '';
          if (!/\b800 lines\b/.test(head.replace(/\s*\n\s*\*\s*/g, ' '))) long.push(`${p.slice(ROOT.length + 1)} (${lines} lines)`);
        }
      }
    };
    walk(join(ROOT, 'src'));
    expect(long).toEqual([]);
  });
});
