/**
 * A cluster larger than mesh.maxConnections: a node that holds its cap of connections still lets a newcomer join
 * through it. libp2p refuses a connection at its own limit before the handshake, whoever dials; Grid gives libp2p a
 * headroom past the cap (src/mesh/constants.ts, joinHeadroom) and trims back to the cap itself. Before, a node that
 * knew only a full bootstrap peer never joined: the cluster split into the members that got in and the rest.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, waitFor } from '../helpers/cluster.ts'

const CAP = 4
const env = { GRID_MAX_CONNECTIONS: String(CAP) }

describe('connection cap - a cluster larger than mesh.maxConnections', () => {
  let c: Cluster

  beforeAll(async () => {
    // n1 first, then six more, one at a time, each knowing only n1: n1 holds its cap before the last ones start
    c = await Cluster.start(7, { env: () => env })
  }, 180_000)
  afterAll(async () => { await c?.destroy() })

  it('shows every member to every member, though each holds only a few connections of its own choosing', async () => {
    await c.converged({ timeoutMs: 120_000, intervalMs: 500 })
    const n1 = await c.node('n1').status()
    expect(n1.connections).toBeGreaterThanOrEqual(CAP)
  }, 150_000)

  it('lets a newcomer that knows only a member at its cap join, and see everyone', async () => {
    const n1 = await c.node('n1').status()
    expect(n1.connections).toBeGreaterThanOrEqual(CAP)
    const late = await c.add('n8', { env })
    await waitFor('n8 to see all eight alive', async () => Object.values(await late.states()).filter(s => s === 'alive').length === 8, { timeoutMs: 120_000, intervalMs: 500 })
    await c.converged({ timeoutMs: 120_000, intervalMs: 500 })
    // and work placed from it runs on a member it may never have dialled itself
    const r = await late.ctl(['run', '--node', 'n2', '--', 'sh', '-c', 'echo ran on $GRID_NODE_NAME'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('ran on n2')
  }, 250_000)
})
