/**
 * Secrets in a task's environment on real daemons: `--env` values go to the executor with the offer and never into
 * the replicated record (every node's WAL and snapshot), which keeps the names only; a successor that takes over a
 * task it would have to place, without the values, fails it and says why.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { finished, task } from '../helpers/tasks.ts'

const SECRET = 's3cr3t-value-xyz'

/** Every plain file under a directory (sockets and the like skipped). */
function filesUnder (dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    const st = statSync(p, { throwIfNoEntry: false })
    if (st?.isDirectory() === true) out.push(...filesUnder(p))
    else if (st?.isFile() === true) out.push(p)
  }
  return out
}

const holding = (n: Gridd, text: string): string[] => filesUnder(n.dataDir).filter(f => readFileSync(f).includes(text))

describe('secrets - a task\'s env values stay out of the replicated state', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd, n3: Gridd
  beforeAll(async () => {
    c = await Cluster.start(3, { args: i => i === 2 ? ['--label', 'role=vault'] : [] })
    ;[n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('gives the task its env value, while no file under any node\'s data dir holds it and the record shows the name', async () => {
    const r = await n1.ctl(['run', '--node', 'n2', '--env', `SECRET_TOKEN=${SECRET}`, '--', 'sh', '-c', 'echo "token of ${#SECRET_TOKEN} chars, ends ${SECRET_TOKEN#s3cr3t-value-}"'])
    expect(r.stdout).toBe('token of 16 chars, ends xyz\n')
    expect(r.code).toBe(0)
    const list = await n3.api.get<Array<{ id: string }>>('/tasks')
    const id = list[0]?.id as string
    const rec = await finished(n3, id)
    expect(rec).toMatchObject({ status: 'completed', nodeName: 'n2', envNames: ['SECRET_TOKEN'], offeredBy: rec.origin })
    expect((await n1.ctl(['task', id])).stdout).toMatch(/^env: +SECRET_TOKEN$/m)
    // the record reached every node's disk (WAL, fsync at most once a second), so the check below looks at it
    for (const n of c.nodes) await waitFor(`${n.name}'s state files to hold the task's record`, () => holding(n, id).some(f => f.includes('state')))
    for (const n of c.nodes) expect({ node: n.name, files: holding(n, SECRET) }).toEqual({ node: n.name, files: [] })
  })

  it('keeps a workflow job\'s env values out of every node\'s files too, and the job still gets them', async () => {
    const file = join(c.root, 'secret-workflow.json')
    writeFileSync(file, JSON.stringify({ name: 'secret', jobs: { use: { node: 'n2', env: { SECRET_TOKEN: SECRET }, command: ['sh', '-c', 'echo "ends ${SECRET_TOKEN#s3cr3t-value-}"'] } } }))
    const r = await n1.ctl(['workflow', 'run', file, '-o', 'json'], { timeoutMs: 90_000 })
    expect(r.code, r.stderr).toBe(0)
    const wf = JSON.parse(r.stdout) as { id: string, status: string }
    expect(wf.status).toBe('succeeded')
    expect((await n1.api.get<{ stdout: string }>(`/workflows/${wf.id}/jobs/use/stdout`)).stdout).toBe('ends xyz')
    for (const n of c.nodes) await waitFor(`${n.name}'s state files to hold the workflow`, () => holding(n, wf.id).some(f => f.includes('state')))
    for (const n of c.nodes) expect({ node: n.name, files: holding(n, SECRET) }).toEqual({ node: n.name, files: [] })
  })

  it('fails a task with env that its origin never placed (only draining n3 could run it), once the origin dies, naming the variables', async () => {
    expect((await n1.ctl(['drain', 'n3'])).code).toBe(0)
    await waitFor('n1 to see n3 draining', async () => (await n1.nodes()).find(n => n.name === 'n3')?.drain === true)
    const r = await n1.ctl(['run', '--detach', '--label', 'role=vault', '--env', 'SECRET_TOKEN=x', '--env', 'MODE=y', '--', 'true'])
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' })
    const id = r.stdout.trim()
    await waitFor('n2 to see the task waiting for n3', async () => (await task(n2, id).catch(() => undefined))?.reason?.includes('is draining'))
    await n1.kill()
    const rec = await finished(n2, id, 90_000)
    expect(rec.status).toBe('failed')
    expect(rec.error).toMatch(/its environment \(SECRET_TOKEN, MODE\) was held only by its origin n1, which died; resubmit it/)
  })
})
