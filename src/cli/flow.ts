import { writeFileSync } from 'node:fs';
import { stderr, stdout } from 'node:process';
import { buildFlow, renderLadder, renderSvg, type FlowOptions } from '../replay/flow.js';
import { numberOption, parseCommand, usageError } from './args.js';

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
  --keep-special   give multicast, broadcast, unspecified and link-local addresses a
                   column each (default: they share one column, "special")
  -V, --version    print tunstack's version
  -h, --help       this help

Options take their value as --max 10 or --max=10.

Exit status: 0 done, 1 the capture could not be read, 2 usage error.
`;

export function runFlowCommand(args: string[]): number {
  const p = parseCommand('flow', USAGE, {
    svg: { type: 'string' },
    columns: { type: 'string' },
    max: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    'keep-special': { type: 'boolean' },
  }, args);
  if (typeof p === 'number') return p;
  const opts: FlowOptions = {};
  const v = p.values;
  if (v.columns !== undefined) {
    if (v.columns !== 'host' && v.columns !== 'endpoint' && v.columns !== 'auto') return usage('--columns is host, endpoint or auto');
    opts.columns = v.columns;
  }
  const max = numberOption('flow', USAGE, 'max', v.max, (n) => Number.isInteger(n) && n > 0, 'a positive integer');
  if (max === null) return 2;
  if (max !== undefined) opts.maxFrames = max;
  if (v['keep-special'] === true) opts.foldSpecial = false;
  const svg = v.svg;
  const quiet = v.quiet === true;
  if (p.positionals.length === 0) return usage('no capture file given');
  if (p.positionals.length > 1) return usage(`unexpected argument ${p.positionals[1]}`);
  const file = p.positionals[0]!;
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
  return usageError('flow', USAGE, why);
}
