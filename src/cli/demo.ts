import { stdout } from 'node:process';
import { formatSummary, runDemo } from '../demo/demo.js';

const USAGE = `Usage: tunstack demo [--out FILE] [--seed N] [--latency MS] [--json]

Two virtual hosts on a wire, one of them behind a virtual TAP device that the demo drives:
ARP, ping both ways, a UDP request/reply, a counter summary, and a pcap of the wire.

  --out FILE     pcap to write (default pcaps/demo.pcap)
  --seed N       random seed (default 1); the same seed gives a byte-identical pcap
  --latency MS   one-way wire latency in virtual milliseconds (default 1)
  --json         print the result as JSON
`;

export async function runDemoCommand(args: string[]): Promise<number> {
  let out = 'pcaps/demo.pcap';
  let seed = 1;
  let latencyMs = 1;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--help' || a === '-h') {
      stdout.write(USAGE);
      return 0;
    } else if (a === '--out') out = next();
    else if (a === '--seed') seed = Number(next());
    else if (a === '--latency') latencyMs = Number(next());
    else if (a === '--json') json = true;
    else {
      process.stderr.write(`tunstack demo: unknown option ${a}\n\n${USAGE}`);
      return 2;
    }
  }
  if (!Number.isInteger(seed) || !(latencyMs >= 0)) {
    process.stderr.write('tunstack demo: --seed must be an integer and --latency >= 0\n');
    return 2;
  }
  const result = await runDemo({ out, seed, latencyMs, log: json ? undefined : (l) => stdout.write(`${l}\n`) });
  if (json) {
    stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  stdout.write(`\n${formatSummary(result)}\n\n`);
  stdout.write(`tap device ${result.tun.name}: ${result.tun.framesRead} frames read, ${result.tun.framesWritten} written\n`);
  stdout.write(`wire: ${result.wire.aToB} frames alpha->beta, ${result.wire.bToA} beta->alpha\n`);
  stdout.write(`pcap: ${result.pcap} (${result.packetsCaptured} packets, ${result.virtualTimeMs} ms of virtual time)\n`);
  return 0;
}
