/**
 * Lays a manifest out as a fresh directory for one attempt: each file copied from the cache (a copy-on-write clone
 * where the filesystem has them, else a plain copy), so a task that writes a file never changes the cache or another
 * task's tree; symlinks made as links. With a task user (executor.taskUser) the tree is in that user's group and
 * group-writable, as its scratch directories are.
 */
import { constants } from 'node:fs'
import { chmod, chown, copyFile, mkdir, rm, symlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Manifest, ManifestFile, ManifestLink } from '../../proto/index.ts'
import type { BlobCache } from './blob-cache.ts'
import { SYNC_FS_CONCURRENCY } from './constants.ts'
import { isFile } from './manifest-codec.ts'
import { mapLimit } from './pool.ts'

export async function layoutTree (cache: Pick<BlobCache, 'path'>, m: Manifest, dir: string, group?: number): Promise<void> {
  await rm(dir, { recursive: true, force: true })
  await mkdir(dirname(dir), { recursive: true, mode: 0o700 })
  const dirMode = group === undefined ? 0o700 : 0o770
  await makeDir(dir, dirMode, group)
  const made = new Set<string>([dir])
  const ensureParent = async (path: string): Promise<void> => {
    const parents: string[] = []
    for (let d = dirname(path); !made.has(d); d = dirname(d)) parents.unshift(d)
    for (const d of parents) {
      if (made.has(d)) continue
      made.add(d)
      await makeDir(d, dirMode, group)
    }
  }
  const files = m.entries.filter(isFile) as ManifestFile[]
  const links = m.entries.filter(e => !isFile(e)) as ManifestLink[]
  // parents first, in order (cheap), then the copies in parallel
  for (const f of files) await ensureParent(join(dir, f.path))
  for (const l of links) await ensureParent(join(dir, l.path))
  await mapLimit(files, SYNC_FS_CONCURRENCY, async f => {
    const dest = join(dir, f.path)
    await copyFile(cache.path(f.sha256), dest, constants.COPYFILE_FICLONE)
    // the owner may write its copy; a task user, through the group
    let mode = (f.mode & 0o777) | 0o600
    if (group !== undefined) { await chown(dest, -1, group); mode |= 0o060 | ((mode & 0o100) !== 0 ? 0o010 : 0) }
    await chmod(dest, mode)
  })
  for (const l of links) await symlink(l.link, join(dir, l.path))
}

async function makeDir (d: string, mode: number, group?: number): Promise<void> {
  await mkdir(d, { mode })
  if (group !== undefined) await chown(d, -1, group)
  await chmod(d, mode)
}
