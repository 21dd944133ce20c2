/**
 * A drain outlives a restart: `gridctl drain` leaves a small file in the data directory, `undrain` removes it, and
 * a daemon that finds it starts draining (as a cordoned node stays cordoned across a reboot in Kubernetes, or a
 * drained Slurm node across a slurmd restart). A node taken out for maintenance does not take tasks again merely
 * because it was rebooted; `gridctl undrain` (or a rolling restart, which undrains) gives it work again.
 */
import { readFileSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../util/fs.ts'

export const DRAIN_MARK_FILE = 'drained.json'

export interface DrainMark { since: string }

export function drainMarkPath (dataDir: string): string { return join(dataDir, DRAIN_MARK_FILE) }

/** The mark left by an earlier drain; undefined when there is none. A mark that cannot be parsed still counts. */
export function readDrainMark (path: string): DrainMark | undefined {
  let text: string
  try { text = readFileSync(path, 'utf8') } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    const v = JSON.parse(text) as { since?: unknown }
    return { since: typeof v.since === 'string' ? v.since : 'unknown' }
  } catch {
    return { since: 'unknown' }
  }
}

export function writeDrainMark (path: string, drained: boolean): void {
  if (drained) {
    writeFileAtomic(path, JSON.stringify({ since: new Date().toISOString() }) + '\n')
    return
  }
  try { unlinkSync(path) } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
