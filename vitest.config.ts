import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each file starts its own real servers on port 0; two cores, so keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
