/** What a replay found (`ReplayReport`) and its text form for people. */
import { linkTypeName } from './linktype.js';

export interface TcpFlowReport {
  client: string;
  server: string;
  /** compared: the stack served it; unsynced: the capture lacks the handshake; role-was-client: the role host opened it. */
  status: 'compared' | 'unsynced' | 'role-was-client';
  capturedBytes: number;
  liveBytes: number;
  match: boolean;
  /** Offset of the first differing byte (or the shorter length), null when equal. */
  firstDifference: number | null;
  capturedFin: boolean;
  liveFin: boolean;
}

export interface UdpFlowReport {
  flow: string;
  datagramsIn: number;
  capturedReplies: number;
  liveReplies: number;
  match: boolean;
}

export interface ReplayReport {
  /** The addresses the stack played. */
  roles: string[];
  linkType: number;
  outputLinkType: number;
  frames: number;
  injected: number;
  /** Frames the role hosts sent in the capture (the stack makes its own). */
  fromRole: number;
  /** Frames neither to nor from a role host. */
  unrelated: number;
  undecodable: number;
  /** Frames the stack sent. */
  answers: number;
  /** ARP replies / neighbour advertisements given for hosts of the capture. */
  resolutionsAnswered: number;
  /** Checksum fields recomputed. */
  checksumsFixed: number;
  /** TCP segments that went before the live stack had sent what they acknowledge. */
  gateTimeouts: number;
  tcp: TcpFlowReport[];
  udp: UdpFlowReport[];
  icmp: { echoRequestsIn: number; capturedEchoReplies: number; liveEchoReplies: number; capturedErrors: number; liveErrors: number };
  /** Every compared TCP flow and UDP flow matched. */
  ok: boolean;
  mismatches: string[];
  /** Things worth knowing that are not mismatches (connections the role host opened, ...). */
  notes: string[];
  /** Virtual (or real) ms the replay took. */
  elapsedMs: number;
  out: string | null;
}

/** Format a report for people. */
export function formatReplayReport(r: ReplayReport): string {
  const lines: string[] = [];
  lines.push(
    `frames ${r.frames} (${linkTypeName(r.linkType)}): ${r.injected} injected, ${r.fromRole} sent by the role host${r.roles.length === 1 ? '' : 's'} in the capture, ${r.unrelated} unrelated, ${r.undecodable} undecodable`,
  );
  lines.push(
    `stack answered with ${r.answers} frame${r.answers === 1 ? '' : 's'}; ${r.resolutionsAnswered} ARP/ND answered for it; ${r.checksumsFixed} checksum${r.checksumsFixed === 1 ? '' : 's'} fixed; ${r.gateTimeouts} TCP gate timeout${r.gateTimeouts === 1 ? '' : 's'}`,
  );
  for (const t of r.tcp) {
    const verdict = t.status !== 'compared' ? t.status : t.match ? 'match' : `MISMATCH at byte ${t.firstDifference}`;
    lines.push(`tcp ${t.client} -> ${t.server}: captured ${t.capturedBytes} bytes, stack ${t.liveBytes} bytes: ${verdict}`);
  }
  for (const u of r.udp) {
    lines.push(`udp ${u.flow}: ${u.datagramsIn} in, replies captured ${u.capturedReplies}, stack ${u.liveReplies}: ${u.match ? 'match' : 'MISMATCH'}`);
  }
  const i = r.icmp;
  if (i.echoRequestsIn > 0 || i.liveErrors > 0 || i.capturedEchoReplies > 0 || i.capturedErrors > 0) {
    lines.push(
      `icmp: ${i.echoRequestsIn} echo requests in, replies captured ${i.capturedEchoReplies}, stack ${i.liveEchoReplies}; errors captured ${i.capturedErrors}, stack ${i.liveErrors}`,
    );
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(r.ok ? 'result: ok' : `result: ${r.mismatches.length} mismatch${r.mismatches.length === 1 ? '' : 'es'}`);
  if (r.out !== null) lines.push(`answers written to ${r.out}`);
  return lines.join('\n');
}
