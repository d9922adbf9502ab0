#!/usr/bin/env node
/**
 * Builds tunstack's optional native host bridge (native/tunstack.c) with node-gyp. Run by
 * `npm install` / `npm ci` (the package's "install" script), by `npm rebuild tunstack`, and by hand
 * (`node native/build.mjs`).
 *
 * A package from the registry ships prebuilt addons for linux-x64 and linux-arm64 (prebuilds/,
 * made at pack time by native/prebuild.mjs; the addon uses only Node-API, so one build serves
 * every Node version). When the one for this machine loads, nothing is compiled (set
 * TUNSTACK_BUILD_FROM_SOURCE=1 to compile anyway); a tunstack checkout always compiles. It never fails the install: when the addon can
 * be neither loaded nor built it prints why and exits 0; only the host API (HostTap, FdEndpoint)
 * then throws ENOSYS. Set TUNSTACK_SKIP_NATIVE=1 to skip it all.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prebuiltPath, runGyp } from './gyp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'Release', 'tunstack.node');

function skip(why) {
  console.log(`tunstack: native host bridge not built (${why}); the rest of tunstack works without it`);
  process.exit(0);
}

if (process.env.TUNSTACK_SKIP_NATIVE === '1') skip('TUNSTACK_SKIP_NATIVE=1');
if (process.platform !== 'linux') skip(`${process.platform} is not Linux`);

const prebuilt = prebuiltPath(join(here, '..'));
// A tunstack checkout (prebuild.mjs is not shipped) always compiles its own sources: prebuilds
// left there by an `npm pack` may be older than native/tunstack.c.
const checkout = existsSync(join(here, 'prebuild.mjs'));
if (!checkout && process.env.TUNSTACK_BUILD_FROM_SOURCE !== '1' && existsSync(prebuilt)) {
  // Load it in a child: a prebuilt that does not fit (another libc) must not end this script.
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(prebuilt)})`], { encoding: 'utf8', timeout: 30_000 });
  if (probe.status === 0) {
    console.log(`tunstack: using the prebuilt native host bridge for ${process.platform}-${process.arch}`);
    process.exit(0);
  }
  console.log(`tunstack: the prebuilt native host bridge does not load here (${(probe.stderr || '').trim().split('\n')[0]}); compiling`);
}

const started = Date.now();
const failed = runGyp(here);
if (failed !== null) {
  console.log(`tunstack: building the native host bridge failed:\n  ${failed}`);
  skip('no compiler, headers or node-gyp');
}
console.log(`tunstack: native host bridge built (${out}, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
