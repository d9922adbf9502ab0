import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest's default is one worker per core minus one: a single worker on this 2-core machine,
    // so every file ran in turn. Many files mostly wait (guests booting, kernel peers, sleeps
    // on real sockets), so two workers cut the suite from ~690 s to ~445 s here; the heavy
    // guests (QEMU, v86) still take turns (test/helpers/heavy.ts).
    maxWorkers: 2,
  },
});
