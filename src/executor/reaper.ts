/**
 * Reaping: the process groups that an earlier run of this node left behind when its spawner was killed along with
 * it (kill -9 of both, a machine that froze), found by the GRID_NODE_ID every task and warm worker carries.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'

/**
 * Kills the process groups of tasks an earlier run of this node left behind (its spawner was killed along with it):
 * every process whose environment says GRID_NODE_ID=<this node>. Linux only (/proc); elsewhere it does nothing.
 * Returns how many groups it killed.
 */
export function reapOrphans (nodeId: string): number {
  if (!existsSync('/proc/self/environ')) return 0
  const marker = Buffer.from(`\0GRID_NODE_ID=${nodeId}\0`)
  const groups = new Set<number>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    if (pid === process.pid || pid === process.ppid) continue
    let env: Buffer
    try { env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`)]) } catch { continue }
    if (env.indexOf(marker) < 0) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
      groups.add(pgid > 1 ? pgid : pid)
    } catch {}
  }
  for (const g of groups) {
    try { process.kill(-g, 'SIGKILL') } catch { try { process.kill(g, 'SIGKILL') } catch {} }
  }
  return groups.size
}
