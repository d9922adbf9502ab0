/**
 * TCP between tunstack and the Linux kernel over a TAP (the host bridge: tunstack's NIC is an
 * FdEndpoint with the kernel's offloads, the kernel's end in a fresh namespace), in the four
 * directions, beside the same transfers between two kernels over a veth pair measured in the same
 * run (root; skips with the reason otherwise):
 *
 * - kernel pulls from tunstack: a kernel socket reads what a `stack.net` server sends;
 * - kernel pushes to tunstack: a kernel socket sends to a `stack.net` server;
 * - tunstack pulls from kernel / pushes to kernel: a `stack.net` client against a kernel server.
 *
 * The kernel side is a small python3 program (the same one for the veth reference), one per
 * namespace, started before anything is timed and given one transfer after another (see AGENT);
 * it times the transfer itself where it ends the transfer, tunstack's side times it where it does. Each figure
 * is the median of KERNEL_BENCH_RUNS (default 3) transfers of KERNEL_BENCH_MB MiB (default 64);
 * every run's figure is printed (the spread). KERNEL_BENCH_ONLY=1500/4,65520/6 picks the
 * configurations (default 1500/4, 1500/6, 65520/4, 65520/6); KERNEL_BENCH_CASES=a,b only the
 * directions whose names contain a or b (URI-encoded; for profiles).
 * KERNEL_BENCH_GSO=1 gives the FdEndpoint `keepTcpGso` (the kernel's TSO super-packets delivered
 * whole to the terminating stack, as the sandbox does) to see what splitting them costs.
 * KERNEL_BENCH_CC=cubic (or bbr, reno) sets the kernel sockets' congestion control (TCP_CONGESTION),
 * for veth and tunstack alike; unset, the namespace's default (net.ipv4.tcp_congestion_control,
 * inherited from the host) applies. KERNEL_BENCH_WARMUP=N (default 1) runs N untimed transfers
 * per direction before the timed ones, veth and tunstack alike (0: the first transfer after the
 * processes were started is timed too, with its page faults and JIT warm-up).
 * KERNEL_BENCH_STATS=1 prints the kernel's counters after each configuration (TAP drops,
 * retransmissions, loss recoveries).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Socket } from '../src/index.js';
import { interopSkipReason, Netns, uniqueName } from '../test/interop/helpers/netns.js';
import { KERNEL4, KERNEL6, Pair, STACK4, STACK6 } from '../test/interop/helpers/pair.js';
import { PyProcess } from './py-process.js';
import type { BenchRow } from './run.js';

const MB = 1 << 20;
const SIZE = Number(process.env.KERNEL_BENCH_MB ?? 64) * MB;
const RUNS = Number(process.env.KERNEL_BENCH_RUNS ?? 3);
const WARMUP = Number(process.env.KERNEL_BENCH_WARMUP ?? 1);
const PORT = 9100;

/**
 * python3, one per namespace for a whole configuration, started before anything is timed (see
 * PyProcess for why). It reads
 * commands from stdin, one at a time: `server send|recv HOST PORT N` (prints `ready` once
 * listening) or `client send|recv HOST PORT N`; after each transfer it prints `done SECONDS`
 * where it received (it times the transfer itself) or `done -`.
 */
const AGENT = `
import os, socket, sys, time
buf = bytearray(1 << 20)
cc = os.environ.get('KERNEL_BENCH_CC', '').encode()
def run(c, mode, n):
    if cc: c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc)
    t0 = time.time()
    if mode == 'send':
        left = n
        view = memoryview(buf)
        while left > 0:
            k = c.send(view[:min(left, len(buf))]); left -= k
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536): pass
    else:
        got = 0
        while True:
            k = c.recv_into(buf)
            if k == 0: break
            got += k
        assert got == n, got
    secs = time.time() - t0
    c.close()
    return secs if mode == 'recv' else None
for line in sys.stdin:
    role, mode, host, port, n = line.split()
    if role == 'server':
        fam = socket.AF_INET6 if ':' in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port))); s.listen(4); print('ready', flush=True)
        c, _ = s.accept(); s.close()
    else:
        c = socket.create_connection((host, int(port)))
    r = run(c, mode, int(n))
    print('done', '-' if r is None else r, flush=True)
`;

/** The kernel's side in one namespace: an AGENT process taking one transfer at a time. */
class Agent extends PyProcess {
  constructor(ns: Netns) {
    super(ns, AGENT, 'kernel-side python');
  }

  command(role: 'server' | 'client', mode: 'send' | 'recv', host: string): void {
    this.send(`${role} ${mode} ${host} ${PORT} ${SIZE}`);
  }

  /** The seconds of the transfer it just did (NaN where it did not time it). */
  async done(): Promise<number> {
    return Number(await this.expect('done'));
  }

  async ready(): Promise<void> {
    await this.expect('ready');
  }
}

/** Write SIZE bytes to `s` with backpressure, then end it (what comes back is read and dropped). */
function sendAll(s: Socket): void {
  const chunk = Buffer.alloc(MB, 0x61);
  let left = SIZE;
  const pump = (): void => {
    while (left > 0) {
      left -= chunk.length;
      if (!s.write(chunk)) return;
    }
    s.end();
  };
  s.on('drain', pump);
  pump();
  s.resume();
}

function gbps(seconds: number): number {
  return (SIZE * 8) / seconds / 1e9;
}

/** One kernel-to-kernel transfer over veth: the receiver's seconds. */
async function vethOnce(a: Agent, b: Agent, bAddr: string, serverSends: boolean): Promise<number> {
  b.command('server', serverSends ? 'send' : 'recv', bAddr);
  await b.ready();
  a.command('client', serverSends ? 'recv' : 'send', bAddr);
  const [server, client] = await Promise.all([b.done(), a.done()]);
  return serverSends ? client : server;
}

/** tunstack's server: sends SIZE bytes (kernel pulls) or receives them (kernel pushes, timed here). */
async function tunstackServer(p: Pair, agent: Agent, host: string, send: boolean): Promise<number> {
  const server = p.stack.net.createServer();
  const done = new Promise<number>((resolve, reject) => {
    server.once('connection', (s: Socket) => {
      const t0 = performance.now();
      if (send) {
        sendAll(s);
        s.on('close', () => resolve(NaN));
      } else {
        let got = 0;
        s.on('data', (d: Buffer) => (got += d.length));
        s.on('end', () => {
          const secs = (performance.now() - t0) / 1000;
          s.end();
          if (got !== SIZE) reject(new Error(`tunstack received ${got} of ${SIZE}`));
          resolve(secs);
        });
      }
      s.on('error', reject);
    });
  });
  server.listen(PORT, host);
  await once(server, 'listening');
  agent.command('client', send ? 'recv' : 'send', host);
  const [mine, theirs] = await Promise.all([done, agent.done()]);
  server.close();
  return send ? theirs : mine;
}

/** tunstack's client against a kernel server: pulls SIZE bytes (timed here) or pushes them. */
async function tunstackClient(p: Pair, agent: Agent, host: string, pull: boolean): Promise<number> {
  agent.command('server', pull ? 'send' : 'recv', host);
  await agent.ready();
  const s = p.stack.net.connect({ host, port: PORT });
  const mine = new Promise<number>((resolve, reject) => {
    s.on('error', reject);
    s.once('connect', () => {
      const t0 = performance.now();
      if (pull) {
        let got = 0;
        s.on('data', (d: Buffer) => (got += d.length));
        s.on('end', () => {
          s.end();
          if (got !== SIZE) reject(new Error(`tunstack received ${got} of ${SIZE}`));
          resolve((performance.now() - t0) / 1000);
        });
      } else {
        sendAll(s);
        s.on('close', () => resolve(NaN));
      }
    });
  });
  const [t, theirs] = await Promise.all([mine, agent.done()]);
  return pull ? t : theirs;
}

/** The median of the finite figures (seconds: the middle time is the middle rate). */
function median(xs: number[]): number {
  const ok = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (ok.length === 0) return NaN;
  const m = ok.length >> 1;
  return ok.length % 2 === 1 ? ok[m]! : (ok[m - 1]! + ok[m]!) / 2;
}

function spread(label: string, secs: number[]): void {
  console.log(`  ${label}: ${secs.map((s) => gbps(s).toFixed(2)).join(', ')} Gbit/s`);
}

/** KERNEL_BENCH_CASES=pushes%20to,pulls%20from%20kernel: only the directions whose names contain one of these (profiling). */
const CASES: string[] | null = process.env.KERNEL_BENCH_CASES ? process.env.KERNEL_BENCH_CASES.split(',').map((c) => decodeURIComponent(c)) : null;

const CONFIGS: ReadonlyArray<readonly [number, 4 | 6]> = (process.env.KERNEL_BENCH_ONLY ?? '1500/4,1500/6,65520/4,65520/6')
  .split(',')
  .map((c) => {
    const [m, f] = c.split('/');
    return [Number(m), f === '6' ? 6 : 4] as const;
  });

export default async function bench(): Promise<BenchRow[]> {
  const why = interopSkipReason();
  if (why !== '') {
    console.log(`kernel-tcp bench skipped: ${why}`);
    return [];
  }
  if (spawnSync('python3', ['-c', '1']).status !== 0) {
    console.log('kernel-tcp bench skipped: python3 missing');
    return [];
  }
  const rows: BenchRow[] = [];
  // veth's figure depends on it: BBR paces, CUBIC does not (on one machine here, veth at MTU 1500 ran 3x faster under CUBIC).
  let defaultCc = '?';
  try {
    defaultCc = readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim();
  } catch {
    // not Linux's procfs: leave it unknown
  }
  console.log(`kernel-tcp: congestion control ${process.env.KERNEL_BENCH_CC || `${defaultCc} (the host's default)`}${WARMUP > 0 ? `, ${WARMUP} warm-up transfer(s) per direction` : ''}`);
  for (const [mtu, family] of CONFIGS) {
    // The reference: two namespaces joined by a veth pair with the same MTU; and tunstack's pair.
    const a = new Netns('tkb');
    const b = new Netns('tkb');
    const va = uniqueName('tkv');
    const vb = uniqueName('tkv');
    const agents: Agent[] = [];
    let p: Pair | null = null;
    try {
      spawnSync('ip', ['link', 'add', va, 'netns', a.name, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', vb, 'netns', b.name, 'mtu', String(mtu)]);
      a.ip('addr', 'add', family === 4 ? '198.19.0.1/24' : '2001:db8:9::1/64', 'dev', va, ...(family === 6 ? ['nodad'] : []));
      b.ip('addr', 'add', family === 4 ? '198.19.0.2/24' : '2001:db8:9::2/64', 'dev', vb, ...(family === 6 ? ['nodad'] : []));
      a.ip('link', 'set', va, 'up');
      b.ip('link', 'set', vb, 'up');
      const bAddr = family === 4 ? '198.19.0.2' : '2001:db8:9::2';
      p = new Pair({ mtu, ipv6: family === 6, ...(process.env.KERNEL_BENCH_GSO === '1' ? { endpoint: { keepTcpGso: true } } : {}) });
      const agentA = new Agent(a);
      const agentB = new Agent(b);
      const agentK = new Agent(p.ns);
      agents.push(agentA, agentB, agentK);
      // Every process of this configuration runs now: nothing forks this one until its end.
      const pulls: number[] = [];
      const pushes: number[] = [];
      // KERNEL_BENCH_VETH=0 skips the reference (profiling tunstack alone).
      const vethRuns = process.env.KERNEL_BENCH_VETH === '0' ? 0 : RUNS;
      for (let w = 0; w < (vethRuns > 0 ? WARMUP : 0); w++) {
        await vethOnce(agentA, agentB, bAddr, true);
        await vethOnce(agentA, agentB, bAddr, false);
      }
      for (let r = 0; r < vethRuns; r++) {
        pulls.push(await vethOnce(agentA, agentB, bAddr, true));
        pushes.push(await vethOnce(agentA, agentB, bAddr, false));
      }
      spread(`veth pull, MTU ${mtu}, IPv${family}`, pulls);
      spread(`veth push, MTU ${mtu}, IPv${family}`, pushes);
      const vethPull = gbps(median(pulls));
      const vethPush = gbps(median(pushes));
      const pair = p;
      const stackAddr = family === 4 ? STACK4 : STACK6;
      const kernelAddr = family === 4 ? KERNEL4 : KERNEL6;
      const label = `MTU ${mtu}, IPv${family}`;
      const cases: Array<[string, () => Promise<number>, number]> = [
        ['kernel pulls from tunstack', () => tunstackServer(pair, agentK, stackAddr, true), vethPull],
        ['kernel pushes to tunstack', () => tunstackServer(pair, agentK, stackAddr, false), vethPush],
        ['tunstack pulls from kernel', () => tunstackClient(pair, agentK, kernelAddr, true), vethPull],
        ['tunstack pushes to kernel', () => tunstackClient(pair, agentK, kernelAddr, false), vethPush],
      ];
      for (const [name, run, ref] of cases) {
        if (CASES !== null && !CASES.some((c) => name.includes(c))) continue;
        for (let w = 0; w < WARMUP; w++) await run();
        const times: number[] = [];
        for (let r = 0; r < RUNS; r++) times.push(await run());
        spread(`${name}, ${label}`, times);
        const value = gbps(median(times));
        rows.push({ name: `${name}, ${label}`, value, unit: 'Gbit/s', reference: ref, referenceName: 'kernel to kernel over veth', ratio: value / ref });
      }
      if (process.env.KERNEL_BENCH_STATS === '1') {
        // The kernel's side of this configuration: TAP queue drops, retransmissions, recoveries.
        const stats = spawnSync('ip', ['netns', 'exec', pair.ns.name, 'sh', '-c', `ip -s link show dev ${pair.dev}; nstat -az | grep -E '^Tcp(OutSegs|RetransSegs|ExtTCP(LostRetransmit|SackRecovery|Timeouts|FastRetrans|DSACKRecv)) '`]);
        console.log(stats.stdout.toString());
      }
    } finally {
      for (const agent of agents) agent.close();
      p?.cleanup();
      a.remove();
      b.remove();
    }
  }
  return rows;
}
