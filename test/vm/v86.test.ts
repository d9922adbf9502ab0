/**
 * A real Linux guest in v86 (npm `v86`), in this Node process, on the sandbox's network through
 * V86Link and a FramePort: no socket, no root. Debian's i386 kernel, busybox and the NE2000
 * modules, SeaBIOS (helpers/guest.ts, fetched with apt-get download, never committed). The
 * guest's /init gets a lease, resolves a name through the gateway's DNS relay (the test's
 * lookup answers 10.0.2.2, the gateway to the host's loopback), downloads 4 MiB from a server on
 * the host's loopback and prints its sha256, then serves HTTP that the test fetches through a port
 * the in-process API publishes: a page, then 1 MiB the guest made, eight times (the guest's
 * transmit path; see initPrologue for the v86 interrupt bug it caught). Skips with the reason when the guest files cannot be had.
 * Heavy (about 15 s and 300 MB): run under `flock /tmp/heavy.lock`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { useHeavyGuest } from '../helpers/heavy.js';
import WebSocket from 'ws';
import { SandboxNetwork } from '../../src/sandbox/network.js';
import { FramePort } from '../../src/link/frame-port.js';
import { V86Link } from '../../src/link/v86.js';
import { v86GuestFiles, type V86GuestFiles } from './helpers/guest.js';
import { freeTcpPort, httpGet } from './helpers/http.js';
import { bootV86, initPrologue } from './helpers/v86.js';

const files = process.platform === 'linux' ? v86GuestFiles() : 'not Linux';
if (typeof files === 'string') console.log(`skipping the v86 guest test: ${files}`);

const NAME = 'files.tunstack.test';
/** What the guest serves back (random, made in the guest), fetched UPLOADS times. */
const UP_BYTES = 1 << 20;
const UPLOADS = 8;
const closers: Array<() => unknown> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** The guest's script after its lease: DNS (when `host` is the test name), the download, then an HTTP server. */
function guestScript(files: V86GuestFiles, host: string, port: number): string {
  return `${initPrologue(files)}
${host === NAME ? `nslookup ${NAME} 10.0.2.3 | grep -q '10.0.2.2' && echo "DNS ${NAME} is 10.0.2.2"` : ''}
echo "SHA $(wget -q -O - http://${host}:${port}/blob | sha256sum)"
dd if=/dev/urandom of=/www/up bs=65536 count=${UP_BYTES / 65536} 2>/dev/null
echo "UPSHA $(sha256sum /www/up | cut -d' ' -f1)"
httpd -p 80 -h /www
echo SERVING
while true; do sleep 1; done
`;
}

/** A blob on an HTTP server on the host's loopback; returns its port and sha256. */
async function blobServer(size: number): Promise<{ port: number; sha: string; close: () => void }> {
  const blob = randomBytes(size);
  const http = createServer((_req, res) => res.end(blob));
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  return { port: (http.address() as AddressInfo).port, sha: createHash('sha256').update(blob).digest('hex'), close: () => http.close() };
}

/** The lookup the guest's DNS relay uses: the test name is the gateway. */
const lookup = async (name: string, family: 4 | 6): Promise<Uint8Array[]> => (name === NAME && family === 4 ? [Uint8Array.of(10, 0, 2, 2)] : []);


useHeavyGuest();

describe.skipIf(typeof files === 'string')('a v86 guest in process (V86Link on a FramePort)', () => {
  it('gets a lease, resolves a name through the gateway DNS, downloads 4 MiB from the host loopback with the sha256 intact, serves a published port (8 uploads of 1 MiB, sha256 intact)', async () => {
    const g = files as V86GuestFiles;
    const blob = await blobServer(4 << 20);
    closers.push(blob.close);
    const port = new FramePort();
    const net = new SandboxNetwork({ link: port, icmp: 'gateway', ipv6: false, dnsLookup: lookup, dnsUpstream: [] });
    closers.push(() => net.close());
    const guest = bootV86(g, guestScript(g, NAME, blob.port), { type: 'ne2k' });
    closers.push(() => guest.stop());
    const link = new V86Link(guest.emulator, port);
    closers.push(() => link.close());

    await guest.waitFor(/^LEASE .*$/m, 180_000);
    await guest.waitFor(/^SHA .*$/m, 120_000);
    await guest.waitFor(/^SERVING$/m, 30_000);
    const out = guest.output();
    expect(out).toMatch(/LEASE 10\.0\.2\.100\/24 router 10\.0\.2\.2 dns 10\.0\.2\.3/);
    expect(out).toContain(`DNS ${NAME} is 10.0.2.2`);
    expect(out).toContain(`SHA ${blob.sha}`);

    const published = await freeTcpPort();
    const fwd = await net.publish({ protocol: 'tcp', hostPort: published, guestPort: 80 });
    closers.push(() => fwd.close());
    expect(await httpGet(published, '/index.html')).toMatch(/^HTTP\/1\.[01] 200 [^]*\r\n\r\nhello from the v86 guest\n$/);
    // Uploads: the guest sends (its NIC's transmit interrupts are what v86's PIC used to lose; see
    // initPrologue), each through the published port, checked against the sha256 the guest printed.
    const upSha = /^UPSHA ([0-9a-f]{64})$/m.exec(out)?.[1];
    expect(upSha).toBeDefined();
    for (let i = 0; i < UPLOADS; i++) {
      let timer: NodeJS.Timeout | undefined;
      const got = await Promise.race([
        httpGet(published, '/up'),
        new Promise<string>((_, reject) => (timer = setTimeout(() => reject(new Error(`upload ${i} from the guest did not end in 30 s; the guest printed:\n${guest.output().slice(-2000)}`)), 30_000))),
      ]).finally(() => clearTimeout(timer));
      const body = Buffer.from(got.slice(got.indexOf('\r\n\r\n') + 4), 'latin1');
      expect(body.length).toBe(UP_BYTES);
      expect(createHash('sha256').update(body).digest('hex')).toBe(upSha);
    }
    // The download went through the link: at least 4 MiB of frames into the guest's NIC.
    expect(port.stats.txBytes).toBeGreaterThan(4 << 20);
    expect(link.stats.framesOut).toBe(port.stats.txFrames);
    expect(link.stats.framesInDropped).toBe(0);
    console.log(`v86 in process: ${JSON.stringify(link.stats)} port ${JSON.stringify(port.stats)}`);
  }, 400_000);
});

describe.skipIf(typeof files === 'string')('a v86 guest over the WebSocket transport (tunstack vm --ws, v86 relay_url)', () => {
  it('gets a lease and downloads 4 MiB from the host loopback with the sha256 intact', async () => {
    const g = files as V86GuestFiles;
    const blob = await blobServer(4 << 20);
    closers.push(blob.close);
    const wsPort = await freeTcpPort();
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
    const tunstack = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'vm', '--ws', `127.0.0.1:${wsPort}`, '--icmp=gateway', '-v'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    closers.push(() => tunstack.kill('SIGTERM'));
    let err = '';
    tunstack.stderr.on('data', (b: Buffer) => (err += b.toString()));
    while (!err.includes('listening on')) {
      if (tunstack.exitCode !== null) throw new Error(`tunstack vm exited: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(err).toContain(`listening on ws://127.0.0.1:${wsPort}/ (per-connection guest network)`);
    // v86's relay opens a WebSocket with the global constructor, which Node 20 lacks: lend it ws's.
    const g2 = globalThis as { WebSocket?: unknown };
    const had = g2.WebSocket;
    g2.WebSocket = WebSocket;
    closers.push(() => (g2.WebSocket = had));
    const guest = bootV86(g, guestScript(g, '10.0.2.2', blob.port), { type: 'ne2k', relay_url: `ws://127.0.0.1:${wsPort}/` });
    closers.push(() => guest.stop());
    await guest.waitFor(/^LEASE .*$/m, 180_000);
    await guest.waitFor(/^SHA .*$/m, 120_000);
    const out = guest.output();
    expect(out).toMatch(/LEASE 10\.0\.2\.100\/24 router 10\.0\.2\.2 dns 10\.0\.2\.3/);
    expect(out).toContain(`SHA ${blob.sha}`);
  }, 400_000);
});
