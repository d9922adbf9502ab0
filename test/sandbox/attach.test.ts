/**
 * `tunstack sandbox --netns`: serving a namespace someone else made, as root. The test makes the
 * namespace (`unshare --net sleep`, or `ip netns add`), tunstack attaches to it by PID or path;
 * real programs inside (curl, python3 servers started with nsenter) are the guest, servers and
 * clients on the host's loopback the far end. Checked: --ready-fd, --pid-file, --exit-fd, the
 * slirp4netns JSON API (add/list/remove_hostfwd and its errors) while traffic flows, a second
 * tunstack refused, and the exit when the namespace's process dies or the path is deleted.
 * The argument rules (no COMMAND with --netns, attach options need it) run without root. The
 * attach tests run with the CLI as root and rootless (helpers.ts: then the namespace's holder is
 * the same unprivileged user's `unshare -Urn`, as rootless container engines make them).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ATTACH_LOCK_DIR } from '../../src/sandbox/attach.js';
import { sandboxUnavailableReason } from '../../src/sandbox/run.js';
import { uniqueName } from '../interop/helpers/netns.js';
import { asRootlessUser, currentMode, ROOT, ROOTLESS_USER, sandbox, sandboxModes, useMode } from './helpers.js';

const why = sandboxUnavailableReason();

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A process alone in a new network namespace (killed after the test); `userns`: owned by a new
 * user namespace. Rootless: the unprivileged user's, always in a user namespace of its own.
 */
function holder(userns = false): ChildProcess {
  const rootless = currentMode() === 'rootless';
  const argv = [...(rootless ? asRootlessUser() : []), 'unshare', ...(userns || rootless ? ['--user', '--map-root-user'] : []), '--net', 'sleep', '300'];
  const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  cleanups.push(() => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  return c;
}

/** Wait until `pid` is in a network namespace other than ours (unshare has run). */
async function inOwnNamespace(pid: number): Promise<void> {
  const ours = readlinkNs(process.pid);
  await until('the new namespace', () => {
    const ns = readlinkNs(pid);
    return ns !== '' && ns !== ours;
  });
}

function readlinkNs(pid: number): string {
  const r = spawnSync('readlink', [`/proc/${pid}/ns/net`], { encoding: 'utf8' });
  return r.stdout.trim();
}

interface Attached {
  child: ChildProcess;
  stderr: () => string;
  /** Resolves with what was written to the ready fd once it is closed. */
  ready: Promise<string>;
  /** The exit fd's writing end (end() it to make tunstack exit). */
  exitWriter: Writable;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `tunstack sandbox --ready-fd 3 --exit-fd 4 ARGS` with those fds as pipes to the test. */
function attach(args: string[]): Attached {
  const argv = [...(currentMode() === 'rootless' ? asRootlessUser() : []), process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'sandbox', '--ready-fd', '3', '--exit-fd', '4', ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const readyPipe = child.stdio[3] as Readable;
  const ready = new Promise<string>((resolve) => {
    let got = '';
    readyPipe.on('data', (b: Buffer) => (got += b.toString()));
    readyPipe.on('close', () => resolve(got));
    readyPipe.on('error', () => resolve(got));
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, signal) => res({ code, signal })));
  return { child, stderr: () => err, ready, exitWriter: child.stdio[4] as Writable, done };
}

/** One request on the API socket: the reply, parsed. */
async function api(path: string, request: string | object): Promise<unknown> {
  const s = connect(path);
  let got = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => (got += d));
  await once(s, 'connect');
  s.end(typeof request === 'string' ? request : JSON.stringify(request));
  await once(s, 'close');
  return JSON.parse(got) as unknown;
}

/** Run argv in the namespace without blocking this process's event loop (its servers answer meanwhile). */
async function inNsAsync(pid: number, argv: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const c = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => void c.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const [status] = (await once(c, 'close')) as [number | null];
  return { status, stdout, stderr };
}

function inNs(pidOrPath: number | string, argv: string[]): ReturnType<typeof spawnSync> {
  const path = typeof pidOrPath === 'number' ? `/proc/${pidOrPath}/ns/net` : pidOrPath;
  return spawnSync('nsenter', [`--net=${path}`, ...argv], { encoding: 'utf8', timeout: 30_000 });
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** A TCP client of the host's 127.0.0.1:port: an error code, or the connected socket. */
async function dial(port: number): Promise<Socket | string> {
  const s = connect(port, '127.0.0.1');
  s.setEncoding('utf8');
  return new Promise((resolve) => {
    s.once('connect', () => resolve(s));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** Send a line, read its echo. */
async function echo(s: Socket, line: string): Promise<string> {
  let got = '';
  s.write(`${line}\n`);
  while (!got.includes('\n')) {
    const [d] = (await once(s, 'data')) as [string];
    got += d;
  }
  return got.trim();
}

describe('tunstack sandbox --netns arguments', () => {
  it('refuses a COMMAND with --netns, and attach options without it', async () => {
    const a = await sandbox(['--netns', '1', '--', 'true']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('--netns serves an existing namespace and runs no COMMAND');
    const b = await sandbox(['--api-socket', '/nonexistent/s', '--', 'true']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('--api-socket needs --netns');
    const c = await sandbox(['--netns', '1', '--ready-fd', 'x']);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('--ready-fd wants an integer');
  });
});

/** Where the CLI keeps its lock files in the current mode. */
function lockDir(): string {
  return currentMode() === 'rootless' ? join(tmpdir(), `tunstack-${ROOTLESS_USER.uid}`) : ATTACH_LOCK_DIR;
}

for (const { mode: runAs, why: skipWhy } of sandboxModes('test/sandbox/attach.test.ts', why)) describe.skipIf(skipWhy !== '')(`tunstack sandbox --netns (${runAs})`, () => {
  useMode(runAs);
  it('attached by PID: ready fd and pid file, curl inside reaches the host loopback, a second tunstack is refused, the exit fd stops it and its TAP goes', async () => {
    const h = holder();
    await inOwnNamespace(h.pid!);
    const body = 'hello from the host, to a namespace tunstack did not make\n';
    const http = createHttpServer((_req, res) => res.end(body));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    cleanups.push(() => new Promise<void>((r) => http.close(() => r())));
    const port = (http.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'tunstack-attach-'));
    chmodSync(dir, 0o777); // a rootless tunstack writes there too
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const pidFile = join(dir, 'pid');

    const t = attach(['--netns', String(h.pid), '--pid-file', pidFile]);
    expect(await t.ready).toBe('1');
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(String(t.child.pid));
    const link = inNs(h.pid!, ['ip', '-o', 'addr', 'show', 'dev', 'tap0']);
    expect(link.stdout).toContain('10.0.2.100/24');

    const curl = await inNsAsync(h.pid!, ['curl', '-sS', '--max-time', '20', `http://10.0.2.2:${port}/`]);
    expect(curl.stderr).toBe('');
    expect(curl.stdout).toBe(body);

    const second = await sandbox(['--netns', String(h.pid)]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`already served by tunstack (pid ${t.child.pid}`);
    // The refused one touched nothing: the first still serves.
    expect((await inNsAsync(h.pid!, ['curl', '-sS', '--max-time', '20', `http://10.0.2.2:${port}/`])).stdout).toBe(body);

    t.exitWriter.end();
    expect(await t.done).toEqual({ code: 0, signal: null });
    expect(existsSync(pidFile)).toBe(false);
    // The namespace lives on (its process does), without tunstack's interface.
    expect(inNs(h.pid!, ['ip', 'link', 'show', 'dev', 'tap0']).status).not.toBe(0);
    expect(readdirSync(lockDir()).filter((f) => f.includes(String(t.child.pid)))).toEqual([]);
  }, 60_000);

  it('the API socket adds, lists and removes port forwards while connections flow; errors as slirp4netns', async () => {
    const h = holder();
    await inOwnNamespace(h.pid!);
    const dir = mkdtempSync(join(tmpdir(), 'tunstack-attach-'));
    chmodSync(dir, 0o777); // a rootless tunstack writes there too
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sock = join(dir, 'api.sock');
    // A socket left at the path by a process that was killed (bound, never unlinked) is replaced.
    // (Left by the same user: a rootless tunstack cannot connect to root's socket to test it.)
    const bind = [...(currentMode() === 'rootless' ? asRootlessUser() : []), '/usr/bin/python3', '-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(sock)})`];
    expect(spawnSync(bind[0]!, bind.slice(1)).status).toBe(0);
    expect(existsSync(sock)).toBe(true);
    const t = attach(['--netns', String(h.pid), '--api-socket', sock, '--ifname', 'eth7']);
    expect(await t.ready).toBe('1');
    expect(inNs(h.pid!, ['ip', '-o', 'addr', 'show', 'dev', 'eth7']).stdout).toContain('10.0.2.100/24');

    // A line echo server in the guest, on 10.0.2.100:7007.
    const server = spawn(
      'nsenter',
      [
        `--net=/proc/${h.pid}/ns/net`,
        '/usr/bin/python3',
        '-u',
        '-c',
        [
          'import socket, threading',
          's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.0.2.100", 7007)); s.listen(16)',
          'u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.0.2.100", 7008))',
          'def udp():',
          '    while True:',
          '        d, a = u.recvfrom(2048); u.sendto(b"guest:" + d, a)',
          'threading.Thread(target=udp, daemon=True).start()',
          'print("listening", flush=True)',
          'def serve(c):',
          '    f = c.makefile("rwb", buffering=0)',
          '    try:',
          '        for line in f: f.write(b"guest:" + line)',
          '    except OSError: pass',
          'while True:',
          '    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()',
        ].join('\n'),
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    cleanups.push(() => void server.kill('SIGKILL'));
    await new Promise<void>((resolve) => server.stdout!.on('data', (b: Buffer) => b.toString().includes('listening') && resolve()));

    const hostPort = await freePort();
    expect(await api(sock, { execute: 'list_hostfwd' })).toEqual({ return: { entries: [] } });
    const added = await api(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: hostPort, guest_addr: '10.0.2.100', guest_port: 7007 } });
    expect(added).toEqual({ return: { id: 1 } });
    expect(await api(sock, { execute: 'list_hostfwd' })).toEqual({
      return: { entries: [{ id: 1, proto: 'tcp', host_addr: '127.0.0.1', host_port: hostPort, guest_addr: '10.0.2.100', guest_port: 7007 }] },
    });

    const c1 = await dial(hostPort);
    if (typeof c1 === 'string') throw new Error(`connect through the forward: ${c1}`);
    cleanups.push(() => void c1.destroy());
    expect(await echo(c1, 'one')).toBe('guest:one');
    // The same host port twice: refused by the host's bind, reported as an error.
    const dup = (await api(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: hostPort, guest_port: 7007 } })) as { error?: { desc: string } };
    expect(dup.error?.desc).toMatch(/^bad request: add_hostfwd: .*EADDRINUSE/);

    expect(await api(sock, { execute: 'remove_hostfwd', arguments: { id: 1 } })).toEqual({ return: {} });
    expect(await api(sock, { execute: 'list_hostfwd' })).toEqual({ return: { entries: [] } });
    // New connections are refused by the host; the one made before carries on.
    expect(await dial(hostPort)).toBe('ECONNREFUSED');
    expect(await echo(c1, 'two')).toBe('guest:two');
    expect(await api(sock, { execute: 'remove_hostfwd', arguments: { id: 1 } })).toEqual({ error: { desc: 'bad request: remove_hostfwd: bad arguments.id' } });

    // Added again (a new id), it works again.
    expect(await api(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: hostPort, guest_port: 7007 } })).toEqual({ return: { id: 2 } });
    const c2 = await dial(hostPort);
    if (typeof c2 === 'string') throw new Error(`connect after re-adding: ${c2}`);
    cleanups.push(() => void c2.destroy());
    expect(await echo(c2, 'three')).toBe('guest:three');

    // UDP the same way: a datagram through the forward is answered by the guest; once removed,
    // the host's kernel answers port unreachable (the connected socket sees ECONNREFUSED).
    const udpPort = await freePort();
    expect(await api(sock, { execute: 'add_hostfwd', arguments: { proto: 'udp', host_addr: '127.0.0.1', host_port: udpPort, guest_port: 7008 } })).toEqual({ return: { id: 3 } });
    const u = createSocket('udp4');
    cleanups.push(() => void u.close());
    const udpEvents: string[] = [];
    u.on('message', (m) => udpEvents.push(m.toString()));
    u.on('error', (e: NodeJS.ErrnoException) => udpEvents.push(e.code ?? e.message));
    await new Promise<void>((r) => u.connect(udpPort, '127.0.0.1', () => r()));
    for (let i = 0; i < 20 && udpEvents.length === 0; i++) {
      u.send('ping');
      await until('a UDP answer', () => udpEvents.length > 0, 250).catch(() => {});
    }
    expect(udpEvents[0]).toBe('guest:ping');
    expect(await api(sock, { execute: 'remove_hostfwd', arguments: { id: 3 } })).toEqual({ return: {} });
    udpEvents.length = 0;
    u.send('again');
    await until('port unreachable', () => udpEvents.length > 0, 5_000);
    expect(udpEvents).toEqual(['ECONNREFUSED']);

    // slirp4netns's errors, word for word.
    const errors: Array<[string | object, string]> = [
      ['garbage', 'bad request: cannot parse JSON'],
      [{ foo: 1 }, 'bad request: no execute found'],
      [{ execute: 'frobnicate' }, 'bad request: unknown execute'],
      [{ execute: 'add_hostfwd', arguments: { proto: 'sctp', host_port: hostPort + 1, guest_port: 80 } }, 'bad request: add_hostfwd: bad arguments.proto'],
      [{ execute: 'add_hostfwd', arguments: { proto: 'tcp', host_port: 0, guest_port: 80 } }, 'bad request: add_hostfwd: bad arguments.host_port'],
      [{ execute: 'add_hostfwd', arguments: { proto: 'udp', host_port: hostPort + 1 } }, 'bad request: add_hostfwd: bad arguments.guest_port'],
      [{ execute: 'add_hostfwd', arguments: { proto: 'tcp', host_port: hostPort + 1, guest_addr: '10.0.2.2', guest_port: 80 } }, 'bad request: add_hostfwd: bad arguments.guest_addr'],
      [{ execute: 'remove_hostfwd' }, 'bad request: remove_hostfwd: bad arguments.id'],
    ];
    for (const [req, desc] of errors) expect(await api(sock, req)).toEqual({ error: { desc } });

    // The namespace's process dies: tunstack exits, its socket and lock removed.
    h.kill('SIGKILL');
    expect(await t.done).toEqual({ code: 0, signal: null });
    expect(existsSync(sock)).toBe(false);
    expect(await dial(hostPort)).toBe('ECONNREFUSED');
  }, 60_000);

  it('a namespace owned by another user namespace, configured through --userns; a SIGKILLed tunstack leaves no lock', async () => {
    const h = holder(true);
    await inOwnNamespace(h.pid!);
    const http = createHttpServer((_req, res) => res.end('through a user namespace\n'));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    cleanups.push(() => new Promise<void>((r) => http.close(() => r())));
    const t = attach(['--netns', String(h.pid), '--userns', String(h.pid)]);
    expect(await t.ready).toBe('1');
    const curl = await inNsAsync(h.pid!, ['curl', '-sS', '--max-time', '20', `http://10.0.2.2:${(http.address() as AddressInfo).port}/`]);
    expect(curl.stdout).toBe('through a user namespace\n');
    // A tunstack killed with SIGKILL leaves no lock (and its TAP goes with its fd): the next one serves at once.
    t.child.kill('SIGKILL');
    await t.done;
    const t2 = attach(['--netns', String(h.pid), '--userns', String(h.pid)]);
    expect(await t2.ready).toBe('1');
    expect(t2.stderr()).toBe('');
    h.kill('SIGKILL');
    expect(await t2.done).toEqual({ code: 0, signal: null });
  }, 60_000);

  // `ip netns add` makes root's namespaces: not for an unprivileged user.
  it.skipIf(runAs === 'rootless')('attached by path: exits when the namespace is deleted', async () => {
    const name = uniqueName('tsattach');
    expect(spawnSync('ip', ['netns', 'add', name]).status).toBe(0);
    cleanups.push(() => void spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' }));
    // A lock file left by a tunstack that was killed (its pid gone) is taken over, and another
    // namespace's is removed.
    const st = statSync(`/run/netns/${name}`, { bigint: true });
    const lock = join(ATTACH_LOCK_DIR, `netns-${st.dev}-${st.ino}.lock`);
    mkdirSync(ATTACH_LOCK_DIR, { recursive: true });
    writeFileSync(lock, `${spawnSync('true').pid} 12345\n`);
    cleanups.push(() => rmSync(lock, { force: true }));
    const otherLock = join(ATTACH_LOCK_DIR, 'netns-4-1.lock');
    writeFileSync(otherLock, `${spawnSync('true').pid} 12345\n`);
    cleanups.push(() => rmSync(otherLock, { force: true }));
    const t = attach(['--netns', `/run/netns/${name}`, '--disable-ipv6']);
    expect(await t.ready).toBe('1');
    expect(existsSync(otherLock)).toBe(false);
    expect(readFileSync(lock, 'utf8')).toMatch(new RegExp(`^${t.child.pid} \\d+\n$`));
    expect(inNs(`/run/netns/${name}`, ['ip', '-o', 'addr', 'show', 'dev', 'tap0']).stdout).toContain('10.0.2.100/24');
    expect(spawnSync('ip', ['netns', 'del', name]).status).toBe(0);
    expect(await t.done).toEqual({ code: 0, signal: null });
    expect(t.stderr()).toBe('');
    expect(existsSync(lock)).toBe(false);
  }, 60_000);
});
