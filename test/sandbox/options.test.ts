/**
 * `tunstack sandbox` options, each checked for its effect from inside the namespace, as root:
 * addresses, routes, MAC, interface name and resolv.conf the guest sees (--cidr, -a -n -g -D,
 * -M, -I), IPv4-only and IPv6-only guests, --disable-dns, --dns-upstream (a resolver the test
 * runs on the host's loopback), the source address a host server sees (--outbound-addr, -o),
 * port ranges (-p A-B:C-D, -t LIST, -u LIST), -t auto following a port the guest binds late,
 * log levels, and the exit status for a command that is not there (127/126, as env(1)).
 * Addresses: 198.18.0.0/15 and 2001:db8::/32 inside the namespace only; host servers on loopback.
 * Skips with the reason when not root.
 */
import { createSocket, type Socket as Dgram } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sandboxUnavailableReason } from '../../src/sandbox/run.js';
import { killStarted, sandbox, start } from './helpers.js';

const why = sandboxUnavailableReason();
if (why !== '') console.warn(`test/sandbox/options.test.ts: sandbox option tests skipped: ${why}`);

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  killStarted();
  while (cleanups.length) await cleanups.pop()!();
});

async function tcpServer(onConn: (s: Socket) => void, host = '127.0.0.1'): Promise<number> {
  const open = new Set<Socket>();
  const server: Server = createServer((s) => {
    open.add(s);
    s.once('close', () => open.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  server.listen(0, host);
  await once(server, 'listening');
  cleanups.push(() => {
    for (const s of open) s.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

async function udpSocket(host = '127.0.0.1'): Promise<Dgram> {
  const u = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  u.bind(0, host);
  await once(u, 'listening');
  cleanups.push(() => void u.close());
  return u;
}

/** Host ports free now (bound and released), `n` consecutive ones. */
async function freePorts(n: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const servers: Server[] = [];
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      const s = createServer();
      ok = await new Promise<boolean>((res) => {
        s.once('error', () => res(false));
        s.listen(base + i, '127.0.0.1', () => res(true));
      });
      if (ok) servers.push(s);
    }
    for (const s of servers) s.close();
    if (ok) return base;
  }
  throw new Error('no free port range');
}

/** What a TCP connection to host port `port` reads (until the guest closes), retried until it reads something. */
async function readFrom(port: number, host = '127.0.0.1', ms = 30_000): Promise<string> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const text = await new Promise<string>((res) => {
      const c = connect(port, host);
      let s = '';
      c.on('data', (b: Buffer) => (s += b.toString()));
      c.on('error', () => res(''));
      c.on('close', () => res(s));
    });
    if (text !== '') return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  return '';
}

const py = (lines: string[]): string[] => ['python3', '-c', lines.join('\n')];

describe.skipIf(why !== '')('tunstack sandbox options (root)', () => {
  it('--cidr, -a (IPv6), -M, -I: the guest sees the addresses, routes, MAC, name and DNS; the new gateway reaches the host', async () => {
    const port = await tcpServer((s) => s.end('hi from the host\n'));
    const r = await sandbox([
      '--cidr=198.18.5.0/24',
      '-a',
      '2001:db8:5::42',
      '-M',
      '02:11:22:33:44:55',
      '-I',
      'net0',
      '--',
      'sh',
      '-c',
      `ip -o addr show dev net0 scope global; ip route show default; ip -6 route show default; cat /sys/class/net/net0/address; cat /etc/resolv.conf; curl -sS --http0.9 --max-time 10 http://198.18.5.2:${port}/ 2>&1 | head -c 100`,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/net0\s+inet 198\.18\.5\.100\/24/);
    expect(r.stdout).toMatch(/net0\s+inet6 2001:db8:5::42\/64/);
    expect(r.stdout).toMatch(/^default via 198\.18\.5\.2 dev net0/m);
    expect(r.stdout).toMatch(/^default via 2001:db8:5::2 dev net0/m);
    expect(r.stdout).toMatch(/^02:11:22:33:44:55$/m);
    expect(r.stdout).toMatch(/nameserver 198\.18\.5\.3\nnameserver 2001:db8:5::3/);
    expect(r.stdout).toMatch(/hi from the host/);
  });

  it('-a/-n/-g/-D (pasta style): address, mask, gateway and DNS as given; DNS answered on the chosen address', async () => {
    const r = await sandbox([
      '-a',
      '198.18.6.9',
      '-n',
      '255.255.255.128',
      '-g',
      '198.18.6.1',
      '-D',
      '198.18.6.53',
      '--',
      'sh',
      '-c',
      'ip -o -4 addr show dev eth0; ip route show default; cat /etc/resolv.conf; python3 -c "import socket; print(socket.getaddrinfo(\\"localhost\\", 80, socket.AF_INET)[0][4][0])"',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/inet 198\.18\.6\.9\/25/);
    expect(r.stdout).toMatch(/^default via 198\.18\.6\.1 dev eth0/m);
    expect(r.stdout).toMatch(/^nameserver 198\.18\.6\.53$/m);
  });

  it('-6 gives an IPv6-only guest (no IPv4 address or route), -4 an IPv4-only one; each still reaches the host loopback', async () => {
    const port = await tcpServer((s) => s.end('v6 ok\n'), '::1');
    const six = await sandbox(['-6', '--', 'sh', '-c', `ip -o -4 addr show dev eth0 | wc -l; ip -4 route | wc -l; curl -sS --http0.9 --max-time 10 "http://[fd00::2]:${port}/"`]);
    expect(six.code).toBe(0);
    expect(six.stdout.split('\n').slice(0, 2)).toEqual(['0', '0']);
    expect(six.stdout).toMatch(/v6 ok/);
    const port4 = await tcpServer((s) => s.end('v4 ok\n'));
    const four = await sandbox(['-4', '--', 'sh', '-c', `ip -o -6 addr show dev eth0 | wc -l; cat /etc/resolv.conf; curl -sS --http0.9 --max-time 10 http://10.0.2.2:${port4}/`]);
    expect(four.code).toBe(0);
    expect(four.stdout.split('\n')[0]).toBe('0');
    expect(four.stdout).not.toMatch(/fd00::3/);
    expect(four.stdout).toMatch(/v4 ok/);
  });

  it('--disable-dns: nothing answers on 10.0.2.3 and resolv.conf names no server; --dns-upstream sends A queries to the chosen resolver', async () => {
    const query = (server: string): string[] =>
      py([
        'import socket, struct',
        'q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\\x07example\\x04test\\x00" + struct.pack(">HH", 1, 1)',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)',
        `s.sendto(q, ("${server}", 53))`,
        'try:',
        '  m = s.recv(512); print("answer", ".".join(str(b) for b in m[-4:]))',
        'except socket.timeout:',
        '  print("timeout")',
        'print(open("/etc/resolv.conf").read().strip() or "empty")',
      ]);
    const off = await sandbox(['--disable-dns', '--', ...query('10.0.2.3')]);
    expect(off.stdout.trim().split('\n')).toEqual(['timeout', 'empty']);

    // A resolver on the host's loopback that answers every A query with 198.18.9.9.
    const up = await udpSocket();
    let asked = 0;
    up.on('message', (m, rinfo) => {
      asked++;
      const answer = Buffer.concat([m.subarray(0, 2), Buffer.from([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]), m.subarray(12), Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 9, 9])]);
      up.send(answer, rinfo.port, rinfo.address);
    });
    const on = await sandbox([`--dns-upstream=127.0.0.1#${up.address().port}`, '--', ...query('10.0.2.3')]);
    expect(on.stdout.trim().split('\n')[0]).toBe('answer 198.18.9.9');
    expect(asked).toBe(1);
  });

  it('--outbound-addr / -o: the host server sees TCP and UDP from the chosen source address', async () => {
    let tcpPeer = '';
    const port = await tcpServer((s) => {
      tcpPeer = s.remoteAddress ?? '';
      s.end('ok\n');
    });
    const u = await udpSocket();
    let udpPeer = '';
    u.on('message', (m, rinfo) => {
      udpPeer = rinfo.address;
      u.send(m, rinfo.port, rinfo.address);
    });
    const guest = py([
      'import socket',
      `c = socket.create_connection(("10.0.2.2", ${port}), timeout=10); print(c.recv(10).decode().strip())`,
      `d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.settimeout(5); d.sendto(b"x", ("10.0.2.2", ${u.address().port})); print(d.recv(10).decode())`,
    ]);
    const r = await sandbox(['--outbound-addr', '127.0.0.2', '--', ...guest]);
    expect(r.stdout.trim().split('\n')).toEqual(['ok', 'x']);
    expect([tcpPeer, udpPeer]).toEqual(['127.0.0.2', '127.0.0.2']);
    const r2 = await sandbox(['-o', '127.0.0.3', '--', ...guest]);
    expect(r2.stdout.trim().split('\n')).toEqual(['ok', 'x']);
    expect([tcpPeer, udpPeer]).toEqual(['127.0.0.3', '127.0.0.3']);
  });

  it('port ranges: -p A-B:C-D and -t LIST publish every port of the range (with ~ exclusions), -u a UDP range', async () => {
    const base = await freePorts(6);
    // The guest serves TCP 8000..8002 (its port in the greeting) and echoes UDP on 9000..9001.
    const guest = py([
      'import socket, threading, sys',
      'def tcp(p):',
      '  s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", p)); s.listen(8)',
      '  while True:',
      '    c, a = s.accept(); c.sendall(b"port %d" % p); c.close()',
      'def udp(p):',
      '  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", p))',
      '  while True:',
      '    m, a = s.recvfrom(100); s.sendto(b"udp %d " % p + m, a)',
      'for p in (8000, 8001, 8002): threading.Thread(target=tcp, args=(p,), daemon=True).start()',
      'for p in (9000, 9001): threading.Thread(target=udp, args=(p,), daemon=True).start()',
      'sys.stdin.read() if False else __import__("time").sleep(60)',
    ]);
    const { child } = start([
      '-p',
      `${base}-${base + 1}:8000-8001`,
      '-t',
      `127.0.0.1/${base + 2}-${base + 3}:8001-8002,~${base + 2}`,
      '-u',
      `${base + 4}-${base + 5}:9000-9001`,
      '--',
      ...guest,
    ]);
    cleanups.push(() => void child.kill('SIGTERM'));
    expect(await readFrom(base)).toBe('port 8000');
    expect(await readFrom(base + 1)).toBe('port 8001');
    expect(await readFrom(base + 3)).toBe('port 8002');
    // Excluded with "~": nothing listens there.
    expect(await readFrom(base + 2, '127.0.0.1', 1000)).toBe('');
    const u = await udpSocket();
    const got = new Set<string>();
    u.on('message', (m) => got.add(m.toString()));
    const deadline = Date.now() + 20_000;
    while (got.size < 2 && Date.now() < deadline) {
      u.send('a', base + 4, '127.0.0.1');
      u.send('b', base + 5, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect([...got].sort()).toEqual(['udp 9000 a', 'udp 9001 b']);
  });

  it('-t auto publishes a port the guest starts listening on later, and unpublishes it when closed', async () => {
    const p = await freePorts(1);
    const guest = py([
      'import socket, time',
      'time.sleep(1.5)',
      `s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", ${p})); s.listen(1)`,
      'c, a = s.accept(); c.sendall(b"auto ok"); c.close(); s.close()',
      'time.sleep(60)',
    ]);
    const { child, stderr } = start(['-v', '-t', 'auto', '--', ...guest]);
    cleanups.push(() => void child.kill('SIGTERM'));
    const first = await readFrom(p);
    if (first !== 'auto ok') console.log(stderr());
    expect(first).toBe('auto ok');
    const deadline = Date.now() + 20_000;
    while (!/tcp\/\d+ no longer bound/.test(stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(stderr()).toMatch(new RegExp(`auto: tcp/${p} bound in the guest: published on 127\\.0\\.0\\.1`));
    expect(stderr()).toMatch(new RegExp(`auto: tcp/${p} no longer bound in the guest: unpublished`));
    expect(await readFrom(p, '127.0.0.1', 500)).toBe('');
  });

  it('log levels: -v ends with a readable summary, -d adds the JSON counters, -q says nothing', async () => {
    const port = await tcpServer((s) => s.end('x'));
    const cmd = ['--', 'curl', '-sS', '--http0.9', '--max-time', '10', `http://10.0.2.2:${port}/`];
    const v = await sandbox(['-v', ...cmd]);
    expect(v.stderr).toMatch(/tunstack sandbox: tcp: 1 connects \(1 connected\)/);
    expect(v.stderr).not.toMatch(/stats \{/);
    const d = await sandbox(['--log-level=debug', ...cmd]);
    expect(d.stderr).toMatch(/tunstack sandbox: tcp: 1 connects/);
    expect(JSON.parse(/stats (\{.*\})/.exec(d.stderr)![1]!)).toMatchObject({ tcp: { connects: 1 } });
    const q = await sandbox(['-q', ...cmd]);
    expect(q.stderr).toBe('');
    expect(q.stdout).toBe('x');
  });

  it('a command that is not there exits 127, one that cannot be executed 126 (as env)', async () => {
    const r = await sandbox(['--', 'tunstack-no-such-command']);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/tunstack-no-such-command: No such file or directory/);
    const dir = mkdtempSync(join(tmpdir(), 'tunstack-options-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'not-executable'), 'echo no\n', { mode: 0o644 });
    const r2 = await sandbox(['--', join(dir, 'not-executable')]);
    expect(r2.code).toBe(126);
  });
});
