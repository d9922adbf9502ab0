/** `tunstack sandbox` argument parsing and help (no root needed). */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { networkInterfaces } from 'node:os';
import { interfaceAddress, parsePortSpec, parsePublishRange, type PortRequest } from '../../src/cli/guest-options.js';
import { SANDBOX_HELP, parsePublish, parseSandboxArgs } from '../../src/cli/sandbox.js';
import { TunstackError } from '../../src/core/errors.js';
import { dhcpPool, parseNetmask, sandboxAddresses } from '../../src/sandbox/addresses.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tunstack sandbox arguments', () => {
  it('parses options up to -- and keeps the command whole (its own options included)', () => {
    const a = parseSandboxArgs(['--mtu', '65520', '--disable-ipv6', '--disable-host-loopback', '-p', '8080:80', '--publish=127.0.0.2:53:5353/udp', '--pcap', 'x.pcap', '-v', '--', 'curl', '-v', '--', 'x']);
    expect(a.command).toEqual(['curl', '-v', '--', 'x']);
    expect(a.guest.logLevel).toBe('info');
    expect(a.guest.network).toMatchObject({ mtu: 65520, ipv6: false, hostLoopback: false, pcap: 'x.pcap' });
    expect(a.guest.ports.forwards).toEqual([
      { protocol: 'tcp', hostPort: 8080, guestPort: 80 },
      { protocol: 'udp', hostPort: 53, guestPort: 5353, hostAddress: '127.0.0.2' },
    ]);
    expect(parseSandboxArgs(['sh', '-c', 'true']).command).toEqual(['sh', '-c', 'true']);
    // The first word that is not an option (nor an option's value) starts COMMAND.
    expect(parseSandboxArgs(['--pcap', 'ls', 'ls', '-l']).command).toEqual(['ls', '-l']);
    expect(parseSandboxArgs(['--no-configure', '--icmp', 'gateway', '--', 'x'])).toMatchObject({ configure: false, guest: { network: { icmp: 'gateway' } } });
    expect(parseSandboxArgs(['--udp-idle-timeout', '5', '--max-udp-flows', '10', 'x']).guest.network.limits).toEqual({ udpIdleMs: 5000, maxUdpFlows: 10 });
    expect(parseSandboxArgs(['x']).guest.network).toMatchObject({ hostLoopback: true, hostAddresses: true });
    expect(parseSandboxArgs(['--disable-host-addresses', 'x']).guest.network).toMatchObject({ hostLoopback: false, hostAddresses: false });
  });

  it('rejects bad input with a reason', () => {
    expect(() => parseSandboxArgs(['--mtu', '70000', '--', 'x'])).toThrow(/--mtu/);
    expect(() => parseSandboxArgs(['--mtu', '1000', '--', 'x'])).toThrow(/1280/);
    expect(() => parseSandboxArgs(['--bogus', '--', 'x'])).toThrow(/Unknown option '--bogus'/);
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

describe('guest addressing and port options (no root)', () => {
  it('--cidr moves the network (guest .100, gateway .2, DNS .3); -a/-n/-g/-D set single addresses', () => {
    expect(sandboxAddresses({ cidr: '198.18.4.0/24' })).toMatchObject({ guest4: '198.18.4.100', gateway4: '198.18.4.2', dns4: '198.18.4.3', prefix4: 24 });
    expect(sandboxAddresses({ address: ['198.18.6.9/25'], gateway: ['198.18.6.1'], dns: ['198.18.6.53'] })).toMatchObject({ guest4: '198.18.6.9', prefix4: 25, gateway4: '198.18.6.1', dns4: '198.18.6.53' });
    // The guest on .2: the gateway and DNS move to the next free numbers.
    expect(sandboxAddresses({ address: ['198.18.7.2'] })).toMatchObject({ gateway4: '198.18.7.3', dns4: '198.18.7.4' });
    expect(sandboxAddresses({ address: ['2001:db8:1::7'] })).toMatchObject({ guest6: '2001:db8:1::7', gateway6: '2001:db8:1::2', dns6: '2001:db8:1::3', prefix6: '2001:db8:1::/64' });
    expect(parseNetmask('255.255.240.0')).toBe(20);
    expect(dhcpPool(sandboxAddresses({ address: ['198.18.7.1'] }))).toEqual({ start: '198.18.7.1', end: '198.18.7.1' });
    expect(dhcpPool(sandboxAddresses())).toEqual({ start: '10.0.2.100', end: '10.0.2.127' });
    for (const bad of [{ cidr: '198.18.4.0/28' }, { cidr: 'x/24' }, { netmask: '255.0.255.0' }, { address: ['198.18.4.0/24'] }, { gateway: ['198.19.0.1'] }, { address: ['1.2.3.4', '5.6.7.8'] }, { dns: ['10.0.2.100'] }]) {
      expect(() => sandboxAddresses(bad)).toThrow(TunstackError);
    }
  });

  it('port specs: -p ranges, pasta -t/-u lists with targets, addresses, ~exclusions and auto', () => {
    expect(parsePublishRange('127.0.0.1:8000-8002:9000-9002/udp').map((f) => `${f.hostAddress}:${f.hostPort}>${f.guestPort}/${f.protocol}`)).toEqual([
      '127.0.0.1:8000>9000/udp',
      '127.0.0.1:8001>9001/udp',
      '127.0.0.1:8002>9002/udp',
    ]);
    expect(() => parsePublishRange('8000-8002:9000-9001')).toThrow(/differ in length/);
    const req = (): PortRequest => ({ forwards: [], auto: { tcp: false, udp: false, exclude: { tcp: new Set(), udp: new Set() } } });
    const r = req();
    parsePortSpec('tcp', '22,25-26:35-36,192.0.2.1/5,~26', r);
    expect(r.forwards.map((f) => `${f.hostAddress ?? ''}:${f.hostPort}>${f.guestPort}`)).toEqual([':22>22', ':25>35', '192.0.2.1:5>5']);
    const a = req();
    parsePortSpec('udp', 'auto', a);
    parsePortSpec('tcp', '~25', a);
    expect(a.auto).toMatchObject({ tcp: true, udp: true });
    expect([...a.auto.exclude.tcp]).toEqual([25]);
    for (const bad of ['0', '70000', '5-3', 'a', '1:2:3', 'eth0%/5', 'x/5']) expect(() => parsePortSpec('tcp', bad, req())).toThrow(/-t/);
  });

  it('outbound and interface options; -4 with -6 is refused; log levels', () => {
    const ifs = { dummy0: [{ address: '198.18.3.3', family: 'IPv4' }, { address: 'fe80::1', family: 'IPv6' }, { address: '2001:db8::3', family: 'IPv6' }] } as unknown as ReturnType<typeof networkInterfaces>;
    expect(interfaceAddress('dummy0', 4, ifs)).toBe('198.18.3.3');
    expect(interfaceAddress('dummy0', 6, ifs)).toBe('2001:db8::3');
    expect(() => interfaceAddress('nope0', 4, ifs)).toThrow(/no interface nope0/);
    expect(parseSandboxArgs(['-o', '127.0.0.2', '-o', '::1', 'x']).guest.network.outbound).toEqual({ v4: '127.0.0.2', v6: '::1' });
    expect(parseSandboxArgs(['--outbound-addr=127.0.0.2', 'x']).guest.network.outbound).toEqual({ v4: '127.0.0.2' });
    expect(() => parseSandboxArgs(['--outbound-addr', '::1', 'x'])).toThrow(/IPv4/);
    expect(() => parseSandboxArgs(['-4', '-6', 'x'])).toThrow(/exclude/);
    expect(parseSandboxArgs(['-6', 'x']).guest.network).toMatchObject({ ipv4: false, ipv6: true });
    expect(parseSandboxArgs(['-q', 'x']).guest.logLevel).toBe('error');
    expect(parseSandboxArgs(['-d', 'x']).guest.logLevel).toBe('debug');
    expect(() => parseSandboxArgs(['--log-level', 'loud', 'x'])).toThrow(/--log-level/);
    expect(parseSandboxArgs(['--dns-upstream', '192.0.2.53#5353', 'x']).guest.network).toMatchObject({ dnsUpstream: [{ host: '192.0.2.53', port: 5353 }], dnsForwardAll: true });
    expect(parseSandboxArgs(['-M', '02:00:00:00:00:07', '-I', 'net0', 'x'])).toMatchObject({ mac: '02:00:00:00:00:07', ifname: 'net0' });
    expect(() => parseSandboxArgs(['-M', '01:00:00:00:00:07', 'x'])).toThrow(/unicast/);
  });

  it('--version and -V print the version through every subcommand, --x=y works', () => {
    for (const cmd of ['sandbox', 'vm', 'demo', 'flow', 'replay']) {
      const r = cli([cmd, '--version']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^tunstack \d+\.\d+\.\d+/);
    }
    expect(cli(['sandbox', '-V']).stdout).toMatch(/^tunstack /);
    expect(cli(['sandbox', '--mtu=1000', '--', 'true']).stderr).toMatch(/--mtu wants an integer in 1280\.\.65520/);
  });
});
