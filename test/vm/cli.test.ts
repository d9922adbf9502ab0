/**
 * `tunstack vm`: the guest network over a unix socket with a fake VM monitor as COMMAND (a Node
 * script speaking QEMU's stream framing, datagrams or v86's WebSocket relay), whose exit status
 * tunstack returns; usage errors.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tunstack } from '../cli/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-vm-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A fake QEMU: connects, asks ARP for the gateway, prints the answer's sender, exits with 7.
const FAKE_QEMU = `
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
const [how, where] = process.argv.slice(2);
const [host, port] = where.split(':');
const mac = Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const arp = Buffer.concat([Buffer.alloc(6, 0xff), mac, Buffer.from([8, 6, 0, 1, 8, 0, 6, 4, 0, 1]), mac,
  Buffer.from([10, 0, 2, 100]), Buffer.alloc(6), Buffer.from([10, 0, 2, 2])]);
const frame = (f) => {
  if (f[12] === 8 && f[13] === 6 && f[21] === 2) {
    console.log('gateway ' + [...f.subarray(28, 32)].join('.') + ' is at ' + [...f.subarray(22, 28)].map((x) => x.toString(16).padStart(2, '0')).join(':'));
    process.exit(7);
  }
};
if (how === 'ws') {
  // argv[4]: where the ws package is (this script runs outside the checkout).
  const { default: WebSocket } = await import(process.argv[4]);
  const ws = new WebSocket('ws://' + where + '/');
  ws.on('open', () => ws.send(arp));
  ws.on('message', (d) => frame(d));
} else if (how === 'udp') {
  const u = createSocket('udp4');
  u.on('message', frame);
  u.send(arp, Number(port), host);
} else {
  const s = how === 'unix' ? connect(where) : connect(Number(port), host);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(arp.length);
  s.on('connect', () => s.write(Buffer.concat([len, arp])));
  let buf = Buffer.alloc(0);
  s.on('data', (b) => {
    buf = Buffer.concat([buf, b]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const f = buf.subarray(4, 4 + buf.readUInt32BE(0));
      buf = buf.subarray(4 + f.length);
      frame(f);
    }
  });
}
setTimeout(() => process.exit(3), 20000).unref();
`;
const fake = join(dir, 'fake-qemu.mjs');
writeFileSync(fake, FAKE_QEMU);

describe('tunstack vm', () => {
  it('--socket: runs the monitor once the socket listens, serves it ARP, exits with its status', () => {
    const sock = join(dir, 'vm.sock');
    const r = tunstack(['vm', '--socket', sock, '--icmp=gateway', '--', process.execPath, fake, 'unix', sock]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('gateway 10.0.2.2 is at 52:55:0a:00:02:02\n');
    expect(r.status).toBe(7);
  });

  it('--listen-tcp: the same over TCP on the loopback (QEMU -netdev socket,connect=)', async () => {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const r = tunstack(['vm', '--listen-tcp', `127.0.0.1:${port}`, '--icmp=gateway', '-v', '--', process.execPath, fake, 'tcp', `127.0.0.1:${port}`]);
    expect(r.stdout, r.stderr).toBe('gateway 10.0.2.2 is at 52:55:0a:00:02:02\n');
    expect(r.status).toBe(7);
    expect(r.stderr).toMatch(/"connections":1/);
  });

  it('--listen-udp: the same with one frame per datagram (QEMU -netdev dgram,...type=inet)', async () => {
    const probe = createSocket('udp4').bind(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r()));
    const r = tunstack(['vm', '--listen-udp', `127.0.0.1:${port}`, '--icmp=gateway', '-v', '--', process.execPath, fake, 'udp', `127.0.0.1:${port}`]);
    expect(r.stdout, r.stderr).toBe('gateway 10.0.2.2 is at 52:55:0a:00:02:02\n');
    expect(r.status).toBe(7);
    expect(r.stderr).toMatch(/"framesIn":1,/);
  });

  it('--ws: the same over a WebSocket, one binary message per frame (v86 relay_url)', async () => {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const wsModule = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('ws')), 'wrapper.mjs')).href;
    const r = tunstack(['vm', '--ws', `127.0.0.1:${port}`, '--icmp=gateway', '-v', '--', process.execPath, fake, 'ws', `127.0.0.1:${port}`, wsModule]);
    expect(r.stdout, r.stderr).toBe('gateway 10.0.2.2 is at 52:55:0a:00:02:02\n');
    expect(r.status).toBe(7);
    expect(r.stderr).toContain(`listening on ws://127.0.0.1:${port}/ (per-connection guest network)`);
    expect(r.stderr).toMatch(/"connections":1,/);
  });

  it('a command that cannot be run gives 127', () => {
    const r = tunstack(['vm', '--socket', join(dir, 'x.sock'), '--icmp=gateway', '--', join(dir, 'no-such-monitor')]);
    expect(r.status).toBe(127);
    expect(r.stderr).toContain('cannot run');
  });

  it('usage errors give status 2 with a reason', () => {
    for (const [args, why] of [
      [[], 'give one of --socket PATH, --dgram PATH, --listen-tcp HOST:PORT, --listen-udp HOST:PORT or --ws HOST:PORT'],
      [['--socket', 'a', '--ws', '127.0.0.1:1'], 'give one of'],
      [['--ws', 'localhost:1'], '--ws wants HOST:PORT'],
      [['--socket', 'a', '--ws-shared'], '--ws-origin, --ws-shared and --ws-max-guests go with --ws'],
      [['--ws', '127.0.0.1:1', '-p', '8080:80'], '-p and --pcap need one guest network: with --ws, add --ws-shared'],
      [['--ws', '127.0.0.1:1', '--ws-max-guests', '0'], '--ws-max-guests needs an integer in 1..1024'],
      [['--socket', 'a', '--dgram', 'b'], 'give one of'],
      [['--socket', 'a', '--listen-udp', '127.0.0.1:1'], 'give one of'],
      [['--listen-udp', '127.0.0.1'], '--listen-udp wants HOST:PORT'],
      [['--socket', 'a', '--listen-tcp', '127.0.0.1:1'], 'give one of'],
      [['--listen-tcp', 'localhost'], '--listen-tcp wants HOST:PORT'],
      [['--socket', 'a', '--mtu', '100'], '--mtu needs an integer in 1280..65520'],
      [['--socket', 'a', '-p', 'x'], 'bad --publish'],
      [['--socket', 'a', '--icmp', 'no'], '--icmp wants auto, relay or gateway'],
    ] as const) {
      const r = tunstack(['vm', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(why);
    }
  });
});
