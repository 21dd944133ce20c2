/** `gridctl dev status`: each node of the dev cluster, whether its gridd runs, and how many nodes it sees alive. */
import type { NodeEntry, StatusResponse } from '../../../proto/index.ts'
import { ApiClient } from '../client.ts'
import type { Column } from '../output.ts'
import { DEV_REQUEST_TIMEOUT_MS } from './constants.ts'
import { runsAsNode } from './process.ts'
import type { DevNode, DevState } from './state.ts'

export interface DevNodeRow {
  name: string
  running: boolean
  pid: number
  /** the peers' port */
  port: number | null
  /** nodes of this dev cluster it sees alive (itself included); null when it does not answer */
  alive: number | null
  nodes: number
  gpus: number
  metrics: string | null
  socket: string
  log: string
}

/** The TCP port of a node's first 127.0.0.1 address. */
export function portOf (addrs: string[]): number | null {
  const a = addrs.find(x => x.startsWith('/ip4/127.0.0.1/tcp/')) ?? addrs[0]
  const m = a === undefined ? null : /\/tcp\/(\d+)/.exec(a)
  return m === null ? null : Number(m[1])
}

/** How many of `names` this node sees alive; null when it does not answer. */
export async function aliveSeen (node: DevNode, names: string[], signal?: AbortSignal): Promise<number | null> {
  try {
    const nodes = await new ApiClient({ socket: node.socket, timeoutMs: DEV_REQUEST_TIMEOUT_MS }).get<NodeEntry[]>('/nodes', signal)
    return names.filter(name => nodes.some(n => n.name === name && n.state === 'alive')).length
  } catch {
    return null
  }
}

export async function devRows (state: DevState, signal?: AbortSignal): Promise<DevNodeRow[]> {
  const names = state.nodes.map(n => n.name)
  return await Promise.all(state.nodes.map(async n => {
    const running = runsAsNode(n)
    let metrics: string | null = null
    if (running) {
      try {
        const s = await new ApiClient({ socket: n.socket, timeoutMs: DEV_REQUEST_TIMEOUT_MS }).get<StatusResponse>('/status', signal)
        metrics = s.metrics.listen
      } catch {}
    }
    return {
      name: n.name,
      running,
      pid: n.pid,
      port: n.port,
      alive: running ? await aliveSeen(n, names, signal) : null,
      nodes: names.length,
      gpus: n.gpus,
      metrics,
      socket: n.socket,
      log: n.log
    }
  }))
}

export const DEV_COLUMNS: Array<Column<DevNodeRow>> = [
  { header: 'node', value: r => r.name },
  { header: 'process', value: r => (r.running ? 'running' : 'stopped') },
  { header: 'pid', value: r => r.pid, right: true },
  { header: 'port', value: r => r.port, right: true },
  { header: 'sees alive', value: r => (r.alive === null ? null : `${r.alive}/${r.nodes}`) },
  { header: 'gpus', value: r => (r.gpus === 0 ? null : `${r.gpus} fake`) },
  { header: 'metrics', value: r => r.metrics },
  { header: 'socket', value: r => r.socket }
]
