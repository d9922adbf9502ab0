/**
 * The sandbox's guest command dies with tunstack, even when tunstack is killed with SIGKILL and
 * cannot clean up. It is started as
 *
 *   ip netns exec NS setpriv --pdeathsig KILL -- unshare --pid --fork --kill-child --mount-proc \
 *     -- sh -c '"$@"; exit $?' tunstack-guest COMMAND...
 *
 * - `ip netns exec` and `setpriv` exec in place, so the process tunstack spawned is `unshare`,
 *   with PR_SET_PDEATHSIG = SIGKILL: it dies when tunstack does.
 * - `unshare --fork --kill-child` starts the guest's init in a new PID namespace (with its own
 *   /proc) and gives it PR_SET_PDEATHSIG = SIGKILL towards `unshare`: it dies when `unshare` does.
 * - When a PID namespace's init dies, the kernel kills every process in it: the command and all
 *   it started (double forks, daemons) go at once, none can escape by reparenting.
 * - The init is `sh`, not the command: Linux ignores signals without a handler sent to a
 *   namespace's init, so the command must be an ordinary process (pid 2) for SIGTERM and SIGINT
 *   to end it as they would outside; `sh` waits for it and exits with its status (128 + N after
 *   signal N, the same number tunstack reports).
 *
 * tunstack passes SIGINT/SIGTERM/SIGHUP/SIGQUIT to the command itself (found as the init's
 * child), since `unshare` blocks SIGINT and SIGTERM and would turn the others into SIGKILL.
 * Where setpriv or unshare lack these options (util-linux before 2.32), the command is started
 * directly as before and only the next sandbox can clean up after a SIGKILL (see `note`).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const INIT = '"$@"; exit $?';

let cached: { prefix: string[]; note: string } | null = null;

/**
 * The argv prefix that puts the command under tunstack's lifetime (before COMMAND, after
 * `ip netns exec NS`), and '' or why it cannot (then the prefix is empty).
 */
export function guestLauncher(): { prefix: string[]; note: string } {
  if (cached !== null) return cached;
  const prefix = ['setpriv', '--pdeathsig', 'KILL', '--', 'unshare', '--pid', '--fork', '--kill-child', '--mount-proc', '--', 'sh', '-c', INIT, 'tunstack-guest'];
  const r = spawnSync(prefix[0]!, [...prefix.slice(1), 'true'], { stdio: 'ignore', timeout: 10_000 });
  cached = r.status === 0 ? { prefix, note: '' } : { prefix: [], note: `setpriv --pdeathsig / unshare --pid --kill-child unusable (${r.error?.message ?? `status ${r.status}`}): the command does not die with a killed tunstack` };
  return cached;
}

/** Parent pid of each process now (from /proc/PID/stat). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.set(Number(name), ppid);
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Children of `pid` now. */
export function childrenOf(pid: number, table: Map<number, number> = parents()): number[] {
  const out: number[] = [];
  for (const [p, pp] of table) if (pp === pid) out.push(p);
  return out;
}

/**
 * The command's pid(s) under a launcher started with `guestLauncher().prefix`: the children of
 * the launcher's child (the namespace's init). Empty before the command has started.
 */
export function guestCommandPids(launcher: number): number[] {
  const table = parents();
  return childrenOf(launcher, table).flatMap((init) => childrenOf(init, table));
}

/** SIGKILL every process in network namespace `ns`; returns how many there were. */
export function killNamespaceProcesses(ns: string): number {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
  let n = 0;
  for (const p of pids.split(/\s+/).filter((x) => /^\d+$/.test(x))) {
    try {
      process.kill(Number(p), 'SIGKILL');
      n++;
    } catch {
      /* already gone */
    }
  }
  return n;
}
