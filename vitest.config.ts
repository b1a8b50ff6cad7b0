import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The count reporter says how many moto-backed tests actually ran (0 when moto is missing locally).
    reporters: ['default', './test/integration/count-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'test/unit/**/*.test.ts',
            'test/adapters/**/*.test.ts',
            'test/notify/**/*.test.ts',
            'test/bench/**/*.test.ts',
          ],
          setupFiles: ['test/setup.ts'],
          env: { POWERTOOLS_LOG_LEVEL: 'SILENT', AWS_REGION: 'eu-west-1' },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          setupFiles: ['test/setup.ts'],
          env: { POWERTOOLS_LOG_LEVEL: 'SILENT' },
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // One moto server per file; files run one at a time so two servers never compete for 2 cores.
          fileParallelism: false,
        },
      },
    ],
  },
});
