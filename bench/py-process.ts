/**
 * A python3 program in a network namespace that the benches keep running and talk to a line at a
 * time: commands on its stdin, one answer line per step on its stdout. The kernel-side programs
 * of kernel-tcp and tap-rx run this way, started once before anything is timed, because spawning
 * forks this process, and after a fork every page this process writes faults once (10-14 us a
 * page on one machine here): a transfer timed right after a spawn pays for the whole heap.
 */
import type { Netns } from '../test/interop/helpers/netns.js';

export class PyProcess {
  private readonly child: ReturnType<Netns['spawn']>;
  private readonly lines: string[] = [];
  private readonly waiters: Array<{ ok: (line: string) => void; fail: (e: Error) => void }> = [];
  private exited: Error | null = null;

  /** `name` labels its errors; `args` follow the script as sys.argv[1:]. */
  constructor(
    ns: Netns,
    script: string,
    private readonly name: string,
    args: string[] = [],
  ) {
    this.child = ns.spawn('python3', ['-c', script, ...args]);
    let text = '';
    this.child.stdout!.on('data', (b: Buffer) => {
      text += b.toString();
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n')) {
        const line = text.slice(0, i);
        text = text.slice(i + 1);
        const w = this.waiters.shift();
        if (w !== undefined) w.ok(line);
        else this.lines.push(line);
      }
    });
    this.child.stderr!.on('data', (b: Buffer) => process.stderr.write(b));
    this.child.on('close', (code) => {
      this.exited = new Error(`${name} exited (${code})`);
      for (const w of this.waiters.splice(0)) w.fail(this.exited);
    });
  }

  /** Write one line (a command) to its stdin. */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** The next line it prints (within 120 s). */
  next(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.exited !== null) return Promise.reject(this.exited);
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${this.name}: no answer in 120 s`)), 120_000);
      this.waiters.push({
        ok: (l) => {
          clearTimeout(timer);
          ok(l);
        },
        fail,
      });
    });
  }

  /** The next line, which must start with `word`; what follows it. */
  async expect(word: string): Promise<string> {
    const line = await this.next();
    if (line !== word && !line.startsWith(`${word} `)) throw new Error(`${this.name}: ${line}`);
    return line.slice(word.length + 1);
  }

  close(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}
