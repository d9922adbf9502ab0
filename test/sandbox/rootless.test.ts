/**
 * Rootless `tunstack sandbox` (src/sandbox/rootless.ts), beyond the suites that run every sandbox
 * test body twice (sandbox.test.ts): the messages for a /dev/net/tun the user may not open and for
 * a kernel that forbids unprivileged user namespaces; a guest that dies with a tunstack killed with
 * SIGKILL; and, side by side with rootless slirp4netns on the same machine, the same workload (curl
 * to a host loopback server through the gateway) from a namespace that an unprivileged user made
 * with `unshare -Urn`, which both attach to; a second tunstack on it refused.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, fstatSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { processRunning as running } from '../../src/sandbox/attach.js';
import { nativeUnavailableReason } from '../../src/host/native.js';
import { HostTap } from '../../src/host/tap.js';
import { openTapInNamespace, tunAccessMessage, userNamespaceReason } from '../../src/sandbox/rootless.js';
import { sandboxUnavailableReason } from '../../src/sandbox/run.js';
import { asRootlessUser, killStarted, ROOT, ROOTLESS_USER, sandbox, sandboxModes, start, until, useMode } from './helpers.js';

const why = sandboxUnavailableReason();
const rootless = sandboxModes('test/sandbox/rootless.test.ts', why).find((m) => m.mode === 'rootless')!.why;
const haveSlirp = spawnSync('slirp4netns', ['--version']).status === 0;
if (rootless === '' && !haveSlirp) console.warn('test/sandbox/rootless.test.ts: the slirp4netns comparison skipped: no slirp4netns');

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  killStarted();
  while (cleanups.length) await cleanups.pop()!();
});

/** Spawn `argv` as the rootless test user (killed after the test). */
function asUser(argv: string[], stdio: Array<'ignore' | 'pipe'> = ['ignore', 'pipe', 'pipe']): ChildProcess {
  const pre = asRootlessUser();
  const c = spawn(pre[0]!, [...pre.slice(1), ...argv], { stdio });
  cleanups.push(() => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  return c;
}

/** Run `argv` as the rootless test user to the end: status and output. */
async function runAsUser(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = asUser(argv);
  let stdout = '';
  let stderr = '';
  c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const [code] = (await once(c, 'close')) as [number | null];
  return { code, stdout, stderr };
}

function ppidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return -1;
  }
}

/** Running (not zombie) descendants of `pid` now. */
function descendants(pid: number): number[] {
  const kids = new Map<number, number[]>();
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n) || !running(Number(n))) continue;
    const pp = ppidOf(Number(n));
    kids.set(pp, [...(kids.get(pp) ?? []), Number(n)]);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const k of kids.get(p) ?? []) {
      out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

describe('messages of a rootless sandbox that cannot run', () => {
  const denied = (): string => 'unshare: unshare failed: Operation not permitted';
  it.each([
    ['/proc/sys/kernel/unprivileged_userns_clone', '0', 'kernel.unprivileged_userns_clone = 0', 'sysctl -w kernel.unprivileged_userns_clone=1'],
    ['/proc/sys/user/max_user_namespaces', '0', 'user.max_user_namespaces = 0', 'sysctl -w user.max_user_namespaces='],
    ['/proc/sys/kernel/apparmor_restrict_unprivileged_userns', '1', 'AppArmor restricts them', 'kernel.apparmor_restrict_unprivileged_userns=0'],
  ])('names the setting that forbids user namespaces (%s = %s) and the fix', (file, value, cause, fix) => {
    const msg = userNamespaceReason({ tryUnshare: denied, sysctl: (p) => (p === file ? value : null) });
    expect(msg).toContain('the kernel does not let unprivileged users make user namespaces');
    expect(msg).toContain(cause);
    expect(msg).toContain(fix);
  });

  it('falls back to the error when no known setting explains it; says nothing when it works', () => {
    expect(userNamespaceReason({ tryUnshare: denied, sysctl: () => null })).toBe(`cannot make a user namespace owning a network namespace (unshare --user --map-root-user --net: ${denied()})`);
    expect(userNamespaceReason({ tryUnshare: () => '', sysctl: () => '0' })).toBe('');
  });

  it('explains a tun device of mode 0600 with the distributions’ 0666 and the chmod that fixes it', () => {
    const msg = tunAccessMessage('/dev/net/tun', 0o20600);
    expect(msg).toContain('/dev/net/tun is mode 0600 and cannot be opened by this user');
    expect(msg).toContain('Distributions ship it mode 0666');
    expect(msg).toContain('chmod 0666 /dev/net/tun');
  });

  it.skipIf(nativeUnavailableReason() !== '')('a TAP in a namespace that is not there: the step and the errno, from the forked child', () => {
    expect(() => openTapInNamespace({ netns: '/nonexistent/ns/net', userns: '', name: 'eth0', mtu: 1500 })).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('cannot open the network namespace for a TAP in /nonexistent/ns/net') }),
    );
    expect(() => openTapInNamespace({ netns: '/proc/self/ns/net', userns: '/nonexistent/ns/user', name: 'eth0', mtu: 1500 })).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('cannot open the user namespace') }),
    );
  });

  it.skipIf(nativeUnavailableReason() !== '')('HostTap.fromFd refuses a bad fd, and an fd that is no TAP (closing it)', () => {
    expect(() => HostTap.fromFd(-1)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    const fd = openSync('/dev/null', 'r+');
    expect(() => HostTap.fromFd(fd)).toThrow(/TUNGETIFF on fd/);
    expect(() => fstatSync(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});

describe.skipIf(rootless !== '')('tunstack sandbox as an unprivileged user', () => {
  useMode('rootless');
  const body = 'hello from the host loopback, to an unprivileged guest\n';
  let port = 0;
  const http = createHttpServer((_req, res) => res.end(body));
  beforeAll(async () => {
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    port = (http.address() as AddressInfo).port;
  });
  afterAll(() => void http.close());

  it(`a /dev/net/tun of mode 0600 (as on this host before the test): the message says why and how to fix it`, async () => {
    // A 0600 tun device node (the real one: 10,200) over /dev/net/tun in a mount namespace of its own.
    const dir = mkdtempSync(join(tmpdir(), 'tsb-tun-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    chmodSync(dir, 0o755);
    const tun = join(dir, 'tun');
    const pre = asRootlessUser();
    const script = `mknod ${tun} c 10 200 && chmod 0600 ${tun} && mount --bind ${tun} /dev/net/tun && exec "$@"`;
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...pre, process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'sandbox', '--', 'true'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('/dev/net/tun is mode 0600 and cannot be opened by this user (uid 65534)');
    expect(r.stderr).toContain('chmod 0666 /dev/net/tun');
  });

  it('SIGKILL to tunstack ends the command and its children (they run in its user, network and PID namespaces)', async () => {
    const { child, stderr } = start(['-v', '--', 'sh', '-c', 'sleep 300 & sleep 300']);
    await until('the sandbox', () => stderr().includes('eth0 ('));
    let guest: number[] = [];
    await until('both sleeps', () => (guest = descendants(child.pid!)).filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'sleep').length === 2);
    cleanups.push(() => {
      for (const p of guest.filter(running)) process.kill(p, 'SIGKILL');
    });
    // Not root on the host, though root in its namespace.
    for (const p of guest) expect(readFileSync(`/proc/${p}/status`, 'utf8')).toMatch(new RegExp(`\\nUid:\\s+${ROOTLESS_USER.uid}\\s`));
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    await until('the guest processes to end', () => guest.every((p) => !running(p)), 10_000).catch(() => {});
    expect(guest.filter(running)).toEqual([]);
  });

  it("refuses another user's namespace with the reason", async () => {
    const other = spawn('sleep', ['300'], { stdio: 'ignore' });
    cleanups.push(() => void other.kill('SIGKILL'));
    const r = await sandbox(['--netns', String(other.pid)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot open /proc/${other.pid}/ns/net: process ${other.pid} is another user's`);
  });

  it.skipIf(!haveSlirp)('the same curl through the gateway works through slirp4netns and tunstack, both unprivileged, attached to a namespace from `unshare -Urn`', async () => {
    const curl = ['curl', '-sS', '--max-time', '20', `http://10.0.2.2:${port}/`];
    const made = async (): Promise<number> => {
      const h = asUser(['unshare', '--user', '--map-root-user', '--net', 'sleep', '300'], ['ignore', 'ignore', 'ignore']);
      const ours = spawnSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).stdout;
      await until('the namespace', () => {
        const ns = spawnSync('readlink', [`/proc/${h.pid}/ns/net`], { encoding: 'utf8' }).stdout;
        return ns !== '' && ns !== ours;
      });
      return h.pid!;
    };
    const inside = (pid: number): Promise<{ code: number | null; stdout: string; stderr: string }> => runAsUser(['nsenter', '-t', String(pid), '-U', '-n', '--preserve-credentials', ...curl]);

    // slirp4netns, as its documentation runs it rootless.
    const p1 = await made();
    const slirp = asUser(['slirp4netns', '--configure', '--ready-fd=3', String(p1), 'tap0'], ['ignore', 'ignore', 'pipe', 'pipe']);
    await once(slirp.stdio[3] as Readable, 'data');
    const viaSlirp = await inside(p1);

    // tunstack, the same way (its own namespace's process by PID, tap0).
    const p2 = await made();
    const t = start(['-v', '--netns', String(p2)]);
    await until('tunstack serving', () => t.stderr().includes('serving'));
    const viaTunstack = await inside(p2);
    const second = await sandbox(['--netns', String(p2)]);

    // And tunstack's own rootless namespace.
    const own = await sandbox(['--', ...curl]);

    expect(viaSlirp).toEqual({ code: 0, stdout: body, stderr: '' });
    expect(viaTunstack).toEqual({ code: 0, stdout: body, stderr: '' });
    expect(own.code).toBe(0);
    expect(own.stdout).toBe(body);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`already served by tunstack (pid ${t.child.pid}`);
  });
});
