/**
 * Removes a directory tree without holding the event loop: one directory at a time (depth first), its files
 * SCRATCH_REMOVE_CONCURRENCY at a time, each step awaited, so timers and I/O (heartbeats, RPCs) run in between.
 * Symbolic links are removed, never followed. What is already gone is no error.
 */
import type { Dirent } from 'node:fs'
import { readdir, rmdir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { SCRATCH_REMOVE_CONCURRENCY } from './constants.ts'

export async function removeTree (dir: string, concurrency = SCRATCH_REMOVE_CONCURRENCY): Promise<void> {
  let entries: Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return
    if (code === 'ENOTDIR') { await gone(unlink(dir)); return }
    throw err
  }
  const files = entries.filter(e => !e.isDirectory())
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < files.length) await gone(unlink(join(dir, (files[next++] as Dirent).name)))
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, lane))
  for (const e of entries) if (e.isDirectory()) await removeTree(join(dir, e.name), concurrency)
  await gone(rmdir(dir))
}

async function gone (op: Promise<void>): Promise<void> {
  try {
    await op
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
