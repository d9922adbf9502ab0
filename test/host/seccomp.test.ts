/**
 * The seccomp filter of `tunstack sandbox --enable-seccomp` (src/host/seccomp.ts), checked by the
 * kernel: in a child Node process (the filter cannot be removed, so never in the test runner),
 * the process reports the filter in /proc/self/status, and a program it spawns afterwards
 * (python3 through ctypes; filters are inherited) gets EPERM from system calls on the list where
 * the same program spawned before the filter got the kernel's own answer. Node keeps working:
 * timers, files, a TCP connection over the loopback, a child process. Also as an unprivileged
 * user, where the kernel wants no_new_privs first.
 */
import { spawnSync } from 'node:child_process';
import { arch } from 'node:os';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../../src/host/native.js';
import { ROOT } from '../sandbox/helpers.js';

const why = nativeUnavailableReason() !== '' ? nativeUnavailableReason() : arch() !== 'x64' ? 'the probe uses x86_64 system call numbers' : spawnSync('python3', ['-V']).status !== 0 ? 'python3 missing' : '';
if (why !== '') console.warn(`test/host/seccomp.test.ts skipped: ${why}`);

/** x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl): each on the deny list. */
const PROBES = { ptrace: 101, bpf: 321, keyctl: 250, perf_event_open: 298, init_module: 175 } as const;
/** getpid (39) is not on the list: it must still work. */
const PY = `
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name, nr in json.loads(os.environ['PROBES']).items():
    ctypes.set_errno(0)
    r = libc.syscall(nr, 0, 0, 0, 0)
    out[name] = 'ok' if r >= 0 else os.strerror(ctypes.get_errno())
out['getpid'] = 'ok' if libc.syscall(39) == os.getpid() else 'bad'
print(json.dumps(out))
`;

const CHILD = `
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installSeccompFilter } from './src/host/seccomp.ts';
const probe = () => JSON.parse(spawnSync('python3', ['-c', process.env.PY], { encoding: 'utf8' }).stdout);
const status = () => readFileSync('/proc/self/status', 'utf8').split('\\n').filter((l) => /^(Seccomp|NoNewPrivs)/.test(l)).map((l) => l.replace(/\\s+/g, ' '));
const before = { probe: probe(), status: status() };
const denied = installSeccompFilter();
const after = { probe: probe(), status: status() };
await new Promise((r) => setTimeout(r, 5));
const dir = mkdtempSync(join(tmpdir(), 'tunstack-seccomp-'));
writeFileSync(join(dir, 'f'), 'x');
const file = readFileSync(join(dir, 'f'), 'utf8');
const echoed = await new Promise((resolve, reject) => {
  const s = createServer((c) => c.pipe(c)).listen(0, '127.0.0.1', () => {
    const c = connect(s.address().port, '127.0.0.1', () => c.end('ping'));
    let got = '';
    c.on('data', (d) => (got += d)).on('end', () => { s.close(); resolve(got); }).on('error', reject);
  });
});
const child = spawnSync('true').status;
process.stdout.write(JSON.stringify({ before, after, denied, file, echoed, child }));
`;

interface Result {
  before: { probe: Record<string, string>; status: string[] };
  after: { probe: Record<string, string>; status: string[] };
  denied: string[];
  file: string;
  echoed: string;
  child: number;
}

function runChild(prefix: string[]): Result {
  const argv = [...prefix, process.execPath, '--import', 'tsx', '--input-type=module', '-e', CHILD];
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PY, PROBES: JSON.stringify(PROBES) } });
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as Result;
}

function check(r: Result, root: boolean): void {
  expect(r.before.status).toContain('Seccomp: 0');
  expect(r.after.status).toContain('Seccomp: 2');
  expect(r.after.status).toContain('Seccomp_filters: 1');
  // no_new_privs only where the kernel demands it.
  expect(r.after.status).toContain(root ? 'NoNewPrivs: 0' : 'NoNewPrivs: 1');
  for (const name of Object.keys(PROBES)) {
    expect(r.denied).toContain(name);
    expect(r.before.probe[name], `${name} before`).not.toBe('Operation not permitted');
    expect(r.after.probe[name], `${name} after`).toBe('Operation not permitted');
  }
  expect(r.before.probe.getpid).toBe('ok');
  expect(r.after.probe.getpid).toBe('ok');
  expect(r.file).toBe('x');
  expect(r.echoed).toBe('ping');
  expect(r.child).toBe(0);
}

// The filter is installed as root (the sandbox's own case), or by an unprivileged user through setpriv.
const notRoot = process.getuid?.() !== 0;
const noSetpriv = notRoot || spawnSync('setpriv', ['--version']).status !== 0;
if (why === '' && notRoot) console.warn('test/host/seccomp.test.ts: both cases need root (one runs the probe as nobody through setpriv); skipped');
else if (why === '' && noSetpriv) console.warn('test/host/seccomp.test.ts: the unprivileged case needs setpriv (util-linux); skipped');

describe.skipIf(why !== '')('seccomp filter (tunstack sandbox --enable-seccomp)', () => {
  it.skipIf(notRoot)('as root: the listed calls get EPERM in the process and what it spawns later; Node keeps working', () => {
    check(runChild([]), true);
  });

  it.skipIf(noSetpriv)('as an unprivileged user: no_new_privs first, then the same', () => {
    check(runChild(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']), false);
  });
});
