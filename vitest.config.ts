import { defineConfig } from 'vitest/config';

// Sweep tests start worker threads; on CPUs with memory protection keys V8 can then abort a test process
// ("Check failed: jit_page.has_value()"), so test processes run with that protection off (as bin/servetune.js does).
const execArgv = ['--no-memory-protection-keys'];

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 60_000,
          execArgv,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 300_000,
          execArgv,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
