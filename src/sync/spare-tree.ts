/**
 * A spare tree: after an attempt's tree is laid out, a second fresh one of the same manifest is laid out in the
 * background in gridd's own directory (no task can reach it), so the next attempt of that tree, or of one a few files
 * away (the same project after an edit), gets its tree by a rename and the difference applied, instead of a copy of
 * every file. One spare at most, of the latest tree (SYNC_SPARE_MAX_BYTES at most); a taken spare is replaced.
 *
 * An attempt's own tree, once its task has ended, becomes the spare instead when the task left it exactly as it was
 * laid out (every file's and directory's inode and ctime as stamped, tree-stamp.ts) and the background copy is not
 * ready yet: runs back to back then cost a rename each, not a copy of the tree each. No task can write into a spare:
 * what it holds is what was laid out (a task's writes to its own tree keep that tree from being taken).
 */
import { mkdir, rename, rm, rmdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import type { Manifest } from '../../proto/index.ts'
import type { BlobCache } from './blob-cache.ts'
import { SYNC_PARTIAL_TTL_MS, SYNC_SPARE_DIFF_MAX, SYNC_SPARE_MAX_BYTES } from './constants.ts'
import { layoutTree, placeEntries, type LayoutOptions } from './layout.ts'
import { diffManifests } from './manifest-delta.ts'
import { isFile } from './manifest-codec.ts'
import { restamp, stampTree, unchangedSince, type TreeStamp } from './tree-stamp.ts'

interface Ready { dir: string, stamp: TreeStamp }
interface Spare { hash: string, m: Manifest, ready: Promise<Ready | undefined>, settled: boolean, abort: () => void, arriving?: boolean }

export class SpareTrees {
  private spare: Spare | undefined
  private n = 0
  /** the clearing of what an earlier run left: spares are laid out after it */
  private cleared: Promise<void> = Promise.resolve()
  /** task trees being looked at to become the spare (by their path): a new layout there waits for it */
  private readonly recycling = new Map<string, Promise<unknown>>()

  constructor (private readonly root: string, private readonly cache: Pick<BlobCache, 'path' | 'pin' | 'whenPresent'>, private readonly log: Pick<Logger, 'debug' | 'warn'>, private readonly opts: LayoutOptions) {}

  /** Clears what an earlier run of gridd left (in the background). */
  open (): void {
    this.cleared = rm(this.root, { recursive: true, force: true }).catch(() => {})
  }

  /**
   * Moves the spare to `dest` as the tree of `m` (manifest `hash`) when it is of a tree at most SYNC_SPARE_DIFF_MAX
   * entries away (the difference applied); its stamp, or undefined (nothing at `dest` yet) when there is no such
   * spare. A spare still being laid out as its blobs arrive serves only its own tree: another would wait on them.
   */
  async take (hash: string, m: Manifest, dest: string): Promise<TreeStamp | undefined> {
    const s = this.spare
    if (s === undefined) return undefined
    this.spare = undefined
    if (s.arriving && !s.settled && s.hash !== hash) { this.discard(s); return undefined }
    // the same tree (the run of an unchanged directory): no difference to work out over its entries
    const d = s.hash === hash ? { removed: [], upserted: [] } : diffManifests(s.m, m)
    const r = d.removed.length + d.upserted.length > SYNC_SPARE_DIFF_MAX ? undefined : await s.ready
    if (r === undefined) { this.discard(s); return undefined }
    try {
      await rm(dest, { recursive: true, force: true })
      await mkdir(dirname(dest), { recursive: true, mode: 0o700 })
      await rename(r.dir, dest)
      // what went away, then what changed or came (a path that was a directory and is now a file is cleared first)
      for (const p of [...d.removed, ...d.upserted.map(e => e.path)]) await rm(join(dest, p), { recursive: true, force: true })
      for (const p of d.removed) await pruneEmpty(dest, dirname(p))
      await placeEntries(this.cache, d.upserted, dest, this.opts)
      const stamp = d.removed.length + d.upserted.length === 0 ? r.stamp : await restamp(dest, m, r.stamp, d.removed, d.upserted.filter(isFile).map(e => e.path))
      this.log.debug({ manifest: s.hash, removed: d.removed.length, upserted: d.upserted.length }, 'synced tree laid out from the spare')
      return stamp
    } catch (err) {
      this.log.warn({ err, dest }, 'cannot lay a synced tree out from the spare; copying it')
      await rm(dest, { recursive: true, force: true }).catch(() => {})
      return undefined
    }
  }

  /**
   * A tree whose blobs are about to arrive (a peer asked which of them this node lacks, to send them): a spare of it
   * is laid out as they come, each file as soon as its blob is in the cache, so the attempt's tree is ready when the
   * last blob is, instead of being copied only after. Not when the spare there can serve it already (the same tree,
   * or one a few files away: the next run of an edited project), which would be thrown away for a slower one.
   */
  prepareAhead (hash: string, m: Manifest): void {
    const s = this.spare
    if (s !== undefined && s.hash !== hash) {
      const d = diffManifests(s.m, m)
      const away = d.removed.length + d.upserted.length
      // a few files away, and few beside the tree's own: the old spare with the difference is the quicker
      if (away <= SYNC_SPARE_DIFF_MAX && away * 2 < m.entries.length) return
    }
    this.prepare(hash, m, true)
  }

  /**
   * Lays out a spare of `m` in the background (replacing the one there), unless there is one of it already; with
   * `arriving`, each file once its blob has arrived (given up when none has for SYNC_PARTIAL_TTL_MS).
   */
  prepare (hash: string, m: Manifest, arriving = false): void {
    if (this.spare?.hash === hash) return
    if (this.spare !== undefined) this.discard(this.spare)
    this.spare = undefined
    const bytes = m.entries.reduce((s, e) => s + (isFile(e) ? e.size : 0), 0)
    if (bytes > SYNC_SPARE_MAX_BYTES) return
    const dir = join(this.root, `t${this.n++}`)
    const unpin = this.cache.pin(m.entries.filter(isFile).map(e => e.sha256))
    const ctl = new AbortController()
    // the blobs stopped coming (their sender went away): the spare is given up, not left waiting with its pins
    let stalled: NodeJS.Timeout | undefined
    const waitFor = async (h: string): Promise<void> => {
      clearTimeout(stalled)
      stalled = setTimeout(() => { ctl.abort(new Error('the tree\'s blobs stopped arriving')) }, SYNC_PARTIAL_TTL_MS)
      stalled.unref()
      await this.cache.whenPresent(h, ctl.signal)
    }
    if (arriving) this.log.debug({ manifest: hash, files: m.entries.length }, 'laying a spare synced tree out as its blobs arrive')
    const ready = this.cleared
      .then(async () => {
        await mkdir(this.root, { recursive: true, mode: 0o700 })
        const placed = await layoutTree(this.cache, m, dir, { ...this.opts, signal: ctl.signal, ...(arriving ? { arriving: waitFor } : {}) })
        this.log.debug({ manifest: hash, ...placed, arriving }, 'a spare synced tree is laid out')
        return { dir, stamp: await stampTree(dir, m) }
      })
      .catch(async (err: Error) => {
        if (!ctl.signal.aborted) this.log.warn({ err }, 'cannot lay out a spare synced tree')
        await rm(dir, { recursive: true, force: true }).catch(() => {})
        return undefined
      })
      .finally(() => { clearTimeout(stalled); unpin() })
    this.settle({ hash, m, ready, settled: false, abort: () => { ctl.abort() }, arriving })
  }

  /**
   * Task tree `dir` of manifest `m`, laid out with `stamp`, whose task has ended: it becomes the spare if its task
   * left it as laid out and the spare is of the same tree and not ready yet (or there is none); else it stays.
   */
  recycle (hash: string, m: Manifest, dir: string, stamp: TreeStamp): void {
    const fallback = this.spare
    if (fallback !== undefined && (fallback.hash !== hash || fallback.settled)) return
    const target = join(this.root, `t${this.n++}`)
    const ready = (async (): Promise<Ready | undefined> => {
      if (await unchangedSince(dir, m, stamp)) {
        try {
          await mkdir(this.root, { recursive: true, mode: 0o700 })
          await rename(dir, target)
          if (fallback !== undefined) { fallback.abort(); this.discard(fallback) }
          this.log.debug({ manifest: hash, dir }, 'a synced task left its tree as laid out: it is the next spare')
          return { dir: target, stamp }
        } catch (err) {
          this.log.warn({ err, dir }, 'cannot take a synced task\'s tree as the spare')
        }
      }
      return fallback === undefined ? undefined : await fallback.ready
    })()
    const looked = ready.then(() => {}, () => {}).finally(() => { if (this.recycling.get(dir) === looked) this.recycling.delete(dir) })
    this.recycling.set(dir, looked)
    this.settle({ hash, m, ready, settled: false, abort: () => { fallback?.abort() } })
  }

  /** Waits until no task tree at `dir` is being looked at to become the spare (before a new layout there). */
  async idle (dir: string): Promise<void> { await this.recycling.get(dir) }

  private settle (s: Spare): void {
    this.spare = s
    void s.ready.then(() => { s.settled = true }, () => {})
  }

  private discard (s: Spare): void {
    s.abort()
    void s.ready.then(async r => { if (r !== undefined) await rm(r.dir, { recursive: true, force: true }) }).catch(() => {})
  }
}

/** Removes the directories from `rel` up that a removal left empty (a fresh tree has no empty directories). */
async function pruneEmpty (root: string, rel: string): Promise<void> {
  for (let d = rel; d !== '.' && d !== ''; d = dirname(d)) {
    try { await rmdir(join(root, d)) } catch { return }
  }
}
