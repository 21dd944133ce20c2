/**
 * Tasks' scratch directories: `<dataDir>/scratch/<task id>`, where a task runs when it names no directory and the
 * one its caller ran in does not exist on this node. A directory is kept for the task-record retention after its
 * task ended (its mtime is set at the end), then removed by a sweep; the sweep never touches a task that is here.
 *
 * With a task user the root is outside gridd's data dir (which that user cannot enter) and shared through the task
 * user's group: the root 0710 (the group may only pass through), each task's directory 0770, both in that group.
 *
 * The sweep is asynchronous: a directory can be a synced tree of 10,000 files, and removing it with rmSync would hold
 * gridd's event loop (heartbeats, RPCs) for seconds. It removes one directory at a time, a few files at once
 * (remove-tree.ts), asks `keep` about each one just before it goes, and stops between directories once its signal
 * is aborted.
 */
import { chmodSync, chownSync, mkdirSync, utimesSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { removeTree } from './remove-tree.ts'

/** The scratch directory of a task (its id made safe as one path component). */
export function scratchPath (root: string, taskId: string): string {
  return join(root, taskId.replace(/[^A-Za-z0-9_-]/g, '_'))
}

/** Creates it (and the root) if needed, shared with `group` (the task user's) when given; the path. */
export function makeScratch (root: string, taskId: string, group?: number): string {
  const dir = scratchPath(root, taskId)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (group !== undefined) share(dir, group, 0o770)
  return dir
}

/** The root of a task user's scratch directories: made if needed, in `group`, which may only pass through it. */
export function prepareScratchRoot (root: string, group: number): void {
  mkdirSync(root, { recursive: true, mode: 0o700 })
  share(root, group, 0o710)
}

function share (dir: string, group: number, mode: number): void {
  chownSync(dir, -1, group)
  chmodSync(dir, mode)
}

/** The task ended: its retention counts from now. */
export function markScratchEnded (dir: string): void {
  const now = new Date()
  try { utimesSync(dir, now, now) } catch {}
}

export interface SweepOptions {
  /** stop between directories once aborted (gridd is stopping) */
  signal?: AbortSignal
  now?: number
}

/**
 * Removes scratch directories older than `retentionMs` whose name `keep` does not claim (a task that is here; asked
 * just before each removal, so a task that came during the sweep keeps its directory); how many went.
 */
export async function sweepScratch (root: string, retentionMs: number, keep: (name: string) => boolean, opts: SweepOptions = {}): Promise<number> {
  const now = opts.now ?? Date.now()
  let names: string[]
  try { names = await readdir(root) } catch { return 0 }
  let removed = 0
  for (const name of names) {
    if (opts.signal?.aborted === true) break
    const dir = join(root, name)
    try {
      if (keep(name) || now - (await stat(dir)).mtimeMs <= retentionMs || keep(name)) continue
      await removeTree(dir)
      removed++
    } catch {}
  }
  return removed
}
