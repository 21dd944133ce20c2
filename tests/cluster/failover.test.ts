import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { TaskRecord } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { GRIDCTL } from '../helpers/paths.ts'
import { finished as final, task } from '../helpers/tasks.ts'

/**
 * Starts three daemons (handed to `keep` at once; n2 and n3 labelled workers) and a task that n1 places on a worker,
 * watched by an attached `gridctl run -v`: its first attempt writes a marker and sleeps, a later one says where it
 * ran. Resolves once the first attempt runs and the client has said where (the marker can come before that line).
 */
async function attachedWorkerTask (keep: (c: Cluster) => void): Promise<{ placed: string, out: () => string, err: () => string, exited: Promise<number | null> }> {
  const c = await Cluster.start(3, { args: i => i === 0 ? [] : ['--label', 'role=worker'] })
  keep(c) // the test's afterAll stops it, whatever happens next
  await c.converged()
  await waitFor('labels to reach n1', async () => (await c.node('n1').nodes()).filter(n => n.labels.role === 'worker').length === 2)
  const marker = join(c.root, 'started')
  const script = `if [ "$GRID_ATTEMPT" = 1 ]; then touch ${marker}; sleep 120; fi; echo "done on $GRID_NODE_NAME attempt $GRID_ATTEMPT"`
  const p = spawn(process.execPath, [GRIDCTL, '--socket', c.node('n1').socket, 'run', '-v', '--label', 'role=worker', '--', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  p.stdout.on('data', d => { out += String(d) })
  p.stderr.on('data', d => { err += String(d) })
  const exited = new Promise<number | null>(resolve => p.on('close', resolve))
  await waitFor('the first attempt to start, and the client to say where', () => existsSync(marker) && /placed on (n[23])/.test(err))
  return { placed: /placed on (n[23])/.exec(err)?.[1] as string, out: () => out, err: () => err, exited }
}

describe('failover - the executor dies mid-task', () => {
  let c: Cluster
  afterAll(async () => { await c?.destroy() })

  it('runs the task again on another node; the attached client sees it through to exit 0', async () => {
    const t = await attachedWorkerTask(x => { c = x })
    const { placed, exited } = t
    expect(['n2', 'n3']).toContain(placed)
    const other = placed === 'n2' ? 'n3' : 'n2'
    const killedAt = Date.now()
    await c.node(placed).kill()
    expect(await exited).toBe(0)
    expect(t.out()).toBe(`done on ${other} attempt 2\n`)
    expect(t.err()).toMatch(new RegExp(`node ${placed} died while the task ran; running it again \\(attempt 2\\)`))
    // the exit reaches the client by RPC; the executor's final record reaches n1 a moment later, by replication
    const rec = await waitFor('n1 to hold the final record', async () => {
      const t = (await c.node('n1').api.get<TaskRecord[]>('/tasks'))[0]
      return t?.status === 'completed' ? t : undefined
    })
    expect(rec).toMatchObject({ status: 'completed', attempts: 2, nodeName: other, exitCode: 0 })
    // the retry ran well inside the failover goal (measured in bench/tasks)
    expect(Date.parse(rec.startedAt as string) - killedAt).toBeLessThan(30_000)
  })
})

describe('failover - the origin dies mid-task, then the executor too', () => {
  let c: Cluster
  afterAll(async () => { await c?.destroy() })

  it('completes what was running and retries the rest from a successor; nothing is lost', async () => {
    c = await Cluster.start(4, { args: i => i === 0 ? [] : ['--label', 'role=worker'] })
    await c.converged()
    await waitFor('labels to reach n1', async () => (await c.node('n1').nodes()).filter(n => n.labels.role === 'worker').length === 3)
    const origin = c.node('n1')
    const marker = (name: string): string => join(c.root, `started-${name}`)
    // the short task runs until the test opens this gate, after the origin is dead: however slow the machine, it is
    // still running when the origin dies
    const gate = join(c.root, 'gate')
    const submit = async (name: string, firstAttempt: string): Promise<string> => {
      const r = await origin.ctl(['run', '--detach', '--label', 'role=worker', '--', 'sh', '-c', `if [ "$GRID_ATTEMPT" = 1 ]; then touch ${marker(name)}; ${firstAttempt}; fi; echo ok`])
      expect(r.code).toBe(0)
      return r.stdout.trim()
    }
    const short = await submit('short', `while [ ! -f ${gate} ]; do sleep 0.1; done`)
    const long = await submit('long', 'sleep 120')
    await waitFor('both to run', () => existsSync(marker('short')) && existsSync(marker('long')))
    const watcher = c.node('n2')
    await waitFor('both records to say running', async () => (await task(watcher, short)).status === 'running' && (await task(watcher, long)).status === 'running')

    await origin.kill()
    writeFileSync(gate, '')
    // the running task goes on and its record completes without the origin
    expect(await final(watcher, short)).toMatchObject({ status: 'completed', attempts: 1, originName: 'n1' })
    // a successor takes over the coordination of the other
    const taken = await waitFor('a successor to coordinate the long task', async () => {
      const t = await task(watcher, long)
      return t.coordinator !== origin.id ? t : undefined
    })
    expect([c.node('n2').id, c.node('n3').id, c.node('n4').id]).toContain(taken.coordinator)

    // now its executor dies too: the successor runs it again elsewhere
    await c.node(taken.nodeName as string).kill()
    const survivor = c.running()[0] as Gridd
    const done = await final(survivor, long)
    expect(done).toMatchObject({ status: 'completed', attempts: 2 })
    expect(done.nodeName).not.toBe(taken.nodeName)
    for (const n of c.running()) {
      await waitFor(`${n.name} to see every task completed`, async () => (await n.api.get<TaskRecord[]>('/tasks')).every(t => t.status === 'completed'))
    }
    expect(readFileSync(join(c.root, `${c.running()[0]?.name ?? ''}.log`), 'utf8')).not.toMatch(/"level":60/)
  })
})

describe('failover - no node can take the retry for a while', () => {
  let c: Cluster
  // destroy wakes stopped nodes before it kills them
  afterAll(async () => { await c?.destroy() })

  it('keeps the task pending until a node can run it, without spending its attempts', async () => {
    const t = await attachedWorkerTask(x => { c = x })
    const { placed, exited } = t
    const other = c.node(placed === 'n2' ? 'n3' : 'n2')
    // the only other worker is frozen: when the executor dies, no node can take the task
    other.signal('SIGSTOP')
    await waitFor(`n1 to stop counting on ${other.name}`, async () => (await c.node('n1').states())[other.name] !== 'alive', { timeoutMs: 60_000 })
    await c.node(placed).kill()
    // attempt 2 (the executor died) waits for a node; looking for one spends no attempt: after three looks (each one
    // said to the verbose client) the task is still pending on attempt 2
    const looks = (): number => [...t.err().matchAll(/no node can run it now.*waiting for one/g)].length
    await waitFor('the coordinator to look for a node three times', () => looks() >= 3, { timeoutMs: 60_000 })
    const waiting = (await c.node('n1').api.get<TaskRecord[]>('/tasks'))[0]
    expect(waiting).toMatchObject({ status: 'pending', attempts: 2 })
    other.signal('SIGCONT')
    expect(await exited).toBe(0)
    expect(t.out()).toBe(`done on ${other.name} attempt 2\n`)
  })
})
