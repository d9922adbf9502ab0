#!/usr/bin/env node
/**
 * Builds tunstack's optional native host bridge (native/tunstack.c) with node-gyp. Run by
 * `npm install` / `npm ci` (the package's "install" script) and by hand (`node native/build.mjs`).
 *
 * It never fails the install: when the addon cannot be built (not Linux, no compiler, no Node
 * headers, node-gyp missing) it prints why and exits 0. tunstack works without it; only the host
 * API (HostTap, FdEndpoint) then throws ENOSYS. Set TUNSTACK_SKIP_NATIVE=1 to skip the build.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'Release', 'tunstack.node');

function skip(why) {
  console.log(`tunstack: native host bridge not built (${why}); the rest of tunstack works without it`);
  process.exit(0);
}

if (process.env.TUNSTACK_SKIP_NATIVE === '1') skip('TUNSTACK_SKIP_NATIVE=1');
if (process.platform !== 'linux') skip(`${process.platform} is not Linux`);

/** node-gyp: the one npm runs scripts with, else the one bundled with npm, else on PATH. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) {
    candidates.push(resolve(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(prefix, 'lib', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const c of candidates) if (existsSync(c)) return [process.execPath, c];
  const which = spawnSync('sh', ['-c', 'command -v node-gyp'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim() !== '') return [which.stdout.trim()];
  return null;
}

const gyp = findNodeGyp();
if (gyp === null) skip('node-gyp not found');

const args = [...gyp.slice(1), 'rebuild'];
// Build against the headers of the running Node when they are installed beside it (no download).
if (!process.env.npm_config_nodedir) {
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
}

const started = Date.now();
const r = spawnSync(gyp[0], args, { cwd: here, encoding: 'utf8', timeout: 300_000, env: process.env });
if (r.status !== 0 || !existsSync(out)) {
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}\n${r.error?.message ?? ''}`.trim().split('\n');
  const tail = text.filter((l) => /error:|Error:|not found|No such file|ENOENT/.test(l) && !/ stack at /.test(l)).slice(0, 8);
  console.log('tunstack: building the native host bridge failed:');
  for (const l of (tail.length > 0 ? tail : text.slice(-8))) console.log(`  ${l}`);
  skip(`node-gyp exited with ${r.status ?? r.signal ?? r.error?.code}`);
}
console.log(`tunstack: native host bridge built (${out}, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
