/**
 * `ReplayOptions.serveCaptured`: the stack listens on the role host's captured TCP ports and plays
 * the role host's side of each captured connection, turn by turn, so a replayed client gets the
 * captured answers from the live stack.
 */
import type { NetStack } from '../stack/stack.js';
import type { TcpEndpoint } from '../transport/tcp/endpoint.js';
import type { TcpProtocol } from '../transport/tcp/protocol.js';
import type { CaptureAnalysis, CapturedTcpFlow } from './analyze.js';

/** Serve captured TCP connections (see ReplayOptions.serveCaptured). */
export function serveCaptured(stack: NetStack, a: CaptureAnalysis): void {
  const tcp = stack.transportProtocol(6) as TcpProtocol | undefined;
  if (tcp === undefined) return;
  const byClient = new Map<string, CapturedTcpFlow[]>();
  const ports = new Map<string, { ip: string; port: number }>();
  for (const f of a.tcp) {
    if (f.opener !== 'peer') continue;
    const k = `${f.peerIp}|${f.peerPort}|${f.roleIp}|${f.rolePort}`;
    const list = byClient.get(k) ?? [];
    list.push(f);
    byClient.set(k, list);
    ports.set(`${f.roleIp}|${f.rolePort}`, { ip: f.roleIp, port: f.rolePort });
  }
  for (const { ip, port } of ports.values()) {
    const family = ip.includes(':') ? 6 : 4;
    const ep = tcp.createEndpoint({ family }) as TcpEndpoint;
    ep.bind(ip, port, { reuseAddress: true });
    ep.listen(128);
    const seen = new WeakSet<TcpEndpoint>();
    const take = (c: TcpEndpoint): void => {
      if (seen.has(c)) return;
      seen.add(c);
      const list = byClient.get(`${c.remoteAddress}|${c.remotePort}|${c.localAddress}|${c.localPort}`);
      const f = list?.shift();
      if (f === undefined) {
        c.abort();
        return;
      }
      mimic(c, f);
    };
    ep.on('connection', (child) => {
      if (child) take(child);
      for (let c = ep.accept(); c !== null; c = ep.accept()) take(c);
    });
  }
}

/** Play the role host's side of one captured connection on a live endpoint, turn by turn. */
function mimic(c: TcpEndpoint, f: CapturedTcpFlow): void {
  const data = f.roleData.bytes();
  let turn = 0;
  let sent = 0; // role bytes written
  let wantRead = 0; // peer bytes to read before the next role turn
  let readBytes = 0;
  let pendingOut: Uint8Array | null = null;
  let finished = false;
  const step = (): void => {
    for (;;) {
      if (pendingOut !== null) {
        let n = 0;
        try {
          n = c.write(pendingOut);
        } catch {
          finished = true;
          return;
        }
        pendingOut = n < pendingOut.length ? pendingOut.subarray(n) : null;
        if (pendingOut !== null) return; // 'writable' resumes
      }
      for (let chunk = c.read(); chunk !== null; chunk = c.read()) readBytes += chunk.length;
      if (readBytes < wantRead) return; // 'readable' resumes
      if (turn >= f.turns.length) {
        if (!finished && f.roleFin) {
          finished = true;
          c.shutdown();
        }
        return;
      }
      const t = f.turns[turn++]!;
      if (t.from === 'peer') wantRead += t.bytes;
      else {
        const end = Math.min(data.length, sent + t.bytes);
        pendingOut = data.subarray(sent, end);
        sent = end;
        if (pendingOut.length === 0) pendingOut = null;
      }
    }
  };
  c.on('readable', step);
  c.on('writable', step);
  c.on('end', () => {
    for (let chunk = c.read(); chunk !== null; chunk = c.read()) readBytes += chunk.length;
    step();
  });
  c.on('error', () => {});
  step();
}
