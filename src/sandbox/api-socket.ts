/**
 * The sandbox's control socket (`--api-socket PATH`): a Unix stream socket speaking slirp4netns's
 * JSON API, so tools written for slirp4netns (rootlesskit's port driver, podman) can add and
 * remove port forwards while the sandbox runs.
 *
 * One request per connection: the client writes one JSON object (under 4096 bytes) and shuts
 * its side down (or just waits); the answer is one JSON object, then the connection closes.
 *
 *   {"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,
 *     "guest_addr":"10.0.2.100","guest_port":80}}            -> {"return":{"id":1}}
 *   {"execute":"list_hostfwd"}                               -> {"return":{"entries":[{"id":1,
 *     "proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}]}}
 *   {"execute":"remove_hostfwd","arguments":{"id":1}}        -> {"return":{}}
 *   anything wrong                                           -> {"error":{"desc":"bad request: ..."}}
 *
 * As slirp4netns: host_addr defaults to 0.0.0.0 and must be IPv4, guest_addr defaults to
 * 10.0.2.100 and must be a guest address in 10.0.2.0/24, ports are 1..65535, ids count from 1 and
 * are never reused; the error texts follow slirp4netns's ("bad request: add_hostfwd: bad
 * arguments.proto"). list_hostfwd answers in the documented shape (entries under "return");
 * slirp4netns 1.2.0 itself leaves out the "return" level there.
 */
import { existsSync, lstatSync, rmSync } from 'node:fs';
import { connect, createServer, isIPv4, type Server, type Socket } from 'node:net';
import { TunstackError } from '../core/errors.js';
import { ipv4ToU32, maskAddress, tryParseIPv4 } from '../core/address.js';
import type { SandboxAddresses } from './addresses.js';
import type { PublishedPort, SandboxNetwork } from './network.js';

/** Requests are refused at this size, as slirp4netns's are. */
export const API_REQUEST_MAX = 4096;
/** A connection that sends no complete request in this long is closed. */
const API_IDLE_MS = 10_000;

export interface HostFwdEntry {
  id: number;
  proto: 'tcp' | 'udp';
  host_addr: string;
  host_port: number;
  guest_addr: string;
  guest_port: number;
}

type Reply = { return: Record<string, unknown> } | { error: { desc: string } };

const bad = (desc: string): Reply => ({ error: { desc: `bad request: ${desc}` } });

function port(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535 ? v : null;
}

/**
 * Whether `a` is an address a guest may have: in the guest's IPv4 network (10.0.2.0/24 by
 * default), not its network, gateway, DNS or broadcast address.
 */
function guestAddress(a: string, d: SandboxAddresses): boolean {
  const x = tryParseIPv4(a);
  if (x === null || !isIPv4(a)) return false;
  const net = ipv4ToU32(maskAddress(tryParseIPv4(d.guest4)!, d.prefix4));
  const v = ipv4ToU32(x);
  const last = (net + 2 ** (32 - d.prefix4) - 1) >>> 0;
  return v > net && v < last && ipv4ToU32(maskAddress(x, d.prefix4)) === net && a !== d.gateway4 && a !== d.dns4;
}

/** slirp4netns's API over a SandboxNetwork's published ports. */
export class HostFwdApi {
  private readonly entries = new Map<number, { entry: HostFwdEntry; port: PublishedPort }>();
  private nextId = 1;

  constructor(private readonly network: SandboxNetwork) {}

  /** Answer one request (its raw text). */
  async handle(text: string): Promise<Reply> {
    let req: unknown;
    try {
      req = JSON.parse(text);
    } catch {
      return bad('cannot parse JSON');
    }
    if (typeof req !== 'object' || req === null || Array.isArray(req)) return bad('cannot parse JSON');
    const { execute, arguments: args } = req as { execute?: unknown; arguments?: unknown };
    if (typeof execute !== 'string') return bad('no execute found');
    const a = typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>) : {};
    switch (execute) {
      case 'add_hostfwd':
        return this.add(a);
      case 'list_hostfwd':
        return { return: { entries: [...this.entries.values()].map((e) => ({ ...e.entry })) } };
      case 'remove_hostfwd': {
        const id = a.id;
        const e = typeof id === 'number' ? this.entries.get(id) : undefined;
        if (e === undefined) return bad('remove_hostfwd: bad arguments.id');
        e.port.close();
        this.entries.delete(e.entry.id);
        return { return: {} };
      }
      default:
        return bad('unknown execute');
    }
  }

  private async add(a: Record<string, unknown>): Promise<Reply> {
    const proto = a.proto;
    if (proto !== 'tcp' && proto !== 'udp') return bad('add_hostfwd: bad arguments.proto');
    const hostAddr = a.host_addr ?? '0.0.0.0';
    if (typeof hostAddr !== 'string' || !isIPv4(hostAddr)) return bad('add_hostfwd: bad arguments.host_addr');
    const hostPort = port(a.host_port);
    if (hostPort === null) return bad('add_hostfwd: bad arguments.host_port');
    const guestAddr = a.guest_addr ?? this.network.addresses.guest4;
    if (typeof guestAddr !== 'string' || !guestAddress(guestAddr, this.network.addresses)) return bad('add_hostfwd: bad arguments.guest_addr');
    const guestPort = port(a.guest_port);
    if (guestPort === null) return bad('add_hostfwd: bad arguments.guest_port');
    let published: PublishedPort;
    try {
      published = await this.network.publish({ protocol: proto, hostAddress: hostAddr, hostPort, guestAddress: guestAddr, guestPort });
    } catch (e) {
      return bad(`add_hostfwd: cannot listen on ${hostAddr}:${hostPort}/${proto}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const id = this.nextId++;
    this.entries.set(id, { entry: { id, proto, host_addr: hostAddr, host_port: hostPort, guest_addr: guestAddr, guest_port: guestPort }, port: published });
    return { return: { id } };
  }

  /** Stop every forward added through the API. */
  close(): void {
    for (const e of this.entries.values()) e.port.close();
    this.entries.clear();
  }
}

/** Whether `path` is a Unix socket nobody listens on (left by a process that was killed). */
async function staleSocket(path: string): Promise<boolean> {
  try {
    if (!lstatSync(path).isSocket()) return false;
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(false);
    });
    c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

/**
 * Serve `api` on a Unix socket at `path`; resolves once it listens. A socket left there by a
 * process that was killed is replaced; anything else at `path` is refused (EEXIST).
 */
export async function listenApiSocket(path: string, api: HostFwdApi): Promise<{ server: Server; close: () => void }> {
  if (await staleSocket(path)) rmSync(path, { force: true });
  if (existsSync(path)) throw new TunstackError('EEXIST', `--api-socket ${path}: the file exists (another program's socket or file)`);
  // Half-open: the answer goes out after the client has shut down its side.
  const server = createServer({ allowHalfOpen: true }, (sock: Socket) => {
    let buf = '';
    let answered = false;
    sock.setEncoding('utf8');
    sock.setTimeout(API_IDLE_MS, () => sock.destroy());
    sock.on('error', () => {});
    const answer = (reply: Reply): void => {
      if (answered) return;
      answered = true;
      sock.end(JSON.stringify(reply));
    };
    const tryAnswer = (final: boolean): void => {
      if (answered) return;
      if (buf.length >= API_REQUEST_MAX) return answer(bad(`request too large (${API_REQUEST_MAX} bytes or more)`));
      // One JSON object per connection: answered as soon as it parses, or at the client's EOF.
      let complete = final;
      if (!complete) {
        try {
          JSON.parse(buf);
          complete = true;
        } catch {
          /* more to come */
        }
      }
      if (!complete) return;
      answered = true;
      sock.pause();
      api.handle(buf).then(
        (r) => sock.end(JSON.stringify(r)),
        (e: unknown) => sock.end(JSON.stringify({ error: { desc: `internal error: ${(e as Error).message}` } })),
      );
    };
    sock.on('data', (chunk: string) => {
      buf += chunk;
      tryAnswer(false);
    });
    sock.on('end', () => tryAnswer(true));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  server.on('error', () => {});
  let closed = false;
  return {
    server,
    close: () => {
      if (closed) return;
      closed = true;
      server.close();
      try {
        if (lstatSync(path).isSocket()) rmSync(path, { force: true });
      } catch {
        /* already gone */
      }
    },
  };
}
