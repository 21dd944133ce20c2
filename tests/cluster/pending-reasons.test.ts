import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TaskRecord } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { GRIDCTL, ROOT } from '../helpers/paths.ts'
import { finished, task } from '../helpers/tasks.ts'

/** A gridctl run left running in the background, with what it has printed so far. */
interface Running { proc: ChildProcess, out: () => string, err: () => string, code: Promise<number | null> }

function background (n: Gridd, args: string[]): Running {
  const proc = spawn(process.execPath, [GRIDCTL, '--socket', n.socket, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stdout?.on('data', d => { out += String(d) })
  proc.stderr?.on('data', d => { err += String(d) })
  const code = new Promise<number | null>(resolve => proc.on('close', resolve))
  return { proc, out: () => out, err: () => err, code }
}

async function detach (n: Gridd, args: string[]): Promise<string> {
  const r = await n.ctl(['run', '--detach', ...args])
  if (r.code !== 0) throw new Error(`run --detach failed (${r.code}): ${r.stderr}`)
  return r.stdout.trim()
}

function config (dir: string): string {
  const file = join(dir, 'embed.yaml')
  writeFileSync(file, `
tasks:
  embed:
    command: [python3, ${join(ROOT, 'examples/workers/echo_worker.py')}]
    worker: {gpus: 1}
`)
  return file
}

describe('pending reasons - every wait says why, and what can never run fails at once', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd, n3: Gridd
  beforeAll(async () => {
    c = new Cluster()
    // every node offers 1 GiB to tasks, whatever the machine has; none has a GPU
    const common = ['--task-memory', '1GiB', '--slots', '1', '--config', config(c.root)]
    await c.add('n1', { args: common })
    await c.add('n2', { args: [...common, '--label', 'rack=r7'] })
    await c.add('n3', { args: [...common, '--capability', 'cuda'] })
    ;[n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    await c.converged()
    await waitFor('n1 to see every node\'s labels and task memory', async () => {
      const nodes = await n1.nodes()
      return nodes.find(n => n.name === 'n2')?.labels.rack === 'r7' && nodes.every(n => (n.load as { taskMemoryMiB?: number } | undefined)?.taskMemoryMiB === 1024)
    })
  })
  afterAll(async () => { await c?.destroy() })

  it('checks --memory against what nodes offer to tasks, exiting 2 at once when none offers enough', async () => {
    const r = await n1.ctl(['run', '--memory', '2G', '--', 'echo', 'ran'], { timeoutMs: 15_000 })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^gridctl: error \[UNSATISFIABLE\]: no node can run this task: no node offers \d+ MiB of memory to tasks \(the most any node offers is 1024 MiB\) — ask for what a node offers .*nvidia-smi\)\n$/)
    const fits = await n1.ctl(['run', '--memory', '512M', '--', 'echo', 'ran'])
    expect(fits).toMatchObject({ code: 0, stdout: 'ran\n' })
  })

  it('says a task is queued behind busy slots (run -v, gridctl task, gridctl tasks), and cancels it when its client goes away', async () => {
    const blocker = await detach(n1, ['--node', 'n1', '--', 'sleep', '120'])
    await waitFor('the blocker to run', async () => (await task(n1, blocker)).status === 'running')
    const client = background(n1, ['run', '-v', '--node', 'n1', '--', 'echo', 'late'])
    const reason = 'queued on n1 (1 running); waiting for 1 CPU slot (0 of 1 free)'
    await waitFor('run -v to say why the task waits', () => client.err().includes(`placed on n1 (${reason})`))
    const id = (/task (t\S+) placed/.exec(client.err()) as RegExpExecArray)[1] as string
    await waitFor('the record to carry the reason', async () => (await task(n1, id)).reason === reason)
    expect((await n1.ctl(['task', id])).stdout).toMatch(new RegExp(`reason:\\s+${reason.replace(/[()]/g, '\\$&')}`))
    const table = (await n1.ctl(['tasks', '--status', 'pending'])).stdout
    expect(table.split('\n')[0]).toMatch(/REASON$/)
    expect(table).toContain(reason)
    // the client is killed (as a dropped ssh connection would be): its task does not wait for nobody
    client.proc.kill('SIGKILL')
    expect((await finished(n1, id)).status).toBe('cancelled')
    expect((await n1.ctl(['cancel', blocker])).code).toBe(0)
  })

  it('keeps a detached task when its client goes away', async () => {
    const id = await detach(n1, ['--', 'sh', '-c', 'sleep 0.5; echo kept'])
    expect(await finished(n1, id)).toMatchObject({ status: 'completed' })
  })

  it('says at start that a GPU worker type cannot be hosted, and run --type exits 2 saying what is missing', async () => {
    expect(n1.log()).toMatch(/"type":"embed".*worker type disabled on this node|worker type disabled on this node.*"type":"embed"/)
    expect(n1.log()).toMatch(/it has 0 GPUs, the task needs 1/)
    const r = await n1.ctl(['run', '--type', 'embed', '--payload', '{"text":"hi"}'], { timeoutMs: 15_000 })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^gridctl: error \[UNSATISFIABLE\]: worker type embed needs 1 GPU, 1 CPU slot, and no alive node has a GPU for one \(n1: it has 0 GPUs, the task needs 1\) — ask for what a node offers .*\n$/)
  })

  it('waits while the only rack=r7 node drains, saying so, and runs once it is open again', async () => {
    expect((await n1.ctl(['drain', 'n2'])).code).toBe(0)
    await waitFor('n1 to see n2 draining', async () => (await n1.nodes()).find(n => n.name === 'n2')?.drain === true)
    const client = background(n1, ['run', '-v', '--label', 'rack=r7', '--', 'echo', 'on r7'])
    await waitFor('run to say it waits for the draining node', () => client.err().includes('no node can run it now: the only node that can run it, n2, is draining'))
    const id = (/task (t\S+):/.exec(client.err()) as RegExpExecArray)[1] as string
    const t = await task(n1, id)
    expect(t).toMatchObject({ status: 'pending', reason: 'no node can run it now: the only node that can run it, n2, is draining' })
    expect((await n1.ctl(['undrain', 'n2'])).code).toBe(0)
    expect(await client.code).toBe(0)
    expect(client.out()).toBe('on r7\n')
  })

  it('follows with logs -f, from another node, a detached task that has not started yet, from its first line', async () => {
    expect((await n1.ctl(['drain', 'n2'])).code).toBe(0)
    await waitFor('n1 to see n2 draining', async () => (await n1.nodes()).find(n => n.name === 'n2')?.drain === true)
    const run = await n1.ctl(['run', '--detach', '--label', 'rack=r7', '--', 'sh', '-c', 'echo first; echo last'])
    expect(run.code, run.stderr).toBe(0)
    const id = run.stdout.trim()
    const follower = background(n3, ['logs', '-f', id])
    await waitFor('n3 to know the task', async () => (await n3.ctl(['task', id])).code === 0)
    expect((await task(n1, id)).status).toBe('pending')
    expect((await n1.ctl(['undrain', 'n2'])).code).toBe(0)
    expect(await follower.code).toBe(0)
    expect(follower.out()).toBe('first\nlast\n')
  })

  it('fails at once when no node known to the cluster could ever run the task', async () => {
    const r = await n1.ctl(['run', '--label', 'rack=r9', '--', 'true'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/no node has label rack=r9/)
  })

  it('exits 2 for an unknown --node, in run and in tasks', async () => {
    const run = await n1.ctl(['run', '--node', 'nobody', '--', 'true'])
    expect(run).toMatchObject({ code: 2, stderr: 'gridctl: no node with id or name nobody\n' })
    const tasks = await n1.ctl(['tasks', '--node', 'nobody'])
    expect(tasks).toMatchObject({ code: 2, stderr: 'gridctl: no node with id or name nobody\n' })
    expect((await n1.ctl(['tasks', '--node', 'n2'])).code).toBe(0)
  })

  it('waits while the only cuda node is dead, saying so', async () => {
    await n3.kill()
    await waitFor('n1 to see n3 dead', async () => (await n1.nodes()).find(n => n.name === 'n3')?.state === 'dead', { timeoutMs: 60_000 })
    const id = await detach(n1, ['--require', 'cuda', '--', 'true'])
    await waitFor('the record to say why it waits', async () => (await task(n1, id)).reason === 'no node can run it now: the only node that can run it, n3, is dead')
    expect((await n1.ctl(['tasks'])).stdout).toContain('the only node that can run it, n3, is dead')
    expect((await n1.ctl(['cancel', id])).code).toBe(0)
    expect(n2.exited).toBe(false)
  })
})
