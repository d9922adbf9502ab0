/**
 * /dev/net/tun mode 0666 for the rootless test runs, as distributions ship it (some hosts make it
 * 0600, which keeps unprivileged users, and so rootless slirp4netns, pasta and tunstack, from
 * making TAPs), and its own mode back afterwards.
 *
 * Test files run in parallel processes, so this is shared state: under a lock (flock), each
 * process that needs 0666 is a holder (a file named by its pid in STATE_DIR); the first records
 * the mode it found, the last one out restores it. Holders whose process is gone (a worker killed
 * before its afterAll) are dropped at every step, so a crashed run is repaired by the next one.
 */
import { spawnSync } from 'node:child_process';

const TUN = '/dev/net/tun';
const STATE_DIR = '/run/tunstack-test-tun';
const LOCK = '/run/tunstack-test-tun.lock';

const SCRIPT = `
set -e
d=${STATE_DIR}; mkdir -p "$d"
for f in "$d"/holder-*; do [ -e "$f" ] || continue; kill -0 "\${f##*-}" 2>/dev/null || rm -f "$f"; done
case "$1" in
acquire)
  [ -e "$d/mode" ] || stat -c %a ${TUN} > "$d/mode"
  chmod 0666 ${TUN}
  : > "$d/holder-$2" ;;
release)
  rm -f "$d/holder-$2"
  if ! ls "$d"/holder-* > /dev/null 2>&1 && [ -e "$d/mode" ]; then chmod "$(cat "$d/mode")" ${TUN}; rm -f "$d/mode"; fi ;;
esac
`;

function step(op: 'acquire' | 'release'): void {
  const r = spawnSync('flock', ['-w', '30', LOCK, 'sh', '-c', SCRIPT, 'tun-mode', op, String(process.pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${TUN} mode ${op}: ${(r.stderr || r.error?.message || `exit status ${r.status}`).trim()}`);
}

/** Make /dev/net/tun 0666 while this process needs it. */
export function tunForAll(): void {
  step('acquire');
}

/** This process no longer needs it: the last one out restores the mode found by the first. */
export function releaseTunForAll(): void {
  step('release');
}
