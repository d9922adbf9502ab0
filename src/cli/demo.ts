import { stdout } from 'node:process';
import { formatSummary, runDemo } from '../demo/demo.js';
import { numberOption, parseCommand, usageError } from './args.js';

const USAGE = `Usage: tunstack demo [--out FILE] [--seed N] [--latency MS] [--loss P] [--json]

A tour of a small virtual network on virtual time: alpha -- router -- beta, where beta's NIC is a
virtual TAP device that the demo drives like a VM monitor, behind a lossy link. Ping over IPv4 and
IPv6 both ways, DNS-like lookups over UDP, Node's http client and server over tunstack TCP, a table
of per-host counters, and a pcap of what the router sees on both interfaces.

  --out FILE     pcap to write (default pcaps/demo.pcap)
  --seed N       random seed (default 1); the same seed gives a byte-identical pcap
  --latency MS   one-way latency of each link in virtual milliseconds (default 1)
  --loss P       loss probability on the router-beta link, each way (default 0.02)
  --json         print the result as JSON
  -V, --version  print tunstack's version
  -h, --help     this help

Options take their value as --seed 2 or --seed=2. Exit status: 0 done, 1 failure, 2 usage error.
`;

export async function runDemoCommand(args: string[]): Promise<number> {
  const p = parseCommand('demo', USAGE, {
    out: { type: 'string' },
    seed: { type: 'string' },
    latency: { type: 'string' },
    loss: { type: 'string' },
    json: { type: 'boolean' },
  }, args);
  if (typeof p === 'number') return p;
  if (p.positionals.length > 0) return usageError('demo', USAGE, `unexpected argument ${p.positionals[0]}`);
  const out = p.values.out ?? 'pcaps/demo.pcap';
  const seed = numberOption('demo', USAGE, 'seed', p.values.seed, Number.isInteger, 'an integer');
  const latencyMs = numberOption('demo', USAGE, 'latency', p.values.latency, (n) => n >= 0, 'a number >= 0');
  const loss = numberOption('demo', USAGE, 'loss', p.values.loss, (n) => n >= 0 && n < 1, 'a probability in [0, 1)');
  if (seed === null || latencyMs === null || loss === null) return 2;
  const json = p.values.json === true;
  const result = await runDemo({ out, seed: seed ?? 1, latencyMs: latencyMs ?? 1, loss: loss ?? 0.02, log: json ? undefined : (l) => stdout.write(`${l}\n`) });
  if (json) {
    stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  stdout.write(`\n${formatSummary(result)}\n\n`);
  stdout.write(`tap device ${result.tun.name}: ${result.tun.framesRead} frames read, ${result.tun.framesWritten} written\n`);
  const l = result.lossyLink;
  stdout.write(`lossy link r-beta: ${l.toBeta.lost} of ${l.toBeta.offered} frames lost to beta, ${l.toRouter.lost} of ${l.toRouter.offered} to the router\n`);
  stdout.write(`pcap: ${result.pcap} (${result.packetsCaptured} packets, ${result.virtualTimeMs} ms of virtual time)\n`);
  const flow = `tunstack flow ${result.pcap}`;
  const again = 'tunstack demo --seed 2 --loss 0.1';
  const w = Math.max(again.length, Math.min(flow.length, 38)) + 3;
  stdout.write(`\nTry next:\n  ${flow.padEnd(w)}the capture as a ladder diagram\n  ${again.padEnd(w)}another run (same seed, same bytes)\n`);
  return 0;
}
