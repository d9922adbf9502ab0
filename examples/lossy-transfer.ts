/**
 * A bulk TCP transfer over a bad link: 2 MB from a sender to a receiver across a 10 Mbit/s link
 * with 20 ms of latency each way, 1% random loss and Gilbert-Elliott loss bursts. TCP's
 * retransmissions (SACK, fast recovery, RTO) deliver every byte in order; a SHA-256 of what
 * arrived proves it. Several seconds of virtual time take a fraction of a second.
 *
 *   npx tsx examples/lossy-transfer.ts [capture.pcap]
 */
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Random, type TcpEndpoint } from '../src/index.js';
import { Network } from '../src/sim/index.js';

export interface TransferResult {
  bytes: number;
  sentSha256: string;
  receivedSha256: string;
  retransmits: number;
  lost: number;
  burstLost: number;
  /** Virtual time when the last byte arrived. */
  virtualMs: number;
}

export async function lossyTransfer(options: { seed?: number; bytes?: number; capture?: string } = {}): Promise<TransferResult> {
  const size = options.bytes ?? 2_000_000;
  const net = new Network({ seed: options.seed ?? 1 });
  const sender = net.host('sender');
  const receiver = net.host('receiver');
  const link = net.link(sender, receiver, {
    latencyMs: 20,
    rateBps: 10_000_000,
    loss: 0.01,
    burstLoss: { p: 0.002, r: 0.3 },
  });
  if (options.capture) net.capture(sender, options.capture);

  const data = new Random(42).fill(new Uint8Array(size));
  const hash = createHash('sha256');
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    const listener = receiver.stack.tcp();
    listener.bind(null, 5001);
    listener.listen();
    const serve = (c: TcpEndpoint): void => {
      c.on('readable', () => {
        for (let chunk = c.read(); chunk !== null; chunk = c.read()) {
          hash.update(chunk);
          received += chunk.length;
        }
      });
      c.on('end', () => {
        c.close();
        listener.close();
        resolve();
      });
      c.on('error', reject);
    };
    // Take connections from the event and from the accept queue.
    listener.on('connection', (c) => {
      if (c) serve(c);
      for (let x = listener.accept(); x !== null; x = listener.accept()) serve(x);
    });
  });

  const client = sender.stack.tcp();
  let off = 0;
  const pump = (): void => {
    while (off < size) {
      const n = client.write(data.subarray(off, Math.min(size, off + 65536)));
      if (n === 0) return; // 'writable' comes back
      off += n;
    }
    client.shutdown();
  };
  client.on('connect', pump);
  client.on('writable', pump);
  client.connect(receiver.address, 5001);
  await net.runUntil(done, 600_000);
  const doneAt = net.now;
  const retransmits = client.info().totalRetrans;
  client.close();
  await net.runUntilIdle(120_000);
  const result: TransferResult = {
    bytes: received,
    sentSha256: createHash('sha256').update(data).digest('hex'),
    receivedSha256: hash.digest('hex'),
    retransmits,
    lost: link.stats.aToB.lost + link.stats.bToA.lost,
    burstLost: link.stats.aToB.burstLost + link.stats.bToA.burstLost,
    virtualMs: Math.round(doneAt),
  };
  net.close();
  return result;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t0 = Date.now();
  const r = await lossyTransfer({ capture: process.argv[2] });
  console.log(`${r.bytes} bytes, sha256 ${r.receivedSha256 === r.sentSha256 ? 'matches' : 'DIFFERS'}`);
  console.log(`${r.lost} packets lost at random, ${r.burstLost} in bursts; ${r.retransmits} retransmissions`);
  console.log(`${r.virtualMs} ms of virtual time in ${Date.now() - t0} ms`);
}
