/** Small loopback helpers shared by the guest tests. */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';

/** A raw HTTP/1.0 GET on the loopback (busybox httpd's CGI headers end lines with LF alone, which fetch refuses). */
export function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1', () => c.write(`GET ${path} HTTP/1.0\r\n\r\n`));
    let got = '';
    c.on('data', (b: Buffer) => (got += b.toString('latin1')));
    c.on('close', () => resolve(got));
    c.on('error', (e) => resolve(e.message));
  });
}

/** A TCP port free on the loopback now. */
export async function freeTcpPort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
