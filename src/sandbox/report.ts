/** The sandbox's end-of-run report: its relay counters as a few readable lines (`-v`). */
import type { SandboxStats } from './network.js';

/** Readable lines for `stats`: one per relay, only the counters that are not zero beyond the first. */
export function statsSummary(stats: SandboxStats): string[] {
  const t = stats.tcp;
  const u = stats.udp;
  const kib = (n: number): string => (n < 10240 ? `${n} B` : n < 10 * 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);
  const extra = (pairs: Array<[string, number]>): string => {
    const kept = pairs.filter(([, n]) => n !== 0).map(([k, n]) => `${n} ${k}`);
    return kept.length > 0 ? `; ${kept.join(', ')}` : '';
  };
  const lines = [
    `tcp: ${t.connects} connects (${t.connected} connected${extra([['refused', t.refused], ['failed', t.failed], ['over the flow limit', t.overLimit], ['not relayed', t.notRelayed]])}), ` +
      `${t.inbound} inbound, ${t.peak} flows at most, ${kib(t.bytesToHost)} to the host, ${kib(t.bytesToGuest)} to the guest`,
    `udp: ${u.flows} flows (${u.active} open at the end${extra([['evicted', u.evicted], ['closed idle', u.idleClosed]])}), ` +
      `${u.datagramsToHost} datagrams to the host, ${u.datagramsToGuest} to the guest${extra([['not relayed', u.notRelayed], ['send errors', u.sendErrors], ['foreign answers dropped', u.foreignDropped]])}`,
  ];
  if (stats.dns !== null) lines.push(`dns: ${stats.dns.queries} queries (${stats.dns.answeredLocally} answered here, ${stats.dns.upstreamAnswers} upstream${extra([['NXDOMAIN', stats.dns.nxdomain], ['malformed', stats.dns.malformed], ['upstream timeouts', stats.dns.upstreamTimeouts]])})`);
  if (stats.dhcp !== null) lines.push(`dhcp: ${Object.entries(stats.dhcp).map(([k, n]) => `${n} ${k}`).join(', ')}`);
  if (stats.ping !== null) lines.push(`icmp: ${Object.entries(stats.ping).map(([k, n]) => `${n} ${k}`).join(', ')}`);
  const m = stats.tcpMemory;
  lines.push(`tcp memory: ${kib(m.memoryAllocated)} of ${kib(m.limit)} charged${extra([['pressure episodes', m.memoryPressures], ['receive drops', m.rcvMemDrops], ['send refusals', m.sndMemRefusals]])}`);
  return lines;
}

/** Write the end-of-run report through `log`: readable lines when verbose, the JSON line when debugging. */
export function reportStats(stats: SandboxStats, level: { verbose?: boolean | undefined; debug?: boolean | undefined }, log: (m: string) => void): void {
  if (level.verbose === true || level.debug === true) for (const l of statsSummary(stats)) log(l);
  if (level.debug === true) log(`stats ${JSON.stringify(stats)}`);
}
