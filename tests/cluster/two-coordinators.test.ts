import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { TaskRecord } from '../../proto/index.ts'
import { Cluster, waitFor } from '../helpers/cluster.ts'
import { finished, task } from '../helpers/tasks.ts'

/**
 * Issue 13: a coordinator that was stopped (or cut off) long enough for a successor to take its task over must not
 * drive the task on when it comes back: its late retry once ran an attempt again beside the successor's.
 */
describe('two coordinators - the first comes back after a successor took its task over', () => {
  let c: Cluster
  // destroy wakes stopped nodes before it kills them
  afterAll(async () => { await c?.destroy() })

  it('stops driving the task; every attempt runs once, and the task ends once', async () => {
    c = await Cluster.start(3, { args: i => i === 0 ? [] : ['--label', 'role=worker'] })
    await c.converged()
    await waitFor('labels to reach n1', async () => (await c.node('n1').nodes()).filter(n => n.labels.role === 'worker').length === 2)
    const runs = join(c.root, 'runs')
    const gate1 = join(c.root, 'gate1')
    const gate2 = join(c.root, 'gate2')
    // each run appends its attempt: attempt 1 fails when gate1 opens, attempt 2 fails at once, attempt 3 runs until
    // gate2 opens and succeeds
    const script = `echo "$GRID_ATTEMPT" >> ${runs}; case "$GRID_ATTEMPT" in ` +
      `1) while [ ! -f ${gate1} ]; do sleep 0.1; done; exit 3;; 2) exit 3;; ` +
      `*) while [ ! -f ${gate2} ]; do sleep 0.1; done; echo ok;; esac`
    const origin = c.node('n1')
    const r = await origin.ctl(['run', '--detach', '--label', 'role=worker', '--retries', '3', '--retry-on-failure', '--', 'sh', '-c', script])
    expect(r.code).toBe(0)
    const id = r.stdout.trim()
    const lines = (): string[] => existsSync(runs) ? readFileSync(runs, 'utf8').split('\n').filter(l => l !== '') : []
    const watcher = c.node('n2')
    await waitFor('attempt 1 to run, and its record to say so', async () => lines().length === 1 && (await task(watcher, id)).status === 'running')

    // the coordinator stops for longer than the dead timeout: a successor takes the task over
    origin.signal('SIGSTOP')
    const taken = await waitFor('a successor to coordinate the task', async () => {
      const t = await task(watcher, id)
      return t.coordinator !== origin.id ? t : undefined
    }, { timeoutMs: 90_000 })
    expect([c.node('n2').id, c.node('n3').id]).toContain(taken.coordinator)
    // the successor drives the retries: attempt 1 fails, attempt 2 fails, attempt 3 runs
    writeFileSync(gate1, '')
    await waitFor('the successor to run attempt 3', async () => lines().includes('3') && (await task(watcher, id)).attempts === 3, { timeoutMs: 90_000 })

    // the first coordinator wakes: its attempt 1 ended in failure, and it must not retry it itself
    origin.signal('SIGCONT')
    await waitFor('n1 to hand the task over (or to run an attempt again)', () =>
      origin.log().includes('this one stops driving it') || lines().length > 3, { timeoutMs: 90_000 })
    writeFileSync(gate2, '')
    const done = await finished(watcher, id, 90_000)
    expect(done).toMatchObject({ status: 'completed', attempts: 3, coordinator: taken.coordinator })
    for (const n of c.running()) {
      await waitFor(`${n.name} to see the task completed`, async () => (await n.api.get<TaskRecord>(`/tasks/${id}`)).status === 'completed', { timeoutMs: 60_000 })
    }
    // every attempt ran once: none twice beside the successor's
    expect(lines()).toEqual(['1', '2', '3'])
  }, 300_000)
})
