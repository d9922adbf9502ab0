/** Running the `tunstack sandbox` CLI (from the sources) in root tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** Start `tunstack sandbox ARGS` (from the sources). `stderr()` is what it wrote so far. */
export function start(args: string[]): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'sandbox', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
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
