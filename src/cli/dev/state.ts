/**
 * The dev cluster's record (DEV_DIR/cluster.json): written by `gridctl dev up` as it starts each node, read by the
 * other dev commands and, to pick the default socket, by every gridctl call. Light on purpose (node:fs and
 * node:path only): run-gridctl imports it at start-up.
 */
import { existsSync, readFileSync } from '../../builtins.ts'
import { join, resolve } from 'node:path'
import { DEV_DIR, DEV_STATE_FILE, DEV_STATE_VERSION } from './constants.ts'

export interface DevNode {
  name: string
  /** the gridd process gridctl started (0 until it is spawned) */
  pid: number
  dataDir: string
  socket: string
  log: string
  /** its TCP port for peers, once it answered */
  port: number | null
  /** its peer id, once it answered */
  id: string | null
  /** fake GPUs it was given (--gpus-fake), 0 for none */
  gpus: number
}

export interface DevState {
  version: number
  root: string
  swarmKey: string
  startedAt: string
  nodes: DevNode[]
}

export function devRoot (cwd: string): string {
  return resolve(cwd, DEV_DIR)
}

export function devStatePath (root: string): string {
  return join(root, DEV_STATE_FILE)
}

/** The record in `root`, or null when there is none (or it is not one gridctl wrote). */
export function readDevState (root: string): DevState | null {
  const path = devStatePath(root)
  if (!existsSync(path)) return null
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as DevState
    if (s.version !== DEV_STATE_VERSION || !Array.isArray(s.nodes)) return null
    return s
  } catch {
    return null
  }
}

/** Whether a process with this pid exists (signal 0 sends nothing). */
export function pidExists (pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The socket gridctl talks to by default while a dev cluster runs in `cwd`: its first node, or the first one still
 * running after a `dev kill`. Undefined when there is no dev cluster here or none of its nodes runs.
 */
export function devClusterSocket (cwd: string): string | undefined {
  const state = readDevState(devRoot(cwd))
  return state?.nodes.find(n => pidExists(n.pid) && existsSync(n.socket))?.socket
}
