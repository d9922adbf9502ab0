import type { EventEmitter } from 'eventemitter3';
import type { TunstackError } from '../errors.js';

/**
 * The TCP endpoint surface the net adapter uses (src/transport/tcp implements it). Kept as a
 * structural type so the adapter depends on the behaviour, not the implementation class.
 */
export type TcpStateName =
  | 'CLOSED' | 'LISTEN' | 'SYN_SENT' | 'SYN_RECEIVED' | 'ESTABLISHED' | 'FIN_WAIT_1' | 'FIN_WAIT_2'
  | 'CLOSE_WAIT' | 'CLOSING' | 'LAST_ACK' | 'TIME_WAIT';

export interface TcpEndpointEventsShape {
  connect: [];
  connection: [TcpEndpointShape];
  readable: [];
  writable: [];
  end: [];
  close: [];
  error: [TunstackError];
}

export interface TcpEndpointShape extends EventEmitter<TcpEndpointEventsShape> {
  readonly family: 4 | 6;
  readonly state: TcpStateName;
  readonly localAddress: string | null;
  readonly localPort: number;
  readonly remoteAddress: string | null;
  readonly remotePort: number;
  readonly readEnded: boolean;
  readonly writableLength: number;
  bind(address: string | null, port: number, options?: { reuseAddress?: boolean }): void;
  listen(backlog?: number): void;
  accept(): TcpEndpointShape | null;
  connect(address: string, port: number): void;
  read(max?: number): Uint8Array | null;
  write(data: Uint8Array): number;
  shutdown(): void;
  close(): void;
  abort(): void;
  setNoDelay(on: boolean): void;
  setKeepAlive(on: boolean, idleMs?: number, intervalMs?: number, count?: number): void;
  info(): object;
}

export interface TcpProtocolShape {
  createEndpoint(options?: { family?: 4 | 6 }): TcpEndpointShape;
}
