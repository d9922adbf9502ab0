import { stderr, stdout } from 'node:process';
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
  --quiet              no progress on stderr
  -h, --help           this help

Exit status: 0 the stack's answers matched the capture, 1 mismatch or failure (unreadable or
corrupt capture, unsupported link type), 2 usage error.
`;

export async function runReplayCommand(args: string[]): Promise<number> {
  let file: string | undefined;
  let json = false;
  let quiet = false;
  let tun = false;
  let seed = 1;
  const roles: string[] = [];
  const o: Omit<ReplayOptions, 'as'> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string | null => {
      const v = args[++i];
      return v === undefined ? null : v;
    };
    const num = (name: string, min: number): number | null => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < min) {
        usage(`${name} needs a number >= ${min}`);
        return null;
      }
      return v;
    };
    switch (a) {
      case '-h':
      case '--help':
        stdout.write(USAGE);
        return 0;
      case '--as': {
        const v = value();
        if (v === null) return usage('--as needs an address');
        roles.push(...v.split(',').filter((x) => x !== ''));
        break;
      }
      case '--out': {
        const v = value();
        if (v === null) return usage('--out needs a file name');
        o.out = v;
        break;
      }
      case '--both':
        o.record = 'both';
        break;
      case '--speed': {
        const v = num('--speed', 0);
        if (v === null) return 2;
        if (v === 0) return usage('--speed must be > 0 (use --fast for no gaps)');
        o.speed = v;
        break;
      }
      case '--fast':
        o.fast = true;
        break;
      case '--realtime':
        o.realtime = true;
        break;
      case '--checksums': {
        const v = value();
        if (v !== 'fix' && v !== 'ignore' && v !== 'keep') return usage('--checksums is fix, ignore or keep');
        o.checksums = v as ChecksumMode;
        break;
      }
      case '--serve-captured':
        o.serveCaptured = true;
        break;
      case '--tun':
        tun = true;
        break;
      case '--no-rewrite':
        o.tcpRewrite = false;
        break;
      case '--gate': {
        const v = num('--gate', 0);
        if (v === null) return 2;
        o.gateTimeoutMs = v;
        break;
      }
      case '--tail': {
        const v = num('--tail', 0);
        if (v === null) return 2;
        o.tailMs = v;
        break;
      }
      case '--seed': {
        const v = num('--seed', 0);
        if (v === null || !Number.isInteger(v)) return usage('--seed needs an integer');
        seed = v;
        break;
      }
      case '--json':
        json = true;
        break;
      case '--quiet':
      case '-q':
        quiet = true;
        break;
      default:
        if (a.startsWith('-')) return usage(`unknown option ${a}`);
        if (file !== undefined) return usage(`unexpected argument ${a}`);
        file = a;
    }
  }
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

/** Progress lines on stderr for long replays (over 2000 frames), at most twice a second. */
function progressPrinter(): (p: ReplayProgress) => void {
  let last = 0;
  return (p) => {
    if (p.frames < 2000) return;
    const now = Date.now();
    if (now - last < 500 && p.frame !== p.frames) return;
    last = now;
    const pct = ((100 * p.frame) / p.frames).toFixed(0);
    const line = `replay: frame ${p.frame}/${p.frames} (${pct}%), ${p.injected} injected, ${p.answers} answers`;
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
  stderr.write(`tunstack replay: ${why}\n\n${USAGE}`);
  return 2;
}
