/**
 * The browser build: `npm run build:browser` bundles src/web/index.ts (the core stack and the Web
 * Streams faces) with esbuild into one ES module, dist/browser/tunstack.js (+ .js.map).
 *
 * The bundle must not need Node: any `node:` import (or a bare Node builtin such as 'events')
 * fails the build. Nothing is aliased or injected: the core names no Node module and no Node
 * global (npm run lint checks the imports, test/lint/layering.test.ts the globals).
 */
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type OutputFile, type Plugin } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const nodeBuiltins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Refuse Node modules. */
const browserOnly: Plugin = {
  name: 'tunstack-browser-only',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      const spec = args.path;
      if (nodeBuiltins.has(spec) || spec.startsWith('node:')) {
        return { errors: [{ text: `"${spec}" is a Node module; the browser build takes none (imported by ${args.importer})` }] };
      }
      return undefined;
    });
  },
};

export interface BrowserBuildOptions {
  /** Output file (default dist/browser/tunstack.js); ignored with `write: false`. */
  outfile?: string;
  /** false: return the bytes instead of writing them (tests). Default true. */
  write?: boolean;
  minify?: boolean;
  /** Entry point (default src/web/index.ts). */
  entry?: string;
  /** Imports left to the page's module loader (e.g. a scenario bundle importing './tunstack.js'). */
  external?: string[];
}

/** Bundle for the browser; returns the output files (with their text when `write: false`). */
export async function buildBrowser(options: BrowserBuildOptions = {}): Promise<OutputFile[]> {
  const config: BuildOptions = {
    entryPoints: [options.entry ?? join(ROOT, 'src/web/index.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: options.outfile ?? join(ROOT, 'dist/browser/tunstack.js'),
    write: options.write ?? true,
    sourcemap: options.write === false ? false : true,
    minify: options.minify ?? false,
    external: options.external ?? [],
    plugins: [browserOnly],
    logLevel: 'silent',
    legalComments: 'none',
  };
  const result = await build(config);
  return result.outputFiles ?? [];
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const minify = process.argv.includes('--minify');
  buildBrowser({ minify }).then(
    () => console.log(`wrote ${join('dist/browser', 'tunstack.js')}${minify ? ' (minified)' : ''}`),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
}
