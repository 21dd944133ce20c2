/**
 * gridctl's memory of its last walk of a synced directory, so a second `--sync` of a large tree does little more than
 * an lstat per file: a file whose size, mtime, ctime, inode and mode are what they were keeps its hash (as git's index
 * does); a directory whose mtime, ctime and inode are what they were (no name came, went or was replaced) keeps its
 * listing, its excludes already applied (under the same rules), so it is not read or matched again. A file or
 * directory changed within WALK_CACHE_RACY_MS of the cache being written may have changed again in the same clock
 * tick: it is looked at again. The cache also names the manifest its rows make, the base gridctl sends the next one
 * against (POST /v1/sync/manifest). It lives in the user's cache directory, one file per synced directory; losing it
 * costs time only.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Stats } from 'node:fs'
import type { ManifestEntry } from '../../proto/sync.ts'

const WALK_CACHE_RACY_MS = 2_000
const WALK_CACHE_VERSION = 2
/** fields per file row in the saved flat array: rel, size, mtimeMs, ctimeMs, ino, mode, sha256 */
const FILE_FIELDS = 7

type FileRow = [size: number, mtimeMs: number, ctimeMs: number, ino: number, mode: number, sha256: string]
type DirRow = [mtimeMs: number, ctimeMs: number, ino: number, listing: string]

interface Saved {
  version: number
  writtenAt: number
  /** the excludes the listings were made under */
  rules: string
  /** the manifest these rows make, if it was encoded */
  manifest: string | null
  /** rel, mtimeMs, ctimeMs, ino, listing (each child as kind d|f|l and name, `/`-separated: a name has no `/`) */
  dirs: Array<[string, number, number, number, string]>
  /** FILE_FIELDS per file, flat */
  files: Array<string | number>
  /** rel, target, flat */
  links: string[]
}

export interface ManifestChange { removed: string[], upserted: ManifestEntry[] }

export class WalkCache {
  /** the saved file rows, flat (FILE_FIELDS each), and where each path's row starts */
  private oldFlat: Array<string | number> = []
  /** where each saved path's row starts, made only when a walk strays from the saved order */
  private oldIndex: Map<string, number> | undefined
  /** the saved row the walk expects next: rows are saved in the walk's order, so most lookups need no map */
  private cursor = 0
  private readonly oldDirs = new Map<string, DirRow>()
  private readonly oldLinks = new Map<string, string>()
  /** this walk's files in its order, each a saved row left as it was (its start in oldFlat), or a new one (once hashed) */
  private readonly paths: string[] = []
  private readonly rows: Array<number | FileRow | undefined> = []
  /** files a lookup missed: their place in `rows`, and their saved row if any */
  private readonly slotOf = new Map<string, number>()
  private readonly missRow = new Map<string, number>()
  private readonly dirs = new Map<string, DirRow>()
  private readonly links = new Map<string, string>()
  private writtenAt = 0
  private oldManifest: string | null = null
  /** a row differs from the saved one (stat or content): the file is rewritten */
  private rowsChanged = false
  /** the manifest differs from the saved one (a path, mode, size, hash or link target) */
  private contentChanged = false
  /** a lookup refused only for being racy, of something last changed at this time (the latest) */
  private racyAt = -Infinity

  constructor (private readonly file: string | undefined, private readonly rules: string) {
    if (file === undefined) return
    try {
      const v = JSON.parse(readFileSync(file, 'utf8')) as Saved
      if (v.version !== WALK_CACHE_VERSION) return
      this.writtenAt = v.writtenAt
      this.oldManifest = v.manifest
      this.oldFlat = v.files.length % FILE_FIELDS === 0 ? v.files : []
      for (let i = 0; i + 2 <= v.links.length; i += 2) this.oldLinks.set(v.links[i] as string, v.links[i + 1] as string)
      if (v.rules === rules) for (const [rel, m, c, ino, listing] of v.dirs) this.oldDirs.set(rel, [m, c, ino, listing])
    } catch {}
  }

  private settled (st: Stats): boolean {
    if (this.writtenAt - st.mtimeMs >= WALK_CACHE_RACY_MS) return true
    this.racyAt = Math.max(this.racyAt, st.mtimeMs)
    return false
  }

  private get oldCount (): number { return this.oldFlat.length / FILE_FIELDS }

  /** Where the saved row of `rel` starts, if there is one: the next one in the saved order, most often. */
  private rowOf (rel: string): number | undefined {
    const f = this.oldFlat
    if (this.cursor < f.length && f[this.cursor] === rel) return this.cursor
    if (this.oldIndex === undefined) {
      this.oldIndex = new Map()
      for (let i = 0; i < f.length; i += FILE_FIELDS) this.oldIndex.set(f[i] as string, i)
    }
    return this.oldIndex.get(rel)
  }

  /** The saved row of `rel` (a file a lookup missed), if any. */
  private old (rel: string): FileRow | undefined {
    const i = this.missRow.get(rel)
    if (i === undefined) return undefined
    const f = this.oldFlat
    return [f[i + 1] as number, f[i + 2] as number, f[i + 3] as number, f[i + 4] as number, f[i + 5] as number, f[i + 6] as string]
  }

  /** The listing remembered for directory `rel` (kind + name per child, excludes applied), if it is as it was. */
  listing (rel: string, st: Stats): string[] | undefined {
    const r = this.oldDirs.get(rel)
    if (r === undefined || r[0] !== st.mtimeMs || r[1] !== st.ctimeMs || r[2] !== st.ino || !this.settled(st)) return undefined
    this.dirs.set(rel, r)
    return r[3] === '' ? [] : r[3].split('/')
  }

  rememberListing (rel: string, st: Stats, listing: readonly string[]): void {
    const joined = listing.join('/')
    const r = this.oldDirs.get(rel)
    if (r === undefined || r[0] !== st.mtimeMs || r[1] !== st.ctimeMs || r[2] !== st.ino || r[3] !== joined) this.rowsChanged = true
    this.dirs.set(rel, [st.mtimeMs, st.ctimeMs, st.ino, joined])
  }

  /** The hash remembered for file `rel`, if it is as it was and was not changed just before the cache was written. */
  lookup (rel: string, st: Stats, mode: number): string | undefined {
    const i = this.rowOf(rel)
    const f = this.oldFlat
    if (i !== undefined) {
      this.cursor = i + FILE_FIELDS
      if (f[i + 1] === st.size && f[i + 2] === st.mtimeMs && f[i + 3] === st.ctimeMs && f[i + 4] === st.ino && f[i + 5] === mode && this.settled(st)) {
        this.paths.push(rel)
        this.rows.push(i)
        return f[i + 6] as string
      }
      this.missRow.set(rel, i)
    }
    this.slotOf.set(rel, this.rows.length)
    this.paths.push(rel)
    this.rows.push(undefined)
    return undefined
  }

  /** A file hashed this walk (a lookup missed). */
  remember (rel: string, st: Stats, mode: number, sha256: string): void {
    const r = this.old(rel)
    if (r === undefined || r[4] !== mode || r[0] !== st.size || r[5] !== sha256) this.contentChanged = true
    if (r === undefined || r[1] !== st.mtimeMs || r[2] !== st.ctimeMs || r[3] !== st.ino) this.rowsChanged = true
    const row: FileRow = [st.size, st.mtimeMs, st.ctimeMs, st.ino, mode, sha256]
    const slot = this.slotOf.get(rel)
    if (slot !== undefined) this.rows[slot] = row
    else { this.paths.push(rel); this.rows.push(row) }
  }

  rememberLink (rel: string, target: string): void {
    if (this.oldLinks.get(rel) !== target) { this.contentChanged = true; this.rowsChanged = true }
    this.links.set(rel, target)
  }

  /** Whether this walk's manifest is the saved one (same entries): its hash, without encoding it again. */
  sameManifest (): string | undefined {
    if (this.contentChanged || this.oldManifest === null || this.paths.length !== this.oldCount || this.links.size !== this.oldLinks.size) return undefined
    return this.oldManifest
  }

  /** The last manifest (by hash) and how this walk's differs from it: what the daemon needs to rebuild this one. */
  change (): { base: string, change: ManifestChange } | undefined {
    if (this.oldManifest === null) return undefined
    const upserted: ManifestEntry[] = []
    for (let k = 0; k < this.paths.length; k++) {
      const x = this.rows[k]
      if (typeof x !== 'object') continue
      const path = this.paths[k] as string
      const o = this.old(path)
      if (o === undefined || o[0] !== x[0] || o[4] !== x[4] || o[5] !== x[5]) upserted.push({ path, mode: x[4], size: x[0], sha256: x[5] })
    }
    for (const [path, link] of this.links) if (this.oldLinks.get(path) !== link) upserted.push({ path, link })
    const removed: string[] = []
    const files = new Set(this.paths)
    for (let i = 0; i < this.oldFlat.length; i += FILE_FIELDS) {
      const p = this.oldFlat[i] as string
      if (!files.has(p) && !this.links.has(p)) removed.push(p)
    }
    for (const p of this.oldLinks.keys()) if (!files.has(p) && !this.links.has(p)) removed.push(p)
    return { base: this.oldManifest, change: { removed, upserted } }
  }

  /**
   * Writes what this walk saw (only what is still there) and the hash of its manifest, unless the file holds that
   * already and nothing looked at again for being racy has since settled.
   */
  save (manifest: string): void {
    if (this.file === undefined) return
    const gone = this.paths.length !== this.oldCount || this.links.size !== this.oldLinks.size || this.dirs.size !== this.oldDirs.size
    const settles = this.racyAt > -Infinity && Date.now() - this.racyAt >= WALK_CACHE_RACY_MS
    if (!this.rowsChanged && !this.contentChanged && !gone && manifest === this.oldManifest && !settles) return
    const files: Array<string | number> = []
    for (let k = 0; k < this.paths.length; k++) {
      const x = this.rows[k]
      if (typeof x === 'number') for (let j = 0; j < FILE_FIELDS; j++) files.push(this.oldFlat[x + j] as string | number)
      else if (x !== undefined) files.push(this.paths[k] as string, ...x)
    }
    const links: string[] = []
    for (const [rel, t] of this.links) links.push(rel, t)
    const saved: Saved = { version: WALK_CACHE_VERSION, writtenAt: Date.now(), rules: this.rules, manifest, dirs: [...this.dirs].map(([rel, r]) => [rel, ...r]), files, links }
    try {
      mkdirSync(join(this.file, '..'), { recursive: true, mode: 0o700 })
      const tmp = `${this.file}.${process.pid}`
      writeFileSync(tmp, JSON.stringify(saved), { mode: 0o600 })
      renameSync(tmp, this.file)
    } catch {}
  }
}

/** Where gridctl keeps its walk of directory `root`: $XDG_CACHE_HOME/grid/sync, else ~/.cache/grid/sync. */
export function walkCacheFile (root: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME.startsWith('/') ? env.XDG_CACHE_HOME : join(homedir(), '.cache')
  return join(base, 'grid', 'sync', `${createHash('sha256').update(root).digest('hex').slice(0, 32)}.json`)
}
