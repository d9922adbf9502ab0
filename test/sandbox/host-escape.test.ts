/**
 * A hostile guest aims at the host itself (as root, through the CLI): hand-made TCP SYNs, UDP
 * datagrams and ICMP echo requests, written raw on the guest's eth0, to every form Linux treats
 * as the local host (0.0.0.0, 0/8, 127/8, ::, ::1, IPv4-mapped and IPv4-compatible forms), with
 * services listening on the host's 127.0.0.1, 127.1.2.3 and ::1. Nothing may connect or arrive,
 * with the gateway open to the loopback (default), with --disable-host-loopback, and with
 * --disable-host-addresses, which also refuses the host's interface addresses (the test gives
 * the host's `lo` a 198.18.x.y/32 address, removed afterwards).
 *
 * A last real connection (and before it a datagram) to that 198.18 address closes each run: the
 * relay handles the guest's frames in order, so once it is answered (connected by default,
 * refused in the strict mode) every probe before it has been decided, and the relay's counters
 * are exact. Runs with the CLI as root and rootless (helpers.ts).
 */
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sandboxUnavailableReason } from '../../src/sandbox/run.js';
import { killStarted, sandbox, sandboxModes, statsOf, useMode } from './helpers.js';

const why = sandboxUnavailableReason();

const PROBES = ['::', '0.0.0.0', '0.1.2.3', '127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::ffff:0.0.0.0', '::127.0.0.1'];
const LOOPBACK_SERVICES = ['127.0.0.1', '127.1.2.3', '::1'];
const SENTINEL = `198.18.${200 + (process.pid % 50)}.${1 + (process.pid % 250)}`;

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  killStarted();
  while (cleanups.length) await cleanups.pop()!();
});

interface Services {
  tcpPort: number;
  udpPort: number;
  /** Connections and datagrams taken, per listening address. */
  tcp: Map<string, number>;
  udp: Map<string, number>;
}

/** TCP and UDP services on one port pair at each of `hosts` (the UDP ones echo). */
async function listenAll(hosts: string[]): Promise<Services> {
  for (let attempt = 0; ; attempt++) {
    const servers: Server[] = [];
    const socks: UdpSocket[] = [];
    const tcp = new Map<string, number>();
    const udp = new Map<string, number>();
    try {
      let tcpPort = 0;
      let udpPort = 0;
      for (const h of hosts) {
        const s = createServer((c) => {
          tcp.set(h, (tcp.get(h) ?? 0) + 1);
          c.destroy();
        });
        servers.push(s);
        s.listen(tcpPort, h);
        await Promise.race([once(s, 'listening'), once(s, 'error').then(([e]) => Promise.reject(e as Error))]);
        tcpPort = (s.address() as { port: number }).port;
        const u = createSocket(h.includes(':') ? 'udp6' : 'udp4');
        socks.push(u);
        u.on('message', (m, r) => {
          udp.set(h, (udp.get(h) ?? 0) + 1);
          u.send(m, r.port, r.address);
        });
        u.bind(udpPort, h);
        await Promise.race([once(u, 'listening'), once(u, 'error').then(([e]) => Promise.reject(e as Error))]);
        udpPort = u.address().port;
      }
      cleanups.push(() => {
        for (const s of servers) s.close();
        for (const u of socks) u.close();
      });
      return { tcpPort, udpPort, tcp, udp };
    } catch (e) {
      for (const s of servers) s.close();
      for (const u of socks) u.close();
      if (attempt > 20) throw e;
    }
  }
}

/** The guest: raw frames to every probe address, then a datagram and a connection to the sentinel. */
function guestScript(tcpPort: number, udpPort: number, strict: boolean): string {
  return `
import socket, struct, subprocess, sys
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
subprocess.run(["ping", "-c", "1", "-W", "2", "10.0.2.2"], stdout=subprocess.DEVNULL)
gw = bytes.fromhex(next(l.split()[3] for l in open("/proc/net/arp") if l.startswith("10.0.2.2 ")).replace(":", ""))
me = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); p.bind(("eth0", 0))
def frame(dst, proto, sport, dport):
    v6 = ":" in dst
    if proto == 6: seg, off = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 2, 64240, 0, 0), 16
    elif proto == 17: seg, off = struct.pack("!HHHH", sport, dport, 13, 0) + b"probe", 6
    else: seg, off = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, sport, 1) + b"probe", 2
    if v6:
        src, dst = socket.inet_pton(socket.AF_INET6, "fd00::100"), socket.inet_pton(socket.AF_INET6, dst)
        nh = 58 if proto == 1 else proto
        c = csum(src + dst + struct.pack("!I3xB", len(seg), nh) + seg)
        seg = seg[:off] + struct.pack("!H", c or 0xffff) + seg[off + 2:]
        return gw + me + b"\\x86\\xdd" + struct.pack("!IHBB", 6 << 28, len(seg), nh, 64) + src + dst + seg
    src, dst = socket.inet_aton("10.0.2.100"), socket.inet_aton(dst)
    c = csum(seg) if proto == 1 else csum(src + dst + struct.pack("!BBH", 0, proto, len(seg)) + seg)
    seg = seg[:off] + struct.pack("!H", c or 0xffff) + seg[off + 2:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 0, 0, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return gw + me + b"\\x08\\x00" + h + seg
n = 0
for i, dst in enumerate(${JSON.stringify(PROBES)}):
    for proto, port in ((6, ${tcpPort}), (17, ${udpPort}), (1, 0)):
        p.send(frame(dst, proto, 40000 + i, port)); n += 1
print("probes", n)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(10)
u.sendto(b"sentinel", ("${SENTINEL}", ${udpPort}))
t = socket.socket(); t.settimeout(10)
print("tcp", t.connect_ex(("${SENTINEL}", ${tcpPort})))
${strict ? '' : 'print("udp", u.recv(100).decode())'}
sys.stdout.flush()
`;
}

for (const { mode: runAs, why: skipWhy } of sandboxModes('test/sandbox/host-escape.test.ts', why)) describe.skipIf(skipWhy !== '')(`a guest aiming at the host itself (${runAs})`, () => {
  useMode(runAs);
  for (const mode of ['default', '--disable-host-loopback', '--disable-host-addresses'] as const) {
    it(`nothing reaches the host's loopback services from any local-host form (${mode})`, async () => {
      expect(spawnSync('ip', ['addr', 'add', `${SENTINEL}/32`, 'dev', 'lo']).status).toBe(0);
      cleanups.push(() => void spawnSync('ip', ['addr', 'del', `${SENTINEL}/32`, 'dev', 'lo']));
      const svc = await listenAll([...LOOPBACK_SERVICES, SENTINEL]);
      const strict = mode === '--disable-host-addresses';
      const flags = mode === 'default' ? [] : [mode];
      const r = await sandbox(['-d', ...flags, '--', 'python3', '-c', guestScript(svc.tcpPort, svc.udpPort, strict)]);
      expect(r.stderr).not.toMatch(/Traceback/);
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).toBe(`probes ${PROBES.length * 3}`);
      // The sentinel: relayed by default (the host's interface addresses stay reachable, as with
      // slirp4netns), refused by the strict mode.
      expect(lines.slice(1)).toEqual(strict ? ['tcp 111'] : ['tcp 0', 'udp sentinel']);
      for (const h of LOOPBACK_SERVICES) {
        expect({ host: h, tcp: svc.tcp.get(h) ?? 0, udp: svc.udp.get(h) ?? 0 }).toEqual({ host: h, tcp: 0, udp: 0 });
      }
      expect([svc.tcp.get(SENTINEL) ?? 0, svc.udp.get(SENTINEL) ?? 0]).toEqual(strict ? [0, 0] : [1, 1]);
      const stats = statsOf(r.stderr);
      expect(stats.tcp!.connects).toBe(strict ? 0 : 1);
      expect(stats.udp!.flows).toBe(strict ? 0 : 1);
      const ping = stats.ping;
      if (ping !== undefined && ping !== null) {
        expect(ping.replies).toBe(0);
        expect(ping.notRelayed).toBe(ping.requests);
      }
    }, 60_000);
  }
});
