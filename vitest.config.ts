import { defineConfig } from 'vitest/config'

// Two tiers. `unit`: in-process tests (no daemons, no build needed), files in parallel; `npm run test:unit` runs them
// alone in seconds. `cluster`: real gridd processes from the built dist/, one file at a time, long timeouts.
// `npm test` runs both, unit first: the groups run one after the other, so the daemons never share the CPUs with
// parallel unit files. The orders start at 1: vitest moves a project of order 0 that gets one worker (the default on
// a 2-core machine) behind every other group.
export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['tests/unit/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          sequence: { groupOrder: 1 }
        }
      },
      {
        extends: true,
        test: {
          name: 'cluster',
          include: ['tests/cluster/**/*.test.ts'],
          // multi-node tests start real daemons: one test file at a time keeps a 2-core machine responsive
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          globalSetup: ['tests/helpers/global-setup.ts'],
          sequence: { groupOrder: 2 }
        }
      }
    ]
  }
})
