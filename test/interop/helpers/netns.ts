/**
 * Test helpers for the Linux kernel as a peer: a network namespace per test with one end of a
 * real TAP/TUN in it, and tunstack on the other end (through the HostTap fd, which stays in the
 * test process). Everything a test makes is removed by `cleanup()` (call it in afterEach), and
 * child processes it started are killed.
 *
 * Addresses: only the benchmarking range 198.18.0.0/15 (RFC 2544) and the IPv6 documentation
 * prefix 2001:db8::/32 are used, on interfaces inside namespaces the tests create, so no traffic
 * can leave the machine.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { nativeUnavailableReason } from '../../../src/host/native.js';

const pexec = promisify(execFile);

/** Why kernel interop tests cannot run here ('' when they can). */
export function interopSkipReason(): string {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root (network namespaces and TAPs need it)';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  const why = nativeUnavailableReason();
  if (why !== '') return why;
  if (spawnSync('ip', ['-V']).status !== 0) return 'iproute2 (`ip`) missing';
  const probe = `tsprobe${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot create a network namespace: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return '';
}

const reasonCache = new Map<string, string>();

/** `interopSkipReason`, printed once per file when not empty. */
export function skipInterop(file: string): boolean {
  let why = reasonCache.get('');
  if (why === undefined) {
    why = interopSkipReason();
    reasonCache.set('', why);
  }
  if (why !== '' && !reasonCache.has(file)) {
    reasonCache.set(file, why);
    console.warn(`${file}: kernel interop tests skipped: ${why}`);
  }
  return why !== '';
}

/** Whether a command exists in PATH. */
export function haveCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

let counter = 0;

/** A name unique to this process and call: `${prefix}${pid}x${n}`, at most 15 bytes. */
export function uniqueName(prefix: string): string {
  const n = (counter++).toString(36);
  const pid = (process.pid % 1_000_000).toString(36);
  return `${prefix}${pid}${n}`.slice(0, 15);
}

/** A network namespace with helpers to run commands in it. */
export class Netns {
  readonly name: string;
  private readonly children = new Set<ChildProcess>();
  private removed = false;

  constructor(prefix = 'tsi') {
    this.name = uniqueName(prefix);
    execFileSync('ip', ['netns', 'add', this.name]);
    this.runSync('ip', ['link', 'set', 'lo', 'up']);
  }

  /** Run a command in the namespace, waiting for it without blocking the event loop. */
  async run(cmd: string, args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
    try {
      const p = pexec('ip', ['netns', 'exec', this.name, cmd, ...args], {
        encoding: 'utf8',
        timeout: options.timeoutMs ?? 20_000,
        maxBuffer: 64 << 20,
      });
      if (options.input !== undefined) {
        p.child.stdin?.end(options.input);
      }
      this.track(p.child);
      const r = await p;
      return { stdout: r.stdout, stderr: r.stderr, code: 0 };
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; code?: number | string };
      return { stdout: err.stdout ?? '', stderr: err.stderr ?? String(e), code: typeof err.code === 'number' ? err.code : -1 };
    }
  }

  /** Run a command in the namespace synchronously (setup only: the event loop stops meanwhile). */
  runSync(cmd: string, args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], { encoding: 'utf8', timeout: 20_000 });
  }

  /** `ip <args>` inside the namespace (synchronous; setup only). */
  ip(...args: string[]): string {
    return execFileSync('ip', ['-n', this.name, ...args], { encoding: 'utf8', timeout: 20_000 });
  }

  /** Start a long-running process in the namespace; it is killed by `remove()`. */
  spawn(cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.track(child);
    return child;
  }

  private track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  /** Kill the children, delete the namespace (its interfaces go with it). Idempotent. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    this.children.clear();
    spawnSync('ip', ['netns', 'del', this.name]);
  }
}

/** Wait until `pred` is true, polling every `stepMs` without blocking; rejects after `timeoutMs`. */
export async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition', stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Parse `ip -s -j link show dev X` counters. */
export function linkStats(ns: Netns, dev: string): { rxPackets: number; txPackets: number; rxDropped: number } {
  const j = JSON.parse(ns.ip('-s', '-j', 'link', 'show', 'dev', dev)) as Array<{
    stats64: { rx: { packets: number; dropped: number }; tx: { packets: number } };
  }>;
  const s = j[0]!.stats64;
  return { rxPackets: s.rx.packets, txPackets: s.tx.packets, rxDropped: s.rx.dropped };
}
