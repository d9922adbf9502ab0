/**
 * TIME_WAIT (RFC 9293 3.6): a connection that reaches it leaves the table and a light record
 * takes its place.
 */
import type { TcpEndpoint } from './endpoint.js';
import { sendAck } from './sender.js';

export function enterTimeWait(ep: TcpEndpoint): void {
  // The last ACK goes out before the endpoint turns into a TIME_WAIT record.
  if (ep.ackNow || ep.lastAckSent !== ep.rcvNxt) sendAck(ep);
  ep.proto.enterTimeWait(ep);
  ep.destroy(false);
}
