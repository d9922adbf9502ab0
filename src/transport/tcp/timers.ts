/**
 * A connection's timers: at most three, created on first use and rescheduled, never allocated per
 * segment (retransmission/persist/handshake in recovery.ts, delayed ACK and keepalive/FIN_WAIT_2
 * here).
 */
import { TunstackError } from '../../core/errors.js';
import { KT_FIN_WAIT_2, KT_KEEPALIVE } from './constants.js';
import type { TcpEndpoint } from './endpoint.js';
import { onRtxTimer } from './recovery.js';
import { dataEndSeq, sendAck, sendProbe, sendRst } from './sender.js';
import { seqDiff } from './seq.js';
import { FIN_WAIT_2, SYN_RECEIVED } from './types.js';

export function armRtx(ep: TcpEndpoint, kind: number, ms: number): void {
  ep.rtxKind = kind;
  let t = ep.rtxTimer;
  if (t === null) t = ep.rtxTimer = ep.proto.stack.clock.timer(() => onRtxTimer(ep));
  t.schedule(ms);
}

export function armKeepalive(ep: TcpEndpoint, ms: number): void {
  ep.keepKind = KT_KEEPALIVE;
  let t = ep.keepTimer;
  if (t === null) t = ep.keepTimer = ep.proto.stack.clock.timer(() => onKeepTimer(ep));
  t.schedule(ms);
}

export function armFinWait2(ep: TcpEndpoint): void {
  ep.keepKind = KT_FIN_WAIT_2;
  let t = ep.keepTimer;
  if (t === null) t = ep.keepTimer = ep.proto.stack.clock.timer(() => onKeepTimer(ep));
  t.schedule(ep.proto.finTimeoutMs);
}

export function scheduleDelack(ep: TcpEndpoint): void {
  if (ep.ackLater) return;
  ep.ackLater = true;
  let t = ep.delackTimer;
  if (t === null) t = ep.delackTimer = ep.proto.stack.clock.timer(() => onDelackTimer(ep));
  t.schedule(ep.ato);
}

export function onDelackTimer(ep: TcpEndpoint): void {
  if (!ep.ackLater) return;
  ep.ackLater = false;
  if (!ep.isSynchronized() && ep.st !== SYN_RECEIVED) return;
  ep.proto.stats.delayedAcks++;
  sendAck(ep);
  ep.flushEvents();
}

export function onKeepTimer(ep: TcpEndpoint): void {
  const proto = ep.proto;
  const now = proto.stack.clock.now();
  if (ep.keepKind === KT_FIN_WAIT_2) {
    if (ep.st === FIN_WAIT_2) {
      ep.destroy(false);
      ep.flushEvents();
    }
    return;
  }
  if (!ep.keepAlive || !ep.isSynchronized()) return;
  // Only when idle: nothing in flight and nothing waiting to go.
  if (ep.sndUna !== ep.sndMax || seqDiff(dataEndSeq(ep), ep.sndNxt) > 0) {
    armKeepalive(ep, ep.keepIdle);
    return;
  }
  const idle = now - ep.lastHeard;
  if (idle < ep.keepIdle) {
    armKeepalive(ep, ep.keepIdle - idle);
    return;
  }
  const timedOut = ep.userTimeout > 0 ? idle >= ep.userTimeout && ep.kaProbes > 0 : ep.kaProbes >= ep.keepCnt;
  if (timedOut) {
    proto.stats.keepAliveTimeouts++;
    sendRst(ep, ep.sndMax);
    ep.fail(ep.softError ?? new TunstackError('ETIMEDOUT', 'keepalive timed out', 'read'));
    ep.flushEvents();
    return;
  }
  ep.kaProbes++;
  proto.stats.keepAliveProbes++;
  sendProbe(ep);
  armKeepalive(ep, ep.keepIntvl);
  ep.flushEvents();
}
