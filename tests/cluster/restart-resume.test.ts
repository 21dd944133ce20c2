import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { finished, task } from '../helpers/tasks.ts'

const runs = (file: string): string[] => existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(l => l !== '') : []

// Found by the chaos harness (issue 13): an origin killed while running its own task came back on its old data and,
// from its disk alone (coordinator: itself, its own run lost), ran the task again, though a successor had taken it
// over and finished it elsewhere meanwhile.
describe('restart - a node that comes back resumes only what is still its own', () => {
  let c: Cluster
  afterAll(async () => { await c?.destroy() })

  it('does not run again a task a successor took over and finished while it was down', async () => {
    c = await Cluster.start(3)
    await c.converged()
    const [n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    // the task must first run on its origin n2: the others' queues are paused
    for (const n of [n1, n3]) expect((await n2.ctl(['queue', 'pause', n.name])).code).toBe(0)
    await waitFor('n2 to see n1 and n3 paused', async () => (await n2.nodes()).filter(e => e.paused).length === 2)
    const file = join(c.root, 'runs')
    const script = `echo "$GRID_NODE_NAME $GRID_ATTEMPT" >> ${file}; sleep 3`
    const { id } = await n2.api.post<{ id: string }>('/tasks', { command: ['sh', '-c', script], detach: true, retries: 3 })
    await waitFor('the first run on n2', () => runs(file).some(l => l.startsWith('n2 ')))
    // its record says it runs there (what n2 reads from its disk when it comes back)
    await waitFor('n2 to record the run', async () => (await task(n2, id)).status === 'running')
    await n2.kill()
    expect((await n1.ctl(['queue', 'resume', '--all'])).code).toBe(0)
    const done = await finished(n1, id)
    expect(done.status).toBe('completed')
    expect(runs(file)).toHaveLength(2)

    await n2.start()
    // either it leaves the task to its successor (right), or it runs it a third time (the defect)
    await waitFor('n2 to catch up and leave the task to its successor', () => n2.log().includes('was taken over or ended meanwhile') || runs(file).length > 2, { timeoutMs: 30_000 })
    expect((await finished(n2, id)).status).toBe('completed')
    expect(runs(file)).toHaveLength(2)
  })
})
