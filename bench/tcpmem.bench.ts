/**
 * RSS of `tunstack sandbox` holding 1000 guest connections that never read, to a host service
 * that streams 1 MiB into each (root; skips with a printed reason otherwise): everything the guest
 * kernel does not take waits in tunstack's TCP send buffers, bounded by `--tcp-mem`. Printed: the
 * RSS growth over the idle sandbox against the configured budget (median and spread of three
 * runs), the growth with the same 1000 flows open but idle (what the flows themselves cost), and
 * the growth with a budget too large to matter (what the sandbox held before there was one).
 *
 * TCPMEM_BENCH_LIMIT_MIB (default 64) sets the budget; TCPMEM_BENCH_DEBUG=1 also prints the
 * sandbox's process.memoryUsage(), TCP charge and send blocks when idle and when settled.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxUnavailableReason } from '../src/sandbox/run.js';
import type { BenchRow } from './run.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LIMIT_MIB = Number(process.env.TCPMEM_BENCH_LIMIT_MIB ?? 64);
const N = 1000;
const PER_CONN = 1 << 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The guest: waits for the baseline to be taken, opens N connections, reads nothing. */
function guestScript(port: number): string {
  return [
    'import resource, socket, time',
    'resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))',
    'print("ready", flush=True)',
    'time.sleep(2)',
    `socks = [socket.create_connection(("10.0.2.2", ${port})) for i in range(${N})]`,
    'print("open", flush=True)',
    'time.sleep(30)',
  ].join('\n');
}

/** With TCPMEM_BENCH_DEBUG set: the sandbox's own memory figures (SIGUSR2, see sandbox/run.ts). */
const DEBUG = process.env.TCPMEM_BENCH_DEBUG !== undefined && process.env.TCPMEM_BENCH_DEBUG !== '';

async function debugDump(pid: number, what: string): Promise<void> {
  if (!DEBUG) return;
  process.stdout.write(`  [${what}] `);
  process.kill(pid, 'SIGUSR2');
  await sleep(200);
}

/** One sandbox run with `--tcp-mem tcpMem`: RSS before the guest connects and the peak after. */
async function measure(port: number, tcpMem: string, streamed: () => number): Promise<{ idle: number; peak: number; settled: number }> {
  const cmd = [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'sandbox', '--tcp-mem', tcpMem, '--', 'python3', '-c', guestScript(port)];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], env: DEBUG ? { ...process.env, TUNSTACK_DEBUG_MEMORY: '1' } : process.env });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  try {
    // The idle figure is taken once the sandbox runs its guest (not while Node is still loading).
    const t1 = Date.now();
    while (!out.includes('ready') && Date.now() - t1 < 30_000 && child.exitCode === null) await sleep(50);
    await sleep(500);
    const pid = child.pid ?? 0;
    const idle = rssMiB(pid);
    await debugDump(pid, 'idle');
    const t0 = Date.now();
    while (!out.includes('open') && Date.now() - t0 < 60_000 && child.exitCode === null) await sleep(50);
    // The host streams until every connection's megabyte is somewhere; sample meanwhile.
    let peak = 0;
    let last = -1;
    let still = 0;
    for (let i = 0; i < 200 && still < 8; i++) {
      await sleep(100);
      peak = Math.max(peak, rssMiB(pid));
      const s = streamed();
      still = s === last ? still + 1 : 0;
      last = s;
    }
    const settled = rssMiB(pid);
    await debugDump(pid, 'settled');
    return { idle, peak: Math.max(peak, settled), settled };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'close');
  }
}

export default async function bench(): Promise<BenchRow[]> {
  // As root (an unprivileged run would get a rootless sandbox, which this bench does not set up).
  const why = process.getuid?.() !== 0 ? 'not root' : sandboxUnavailableReason();
  if (why !== '') {
    console.log(`tcpmem bench skipped: ${why}`);
    return [];
  }
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const socks: Socket[] = [];
  let streamed = 0;
  let streaming = true;
  const srv = createServer((c) => {
    socks.push(c);
    c.on('error', () => {});
    if (!streaming) return;
    let sent = 0;
    const pump = (): void => {
      while (sent < PER_CONN && !c.destroyed) {
        sent += chunk.length;
        streamed += chunk.length;
        if (!c.write(chunk)) return;
      }
    };
    c.on('drain', pump);
    pump();
  });
  srv.listen(0, '127.0.0.1', 4096);
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  const run = async (arg: string, label: string, stream: boolean): Promise<number> => {
    streamed = 0;
    streaming = stream;
    const r = await measure(port, arg, () => streamed);
    for (const s of socks.splice(0)) s.destroy();
    const growth = r.peak - r.idle;
    console.log(
      `${label}: idle ${r.idle.toFixed(0)} MiB, peak ${r.peak.toFixed(0)} MiB (+${growth.toFixed(1)}), settled ${r.settled.toFixed(0)} MiB; host streamed ${(streamed / (1 << 20)).toFixed(0)} MiB`,
    );
    return growth;
  };
  const rows: BenchRow[] = [];
  try {
    // The same flows with nothing to send: what the flows themselves cost (sockets, endpoints).
    const idleFlows = await run(`${LIMIT_MIB}M`, `${N} idle flows (host sends nothing)`, false);
    rows.push({ name: `sandbox RSS growth, ${N} idle flows (host sends nothing)`, value: idleFlows, unit: 'MiB' });
    const growths: number[] = [];
    for (let i = 0; i < 3; i++) growths.push(await run(`${LIMIT_MIB}M`, `--tcp-mem ${LIMIT_MIB}M, run ${i + 1}`, true));
    growths.sort((x, y) => x - y);
    const median = growths[1]!;
    console.log(`--tcp-mem ${LIMIT_MIB}M: growth median +${median.toFixed(1)} MiB, spread ${growths[0]!.toFixed(1)}..${growths[2]!.toFixed(1)} MiB over 3 runs`);
    rows.push({
      name: `sandbox RSS growth, ${N} never-reading flows, --tcp-mem ${LIMIT_MIB}M (median of 3; ${growths[0]!.toFixed(0)}..${growths[2]!.toFixed(0)})`,
      value: median,
      unit: 'MiB',
      reference: LIMIT_MIB,
      referenceName: 'the budget',
      ratio: median / LIMIT_MIB,
    });
    const none = await run('64G', 'no budget (--tcp-mem 64G)', true);
    rows.push({ name: `sandbox RSS growth, ${N} never-reading flows, no budget`, value: none, unit: 'MiB' });
  } finally {
    for (const s of socks) s.destroy();
    srv.close();
  }
  return rows;
}
