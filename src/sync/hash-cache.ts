/**
 * gridctl's memory of the hashes it computed for a directory, so a second `--sync` of a large tree reads only what
 * changed: a file whose size, mtime, ctime and inode are what they were keeps its hash (as git's index does). A file
 * changed within HASH_CACHE_RACY_MS of the cache being written may have changed again in the same clock tick: it is
 * hashed again. The cache lives in the user's cache directory, one file per synced directory; losing it costs time only.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Stats } from 'node:fs'

const HASH_CACHE_RACY_MS = 2_000
const HASH_CACHE_VERSION = 1

type Row = [size: number, mtimeMs: number, ctimeMs: number, ino: number, sha256: string]

export class HashCache {
  private readonly old = new Map<string, Row>()
  private readonly next = new Map<string, Row>()
  private writtenAt = 0
  /** lookups that missed: without any (and with the same files), the file on disk is still right and not rewritten */
  private misses = 0

  constructor (private readonly file: string | undefined) {
    if (file === undefined) return
    try {
      const v = JSON.parse(readFileSync(file, 'utf8')) as { version: number, writtenAt: number, rows: Record<string, Row> }
      if (v.version !== HASH_CACHE_VERSION) return
      this.writtenAt = v.writtenAt
      for (const [k, r] of Object.entries(v.rows)) this.old.set(k, r)
    } catch {}
  }

  /** The hash remembered for `rel`, if the file is as it was and was not changed just before the cache was written. */
  lookup (rel: string, st: Stats): string | undefined {
    const r = this.old.get(rel)
    if (r === undefined || r[0] !== st.size || r[1] !== st.mtimeMs || r[2] !== st.ctimeMs || r[3] !== st.ino || this.writtenAt - st.mtimeMs < HASH_CACHE_RACY_MS) {
      this.misses++
      return undefined
    }
    return r[4]
  }

  remember (rel: string, st: Stats, sha256: string): void { this.next.set(rel, [st.size, st.mtimeMs, st.ctimeMs, st.ino, sha256]) }

  /** Writes what this build saw (only the files still there), unless it is what the file holds already. */
  save (): void {
    if (this.file === undefined) return
    if (this.misses === 0 && this.next.size === this.old.size) return
    try {
      mkdirSync(join(this.file, '..'), { recursive: true, mode: 0o700 })
      const tmp = `${this.file}.${process.pid}`
      writeFileSync(tmp, JSON.stringify({ version: HASH_CACHE_VERSION, writtenAt: Date.now(), rows: Object.fromEntries(this.next) }), { mode: 0o600 })
      renameSync(tmp, this.file)
    } catch {}
  }
}

/** Where gridctl keeps the hashes of directory `root`: $XDG_CACHE_HOME/grid/sync, else ~/.cache/grid/sync. */
export function hashCacheFile (root: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME.startsWith('/') ? env.XDG_CACHE_HOME : join(homedir(), '.cache')
  return join(base, 'grid', 'sync', `${createHash('sha256').update(root).digest('hex').slice(0, 32)}.json`)
}
