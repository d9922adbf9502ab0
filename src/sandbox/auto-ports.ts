/**
 * pasta's `-t auto` / `-u auto`: the guest's bound ports, read from its namespace's
 * /proc/net/{tcp,tcp6,udp,udp6} every second, are published on the host's loopback (the same
 * port number), and unpublished when the guest closes them. Ports bound to the guest's own
 * loopback only are left alone (nothing from outside could reach them). A host port already in
 * use is reported once and skipped.
 */
import { spawn } from 'node:child_process';
import type { PortForward, PublishedPort, SandboxNetwork } from './network.js';

export interface AutoPortsOptions {
  tcp: boolean;
  udp: boolean;
  exclude: { tcp: Set<number>; udp: Set<number> };
}

/**
 * The ports bound in one /proc/net/{tcp,udp}[6] table: TCP sockets listening (state 0A), UDP
 * sockets bound and unconnected (state 07, remote port 0); loopback-only ones left out.
 */
export function boundPorts(table: string, protocol: 'tcp' | 'udp'): Set<number> {
  const out = new Set<number>();
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [local, remote, state] = [f[1]!, f[2]!, f[3]!];
    if (protocol === 'tcp' ? state !== '0A' : state !== '07' || !remote.endsWith(':0000')) continue;
    const [addr, port] = local.split(':');
    if (addr === undefined || port === undefined) continue;
    // 127.0.0.0/8 (little-endian hex in the kernel's table: last byte 7F) and ::1.
    if ((addr.length === 8 && addr.endsWith('7F')) || addr === '00000000000000000000000001000000') continue;
    out.add(parseInt(port, 16));
  }
  return out;
}

/** Read the four tables from inside the namespace (argv prefix enters it, e.g. nsenter --net=PATH). */
function readTables(enter: string[]): Promise<{ tcp: string; udp: string } | null> {
  return new Promise((resolve) => {
    const script = 'for f in tcp tcp6; do cat /proc/self/net/$f; done; echo "=== udp"; for f in udp udp6; do cat /proc/self/net/$f; done';
    const c = spawn(enter[0]!, [...enter.slice(1), 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    c.stdout.setEncoding('utf8');
    c.stdout.on('data', (s: string) => (text += s));
    c.once('error', () => resolve(null));
    c.once('close', (code) => {
      if (code !== 0) return resolve(null);
      const i = text.indexOf('=== udp\n');
      resolve(i < 0 ? null : { tcp: text.slice(0, i), udp: text.slice(i + 8) });
    });
  });
}

export class AutoPorts {
  private readonly published = new Map<string, PublishedPort>();
  private readonly refused = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private stopped = false;

  constructor(
    private readonly network: SandboxNetwork,
    private readonly enter: string[],
    private readonly options: AutoPortsOptions,
    private readonly log: (m: string) => void,
    private readonly warn: (m: string) => void,
    /** Ports published otherwise (fixed forwards): not published again. */
    private readonly fixed: PortForward[] = [],
  ) {}

  /** Start following (a first pass at once); `intervalMs` between passes. */
  start(intervalMs = 1000): Promise<void> {
    this.timer = setInterval(() => void this.pass(), intervalMs);
    return this.pass();
  }

  /** One pass: publish new bound ports, unpublish gone ones. */
  async pass(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const t = await readTables(this.enter);
      if (t === null || this.stopped) return;
      const want = new Set<string>();
      for (const protocol of ['tcp', 'udp'] as const) {
        if (!this.options[protocol]) continue;
        for (const port of boundPorts(t[protocol], protocol)) {
          if (this.options.exclude[protocol].has(port) || this.fixed.some((f) => f.protocol === protocol && f.hostPort === port)) continue;
          want.add(`${protocol}/${port}`);
        }
      }
      for (const [key, p] of this.published) {
        if (want.has(key)) continue;
        p.close();
        this.published.delete(key);
        this.log(`auto: ${key} no longer bound in the guest: unpublished`);
      }
      for (const key of want) {
        if (this.published.has(key) || this.refused.has(key)) continue;
        const [protocol, port] = key.split('/') as ['tcp' | 'udp', string];
        const hostAddress = this.network.ipv4 ? '127.0.0.1' : '::1';
        let p: PublishedPort;
        try {
          p = await this.network.publish({ protocol, hostAddress, hostPort: Number(port), guestPort: Number(port) });
        } catch (e) {
          this.refused.add(key);
          this.warn(`auto: cannot publish ${key} on ${hostAddress}: ${(e as Error).message}`);
          continue;
        }
        if (this.stopped) {
          p.close();
          break;
        }
        this.published.set(key, p);
        this.log(`auto: ${key} bound in the guest: published on ${hostAddress}`);
      }
    } finally {
      this.busy = false;
    }
  }

  /** The forwards published now ("tcp/8080", ...). */
  get ports(): string[] {
    return [...this.published.keys()];
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    for (const p of this.published.values()) p.close();
    this.published.clear();
  }
}
