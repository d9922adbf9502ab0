/**
 * RSS of `tunstack sandbox` holding 1000 guest connections that never read, to a host service
 * that streams 1 MiB into each (root; skips with a printed reason otherwise): everything the guest
 * kernel does not take waits in tunstack's TCP send buffers, bounded by `--tcp-mem`. Printed: the
 * RSS growth over the idle sandbox against the configured budget, and the same with a budget too
 * large to matter (what the sandbox held before there was one).
 *
 * TCPMEM_BENCH_LIMIT_MIB (default 64) sets the budget.
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
    'time.sleep(2)',
    `socks = [socket.create_connection(("10.0.2.2", ${port})) for i in range(${N})]`,
    'print("open", flush=True)',
    'time.sleep(30)',
  ].join('\n');
}

/** One sandbox run with `--tcp-mem tcpMem`: RSS before the guest connects and the peak after. */
async function measure(port: number, tcpMem: string, streamed: () => number): Promise<{ idle: number; peak: number; settled: number }> {
  const cmd = [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'sandbox', '--tcp-mem', tcpMem, '--', 'python3', '-c', guestScript(port)];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  try {
    await sleep(1500);
    const pid = child.pid ?? 0;
    const idle = rssMiB(pid);
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
    return { idle, peak: Math.max(peak, settled), settled };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'close');
  }
}

export default async function bench(): Promise<BenchRow[]> {
  const why = sandboxUnavailableReason();
  if (why !== '') {
    console.log(`tcpmem bench skipped: ${why}`);
    return [];
  }
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const socks: Socket[] = [];
  let streamed = 0;
  const srv = createServer((c) => {
    socks.push(c);
    c.on('error', () => {});
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
  const rows: BenchRow[] = [];
  try {
    const runs: Array<[string, string]> = [
      [`${LIMIT_MIB}M`, `--tcp-mem ${LIMIT_MIB}M`],
      ['64G', 'no budget (--tcp-mem 64G)'],
    ];
    for (const [arg, label] of runs) {
      streamed = 0;
      const r = await measure(port, arg, () => streamed);
      for (const s of socks.splice(0)) s.destroy();
      const growth = r.peak - r.idle;
      console.log(
        `${label}: idle ${r.idle.toFixed(0)} MiB, peak ${r.peak.toFixed(0)} MiB (+${growth.toFixed(0)}), settled ${r.settled.toFixed(0)} MiB; host streamed ${(streamed / (1 << 20)).toFixed(0)} MiB`,
      );
      rows.push(
        arg === '64G'
          ? { name: `sandbox RSS growth, ${N} never-reading flows, no budget`, value: growth, unit: 'MiB' }
          : { name: `sandbox RSS growth, ${N} never-reading flows, --tcp-mem ${LIMIT_MIB}M`, value: growth, unit: 'MiB', reference: LIMIT_MIB, referenceName: 'the budget', ratio: growth / LIMIT_MIB },
      );
    }
  } finally {
    for (const s of socks) s.destroy();
    srv.close();
  }
  return rows;
}
