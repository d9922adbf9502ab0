import { writeFileSync } from 'node:fs';
import { stderr, stdout } from 'node:process';
import { buildFlow, renderLadder, renderSvg, type FlowOptions } from '../replay/flow.js';

const USAGE = `Usage: tunstack flow FILE [--svg OUT] [--columns host|endpoint|auto] [--max N] [--quiet]

Print a ladder diagram of a capture's TCP, UDP, ICMP and ARP exchanges: one column per host,
one arrow per frame with TCP flags and relative seq/ack/len, UDP lengths (and DNS questions),
ICMP types, and the time since the first frame. pcap and pcapng; Ethernet, raw IP, Linux
SLL/SLL2 and BSD loopback link types.

  --svg OUT        also write the diagram as an SVG sequence diagram
  --columns MODE   host: one column per address; endpoint: per address:port;
                   auto (default): endpoints when the capture has a single host
  --max N          show the first N frames only
  --quiet          do not print the text diagram (with --svg)
  -h, --help       this help

Exit status: 0 done, 1 the capture could not be read, 2 usage error.
`;

export function runFlowCommand(args: string[]): number {
  let file: string | undefined;
  let svg: string | undefined;
  let quiet = false;
  const opts: FlowOptions = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = (): string | undefined => args[++i];
    if (a === '--help' || a === '-h') {
      stdout.write(USAGE);
      return 0;
    } else if (a === '--svg') {
      svg = next();
      if (svg === undefined) return usage('--svg needs a file name');
    } else if (a === '--columns') {
      const v = next();
      if (v !== 'host' && v !== 'endpoint' && v !== 'auto') return usage('--columns is host, endpoint or auto');
      opts.columns = v;
    } else if (a === '--max') {
      const v = Number(next());
      if (!Number.isInteger(v) || v <= 0) return usage('--max needs a positive integer');
      opts.maxFrames = v;
    } else if (a === '--quiet' || a === '-q') quiet = true;
    else if (a.startsWith('-') && a !== '-') return usage(`unknown option ${a}`);
    else if (file === undefined) file = a;
    else return usage(`unexpected argument ${a}`);
  }
  if (file === undefined) return usage('no capture file given');
  let diagram;
  try {
    diagram = buildFlow(file, opts);
  } catch (e) {
    stderr.write(`tunstack flow: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  if (!quiet) stdout.write(renderLadder(diagram));
  if (svg !== undefined) {
    try {
      writeFileSync(svg, renderSvg(diagram));
    } catch (e) {
      stderr.write(`tunstack flow: cannot write ${svg}: ${e instanceof Error ? e.message : String(e)}\n`);
      return 1;
    }
    if (!quiet) stdout.write(`SVG written to ${svg}\n`);
  }
  return 0;
}

function usage(why: string): number {
  stderr.write(`tunstack flow: ${why}\n\n${USAGE}`);
  return 2;
}
