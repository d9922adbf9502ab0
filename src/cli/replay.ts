import { stderr, stdout } from 'node:process';
import { numberOption, parseCommand, usageError } from './args.js';
import { formatReplayReport, replay, replayDevice, type ChecksumMode, type ReplayOptions, type ReplayProgress } from '../replay/replay.js';

const USAGE = `Usage: tunstack replay FILE --as ADDR[,ADDR...] [options]

Feed a capture's frames into a tunstack stack that takes the role of the hosts ADDR: frames
addressed to them are injected, the stack answers as itself (ARP, ICMP, port unreachable, TCP
resets, or the servers you give it), and the answers are compared with what those hosts sent
in the capture. TCP connections are replayed as tcpliveplay does: acknowledgments rewritten
into the live stack's sequence space, each segment held until the stack has sent what it
acknowledges. pcap and pcapng; Ethernet, raw IP (101/12/14/228/229), Linux SLL/SLL2 and BSD
loopback (NULL/LOOP) link types.

  --as ADDR[,ADDR]     the addresses whose role the stack takes (required)
  --out FILE           write the stack's answers to FILE (pcap, the capture's link type)
  --both               with --out, record the injected frames too (the whole conversation)
  --speed X            replay X times faster than captured (default 1: original timing)
  --fast               as fast as possible (TCP segments still wait for what they acknowledge)
  --realtime           pace on the wall clock (default: virtual time, finishes at once)
  --checksums MODE     fix (default): recompute checksums (captures with offload);
                       ignore: tell the stack they were verified; keep: inject as captured
  --serve-captured     serve every captured TCP connection with the bytes the host sent then
  --tun                feed the frames through a virtual TAP/TUN device instead of a NIC
  --no-rewrite         do not rewrite TCP acknowledgments
  --gate MS            longest wait for the stack before a TCP segment goes anyway (1000)
  --tail MS            time given to the stack after the last frame (2000)
  --seed N             random seed of the stack (default 1)
  --json               print the report as JSON
  --quiet              no progress on stderr (shown once a replay has run for a second)
  -V, --version        print tunstack's version
  -h, --help           this help

Options take their value as --speed 2 or --speed=2; --as may be given more than once.

Exit status: 0 the stack's answers matched the capture, 1 mismatch or failure (unreadable or
corrupt capture, unsupported link type), 2 usage error.
`;

export async function runReplayCommand(args: string[]): Promise<number> {
  const p = parseCommand('replay', USAGE, {
    as: { type: 'string', multiple: true },
    out: { type: 'string' },
    both: { type: 'boolean' },
    speed: { type: 'string' },
    fast: { type: 'boolean' },
    realtime: { type: 'boolean' },
    checksums: { type: 'string' },
    'serve-captured': { type: 'boolean' },
    tun: { type: 'boolean' },
    'no-rewrite': { type: 'boolean' },
    gate: { type: 'string' },
    tail: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
  }, args);
  if (typeof p === 'number') return p;
  const v = p.values;
  const o: Omit<ReplayOptions, 'as'> = {};
  const roles = (v.as ?? []).flatMap((x) => x.split(',')).filter((x) => x !== '');
  if (v.out !== undefined) o.out = v.out;
  if (v.both === true) o.record = 'both';
  const num = (name: string, raw: string | undefined, check: (n: number) => boolean, what: string) => numberOption('replay', USAGE, name, raw, check, what);
  const speed = num('speed', v.speed, (n) => n >= 0, 'a number >= 0');
  const gate = num('gate', v.gate, (n) => n >= 0, 'a number >= 0');
  const tail = num('tail', v.tail, (n) => n >= 0, 'a number >= 0');
  const seedOpt = num('seed', v.seed, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
  if (speed === null || gate === null || tail === null || seedOpt === null) return 2;
  if (speed === 0) return usage('--speed must be > 0 (use --fast for no gaps)');
  if (speed !== undefined) o.speed = speed;
  if (gate !== undefined) o.gateTimeoutMs = gate;
  if (tail !== undefined) o.tailMs = tail;
  if (v.fast === true) o.fast = true;
  if (v.realtime === true) o.realtime = true;
  if (v.checksums !== undefined) {
    if (v.checksums !== 'fix' && v.checksums !== 'ignore' && v.checksums !== 'keep') return usage('--checksums is fix, ignore or keep');
    o.checksums = v.checksums as ChecksumMode;
  }
  if (v['serve-captured'] === true) o.serveCaptured = true;
  if (v['no-rewrite'] === true) o.tcpRewrite = false;
  const tun = v.tun === true;
  const json = v.json === true;
  const quiet = v.quiet === true;
  const seed = seedOpt ?? 1;
  if (p.positionals.length > 1) return usage(`unexpected argument ${p.positionals[1]}`);
  const file = p.positionals[0];
  if (file === undefined) return usage('no capture file given');
  if (roles.length === 0) return usage('--as is required: which host of the capture should the stack be?');
  if (tun && o.realtime) return usage('--tun and --realtime cannot be combined');
  if (o.fast && o.speed !== undefined) return usage('--fast and --speed cannot be combined');
  o.seed = seed;
  if (!quiet) o.onProgress = progressPrinter();
  try {
    if (tun) o.device = replayDevice(file, { seed });
    const report = await replay(file, { ...o, as: roles });
    if (!quiet) clearProgress();
    if (json) stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      stdout.write(`${formatReplayReport(report)}\n`);
      for (const m of report.mismatches) stdout.write(`  mismatch: ${m}\n`);
    }
    return report.ok ? 0 : 1;
  } catch (e) {
    if (!quiet) clearProgress();
    stderr.write(`tunstack replay: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    o.device?.close();
  }
}

let progressShown = false;

/**
 * Progress on stderr for a capture of 2000 frames or more, and for any replay once it has run for
 * a second of wall time (a short capture replayed at its original pace can take long): then every
 * second (a TTY line is rewritten five times a second), and a last line when it ends.
 */
function progressPrinter(): (p: ReplayProgress) => void {
  const started = Date.now();
  let last = 0;
  return (p) => {
    const now = Date.now();
    const done = p.frame === p.frames;
    if (!progressShown && now - started < 1000 && p.frames < 2000) return;
    if (now - last < (stderr.isTTY ? 200 : 1000) && !done) return;
    last = now;
    const pct = p.frames > 0 ? ((100 * p.frame) / p.frames).toFixed(0) : '100';
    const line = `replay: ${((now - started) / 1000).toFixed(1)} s, capture time ${(p.elapsedMs / 1000).toFixed(1)} s, frame ${p.frame}/${p.frames} (${pct}%), ${p.injected} injected, ${p.answers} answers`;
    if (stderr.isTTY) stderr.write(`\r${line}`);
    else stderr.write(`${line}\n`);
    progressShown = true;
  };
}

function clearProgress(): void {
  if (progressShown && stderr.isTTY) stderr.write('\n');
  progressShown = false;
}

function usage(why: string): number {
  return usageError('replay', USAGE, why);
}
