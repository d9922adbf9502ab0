/**
 * Running node-gyp on native/ (shared by build.mjs, the install-time build, and prebuild.mjs, the
 * pack-time prebuilds): find node-gyp, build in a directory, report what went wrong.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** node-gyp: the one npm runs scripts with, else the one bundled with npm, else on PATH. */
export function findNodeGyp() {
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

/**
 * `node-gyp rebuild` in `dir` (which holds binding.gyp and tunstack.c) with extra arguments and
 * environment. Returns null on success, else a few lines saying why it failed.
 */
export function runGyp(dir, extraArgs = [], env = {}) {
  const gyp = findNodeGyp();
  if (gyp === null) return 'node-gyp not found';
  const args = [...gyp.slice(1), 'rebuild', ...extraArgs];
  // Build against the headers of the running Node when they are installed beside it (no download).
  if (!process.env.npm_config_nodedir) {
    const prefix = resolve(dirname(process.execPath), '..');
    if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  }
  const r = spawnSync(gyp[0], args, { cwd: dir, encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...env } });
  if (r.status === 0 && existsSync(join(dir, 'build', 'Release', 'tunstack.node'))) return null;
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}\n${r.error?.message ?? ''}`.trim().split('\n');
  const tail = text.filter((l) => /error:|Error:|not found|No such file|ENOENT/.test(l) && !/ stack at /.test(l)).slice(0, 8);
  return [`node-gyp exited with ${r.status ?? r.signal ?? r.error?.code}`, ...(tail.length > 0 ? tail : text.slice(-8))].join('\n  ');
}

/** The prebuilt addon for this platform and CPU, as shipped in the package. */
export function prebuiltPath(root, platform = process.platform, arch = process.arch) {
  return join(root, 'prebuilds', `${platform}-${arch}`, 'tunstack.node');
}
