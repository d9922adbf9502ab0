/**
 * vitest globalSetup: fetch gopacket's sample captures into .cache/captures once, if missing.
 * A failure (no network, no apt) is tolerated: the capture tests then skip with a printed reason.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  if (existsSync(join(root, '.cache/captures/.done'))) return;
  const script = join(root, '.ci/fetch-captures');
  if (!existsSync(script)) return;
  const r = spawnSync('bash', [script], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || `exit status ${r.status}`).trim().split('\n').slice(-3).join(' / ');
    console.warn(`global-setup: could not fetch the sample captures (${why}); capture tests will skip`);
  }
}
