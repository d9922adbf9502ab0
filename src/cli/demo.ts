import { stdout } from 'node:process';
import { formatSummary, runDemo } from '../demo/demo.js';

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
`;

export async function runDemoCommand(args: string[]): Promise<number> {
  let out = 'pcaps/demo.pcap';
  let seed = 1;
  let latencyMs = 1;
  let loss = 0.02;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (['--out', '--seed', '--latency', '--loss'].includes(a) && args[i + 1] === undefined) {
      process.stderr.write(`tunstack demo: ${a} needs a value\n\n${USAGE}`);
      return 2;
    }
    const next = (): string => args[++i]!;
    if (a === '--help' || a === '-h') {
      stdout.write(USAGE);
      return 0;
    } else if (a === '--out') out = next();
    else if (a === '--seed') seed = Number(next());
    else if (a === '--latency') latencyMs = Number(next());
    else if (a === '--loss') loss = Number(next());
    else if (a === '--json') json = true;
    else {
      process.stderr.write(`tunstack demo: unknown option ${a}\n\n${USAGE}`);
      return 2;
    }
  }
  if (!Number.isInteger(seed) || !(latencyMs >= 0) || !(loss >= 0 && loss < 1)) {
    process.stderr.write('tunstack demo: --seed must be an integer, --latency >= 0 and 0 <= --loss < 1\n');
    return 2;
  }
  const result = await runDemo({ out, seed, latencyMs, loss, log: json ? undefined : (l) => stdout.write(`${l}\n`) });
  if (json) {
    stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  stdout.write(`\n${formatSummary(result)}\n\n`);
  stdout.write(`tap device ${result.tun.name}: ${result.tun.framesRead} frames read, ${result.tun.framesWritten} written\n`);
  const l = result.lossyLink;
  stdout.write(`lossy link r-beta: ${l.toBeta.lost} of ${l.toBeta.offered} frames lost towards beta, ${l.toRouter.lost} of ${l.toRouter.offered} towards the router\n`);
  stdout.write(`pcap: ${result.pcap} (${result.packetsCaptured} packets, ${result.virtualTimeMs} ms of virtual time)\n`);
  return 0;
}
