/**
 * `gridctl dev down` and `gridctl dev kill NODE`: stop the dev cluster's gridd by the pids it recorded, each checked
 * to still be that node's gridd first (a pid reused by another program is never signalled).
 */
import { rmSync } from 'node:fs'
import { NotFoundError } from '../../interface/index.ts'
import { DEV_KILL_TIMEOUT_MS, DEV_STOP_TIMEOUT_MS } from './constants.ts'
import { runsAsNode, signalNode, waitGone } from './process.ts'
import { devStatePath, type DevNode, type DevState } from './state.ts'

export interface DownRow {
  name: string
  pid: number
  /** stopped: exited after SIGTERM; killed: needed SIGKILL after the deadline; 'not running': nothing to stop */
  result: 'stopped' | 'killed' | 'not running'
}

/** SIGTERM to every running node at once (each leaves the cluster gracefully), then waits; SIGKILL to any left. */
export async function devDown (state: DevState, opts: { purge: boolean }): Promise<DownRow[]> {
  const running = state.nodes.filter(n => signalNode(n, 'SIGCONT') && signalNode(n, 'SIGTERM'))
  const left = await waitGone(running, DEV_STOP_TIMEOUT_MS)
  for (const n of left) signalNode(n, 'SIGKILL')
  await waitGone(left, DEV_KILL_TIMEOUT_MS)
  if (opts.purge) rmSync(state.root, { recursive: true, force: true })
  else rmSync(devStatePath(state.root), { force: true })
  return state.nodes.map(n => ({ name: n.name, pid: n.pid, result: left.includes(n) ? 'killed' : running.includes(n) ? 'stopped' : 'not running' }))
}

/** SIGKILL to one node (no goodbye to its peers: they find it dead, as when a machine fails). */
export async function devKill (state: DevState, name: string): Promise<DevNode> {
  const node = state.nodes.find(n => n.name === name)
  if (node === undefined) throw new NotFoundError(`the dev cluster has no node ${name} (its nodes: ${state.nodes.map(n => n.name).join(', ')})`)
  if (!runsAsNode(node) || !signalNode(node, 'SIGKILL')) throw new NotFoundError(`${name} is not running (pid ${node.pid} is gone)`)
  await waitGone([node], DEV_KILL_TIMEOUT_MS)
  return node
}
