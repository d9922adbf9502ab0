/**
 * `tunstack sandbox` beside slirp4netns and pasta, in the same run (root; each part skips with a
 * printed reason when its tool is missing):
 *
 * - Throughput: `iperf3 -c 10.0.2.2` from inside the sandbox to an `iperf3 -s` on the host's
 *   loopback, both directions (-R: host to guest), at MTU 1500 and 65520. slirp4netns and pasta
 *   are set up the same way (a namespace, 10.0.2.100/24, gateway 10.0.2.2 mapped to the host's
 *   loopback) and measured right after tunstack, alternating. Kernel loopback (iperf3 -c
 *   127.0.0.1 on the host) is printed as the ceiling.
 * - Connection setup rate: sequential connect + close from inside the sandbox to a host server
 *   that accepts and closes, for a few seconds (python3 in the guest).
 * - RSS of the tunstack process with 10,000 relayed TCP flows open at once.
 *
 * SANDBOX_BENCH_SECONDS (default 5) sets each iperf3 run's length; SANDBOX_BENCH_PARTS (default
 * iperf,connect,rss) picks the parts (rss alone: SANDBOX_BENCH_DEBUG=1 with TUNSTACK_DEBUG_MEMORY=1
 * prints the sandbox's memory line).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxUnavailableReason } from '../src/sandbox/run.js';
import type { BenchRow } from './run.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.SANDBOX_BENCH_SECONDS ?? 5);
const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tunstackCmd(args: string[]): string[] {
  return [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'sandbox', ...args];
}

function run(cmd: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('close', (code) => {
      clearTimeout(t);
      res({ code, stdout, stderr });
    });
  });
}

function gbits(json: string): number {
  try {
    const j = JSON.parse(json) as { end?: { sum_received?: { bits_per_second?: number } } };
    return (j.end?.sum_received?.bits_per_second ?? 0) / 1e9;
  } catch {
    return 0;
  }
}

type Other = 'slirp4netns' | 'pasta';

/** A namespace with slirp4netns or pasta serving it; returns the command prefix and a stopper. */
async function otherSandbox(kind: Other, mtu: number): Promise<{ exec: string[]; stop: () => Promise<void> } | null> {
  const ns = `tsbench-${kind}-${process.pid}`;
  spawnSync('ip', ['netns', 'del', ns]);
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) return null;
  let child: ChildProcess | null = null;
  if (kind === 'slirp4netns') {
    child = spawn('slirp4netns', ['--configure', `--mtu=${Math.min(mtu, 65520)}`, '--netns-type=path', `/run/netns/${ns}`, 'eth0'], { stdio: 'ignore' });
  } else {
    // As root pasta would switch to nobody and then fail to enter the namespace: --runas 0.
    const r = spawnSync('pasta', ['-q', '--runas', '0', '--config-net', '-4', '-a', '10.0.2.100', '-n', '24', '-g', '10.0.2.2', '-m', String(mtu), '-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none', '--netns', `/run/netns/${ns}`]);
    if (r.status !== 0) {
      spawnSync('ip', ['netns', 'del', ns]);
      return null;
    }
  }
  // Wait for the guest's address.
  for (let i = 0; i < 100; i++) {
    const a = spawnSync('ip', ['-n', ns, '-4', '-br', 'addr'], { encoding: 'utf8' }).stdout;
    if (a.includes('10.0.2.100')) break;
    await sleep(50);
  }
  return {
    exec: ['ip', 'netns', 'exec', ns],
    stop: async () => {
      child?.kill('SIGTERM');
      if (child) await once(child, 'close').catch(() => {});
      spawnSync('ip', ['netns', 'del', ns]);
    },
  };
}

/**
 * Guest-side connection-rate probe: waits (up to 5 s) until the gateway accepts, then sequential
 * connect/close for `secs`; prints connections/s.
 */
function connRateScript(port: number, secs: number): string {
  return [
    'import socket, time',
    'ready = time.time() + 5',
    'while True:',
    '    try:',
    `        s = socket.create_connection(("10.0.2.2", ${port}), timeout=1); s.recv(1); s.close(); break`,
    '    except OSError:',
    '        if time.time() > ready: raise',
    '        time.sleep(0.05)',
    `end = time.time() + ${secs}; n = 0; errors = 0; t0 = time.time()`,
    'while time.time() < end:',
    '    try:',
    `        s = socket.create_connection(("10.0.2.2", ${port})); s.recv(1); s.close(); n += 1`,
    '    except OSError:',
    '        errors += 1',
    'print(n / (time.time() - t0), errors)',
  ].join('\n');
}

/** The rate a probe printed; throws with its stderr when it printed none (no silent zero). */
function probeRate(r: { code: number | null; stdout: string; stderr: string }, who: string): number {
  const [rate, errors] = r.stdout.trim().split(/\s+/).map(Number);
  if (rate === undefined || !Number.isFinite(rate)) throw new Error(`${who}: connection probe failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  if (errors) console.log(`${who}: ${errors} connection attempts failed during the probe`);
  return rate;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** The median and the lowest and highest of `xs` (not empty). */
function spread(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2, min: s[0]!, max: s[s.length - 1]! };
}

/**
 * Connection setup rate: sequential connect + recv + close from the guest to a host loopback
 * server that sends one byte and closes. SANDBOX_BENCH_RUNS rounds (default 3), each measuring
 * tunstack and the others in turn (the order rotating), each probe against a fresh server port
 * so that no run meets another's TIME_WAIT 4-tuples. The same probe run on the host against the
 * same server (no sandbox) is the ceiling: the server's accept/write/close is on every
 * connection's path. slirp4netns and pasta run as their docs
 * show: `slirp4netns --configure --mtu=65520` (without --disable-host-loopback, as the gateway
 * must reach the host's loopback here) and `pasta --config-net` with its default MTU (65520).
 */
async function connectionRates(others: readonly Other[]): Promise<BenchRow[]> {
  const runs = Math.max(1, Number(process.env.SANDBOX_BENCH_RUNS ?? 3));
  const secs = Math.max(2, Math.min(SECONDS, 5));
  // 'direct': the same probe on the host against the same server, no sandbox: the ceiling.
  const who = ['tunstack', ...others, 'direct'] as const;
  const rates = new Map<string, number[]>(who.map((w) => [w, []]));
  {
    // Warm-up, not counted: the server runs in this process, and its first thousands of
    // connections (JIT tiers) were slow enough to halve whichever probe ran first.
    const srv = createServer((c) => {
      c.on('error', () => {});
      c.end('x');
    });
    srv.listen(0, '127.0.0.1', 4096);
    await once(srv, 'listening');
    await run(['python3', '-c', connRateScript((srv.address() as AddressInfo).port, 2).replaceAll('10.0.2.2', '127.0.0.1')]);
    srv.close();
  }
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < who.length; i++) {
      const w = who[(i + r) % who.length]!;
      const srv = createServer((c) => {
        c.on('error', () => {});
        c.end('x');
      });
      srv.listen(0, '127.0.0.1', 4096);
      await once(srv, 'listening');
      const sport = (srv.address() as AddressInfo).port;
      try {
        const script = connRateScript(sport, secs);
        if (w === 'tunstack') {
          rates.get(w)!.push(probeRate(await run(tunstackCmd(['--', 'python3', '-c', script])), w));
        } else if (w === 'direct') {
          rates.get(w)!.push(probeRate(await run(['python3', '-c', script.replaceAll('10.0.2.2', '127.0.0.1')]), w));
        } else {
          const o = await otherSandbox(w, 65520);
          if (o === null) continue;
          try {
            rates.get(w)!.push(probeRate(await run([...o.exec, 'python3', '-c', script]), w));
          } catch (e) {
            console.log(String(e));
          } finally {
            await o.stop();
          }
        }
      } finally {
        srv.close();
      }
    }
    console.log(`connection setup, round ${r + 1}: ${who.map((w) => `${w} ${rates.get(w)!.at(-1)?.toFixed(0) ?? '-'}/s`).join(', ')}`);
  }
  const ours = spread(rates.get('tunstack')!);
  const fmt = (x: { median: number; min: number; max: number }): string => `${x.median.toFixed(0)}/s (${x.min.toFixed(0)}-${x.max.toFixed(0)})`;
  const rows: BenchRow[] = [];
  const line: string[] = [`tunstack ${fmt(ours)}`];
  for (const k of others) {
    const xs = rates.get(k)!;
    if (xs.length === 0) continue;
    const ref = spread(xs);
    line.push(`${k} ${fmt(ref)} (${(ours.median / ref.median).toFixed(2)}x)`);
    rows.push({
      name: rows.length === 0 ? `sandbox TCP connects (sequential, median of ${runs})` : `  (same, beside ${k})`,
      value: ours.median,
      unit: 'conn/s',
      reference: ref.median,
      referenceName: k,
      ratio: ours.median / ref.median,
    });
  }
  if (rows.length === 0) rows.push({ name: `sandbox TCP connects (sequential, median of ${runs})`, value: ours.median, unit: 'conn/s' });
  const direct = spread(rates.get('direct')!);
  rows.push({ name: '  (same, beside no sandbox: the ceiling)', value: ours.median, unit: 'conn/s', reference: direct.median, referenceName: 'host loopback', ratio: ours.median / direct.median });
  line.push(`no sandbox (the probe on the host) ${fmt(direct)}`);
  console.log(`connection setup, median (lowest-highest) of ${runs}: ${line.join('; ')}`);
  return rows;
}

/** iperf3 both ways at MTU 1500 and 65520, tunstack then each of `others`. */
async function throughput(others: readonly Other[]): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const port = 5201 + (process.pid % 1000);
  const iperf = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  await sleep(500);
  try {
    const kernel = gbits((await run(['iperf3', '-c', '127.0.0.1', '-p', String(port), '-t', String(SECONDS), '-J'])).stdout);
    console.log(`kernel loopback: ${kernel.toFixed(2)} Gbit/s`);
    for (const mtu of [1500, 65520]) {
      for (const reverse of [false, true]) {
        const client = ['iperf3', '-c', '10.0.2.2', '-p', String(port), '-t', String(SECONDS), '-J', ...(reverse ? ['-R'] : [])];
        const dir = reverse ? 'host to guest' : 'guest to host';
        const ours = gbits((await run(tunstackCmd(['--mtu', String(mtu), '--', ...client]))).stdout);
        const refs: Record<string, number> = {};
        for (const k of others) {
          const o = await otherSandbox(k, mtu);
          if (o === null) continue;
          refs[k] = gbits((await run([...o.exec, ...client])).stdout);
          await o.stop();
        }
        const summary = Object.entries(refs).map(([k, v]) => `${k} ${v.toFixed(2)} (${(ours / v).toFixed(2)}x)`).join(', ');
        console.log(`iperf3 ${dir}, MTU ${mtu}: tunstack ${ours.toFixed(2)} Gbit/s; ${summary}; kernel loopback ${kernel.toFixed(2)}`);
        const slirp = refs.slirp4netns;
        rows.push({
          name: `sandbox iperf3 ${dir}, MTU ${mtu}`,
          value: ours,
          unit: 'Gbit/s',
          ...(slirp !== undefined ? { reference: slirp, referenceName: 'slirp4netns', ratio: ours / slirp } : {}),
        });
        if (refs.pasta !== undefined) {
          rows.push({ name: `  (same, beside pasta)`, value: ours, unit: 'Gbit/s', reference: refs.pasta, referenceName: 'pasta', ratio: ours / refs.pasta });
        }
      }
    }
  } finally {
    iperf.kill('SIGTERM');
  }

  return rows;
}

export default async function bench(): Promise<BenchRow[]> {
  // As root (an unprivileged run would get a rootless sandbox, which this bench does not set up).
  const why = process.getuid?.() !== 0 ? 'not root' : sandboxUnavailableReason();
  if (why !== '') {
    console.log(`sandbox bench skipped: ${why}`);
    return [];
  }
  const parts = new Set((process.env.SANDBOX_BENCH_PARTS ?? 'iperf,connect,rss').split(',').map((p) => p.trim()));
  const rows: BenchRow[] = [];
  const others = (['slirp4netns', 'pasta'] as const).filter((k) => {
    if (!have(k)) console.log(`sandbox bench: ${k} missing, not compared`);
    return have(k);
  });
  if (parts.has('iperf') && !have('iperf3')) console.log('sandbox bench: iperf3 missing, throughput not measured');
  else if (parts.has('iperf')) rows.push(...(await throughput(others)));
  if (parts.has('connect')) rows.push(...(await connectionRates(others)));
  if (parts.has('rss')) rows.push(await flowsRss());
  return rows;
}

/**
 * RSS with 10k relayed flows open, three runs: the guest waits (the idle sandbox's RSS is taken
 * then), opens them to a host server that holds them, and waits; the growth over idle per flow is
 * the figure (median and spread).
 */
async function flowsRss(): Promise<BenchRow> {
  const held: Socket[] = [];
  const hold = createServer((c) => {
    c.on('error', () => {});
    held.push(c);
  });
  hold.listen(0, '127.0.0.1', 20000);
  await once(hold, 'listening');
  const hport = (hold.address() as AddressInfo).port;
  const N = 10_000;
  const py = [
    'import resource, socket, sys, time',
    'resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))',
    'print("ready", flush=True)',
    'time.sleep(2)',
    'socks = []',
    `for i in range(${N}):`,
    `    socks.append(socket.create_connection(("10.0.2.2", ${hport})))`,
    'print("open", flush=True)',
    'time.sleep(30)',
  ].join('\n');
  const runs: Array<{ idle: number; open: number }> = [];
  try {
    for (let i = 0; i < 3; i++) {
      const cmd = tunstackCmd(['--', 'python3', '-c', py]);
      const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      try {
        const t1 = Date.now();
        while (!out.includes('ready') && Date.now() - t1 < 30_000 && child.exitCode === null) await sleep(50);
        await sleep(1000);
        const idle = child.pid !== undefined ? rssMiB(child.pid) : 0;
        const t0 = Date.now();
        while (!out.includes('open') && Date.now() - t0 < 120_000 && child.exitCode === null) await sleep(100);
        const secs = (Date.now() - t0) / 1000;
        // Settle (the last flows' handshakes, timers), then read.
        await sleep(1000);
        const open = child.pid !== undefined && child.exitCode === null ? rssMiB(child.pid) : 0;
        if (process.env.SANDBOX_BENCH_DEBUG && child.pid !== undefined) {
          process.kill(child.pid, 'SIGUSR2');
          await sleep(300);
        }
        console.log(`10k flows, run ${i + 1}: opened in ${secs.toFixed(1)} s, host side holds ${held.length}; tunstack RSS ${open.toFixed(0)} MiB, idle ${idle.toFixed(0)} MiB: ${(((open - idle) * 1024) / N).toFixed(2)} KiB a flow`);
        runs.push({ idle, open });
      } finally {
        child.kill('SIGTERM');
        if (child.exitCode === null) await once(child, 'close');
        for (const s of held.splice(0)) s.destroy();
      }
    }
  } finally {
    hold.close();
  }
  const per = runs.map((r) => ((r.open - r.idle) * 1024) / N).sort((a, b) => a - b);
  const mid = runs.slice().sort((a, b) => a.open - a.idle - (b.open - b.idle))[1]!;
  console.log(`10k flows: ${per[1]!.toFixed(2)} KiB a flow (median of 3; ${per[0]!.toFixed(2)}..${per[2]!.toFixed(2)})`);
  return {
    name: `sandbox RSS with ${N / 1000}k open relayed flows (median of 3; ${per[0]!.toFixed(1)}..${per[2]!.toFixed(1)} KiB a flow)`,
    value: mid.open,
    unit: 'MiB',
    reference: mid.idle,
    referenceName: 'idle sandbox',
    ratio: mid.open / mid.idle,
  };
}
