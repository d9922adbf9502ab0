/**
 * Running the `tunstack sandbox` CLI (from the sources) in root tests, as root or (the rootless
 * mode) as an unprivileged user: the same test bodies run in both (`sandboxModes`, `useMode`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { userNamespaceReason } from '../../src/sandbox/rootless.js';
import { releaseTunForAll, tunForAll } from './tun-mode.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface Run {
  /** The tunstack process's pid: its namespaces are named `tunstack-<pid>-<n>`. */
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

/** SIGKILL every CLI process started here that is still running (call in afterEach). */
export function killStarted(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}

/** How the CLI runs: as root, or as the unprivileged ROOTLESS_USER. */
export type SandboxMode = 'root' | 'rootless';

/** The unprivileged user of the rootless runs: nobody (uid and gid 65534), no groups. */
export const ROOTLESS_USER = { uid: 65534, gid: 65534 } as const;

/** argv prefix running a command as ROOTLESS_USER (setpriv execs it in place: same pid). */
export function asRootlessUser(): string[] {
  return ['setpriv', `--reuid=${ROOTLESS_USER.uid}`, `--regid=${ROOTLESS_USER.gid}`, '--clear-groups', '--'];
}

/**
 * `base` (sandboxUnavailableReason()), or why the root runs skip: they need this process to be root
 * (an unprivileged one would get a rootless sandbox, and the tests edit /etc/hosts and such).
 */
export function rootReason(base: string): string {
  if (base !== '') return base;
  return typeof process.getuid === 'function' && process.getuid() !== 0 ? 'not root' : '';
}

let rootlessWhy: string | null = null;

/** Why the rootless runs cannot happen here ('' when they can); asked once. */
export function rootlessTestReason(): string {
  if (rootlessWhy !== null) return rootlessWhy;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) rootlessWhy = 'not root (the rootless runs switch from root to an unprivileged user)';
  else if (spawnSync('setpriv', ['--version']).status !== 0) rootlessWhy = 'no setpriv (util-linux)';
  else {
    // The kernel's verdict for that user, with the setting that explains a refusal.
    const why = userNamespaceReason({
      tryUnshare: () => {
        const r = spawnSync(asRootlessUser()[0]!, [...asRootlessUser().slice(1), 'unshare', '--user', '--map-root-user', '--net', 'true'], { encoding: 'utf8', timeout: 10_000 });
        return r.status === 0 ? '' : (r.stderr || `exit status ${r.status}`).trim();
      },
    });
    rootlessWhy = why === '' ? '' : `uid ${ROOTLESS_USER.uid}: ${why}`;
  }
  return rootlessWhy;
}

/**
 * The modes a sandbox test file runs its bodies in, each with '' or why it skips (printed here):
 * `base` is the reason every mode skips (sandboxUnavailableReason as root).
 */
export function sandboxModes(file: string, base: string): Array<{ mode: SandboxMode; why: string }> {
  const out: Array<{ mode: SandboxMode; why: string }> = [
    { mode: 'root', why: rootReason(base) },
    { mode: 'rootless', why: base !== '' ? base : rootlessTestReason() },
  ];
  for (const m of out) if (m.why !== '') console.warn(`${file}: ${m.mode} runs skipped: ${m.why}`);
  return out;
}

let mode: SandboxMode = 'root';

/** The mode the CLI runs in now. */
export function currentMode(): SandboxMode {
  return mode;
}

/**
 * In a describe: the CLI runs in `m` for its tests. Rootless, /dev/net/tun is mode 0666 meanwhile
 * (as distributions ship it) and its mode is restored afterwards (tun-mode.ts).
 */
export function useMode(m: SandboxMode): void {
  beforeAll(() => {
    mode = m;
    if (m === 'rootless') tunForAll();
  });
  afterAll(() => {
    mode = 'root';
    if (m === 'rootless') releaseTunForAll();
  });
}

/** Start `tunstack sandbox ARGS` (from the sources) in the current mode. `stderr()` is what it wrote so far. */
export function start(args: string[]): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const argv = [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'sandbox', ...args];
  if (mode === 'rootless') argv.unshift(...asRootlessUser());
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const pid = child.pid ?? -1;
  const done = new Promise<Run>((res) => child.once('close', (code, signal) => res({ pid, code, signal, stdout, stderr })));
  return { child, done, stderr: () => stderr };
}

/** Run `tunstack sandbox ARGS` to the end (SIGKILLed after `timeoutMs`). */
export async function sandbox(args: string[], timeoutMs = 60_000): Promise<Run> {
  const { child, done } = start(args);
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const r = await done;
  clearTimeout(t);
  return r;
}

/** The namespaces a finished run left behind (other sandboxes running meanwhile do not count). */
export function namespacesOf(r: Run): string[] {
  return namespaces().filter((n) => n.startsWith(`tunstack-${r.pid}-`));
}

/** Sandbox namespaces that exist now. */
export function namespaces(): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith('tunstack-')).map((l) => l.split(' ')[0]!);
}

/** The relay statistics a `-d` (debug) run printed at its end. */
export function statsOf(stderr: string): Record<string, Record<string, number> | null> {
  const m = /stats (\{.*\})/.exec(stderr);
  if (!m) throw new Error(`no stats in: ${stderr}`);
  return JSON.parse(m[1]!) as Record<string, Record<string, number> | null>;
}

/** Poll `ok` every 50 ms until it holds; throws after `ms`. */
export async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
