/**
 * Rewrites imports of `src/index.js` (the package entry `tunstack`) in tests, benchmarks and
 * examples so that each name comes from where it lives now: the root entry if it exports it, else
 * the subpath entry that does (src/headers/index.ts, ...), else the source file that declares it
 * (an internal, which tests may use and consumers cannot). Run after moving names between entries:
 *
 *   npx tsx tools/entry-imports.ts test/a.test.ts bench/b.bench.ts ...
 *
 * Files whose imports are all still in the root entry are left as they are.
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { ENTRIES } from './entries.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const all = sourceFiles(join(ROOT, 'src'));
const program = ts.createProgram(all, { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, types: ['node'] });
const checker = program.getTypeChecker();

function exportsOf(file: string): ts.Symbol[] {
  const sf = program.getSourceFile(file);
  const sym = sf && checker.getSymbolAtLocation(sf);
  return sym ? checker.getExportsOfModule(sym) : [];
}

/** Entry (src-relative path) for each public name, entries in package.json order. */
const home = new Map<string, string>();
for (const e of ENTRIES) for (const s of exportsOf(join(ROOT, e.source))) if (!home.has(s.name)) home.set(s.name, e.source);
/** Declaring file for every other name (only a file's own declarations, not its re-exports). */
for (const f of all) {
  for (const s of exportsOf(f)) {
    if (home.has(s.name) || s.flags & ts.SymbolFlags.Alias) continue;
    home.set(s.name, relative(ROOT, f));
  }
}

const rootSource = ENTRIES[0]!.source;

for (const arg of process.argv.slice(2)) {
  const file = resolve(arg);
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const edits: { start: number; end: number; text: string }[] = [];
  for (const st of sf.statements) {
    if (!ts.isImportDeclaration(st) || !ts.isStringLiteral(st.moduleSpecifier)) continue;
    const spec = st.moduleSpecifier.text;
    if (resolve(dirname(file), spec) !== join(ROOT, rootSource.replace(/\.ts$/, '.js'))) continue;
    const nb = st.importClause?.namedBindings;
    if (!nb || !ts.isNamedImports(nb)) continue;
    const typeOnly = st.importClause!.isTypeOnly;
    const groups = new Map<string, string[]>();
    for (const el of nb.elements) {
      const name = (el.propertyName ?? el.name).text;
      const where = home.get(name);
      if (where === undefined) throw new Error(`${arg}: no source exports ${name}`);
      const l = groups.get(where) ?? [];
      l.push(el.getText(sf));
      groups.set(where, l);
    }
    if (groups.size === 1 && groups.has(rootSource)) continue;
    const lines: string[] = [];
    const multiline = nb.getText(sf).includes('\n');
    for (const [where, names] of [...groups].sort(([a], [b]) => (a === rootSource ? -1 : b === rootSource ? 1 : a.localeCompare(b)))) {
      let target = relative(dirname(file), join(ROOT, where.replace(/\.ts$/, '.js')));
      if (!target.startsWith('.')) target = `./${target}`;
      const head = typeOnly ? 'import type' : 'import';
      if (multiline && where === rootSource) lines.push(`${head} {\n${names.map((n) => `  ${n},`).join('\n')}\n} from '${target}';`);
      else lines.push(`${head} { ${names.join(', ')} } from '${target}';`);
    }
    edits.push({ start: st.getStart(sf), end: st.getEnd(), text: lines.join('\n') });
  }
  if (edits.length === 0) continue;
  let out = text;
  for (const e of edits.reverse()) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  writeFileSync(file, out);
  console.log(`rewrote ${arg}`);
}
