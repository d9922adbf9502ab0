/**
 * The package as a consumer gets it: `npm pack` (which builds dist/ and the prebuilt addons for
 * linux-x64 and linux-arm64), then `npm install` of the tarball into a fresh project. Nothing is
 * compiled there (npm 11 does not even run a dependency's install script unless allowed), the
 * prebuilt addon loads, a second install leaves package-lock.json as it was, and without a
 * prebuilt the error names a command that works from that project. Then the package's surface
 * there: every entry point imports (ESM) and requires (CommonJS, require(esm)) with the names
 * tools/exports.ts reads from the sources, paths outside "exports" are refused, a small TypeScript
 * consumer type-checks against the shipped .d.ts (skipLibCheck off), no .d.ts keeps an @internal
 * member, every source map carries its sources, and LICENSE is the Apache-2.0 text.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { ENTRIES } from '../tools/entries.js';
import { entryExports } from '../tools/exports.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'tunstack-install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const haveNpm = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0;
const haveCross = spawnSync('sh', ['-c', 'command -v aarch64-linux-gnu-gcc']).status === 0;
const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
if (!haveNpm) console.warn('test/install.test.ts: skipped: npm not found');
else if (!linuxX64) console.warn(`test/install.test.ts: skipped: the check loads the linux-x64 prebuilt, and this is ${process.platform}-${process.arch}`);
if (haveNpm && !haveCross) console.warn('test/install.test.ts: the linux-arm64 prebuild is not checked: aarch64-linux-gnu-gcc missing (Debian: gcc-aarch64-linux-gnu)');

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): { status: number; out: string; stdout: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 240_000, env: { ...process.env, ...env } });
  return { status: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}

/** ELF e_machine of a shared object: 62 x86-64, 183 AArch64. */
function elfMachine(path: string): number {
  const b = readFileSync(path);
  expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  return b.readUInt16LE(18);
}

function reasonIn(app: string): string {
  const r = run(process.execPath, ['--input-type=module', '-e', "import('tunstack/host').then((m) => process.stdout.write(JSON.stringify(m.nativeUnavailableReason())))"], app);
  expect(r.status, r.out).toBe(0);
  return JSON.parse(r.stdout) as string;
}

/** Every file under `dir` whose name ends with `suffix`. */
function filesUnder(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, suffix));
    else if (name.endsWith(suffix)) out.push(p);
  }
  return out;
}

/** Declarations in a .d.ts that still carry an @internal tag (a constructor parameter may: its property is what is stripped). */
function internalMembers(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (!ts.isParameter(node) && ts.getJSDocTags(node).some((t) => t.tagName.text === 'internal')) {
      found.push(`${file}:${sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

describe.skipIf(!haveNpm || !linuxX64)('the package from npm pack, installed into a fresh project', () => {
  // Fixed up front: a later test whose first test failed still writes into the temp dir, never
  // into the repository (an empty cwd would have meant this checkout).
  const app = join(dir, 'app');
  const pkg = join(app, 'node_modules', 'tunstack');
  let list: string[] = [];

  it('ships prebuilt addons, compiles nothing, loads the prebuilt, keeps the lock file stable', () => {
    const pack = run('npm', ['pack', '--pack-destination', dir], ROOT, haveCross ? {} : { TUNSTACK_PREBUILD_OPTIONAL: '1' });
    expect(pack.status, pack.out).toBe(0);
    const tgz = join(dir, pack.stdout.trim().split('\n').pop()!.trim());
    expect(existsSync(tgz), tgz).toBe(true);
    list = run('tar', ['-tzf', tgz], dir).out.split('\n');
    expect(list).toContain('package/prebuilds/linux-x64/tunstack.node');
    if (haveCross) expect(list).toContain('package/prebuilds/linux-arm64/tunstack.node');
    expect(list.filter((f) => f.includes('native/build/'))).toEqual([]);

    run('mkdir', ['-p', app], dir);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    const install = run('npm', ['install', '--no-audit', '--no-fund', tgz], app);
    expect(install.status, install.out).toBe(0);
    expect(existsSync(join(pkg, 'native', 'build')), 'nothing compiled').toBe(false);
    expect(elfMachine(join(pkg, 'prebuilds', 'linux-x64', 'tunstack.node'))).toBe(62);
    if (haveCross) expect(elfMachine(join(pkg, 'prebuilds', 'linux-arm64', 'tunstack.node'))).toBe(183);
    expect(reasonIn(app)).toBe('');

    const lock = readFileSync(join(app, 'package-lock.json'), 'utf8');
    const again = run('npm', ['install', '--no-audit', '--no-fund'], app);
    expect(again.status, again.out).toBe(0);
    expect(readFileSync(join(app, 'package-lock.json'), 'utf8')).toBe(lock);

    // No prebuilt for this machine: the reason names a command that works here, and it does.
    renameSync(join(pkg, 'prebuilds'), join(dir, 'prebuilds-aside'));
    const why = reasonIn(app);
    expect(why).toContain('npm rebuild tunstack --foreground-scripts');
    const rebuild = run('npm', ['rebuild', 'tunstack', '--foreground-scripts'], app);
    expect(rebuild.status, rebuild.out).toBe(0);
    expect(existsSync(join(pkg, 'native', 'build', 'Release', 'tunstack.node'))).toBe(true);
    expect(reasonIn(app)).toBe('');
  }, 480_000);

  // The entries' names, read from the sources.
  const expected = Object.fromEntries(entryExports().map((e) => [e.entry.specifier, [...e.values].sort()]));

  it('imports every entry point (ESM) with the names the sources export', () => {
    const script = `const out = {};\nfor (const s of ${JSON.stringify(ENTRIES.map((e) => e.specifier))}) out[s] = Object.keys(await import(s)).sort();\nprocess.stdout.write(JSON.stringify(out));\n`;
    writeFileSync(join(app, 'imports.mjs'), script);
    const r = run(process.execPath, ['imports.mjs'], app);
    expect(r.status, r.out).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(expected);
  });

  // require(esm): on by default from Node 20.19.0, 22.12.0 and 23.0.0 (README, "Package entry points").
  const [maj, min] = process.versions.node.split('.').map(Number) as [number, number];
  const requireEsm = maj >= 23 || (maj === 22 && min >= 12) || (maj === 20 && min >= 19);
  if (!requireEsm) console.warn(`test/install.test.ts: require() of the entries not checked: Node ${process.versions.node} has no require(esm) by default`);
  it.skipIf(!requireEsm)('requires every entry point from a .cjs file with the same names', () => {
    const script = `'use strict';\nconst out = {};\nfor (const s of ${JSON.stringify(ENTRIES.map((e) => e.specifier))}) out[s] = Object.keys(require(s)).filter((k) => k !== '__esModule' && k !== 'module.exports').sort();\nconst { Stack } = require('tunstack');\nconst { Network } = require('tunstack/sim');\nconst net = new Network({ seed: 1 });\nout.sameStack = net.host('a').stack instanceof Stack;\nnet.close();\nprocess.stdout.write(JSON.stringify(out));\n`;
    writeFileSync(join(app, 'requires.cjs'), script);
    const r = run(process.execPath, ['requires.cjs'], app);
    expect(r.status, r.out).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ...expected, sameStack: true });
  });

  it('refuses paths outside the exports map', () => {
    for (const deep of ['tunstack/dist/transport/tcp/buffers.js', 'tunstack/dist/index.js', 'tunstack/link']) {
      const r = run(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(deep)}).then(() => process.exit(0), (e) => { process.stdout.write(e.code); process.exit(1); })`], app);
      expect(r.stdout, `${deep}: ${r.out}`).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
    }
  });

  it('type-checks a TypeScript consumer of every entry (ESM and .cts) against the shipped .d.ts', () => {
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        include: ['consumer.ts', 'consumer.cts'],
      }),
    );
    writeFileSync(
      join(app, 'consumer.ts'),
      [
        "import { ManualClock, Stack, TunstackError, parseIPv4, parseMAC, type PingResult } from 'tunstack';",
        "import { buildIPv4, IPv4Header } from 'tunstack/headers';",
        "import { MemorySink, PcapWriter } from 'tunstack/pcap';",
        "import { Network, type SimHost } from 'tunstack/sim';",
        "import { formatReplayReport, type ReplayReport } from 'tunstack/replay';",
        "import { SandboxNetwork, type SandboxNetworkOptions } from 'tunstack/sandbox';",
        "import { HostTap, nativeUnavailableReason } from 'tunstack/host';",
        'const stack = new Stack({ clock: new ManualClock(), seed: 1 });',
        'const mac: Uint8Array = parseMAC("02:00:00:00:00:01");',
        'const ip = new IPv4Header(buildIPv4({ src: parseIPv4("198.18.0.1"), dst: parseIPv4("198.18.0.2"), protocol: 17 }, new Uint8Array(8)));',
        'const host: SimHost = new Network({ seed: 1 }).host("a");',
        'const linkOf = (o: SandboxNetworkOptions): unknown => o.link;',
        'const ping: Promise<PingResult> | null = null;',
        'const report: ReplayReport | null = null;',
        'export const all = [stack, mac, ip, host, linkOf, ping, report, TunstackError, PcapWriter, MemorySink, formatReplayReport, SandboxNetwork, HostTap, nativeUnavailableReason];',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(app, 'consumer.cts'),
      ["import { Stack } from 'tunstack';", "import headers = require('tunstack/headers');", 'export const s: Stack = new Stack();', 'export const n: number = headers.IPV4_MIN_HEADER;', ''].join('\n'),
    );
    const tsc = run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);
    expect(tsc.status, tsc.out).toBe(0);
  });

  it('ships .d.ts without @internal members, source maps with their sources, and the license', () => {
    const dist = join(pkg, 'dist');
    const dts = filesUnder(dist, '.d.ts');
    expect(dts.length).toBeGreaterThan(50);
    expect(dts.flatMap(internalMembers)).toEqual([]);

    const maps = filesUnder(dist, '.map');
    expect(maps.length).toBeGreaterThan(50);
    const unresolved: string[] = [];
    for (const m of maps) {
      const map = JSON.parse(readFileSync(m, 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      map.sources.forEach((src, i) => {
        const content = map.sourcesContent?.[i];
        if (!(typeof content === 'string' && content.length > 0) && !existsSync(resolve(dirname(m), src))) unresolved.push(`${m}: ${src}`);
      });
    }
    expect(unresolved).toEqual([]);

    expect(list).toContain('package/LICENSE');
    const license = readFileSync(join(pkg, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(license).toContain('END OF TERMS AND CONDITIONS');
    expect((JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { license: string }).license).toBe('Apache-2.0');
  });
});
