/**
 * The task user on real daemons (executor.taskUser = nobody): tasks and warm workers run as that user, cannot read
 * the daemon's data dir (node key, swarm key, state), and are still captured, cancelled and timed out; a user gridd
 * does not know fails its start. Switching users needs root (as CI and this machine run): skipped otherwise.
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, Gridd, processAlive, waitFor } from '../helpers/cluster.ts'
import { ROOT } from '../helpers/paths.ts'
import { finished, task } from '../helpers/tasks.ts'

const root = process.getuid?.() === 0
const id = (flag: string): string => execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim()

/** The uid a process runs as (root reads any /proc entry). */
const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])

describe.skipIf(!root)(`task user - tasks run as executor.taskUser, not as gridd${root ? '' : ' (skipped: needs root)'}`, () => {
  let c: Cluster
  let n1: Gridd
  beforeAll(async () => {
    c = new Cluster()
    // the test's temporary root is 0700: opened, so that what keeps tasks out is the data dir itself (0700)
    chmodSync(c.root, 0o755)
    const cfg = join(c.root, 'gridd.yaml')
    writeFileSync(cfg, `executor:\n  taskUser: nobody\ntasks:\n  pyecho:\n    command: [python3, ${join(ROOT, 'examples/workers/echo_worker.py')}]\n    worker: {concurrency: 1, cpus: 0}\n`)
    n1 = await c.add('n1', { args: ['--config', cfg] })
  })
  afterAll(async () => { await c?.destroy() })

  it('runs a task as the user, with its groups and HOME, its output captured', async () => {
    const r = await n1.ctl(['run', '--', 'sh', '-c', 'id -u; id -g; id -G; echo "USER=$USER"; test -d "$HOME" && echo home ok; umask; grep CapEff /proc/self/status'])
    // umask 007: what it leaves in its scratch directory stays removable by gridd, through the group; no capabilities
    expect(r.stdout).toBe(`${id('-u')}\n${id('-g')}\n${id('-G')}\nUSER=nobody\nhome ok\n0007\nCapEff:\t0000000000000000\n`)
    expect(r.code).toBe(0)
  })

  it('cannot read the swarm key, the node key or the state', async () => {
    for (const f of ['swarm.key', 'identity.key']) {
      const r = await n1.ctl(['run', '--', 'cat', join(n1.dataDir, f)])
      expect(r.stderr).toMatch(/Permission denied/)
      expect(r.code).toBe(1)
    }
    const ls = await n1.ctl(['run', '--', 'ls', n1.dataDir])
    expect(ls.stderr).toMatch(/Permission denied/)
    expect(ls.code).not.toBe(0)
    // nor is the data dir its working directory when the caller is there: the task runs in its scratch directory
    const here = await n1.ctl(['run', '--', 'sh', '-c', 'pwd; ls swarm.key 2>&1 || true'], { cwd: n1.dataDir })
    expect(here.stdout).toMatch(new RegExp(`^${n1.dataDir}-scratch/\\S+\\n`))
    expect(here.stdout).not.toMatch(/^swarm\.key$/m)
    const cwd = await n1.ctl(['run', '--cwd', n1.dataDir, '--', 'pwd'])
    expect(cwd.stderr).toMatch(/the task user nobody cannot enter working directory/)
    expect(cwd.code).toBe(126)
  })

  it('cancels a task, killing its whole process group', async () => {
    const r = await n1.ctl(['run', '--detach', '--', 'sh', '-c', 'sleep 300 & echo $$ $!; wait'])
    const taskId = r.stdout.trim()
    const pids = await waitFor('the task to run and say its pid and its child\'s', async () => {
      const out = (await n1.ctl(['logs', taskId])).stdout.trim()
      return (await task(n1, taskId)).status === 'running' && out !== '' ? out.split(' ').map(Number) : undefined
    })
    const [shell = 0, child = 0] = pids
    for (const pid of [shell, child]) expect(uidOf(pid)).toBe(Number(id('-u')))
    expect((await n1.ctl(['cancel', taskId])).code).toBe(0)
    expect((await finished(n1, taskId)).status).toBe('cancelled')
    await waitFor('the task\'s background child to be gone', () => !processAlive(child))
  })

  it('stops a task at its timeout', async () => {
    const r = await n1.ctl(['run', '--timeout', '1s', '--', 'sleep', '30'])
    expect(r.code).toBe(124)
    expect(r.stderr).toMatch(/timed out after 1s/)
  })

  it('runs warm workers as the user', async () => {
    const reply = await n1.api.post<{ result?: { echo: unknown, pid: number } }>('/call', { type: 'pyecho', payload: { hello: 1 } })
    expect(reply.result?.echo).toEqual({ hello: 1 })
    expect(uidOf(reply.result?.pid as number)).toBe(Number(id('-u')))
  })

  it('fails the start of a daemon whose task user does not exist, naming executor.taskUser', async () => {
    const g = new Gridd({ name: 'nouser', root: c.root, args: ['--task-user', 'no-such-grid-user'], noWait: true })
    await g.start()
    const exit = await g.waitExit(20_000)
    g.dispose()
    expect(exit.code).toBe(2)
    expect(g.log()).toMatch(/executor\.taskUser: there is no user "no-such-grid-user" on this machine/)
  })
})
