/**
 * One heavy guest at a time across vitest's worker processes (QEMU, v86 in Node, v86 in
 * Chromium each take hundreds of MB and a core for tens of seconds; two at once on a 2-core
 * machine make both time out). `useHeavyGuest()` at the top of a test file holds a lock, a
 * directory in the temp dir that names its holder's pid, from the file's first test to its
 * end; a lock whose holder died is taken over.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

const LOCK = join(tmpdir(), 'tunstack-heavy-guest.lock');
/** How long a file waits for the others (the three heavy files take about 3 minutes together). */
const WAIT_MS = 400_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryLock(): boolean {
  try {
    mkdirSync(LOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    let holder = NaN;
    try {
      holder = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
    } catch {
      /* being written or removed: wait */
      return false;
    }
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) rmSync(LOCK, { recursive: true, force: true });
    return false;
  }
  writeFileSync(join(LOCK, 'pid'), String(process.pid));
  return true;
}

export function useHeavyGuest(): void {
  let held = false;
  beforeAll(async () => {
    const until = Date.now() + WAIT_MS - 5000;
    while (!tryLock()) {
      if (Date.now() > until) throw new Error(`another heavy guest test held ${LOCK} for ${WAIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 250));
    }
    held = true;
  }, WAIT_MS);
  afterAll(() => {
    if (held) rmSync(LOCK, { recursive: true, force: true });
  });
}
