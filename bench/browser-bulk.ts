/**
 * The TCP bulk transfer of bench/browser.bench.ts, written once for both places it runs: in
 * headless Chromium (bundled as a module of its own, given the browser bundle as `lib`) and in
 * Node (given src/web/index.ts). Two stacks on an IP Wire at MTU 1500, checksums computed and
 * verified (no offload), on a ManualClock advanced to elapsed real time each loop turn, as
 * bench/tcp.bench.ts does; the loop runs synchronously as fast as it can. Only Web APIs.
 */
import type * as Tunstack from '../src/web/index.js';

export interface BulkResult {
  /** Payload Gbit/s of each round (A to B). */
  rounds: number[];
  /** Bytes B received in all (warm-up included) and whether they matched what A wrote. */
  received: number;
  intact: boolean;
}

export function tcpBulk(lib: typeof Tunstack, mtu: number, rounds: number, roundMs: number, warmMs: number): BulkResult {
  const clock = new lib.ManualClock();
  const wire = new lib.Wire({ mtu, wireFormat: 'ip', capabilities: 0, queueLength: 1 << 16 });
  const a = new lib.Stack({ clock, seed: 1 });
  const b = new lib.Stack({ clock, seed: 2 });
  a.createNIC({ name: 'eth0', endpoint: wire.a }).addAddress('10.0.0.1/24');
  b.createNIC({ name: 'eth0', endpoint: wire.b }).addAddress('10.0.0.2/24');
  const t0 = performance.now();
  const tick = (): void => {
    const t = performance.now() - t0;
    if (t > clock.now()) clock.advanceTo(t);
  };
  try {
    const listener = b.tcp();
    listener.bind(null, 5001);
    listener.listen(16);
    const client = a.tcp();
    client.connect('10.0.0.2', 5001);
    const server = listener.accept();
    if (server === null || client.state !== 'ESTABLISHED') throw new Error('handshake did not complete');
    // 1 MiB of a byte pattern, written round and round; B checks every byte it reads.
    const src = new Uint8Array(1 << 20);
    for (let i = 0; i < src.length; i++) src[i] = (i * 31) & 0xff;
    let off = 0;
    let received = 0;
    let intact = true;
    const step = (): void => {
      for (let k = 0; k < 16; k++) {
        const w = client.write(off === 0 ? src : src.subarray(off));
        off = (off + w) % src.length;
        for (let c = server.readChunk(); c !== null; c = server.readChunk()) {
          // Spot-check the first and last byte of each chunk against the pattern.
          const at = received % src.length;
          if (c[0] !== src[at] || c[c.length - 1] !== src[(received + c.length - 1) % src.length]) intact = false;
          received += c.length;
        }
        if (w === 0 && server.readableLength === 0) break;
      }
      tick();
    };
    const warm = performance.now() + warmMs;
    while (performance.now() < warm) step();
    const rates: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const r0 = received;
      const s = performance.now();
      let now = s;
      while (now < s + roundMs) {
        step();
        now = performance.now();
      }
      rates.push(((received - r0) * 8) / ((now - s) / 1000) / 1e9);
    }
    return { rounds: rates, received, intact };
  } finally {
    a.close();
    b.close();
  }
}
