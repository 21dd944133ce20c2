/**
 * A spare tree: after an attempt's tree is laid out, a second fresh one of the same manifest is laid out in the
 * background in gridd's own directory (no task can reach it), so the next attempt of that tree, or of one a few files
 * away (the same project after an edit), gets its tree by a rename and the difference applied, instead of a copy of
 * every file. No task ever had the spare, so what it holds is what was laid out: a task's writes to its own tree never
 * reach another. One spare at most, of the latest tree (SYNC_SPARE_MAX_BYTES at most); a taken spare is replaced.
 */
import { mkdir, rename, rm, rmdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import type { Manifest } from '../../proto/index.ts'
import type { BlobCache } from './blob-cache.ts'
import { SYNC_SPARE_DIFF_MAX, SYNC_SPARE_MAX_BYTES } from './constants.ts'
import { layoutTree, placeEntries, type LayoutOptions } from './layout.ts'
import { diffManifests } from './manifest-delta.ts'
import { isFile } from './manifest-codec.ts'

interface Spare { hash: string, m: Manifest, dir: string, ready: Promise<boolean> }

export class SpareTrees {
  private spare: Spare | undefined
  private n = 0
  /** the clearing of what an earlier run left: spares are laid out after it */
  private cleared: Promise<void> = Promise.resolve()

  constructor (private readonly root: string, private readonly cache: Pick<BlobCache, 'path' | 'pin'>, private readonly log: Pick<Logger, 'debug' | 'warn'>, private readonly opts: LayoutOptions) {}

  /** Clears what an earlier run of gridd left (in the background). */
  open (): void {
    this.cleared = rm(this.root, { recursive: true, force: true }).catch(() => {})
  }

  /**
   * Moves the spare to `dest` as the tree of `m` when it is of a tree at most SYNC_SPARE_DIFF_MAX entries away (the
   * difference applied); false (nothing at `dest` yet) when there is no such spare.
   */
  async take (m: Manifest, dest: string): Promise<boolean> {
    const s = this.spare
    if (s === undefined) return false
    this.spare = undefined
    const d = diffManifests(s.m, m)
    if (d.removed.length + d.upserted.length > SYNC_SPARE_DIFF_MAX || !(await s.ready)) { this.discard(s); return false }
    try {
      await rm(dest, { recursive: true, force: true })
      await mkdir(dirname(dest), { recursive: true, mode: 0o700 })
      await rename(s.dir, dest)
      // what went away, then what changed or came (a path that was a directory and is now a file is cleared first)
      for (const p of [...d.removed, ...d.upserted.map(e => e.path)]) await rm(join(dest, p), { recursive: true, force: true })
      for (const p of d.removed) await pruneEmpty(dest, dirname(p))
      await placeEntries(this.cache, d.upserted, dest, this.opts)
      this.log.debug({ manifest: s.hash, removed: d.removed.length, upserted: d.upserted.length }, 'synced tree laid out from the spare')
      return true
    } catch (err) {
      this.log.warn({ err, dest }, 'cannot lay a synced tree out from the spare; copying it')
      await rm(dest, { recursive: true, force: true }).catch(() => {})
      return false
    }
  }

  /** Lays out a spare of `m` in the background (replacing the one there), unless there is one of it already. */
  prepare (hash: string, m: Manifest): void {
    if (this.spare?.hash === hash) return
    if (this.spare !== undefined) this.discard(this.spare)
    this.spare = undefined
    const bytes = m.entries.reduce((s, e) => s + (isFile(e) ? e.size : 0), 0)
    if (bytes > SYNC_SPARE_MAX_BYTES) return
    const dir = join(this.root, `t${this.n++}`)
    const unpin = this.cache.pin(m.entries.filter(isFile).map(e => e.sha256))
    const ready = this.cleared
      .then(async () => { await mkdir(this.root, { recursive: true, mode: 0o700 }); await layoutTree(this.cache, m, dir, this.opts); return true })
      .catch((err: Error) => { this.log.warn({ err }, 'cannot lay out a spare synced tree'); return false })
      .finally(unpin)
    this.spare = { hash, m, dir, ready }
  }

  private discard (s: Spare): void {
    void s.ready.then(async () => { await rm(s.dir, { recursive: true, force: true }) }).catch(() => {})
  }
}

/** Removes the directories from `rel` up that a removal left empty (a fresh tree has no empty directories). */
async function pruneEmpty (root: string, rel: string): Promise<void> {
  for (let d = rel; d !== '.' && d !== ''; d = dirname(d)) {
    try { await rmdir(join(root, d)) } catch { return }
  }
}
