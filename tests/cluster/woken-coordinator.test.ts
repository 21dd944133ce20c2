import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { TaskRecord } from '../../proto/index.ts'
import { successor } from '../../src/tasks/successor.ts'
import { Cluster, waitFor } from '../helpers/cluster.ts'
import { finished, task } from '../helpers/tasks.ts'

/**
 * Issue 13 (the chaos harness, seed 303): a coordinator stopped (SIGSTOP) until it was declared dead woke up and
 * retried its task at once, while its successor, whose view still said it was dead, took the task over a moment later
 * and ran it again: two coordinators, one task running twice at once. Here the successor's stale view is made
 * certain: it is stopped too, the moment it sees the coordinator dead (before its takeover's 1.5 s confirmation), and
 * woken once the coordinator has started the next attempt. Now a coordinator that stalled lately lets an attempt start
 * only with a lease from a would-be successor that sees it alive (`task.standby`), and a successor that stalled while
 * confirming a death confirms it again, on a fresh view.
 */
describe('a stopped coordinator wakes up while its successor holds a stale view', () => {
  let c: Cluster
  // destroy wakes stopped nodes before it kills them
  afterAll(async () => { await c?.destroy() })

  it('the task runs once at a time, and ends once', async () => {
    c = await Cluster.start(4, { args: i => i === 1 || i === 2 ? ['--label', 'role=worker'] : [] })
    await c.converged()
    await waitFor('labels to reach n1', async () => (await c.node('n1').nodes()).filter(n => n.labels.role === 'worker').length === 2)
    const runs = join(c.root, 'runs')
    const lock = join(c.root, 'running')
    const gate1 = join(c.root, 'gate1')
    const gate2 = join(c.root, 'gate2')
    // each run appends its attempt and node, and "overlap" when another run holds the lock; attempt 1 fails once
    // gate1 opens, later attempts succeed once gate2 opens
    const script = `if mkdir ${lock} 2>/dev/null; then echo "$GRID_ATTEMPT $GRID_NODE_NAME" >> ${runs}; ` +
      `else echo "overlap $GRID_ATTEMPT $GRID_NODE_NAME" >> ${runs}; fi; case "$GRID_ATTEMPT" in ` +
      `1) while [ ! -f ${gate1} ]; do sleep 0.1; done; rmdir ${lock}; exit 3;; ` +
      `*) while [ ! -f ${gate2} ]; do sleep 0.1; done; rmdir ${lock} 2>/dev/null; echo ok;; esac`
    const origin = c.node('n1')
    const r = await origin.ctl(['run', '--detach', '--label', 'role=worker', '--retries', '3', '--retry-on-failure', '--', 'sh', '-c', script])
    expect(r.code).toBe(0)
    const id = r.stdout.trim()
    const lines = (): string[] => existsSync(runs) ? readFileSync(runs, 'utf8').split('\n').filter(l => l !== '') : []
    await waitFor('attempt 1 to run, and its record to say so', async () => lines().length === 1 && (await task(c.node('n4'), id)).status === 'running')
    // the node that takes the task over when n1 is gone (rendezvous hashing over the others)
    const heir = c.nodes.find(n => n.id === successor(id, c.nodes.filter(n => n !== origin).map(n => n.id)))
    if (heir === undefined) throw new Error('no successor')

    // the coordinator stops; attempt 1 fails meanwhile, so it retries as soon as it wakes
    origin.signal('SIGSTOP')
    writeFileSync(gate1, '')
    await waitFor(`${heir.name} to see n1 dead`, async () => (await heir.states()).n1 === 'dead', { timeoutMs: 90_000, intervalMs: 50 })
    // the successor freezes with n1 dead in its view; n1 wakes and goes on with its task
    heir.signal('SIGSTOP')
    origin.signal('SIGCONT')
    await waitFor('n1 to start attempt 2 or later', () => lines().some(l => !l.startsWith('1 ')), { timeoutMs: 120_000 })

    // the successor wakes with its old view: it takes the task over, or sees n1 back first
    heir.signal('SIGCONT')
    await c.converged({ timeoutMs: 90_000 })
    // the attempt the record names runs (a second coordinator's, if there was one, has started by then)
    await waitFor('the recorded attempt to run', async () => {
      const t = await task(c.node('n4'), id)
      return t.status === 'running' && lines().some(l => l.split(' ').at(-2) === String(t.attempts))
    }, { timeoutMs: 90_000 })
    writeFileSync(gate2, '')
    const done = await finished(c.node('n4'), id, 90_000)
    expect(done.status).toBe('completed')
    for (const n of c.running()) {
      await waitFor(`${n.name} to see the task completed`, async () => (await n.api.get<TaskRecord>(`/tasks/${id}`)).status === 'completed', { timeoutMs: 60_000 })
    }
    // one run at a time, each attempt once
    console.log(`runs: ${lines().join(', ')}; successor ${heir.name}; coordinator at the end ${done.coordinator === origin.id ? 'n1' : 'its successor'}`)
    expect(lines().filter(l => l.startsWith('overlap')), lines().join(', ')).toEqual([])
    const attempts = lines().map(l => l.split(' ')[0])
    expect(new Set(attempts).size, lines().join(', ')).toBe(attempts.length)
  }, 400_000)
})
