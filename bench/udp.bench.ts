/**
 * UDP datagrams per second, 64-byte payloads: two tunstack stacks joined by a Wire (ARP, IPv4,
 * checksums computed and verified) beside Node's own dgram over the kernel's loopback, same run.
 */
import { createSocket } from 'node:dgram';
import { ManualClock, Stack, parseMAC } from '../src/index.js';
import { EthernetEndpoint } from '../src/link/ethernet.js';
import { Wire } from '../src/link/wire.js';
import type { BenchRow } from './run.js';

const PAYLOAD = 64;
const DURATION_MS = 1500;

function tunstackRate(): number {
  const clock = new ManualClock();
  const wire = new Wire({ clock, queueLength: 4096 });
  const a = new Stack({ clock, seed: 1 });
  const b = new Stack({ clock, seed: 2 });
  a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:00:01') }) }).addAddress('10.0.0.1/24');
  b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:00:02') }) }).addAddress('10.0.0.2/24');
  const rx = b.udp();
  rx.bind('10.0.0.2', 9000);
  const tx = a.udp();
  tx.connect('10.0.0.2', 9000);
  const payload = new Uint8Array(PAYLOAD).fill(0x5a);
  // Warm up (ARP resolution, JIT).
  for (let i = 0; i < 20000; i++) {
    tx.send(payload);
    rx.recv();
  }
  let received = 0;
  const start = performance.now();
  let now = start;
  while (now - start < DURATION_MS) {
    for (let i = 0; i < 256; i++) tx.send(payload);
    while (rx.recv() !== null) received++;
    now = performance.now();
  }
  const rate = received / ((now - start) / 1000);
  a.close();
  b.close();
  return rate;
}

async function nodeRate(): Promise<number> {
  const rx = createSocket('udp4');
  const tx = createSocket('udp4');
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  const port = rx.address().port;
  await new Promise<void>((r) => tx.connect(port, '127.0.0.1', () => r()));
  const payload = Buffer.alloc(PAYLOAD, 0x5a);
  let received = 0;
  rx.on('message', () => received++);
  // Keep a bounded number of sends in flight so the kernel's socket buffer is not overrun.
  let inflight = 0;
  let running = true;
  const pump = (): void => {
    while (running && inflight < 64) {
      inflight++;
      tx.send(payload, () => {
        inflight--;
        if (inflight === 0) setImmediate(pump);
      });
    }
  };
  const warm = new Promise<void>((r) => setTimeout(r, 300));
  pump();
  await warm;
  received = 0;
  const start = performance.now();
  await new Promise<void>((r) => setTimeout(r, DURATION_MS));
  const elapsed = performance.now() - start;
  const n = received;
  running = false;
  await new Promise<void>((r) => setTimeout(r, 50));
  tx.close();
  rx.close();
  return n / (elapsed / 1000);
}

export default async function run(): Promise<BenchRow[]> {
  const ours = tunstackRate();
  const ref = await nodeRate();
  return [
    {
      name: 'UDP datagrams/s, 64 B, two stacks over a Wire',
      value: ours,
      unit: 'dgram/s',
      reference: ref,
      referenceName: "Node dgram over kernel loopback",
      ratio: ours / ref,
    },
  ];
}
