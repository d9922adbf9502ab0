/**
 * Moves source files and rewrites every relative import that names them (issue 13's layering).
 *
 *   npx tsx tools/rewrite-imports.ts [--dry-run] [--no-move] old=new ...
 *
 * Without pairs it applies MOVES below. Files are moved with `git mv` (unless --no-move: then only
 * imports are rewritten, e.g. on another branch after merging the moves: imports that still name
 * an old path, from any file, moved or not, are pointed at the new one; correct ones are kept). Every .ts/.mts/.js/.mjs
 * file under src, test, bench, examples, tools and scripts is scanned; relative specifiers in
 * `from '...'`, `import '...'`, `import('...')` and `vi.mock('...')` are resolved from the file's
 * old place and re-written from its new place, so files that moved and files that point at moved
 * files both come out right.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The layering moves (old -> new, relative to the repository root). */
export const MOVES: Readonly<Record<string, string>> = {
  'src/errors.ts': 'src/core/errors.ts',
  'src/validate.ts': 'src/core/validate.ts',
  'src/stack/clock.ts': 'src/core/clock.ts',
  'src/stack/packet.ts': 'src/core/packet.ts',
  'src/stack/random.ts': 'src/core/random.ts',
  'src/stack/ratelimit.ts': 'src/core/ratelimit.ts',
  'src/link/queue.ts': 'src/core/queue.ts',
  'src/headers/address.ts': 'src/core/address.ts',
  'src/link/fd.ts': 'src/host/fd.ts',
  'test/stack/packet.test.ts': 'test/core/packet.test.ts',
  // Browser-usable guest links and the DHCP server (the page entry exports them).
  'src/vm/frame-port.ts': 'src/link/frame-port.ts',
  'src/vm/v86.ts': 'src/link/v86.ts',
  'src/sandbox/dhcp.ts': 'src/portable/dhcp.ts',
};

const DIRS = ['src', 'test', 'bench', 'examples', 'tools', 'scripts'];
const EXT = /\.(ts|mts|js|mjs)$/;
const SPEC = /(\bfrom\s*|\bimport\s*\(?\s*|\bvi\.mock\(\s*)(['"])(\.{1,2}\/[^'"]+)\2/g;

function walk(dir: string, out: string[]): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (EXT.test(name)) out.push(p);
  }
}

/** The source file a specifier names: `./x.js` is written for `./x.ts`. */
function sourceOf(abs: string): string {
  if (existsSync(abs)) return abs;
  const ts = abs.replace(/\.js$/, '.ts');
  return ts;
}

function main(argv: string[]): void {
  const dry = argv.includes('--dry-run');
  const move = !argv.includes('--no-move');
  const pairs = argv.filter((a) => a.includes('='));
  const moves: Record<string, string> = pairs.length > 0 ? Object.fromEntries(pairs.map((p) => p.split('=', 2) as [string, string])) : { ...MOVES };
  const abs = new Map<string, string>(Object.entries(moves).map(([o, n]) => [resolve(ROOT, o), resolve(ROOT, n)]));
  const back = new Map<string, string>([...abs].map(([o, n]) => [n, o]));

  if (move && !dry) {
    for (const [o, n] of abs) {
      if (!existsSync(o)) continue;
      execFileSync('mkdir', ['-p', dirname(n)]);
      execFileSync('git', ['mv', o, n], { cwd: ROOT });
    }
  }

  const files: string[] = [];
  for (const d of DIRS) walk(join(ROOT, d), files);
  let changed = 0;
  for (const file of files) {
    // Where the file's specifiers were written from: its old place right after a move; with
    // --no-move (another branch, files already where the merge put them) its place now first,
    // then its old place for imports the branch wrote before the move.
    const old = back.get(file);
    const bases = move ? [old ?? file] : old === undefined ? [file] : [file, old];
    const text = readFileSync(file, 'utf8');
    const next = text.replace(SPEC, (all, lead: string, q: string, spec: string) => {
      let dest: string | undefined;
      for (const base of bases) {
        const target = sourceOf(resolve(dirname(base), spec));
        const moved = abs.get(target);
        if (moved !== undefined) dest = moved;
        else if (existsSync(target) && base !== file) dest = target;
        else if (existsSync(target)) return all;
        if (dest !== undefined) break;
      }
      if (dest === undefined) return all;
      let rel = relative(dirname(file), dest);
      if (!rel.startsWith('.')) rel = `./${rel}`;
      if (spec.endsWith('.js')) rel = rel.replace(/\.ts$/, '.js');
      else if (!spec.endsWith('.ts')) rel = rel.replace(/\.ts$/, '');
      return `${lead}${q}${rel}${q}`;
    });
    if (next !== text) {
      changed++;
      if (!dry) writeFileSync(file, next);
      else console.log(relative(ROOT, file));
    }
  }
  console.log(`${dry ? 'would rewrite' : 'rewrote'} ${changed} files`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
