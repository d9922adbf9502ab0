/** `tunstack sandbox` argument parsing and help (no root needed). */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SANDBOX_HELP, parsePublish, parseSandboxArgs } from '../../src/cli/sandbox.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tunstack sandbox arguments', () => {
  it('parses options up to -- and keeps the command whole (its own options included)', () => {
    const a = parseSandboxArgs(['--mtu', '65520', '--disable-ipv6', '--disable-host-loopback', '-p', '8080:80', '--publish=127.0.0.2:53:5353/udp', '--pcap', 'x.pcap', '-v', '--', 'curl', '-v', '--', 'x']);
    expect(a).toMatchObject({
      mtu: 65520,
      ipv6: false,
      hostLoopback: false,
      pcap: 'x.pcap',
      verbose: true,
      command: ['curl', '-v', '--', 'x'],
      publish: [
        { protocol: 'tcp', hostPort: 8080, guestPort: 80 },
        { protocol: 'udp', hostPort: 53, guestPort: 5353, hostAddress: '127.0.0.2' },
      ],
    });
    expect(parseSandboxArgs(['sh', '-c', 'true']).command).toEqual(['sh', '-c', 'true']);
    expect(parseSandboxArgs(['--no-configure', '--icmp', 'gateway', '--', 'x'])).toMatchObject({ configure: false, icmp: 'gateway' });
    expect(parseSandboxArgs(['--udp-idle-timeout', '5', '--max-udp-flows', '10', 'x'])).toMatchObject({ udpIdleMs: 5000, maxUdpFlows: 10 });
    expect(parseSandboxArgs(['x'])).toMatchObject({ hostLoopback: true, hostAddresses: true });
    expect(parseSandboxArgs(['--disable-host-addresses', 'x'])).toMatchObject({ hostLoopback: false, hostAddresses: false });
  });

  it('rejects bad input with a reason', () => {
    expect(() => parseSandboxArgs(['--mtu', '70000', '--', 'x'])).toThrow(/--mtu/);
    expect(() => parseSandboxArgs(['--mtu', '1000', '--', 'x'])).toThrow(/1280/);
    expect(() => parseSandboxArgs(['--bogus', '--', 'x'])).toThrow(/unknown option --bogus/);
    expect(() => parseSandboxArgs(['--icmp', 'maybe'])).toThrow(/--icmp/);
    for (const bad of ['80', '0:80', '80:70000', 'a:1:2', '1.2.3:1:2', '8080:80/sctp', '']) expect(() => parsePublish(bad)).toThrow(/--publish/);
    expect(parsePublish('[::1]:8080:80')).toEqual({ protocol: 'tcp', hostAddress: '::1', hostPort: 8080, guestPort: 80 });
  });

  it('prints help, and exits 2 on a usage error, through the tunstack command', () => {
    const h = cli(['sandbox', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toBe(SANDBOX_HELP);
    expect(h.stdout).toMatch(/--disable-host-addresses/);
    const top = cli(['--help']);
    expect(top.stdout).toMatch(/sandbox\s+run a command/);
    const e = cli(['sandbox']);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/no command given/);
    const e2 = cli(['sandbox', '--mtu', 'x', '--', 'true']);
    expect(e2.code).toBe(2);
  });
});
