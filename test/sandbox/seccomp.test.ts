/**
 * `tunstack sandbox --enable-seccomp`, root and rootless: the kernel reports the filter on the
 * tunstack process (/proc/PID/status) while the command runs, the command itself is not filtered
 * (its own status says Seccomp 0), and the network works through it (curl to a host loopback
 * server through the gateway, a DNS name, cleanup at the end).
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../../src/host/native.js';
import { sandboxUnavailableReason } from '../../src/sandbox/run.js';
import { killStarted, namespacesOf, sandboxModes, start, until, useMode } from './helpers.js';

const why = sandboxUnavailableReason() || nativeUnavailableReason();

afterEach(() => killStarted());

function seccompOf(pid: number): string {
  try {
    return /^Seccomp:\s*(\d)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';
  } catch {
    return 'gone';
  }
}

for (const { mode, why: skipWhy } of sandboxModes('test/sandbox/seccomp.test.ts', why)) describe.skipIf(skipWhy !== '')(`tunstack sandbox --enable-seccomp (${mode})`, () => {
  useMode(mode);

  it('filters tunstack, not the command; curl through the gateway still works', async () => {
    const server = createServer((_req, res) => res.end('through a filtered relay\n')).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const script = `grep '^Seccomp:' /proc/self/status; echo READY >&2; sleep 1; curl -s --max-time 10 http://10.0.2.2:${port}/`;
      const run = start(['--enable-seccomp', '-v', '--', 'sh', '-c', script]);
      await until('the command to run', () => run.stderr().includes('READY'));
      const during = seccompOf(run.child.pid!);
      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      expect(during).toBe('2');
      expect(r.stderr).toMatch(/seccomp: \d+ system calls denied \(.*ptrace.*\)/);
      expect(r.stdout).toContain('Seccomp:\t0');
      expect(r.stdout).toContain('through a filtered relay');
      expect(namespacesOf(r)).toEqual([]);
    } finally {
      server.close();
    }
  }, 60_000);
});
