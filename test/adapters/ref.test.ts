import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// ref()/unref() and the event loop, as Node's: a child process (on a RealClock, the default) must
// stay alive while a listening server, a connecting or open socket or a bound dgram socket holds
// it, and exit once they are unref'd or closed. "alive" is printed by an unref'd Node timer,
// which only fires while something else keeps the loop running.

const root = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'tunstack-ref-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PRELUDE = `
import { EthernetEndpoint, Stack, Wire, parseMAC } from ${JSON.stringify(join(root, 'src/index.ts'))};
const wire = new Wire();
const a = new Stack({ seed: 1 });
const b = new Stack({ seed: 2 });
a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:05:01') }) }).addAddress('198.18.0.1/24');
b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:05:02') }) }).addAddress('198.18.0.2/24');
const alive = (ms) => setTimeout(() => { console.log('alive'); process.exit(0); }, ms).unref();
`;

function run(name: string, body: string): Promise<{ code: number | null; out: string }> {
  const file = join(dir, `${name}.mts`);
  writeFileSync(file, PRELUDE + body);
  return new Promise((res) => {
    execFile(process.execPath, ['--import', 'tsx', file], { cwd: root, timeout: 50_000 }, (err, stdout, stderr) => {
      if (stderr.trim()) console.log(name, stderr.slice(0, 2000));
      res({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: stdout.trim() });
    });
  });
}

/** Scenarios: the script, and whether the process must stay alive (until the unref'd timer). */
const SCENARIOS: Array<[string, boolean, string]> = [
  ['listening server', true, `b.net.createServer().listen(80); alive(300);`],
  ['top-level await on listening, then unref', false, `import { once } from 'node:events'; const s = b.net.createServer().listen(80); await once(s, 'listening'); s.unref(); alive(5000); console.log('listened');`],
  ['connecting socket (no answer)', true, `a.net.connect(80, '198.18.0.9').on('error', () => {}); alive(300);`],
  ['unref() connecting socket and dgram socket', false, `a.net.connect(80, '198.18.0.9').on('error', () => {}).unref(); a.dgram.createSocket('udp4').bind(53).unref(); alive(5000);`],
  ['open connection, server unref()', true, `b.net.createServer().listen(80).unref(); const c = a.net.connect(80, '198.18.0.2'); c.on('connect', () => alive(300));`],
  [
    'open connection ended and server closed',
    false,
    `const s = b.net.createServer((x) => x.end()).listen(80); const c = a.net.connect(80, '198.18.0.2'); c.resume(); c.on('connect', () => { s.close(); c.end(); }); c.on('close', (h) => console.log('closed', h)); alive(5000);`,
  ],
  ['bound dgram socket', true, `a.dgram.createSocket('udp4').bind(53); alive(300);`],
  ['stack.close() releases a listening server and a dgram socket', false, `a.dgram.createSocket('udp4').bind(53); b.net.createServer().listen(80).on('listening', () => { b.close(); a.close(); }); alive(5000);`],
];

describe('stack.net / stack.dgram keep the process alive as Node does', () => {
  it('stays alive while held, exits once released', async () => {
    const results = await Promise.all(SCENARIOS.map(([name, , body], i) => run(`s${i}`, body).then((r) => ({ name, ...r }))));
    const got = results.map((r) => ({ name: r.name, code: r.code, alive: r.out.split('\n').includes('alive') }));
    const want = SCENARIOS.map(([name, stays]) => ({ name, code: 0, alive: stays }));
    expect(got).toEqual(want);
    expect(results.find((r) => r.name === 'top-level await on listening, then unref')!.out).toBe('listened');
    expect(results.find((r) => r.name === 'open connection ended and server closed')!.out).toBe('closed false');
  }, 120_000);
});
