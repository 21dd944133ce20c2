/**
 * Lays a manifest out as a fresh directory for one attempt, so a task that writes a file never changes the cache or
 * another task's tree; symlinks made as links. With a task user (executor.taskUser) the tree is in that user's group
 * and its directories group-writable, as its scratch directories are. Two ways to place a file (executor.syncLayout):
 *
 * - copy: a copy from the cache (a copy-on-write clone where the filesystem has them), the task's to change;
 * - link: a hard link to the cache's blob, read-only (0444, gridd's): no data is copied, but a task can only replace
 *   or delete the file, not write into it. Safe only when tasks run as another user (a task running as gridd's user
 *   could chmod the blob and write through the link into the cache): the service asks for it only then. An
 *   executable file, or one the filesystem will not link (another device), is copied.
 *
 * Directories are made once each, parents first; the files are placed SYNC_FS_CONCURRENCY at a time.
 */
import { constants } from 'node:fs'
import { chmod, chown, copyFile, link, mkdir, rm, symlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Manifest, ManifestEntry, ManifestLink } from '../../proto/index.ts'
import type { BlobCache } from './blob-cache.ts'
import { SYNC_FS_CONCURRENCY } from './constants.ts'
import { dirsOf } from './manifest-bytes.ts'
import { isFile } from './manifest-codec.ts'
import { mapLimit } from './pool.ts'

export interface LayoutOptions {
  /** the task user's group: the tree is shared with it */
  group?: number
  /** place non-executable files as hard links to the cache (only when tasks cannot write the cache's blobs) */
  link?: boolean
  /** stop placing files once aborted (a spare that is no longer wanted) */
  signal?: AbortSignal
  /** waits until a file's blob is in the cache (a tree laid out as its blobs arrive); absent: every blob is there */
  arriving?: (hash: string) => Promise<void>
}

export interface LayoutResult { copied: number, linked: number }

/** Errors of link(2) after which the file is copied instead (another filesystem, no hard links, too many links). */
const LINK_FALLBACK = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP'])

export async function layoutTree (cache: Pick<BlobCache, 'path'>, m: Manifest, dir: string, opts: LayoutOptions = {}): Promise<LayoutResult> {
  await rm(dir, { recursive: true, force: true })
  await mkdir(dirname(dir), { recursive: true, mode: 0o700 })
  await makeDir(dir, opts.group)
  return await placeEntries(cache, m.entries, dir, opts)
}

/** Places `entries` under `dir` (which exists): their directories first (those not there yet), then the files and links. */
export async function placeEntries (cache: Pick<BlobCache, 'path'>, entries: readonly ManifestEntry[], dir: string, opts: LayoutOptions = {}): Promise<LayoutResult> {
  const { group } = opts
  // every directory once, a parent before its children
  for (const d of dirsOf(entries)) await makeDir(join(dir, d), group)
  const files = entries.filter(isFile)
  let linked = 0
  let linkable = opts.link === true
  await mapLimit(files, SYNC_FS_CONCURRENCY, async f => {
    opts.signal?.throwIfAborted()
    await opts.arriving?.(f.sha256)
    const dest = join(dir, f.path)
    const src = cache.path(f.sha256)
    if (linkable && (f.mode & 0o111) === 0) {
      try {
        await link(src, dest)
        linked++
        return
      } catch (err) {
        if (!LINK_FALLBACK.has((err as NodeJS.ErrnoException).code ?? '')) throw err
        linkable = false
      }
    }
    await copyFile(src, dest, constants.COPYFILE_FICLONE)
    // the owner may write its copy; a task user, through the group
    let mode = (f.mode & 0o777) | 0o600
    if (group !== undefined) { await chown(dest, -1, group); mode |= 0o060 | ((mode & 0o100) !== 0 ? 0o010 : 0) }
    await chmod(dest, mode)
  })
  for (const l of entries) if (!isFile(l)) await symlink((l as ManifestLink).link, join(dir, l.path))
  return { copied: files.length - linked, linked }
}

/** A directory of the tree (gridd's, or shared with the task user's group); one there already is left as it is. */
async function makeDir (d: string, group?: number): Promise<void> {
  const mode = group === undefined ? 0o700 : 0o770
  try {
    await mkdir(d, { mode })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return
    throw err
  }
  if (group !== undefined) await chown(d, -1, group)
  await chmod(d, mode)
}
