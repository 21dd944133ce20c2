import { defineConfig } from 'vitest/config'

/**
 * Cluster files whose daemons' waits are not timings (one daemon, or output, docs, deployment): `npm test` runs them
 * as the `cluster-side` stream beside the `cluster` stream (tests/run-suite.mjs). A new file goes to `cluster` unless
 * it is named here.
 */
const SIDE = [
  'completion', 'deploy', 'dev-cluster', 'docs-guides', 'examples', 'first-errors', 'grafana', 'gridctl', 'gridd-flags',
  'install-bin', 'limits', 'log-format', 'observability', 'openapi', 'pending-reasons', 'secrets', 'stdin-cwd',
  'swarm-key', 'sync', 'task-user', 'worker-waits'
].map(f => `tests/cluster/${f}.test.ts`)

// Two tiers. `unit`: in-process tests (no daemons, no build needed), files in parallel; `npm run test:unit` runs them
// alone in seconds. `cluster`: real gridd processes from the built dist/, one file at a time, long timeouts.
// `npm test` (tests/run-suite.mjs) runs the unit tier first, then the cluster files as two streams side by side:
// `cluster` and `cluster-side` (SIDE), each one file at a time, so the daemons never share the CPUs with parallel
// unit files and at most two files' daemons run at once. The orders start at 1: vitest moves a project of order 0 that gets one worker (the default on
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
          exclude: SIDE,
          // multi-node tests start real daemons: one test file at a time keeps a 2-core machine responsive
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          globalSetup: ['tests/helpers/global-setup.ts'],
          sequence: { groupOrder: 2 }
        }
      },
      {
        extends: true,
        test: {
          name: 'cluster-side',
          include: SIDE,
          // multi-node tests start real daemons: one test file at a time keeps a 2-core machine responsive
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          globalSetup: ['tests/helpers/global-setup.ts'],
          sequence: { groupOrder: 3 }
        }
      }
    ]
  }
})
