/**
 * The dev cluster's processes: whether a recorded pid is still that node's gridd (not a pid reused by another
 * program since), and stopping one by its pid.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { DEV_POLL_INTERVAL_MS } from './constants.ts'
import { pidExists, type DevNode } from './state.ts'

/** The process's command line, its arguments joined by spaces: /proc/PID/cmdline on Linux, else ps (macOS); '' when gone. */
function commandLine (pid: number): string {
  if (existsSync('/proc/self/cmdline')) {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(a => a !== '').join(' ')
    } catch {
      return ''
    }
  }
  try {
    return execFileSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return ''
  }
}

/**
 * Whether the node's recorded pid is alive and is the gridd started for this node: its command line has the node's
 * `--data-dir DIR --socket` (up.ts puts them in that order), so that a pid reused by another program is never taken
 * for it.
 */
export function runsAsNode (node: Pick<DevNode, 'pid' | 'dataDir'>): boolean {
  if (!pidExists(node.pid)) return false
  return commandLine(node.pid).includes(` --data-dir ${node.dataDir} --socket `)
}

/**
 * Whether the pid still runs: not gone and not a zombie (exited, not yet reaped by whatever adopted the detached
 * daemon). A process being killed loses its command line before it has exited, so waits use this, not runsAsNode.
 */
export function stillRuns (pid: number): boolean {
  if (!pidExists(pid)) return false
  let state = ''
  try {
    if (existsSync('/proc/self/stat')) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    } else {
      state = execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    }
  } catch {
    return false
  }
  return state !== '' && !/^[ZX]/.test(state)
}

/** Sends `signal` to the node's gridd if it still runs as that node; false when it did not. */
export function signalNode (node: Pick<DevNode, 'pid' | 'dataDir'>, signal: NodeJS.Signals): boolean {
  if (!runsAsNode(node)) return false
  try {
    process.kill(node.pid, signal)
    return true
  } catch {
    return false
  }
}

/** Waits until none of the nodes (signalled: checked to be theirs before) runs; returns those left at the deadline. */
export async function waitGone<T extends Pick<DevNode, 'pid'>> (nodes: T[], timeoutMs: number): Promise<T[]> {
  const deadline = Date.now() + timeoutMs
  let left = nodes.filter(n => stillRuns(n.pid))
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(DEV_POLL_INTERVAL_MS)
    left = left.filter(n => stillRuns(n.pid))
  }
  return left
}
