/**
 * Session affinity on real daemons: a session's tasks stay on its owner while the owner is alive, not draining,
 * fits the task and can start it; they move only for a reason the client and the log can name, and the new owner is
 * the node that accepted the task.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SessionEntry, TaskStreamEvent } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'

type Exit = Extract<TaskStreamEvent, { type: 'exit' }>
type Rehomed = Extract<TaskStreamEvent, { type: 'rehomed' }>

/** Runs one task through the API, as `gridctl run` does, and returns where it ran and any re-home it caused. */
async function run (n: Gridd, body: Record<string, unknown>): Promise<{ exit: Exit, rehomed: Rehomed[] }> {
  const rehomed: Rehomed[] = []
  for await (const ev of n.api.stream<TaskStreamEvent>('POST', '/tasks', body)) {
    if (ev.type === 'rehomed') rehomed.push(ev)
    if (ev.type === 'exit') return { exit: ev, rehomed }
  }
  throw new Error('the stream ended without an exit event')
}

async function owner (n: Gridd, session: string): Promise<string | null> {
  return (await n.api.get<SessionEntry>(`/sessions/${session}`)).ownerName
}

describe('sessions - affinity keeps a session on its owner', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd
  beforeAll(async () => {
    c = await Cluster.start(3, { args: () => ['--slots', '2'] })
    ;[n1, n2] = c.nodes as [Gridd, Gridd, Gridd]
    await c.converged()
    await waitFor('every node to report its slots', async () => (await n1.nodes()).every(n => n.load?.slots === 2))
  })
  afterAll(async () => { await c?.destroy() })

  it('runs twenty quick sequential tasks of a session on one node', async () => {
    const nodes: string[] = []
    const rehomes: Rehomed[] = []
    for (let i = 0; i < 20; i++) {
      const r = await run(n1, { command: ['true'], session: 'quick' })
      expect(r.exit.status).toBe('completed')
      nodes.push(r.exit.nodeName as string)
      rehomes.push(...r.rehomed)
    }
    expect(new Set(nodes).size).toBe(1)
    // the first run gave the session its owner, and nothing moved it after that
    expect(rehomes.map(h => h.reason)).toEqual(['no-owner'])
    expect(rehomes[0]?.toName).toBe(nodes[0])
    await waitFor('the owner to be recorded', async () => (await owner(n1, 'quick')) === nodes[0])
  })

  it('keeps a session on one node when two nodes run its tasks at once', async () => {
    const first = await run(n1, { command: ['true'], session: 'shared' })
    const home = first.exit.nodeName as string
    await waitFor('n2 to see the session\'s owner', async () => (await owner(n2, 'shared')) === home)
    const loop = async (n: Gridd): Promise<string[]> => {
      const out: string[] = []
      for (let i = 0; i < 10; i++) out.push((await run(n, { command: ['true'], session: 'shared' })).exit.nodeName as string)
      return out
    }
    const [a, b] = await Promise.all([loop(n1), loop(n2)])
    expect(new Set([...a, ...b])).toEqual(new Set([home]))
  })

  it('re-homes a session whose owner is full, says why, and stays with the new owner afterwards', async () => {
    const first = await run(n1, { command: ['true'], session: 'busy' })
    const home = first.exit.nodeName as string
    const homeNode = c.node(home)
    // fill the owner's two slots with long tasks
    const long: string[] = []
    for (let i = 0; i < 2; i++) {
      const r = await n1.ctl(['run', '--detach', '--node', home, '--', 'sleep', '120'])
      expect(r.code).toBe(0)
      long.push(r.stdout.trim())
    }
    await waitFor(`${home} to run both long tasks`, async () => (await homeNode.api.get<Array<{ id: string, status: string }>>('/tasks?status=running')).filter(t => long.includes(t.id)).length === 2)
    const moved = await n1.ctl(['run', '-v', '--session', 'busy', '--', 'sh', '-c', 'echo $GRID_NODE_NAME'])
    expect(moved.code).toBe(0)
    const newHome = moved.stdout.trim()
    expect(newHome).not.toBe(home)
    expect(moved.stderr).toContain(`session busy moved from ${home} to ${newHome}: its owner ${home} cannot start it now`)
    await waitFor('the new owner to be recorded', async () => (await owner(n1, 'busy')) === newHome)
    for (const id of long) await n1.ctl(['cancel', id])
    await waitFor(`${home}'s slots to be free again`, async () => (await n1.nodes()).find(n => n.name === home)?.load?.freeSlots === 2)
    // the old owner is idle again, but the session stays where it went
    for (let i = 0; i < 3; i++) {
      const r = await run(n1, { command: ['true'], session: 'busy' })
      expect(r.exit.nodeName).toBe(newHome)
      expect(r.rehomed).toEqual([])
    }
    const log = c.nodes.map(n => n.log()).join('\n')
    expect(log).toMatch(/"session":"busy".*"reason":"full".*"msg":"session re-homed"/)
  })

  it('re-homes once when the owner is killed', async () => {
    const home = (await run(n1, { command: ['true'], session: 'doomed' })).exit.nodeName as string
    // the tasks come from a node that survives the kill
    const origin = c.nodes.find(n => n.name !== home) as Gridd
    await waitFor(`${origin.name} to see the session's owner`, async () => (await owner(origin, 'doomed')) === home)
    await c.node(home).kill()
    const rehomes: Rehomed[] = []
    const nodes: string[] = []
    for (let i = 0; i < 6; i++) {
      const r = await run(origin, { command: ['true'], session: 'doomed' })
      expect(r.exit.status).toBe('completed')
      rehomes.push(...r.rehomed)
      nodes.push(r.exit.nodeName as string)
    }
    expect(rehomes).toHaveLength(1)
    expect(rehomes[0]?.fromName).toBe(home)
    expect(['dead', 'unreachable']).toContain(rehomes[0]?.reason)
    expect(new Set(nodes).size).toBe(1)
    expect(nodes[0]).not.toBe(home)
  })
})
