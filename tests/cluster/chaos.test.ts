import { describe, expect, it } from 'vitest'
import { table } from '../chaos/report.ts'
import { chaosRun } from '../chaos/run.ts'
import { unavailable } from '../chaos/netns.ts'

// A short seeded chaos run (issue 13): 5 daemons in their own network namespaces, a steady load, and four fault
// classes (kill -9, a node partitioned away, SIGSTOP, 5 % loss on every link); the checker must find nothing lost,
// nothing run twice, no false death, and every node agreeing once the faults end. Root only: elsewhere it is skipped,
// and the test's name says why.
const why = await unavailable()

describe.skipIf(why !== null)(why === null ? 'chaos - a short seeded run under fire' : `chaos - skipped: ${why}`, () => {
  it('keeps every accepted task and acknowledged write through kill -9, a partition, SIGSTOP and loss', async () => {
    const r = await chaosRun({
      nodes: 5,
      durationMs: 20_000,
      seed: 13,
      faults: ['kill9', 'partition-one', 'stop', 'loss'],
      // a partition's lone side has nobody to confirm its suspicions: it needs 3 missed heartbeats (up to 2 s apart
      // in a settled cluster) and the whole 4 s suspicion timeout, up to about 10 s, to see the others dead; a shorter
      // hold ended before it could (the checker requires both sides to see each other dead)
      holdMs: 10_000,
      gapMs: 1_000,
      keep: process.env.GRID_TEST_KEEP !== undefined,
      log: () => {}
    })
    const v = r.verdict
    if (!v.valid) process.stderr.write(`${table(v)}\nhistory: ${r.historyFile}\n${r.context ?? ''}\n`)
    expect(v.tasks.accepted).toBeGreaterThan(0)
    expect(v.writes.acknowledged).toBeGreaterThan(0)
    expect(r.faults.map(f => f.fault).sort()).toEqual(['kill9', 'loss', 'partition-one', 'stop'])
    expect({ lost: v.tasks.lost, ranTwice: v.tasks.ranTwice, writesLost: v.writes.lost, falseDeaths: v.falseDeaths }).toEqual({ lost: 0, ranTwice: 0, writesLost: 0, falseDeaths: 0 })
    expect(v.valid, v.problems.join('\n')).toBe(true)
  }, 240_000)
})
