/**
 * Builds the manifest of a directory for `gridctl run --sync DIR`: every file's path, mode, size and sha256, symlinks
 * as links, the excludes left out. Bad input is refused before anything is sent, naming the path: DIR missing or not
 * a directory, a file that cannot be read, a link that points out of DIR, a tree over `maxBytes`.
 */
import { lstatSync, readdirSync, type Dirent, type Stats } from 'node:fs'
import { readlink, realpath, stat } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import type { Manifest, ManifestEntry, ManifestFile } from '../../proto/sync.ts'
import { InvalidArgumentError } from '../interface/index.ts'
import { SYNC_FS_CONCURRENCY, SYNC_MAX_DEFAULT_BYTES } from './constants.ts'
import { loadExcludes, type Excludes } from './excludes.ts'
import { mapLimit } from './pool.ts'
import { SMALL_FILE_BYTES, encodeManifest, sha256Hex, sha256OfFile, sha256OfSmallFileSync } from './manifest-bytes.ts'
import { WalkCache, walkCacheFile, type ManifestChange } from './walk-cache.ts'

export interface BuildOptions {
  /** `--sync-exclude` patterns (gitignore syntax) */
  excludes?: readonly string[]
  /** refuse a tree whose files add up to more (`--sync-max`) */
  maxBytes?: number
  /** remember the walk across builds (gridctl: true, in the user's cache directory): unchanged files are not read */
  hashCache?: boolean
  /** leave writing the walk cache to the caller (`saveWalk`), for when it has a moment to spare */
  deferSave?: boolean
}

export interface BuiltManifest {
  manifest: Manifest
  /** the manifest's hash (its canonical bytes' sha256) */
  hash: string
  /** its canonical bytes (encoded when first asked for: an unchanged tree's hash comes from the walk cache) */
  encoded: () => Buffer
  /** the manifest of the last build (by hash) and this one's difference from it, when it changed (with the cache) */
  previous?: { base: string, change: ManifestChange }
  /** writes the walk cache (once; with `deferSave`, for the caller to call) */
  saveWalk: () => void
  /** the directory, resolved */
  root: string
  files: number
  bytes: number
  ignoreFile: Excludes['file']
}

/** Bytes hashed synchronously between two turns of the event loop (a signal, a timer, a large file's stream go on). */
const HASH_YIELD_BYTES = 8 * 1024 * 1024

const bad = (msg: string, cause?: unknown): InvalidArgumentError => new InvalidArgumentError(msg, cause === undefined ? undefined : { cause })
const changedUnder = (abs: string): InvalidArgumentError => bad(`--sync: ${abs} changed while the directory was being read; run again`)

export async function buildManifest (dir: string, opts: BuildOptions = {}): Promise<BuiltManifest> {
  const maxBytes = opts.maxBytes ?? SYNC_MAX_DEFAULT_BYTES
  let root: string
  try {
    root = await realpath(resolve(dir))
    if (!(await stat(root)).isDirectory()) throw bad(`--sync ${dir}: not a directory`)
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err
    throw bad(`--sync ${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (err as Error).message}`, err)
  }
  const excludes = loadExcludes(root, opts.excludes)
  const cache = new WalkCache(opts.hashCache === true ? walkCacheFile(root) : undefined, excludes.rules)
  // files and links in the order of their paths (the canonical order: encoding need not sort them)
  const entries: ManifestEntry[] = []
  let fileCount = 0
  const toHash: Array<{ entry: ManifestFile, abs: string, st: Stats }> = []
  let bytes = 0
  const lstatOf = (abs: string): Stats => {
    try { return lstatSync(abs) } catch (err) { throw bad(`--sync: cannot read ${abs}: ${(err as Error).message}`, err) }
  }
  // gridctl's walk: sync calls (metadata the kernel has cached) take a fraction of a round trip each to the thread
  // pool, and nothing else waits on this process meanwhile
  const walk = async (absDir: string, relDir: string, dirSt: Stats): Promise<void> => {
    let listing = cache.listing(relDir, dirSt)
    if (listing === undefined) {
      let names
      try {
        names = readdirSync(absDir, { withFileTypes: true })
      } catch (err) {
        throw bad(`--sync: cannot read directory ${absDir}: ${(err as Error).message}`, err)
      }
      // in the order of the manifest's paths (a directory's as `name/`), so the walk gives them sorted
      const key = (d: Dirent): string => d.isDirectory() ? `${d.name}/` : d.name
      names.sort((a, b) => { const x = key(a); const y = key(b); return x < y ? -1 : x > y ? 1 : 0 })
      listing = []
      for (const d of names) {
        const rel = relDir === '' ? d.name : `${relDir}/${d.name}`
        // sockets, fifos and devices are not content: left out
        const kind = d.isDirectory() ? 'd' : d.isSymbolicLink() ? 'l' : d.isFile() ? 'f' : undefined
        if (kind !== undefined && !excludes.excluded(rel, kind === 'd')) listing.push(kind + d.name)
      }
      cache.rememberListing(relDir, dirSt, listing)
    }
    for (const item of listing) {
      const name = item.slice(1)
      const rel = relDir === '' ? name : `${relDir}/${name}`
      // absDir is resolved (no `.`, `..` or doubled `/`) and a name has no `/`: no join's normalizing needed
      const abs = absDir === '/' ? `/${name}` : `${absDir}/${name}`
      if (item[0] === 'd') {
        const st = lstatOf(abs)
        if (!st.isDirectory()) throw changedUnder(abs)
        await walk(abs, rel, st)
      } else if (item[0] === 'l') {
        const link = await insideLink(root, abs)
        cache.rememberLink(rel, link)
        entries.push({ path: rel, link })
      } else {
        const st = lstatOf(abs)
        if (!st.isFile()) throw changedUnder(abs)
        bytes += st.size
        if (bytes > maxBytes) throw bad(`--sync ${dir}: the tree is over --sync-max (${maxBytes} bytes) at ${abs}; leave large files out with --sync-exclude or .gridignore, or raise --sync-max`)
        const mode = st.mode & 0o7777
        const known = cache.lookup(rel, st, mode)
        const entry: ManifestFile = { path: rel, mode, size: st.size, sha256: known ?? '' }
        entries.push(entry)
        fileCount++
        if (known === undefined) toHash.push({ entry, abs, st })
      }
    }
  }
  await walk(root, '', lstatOf(root))
  // small files one after another in synchronous reads (a few tens of microseconds each, where a stream per file
  // costs four trips to the thread pool), yielding to the event loop every few MiB; large ones as streams, side by side
  const large = toHash.filter(f => f.st.size > SMALL_FILE_BYTES)
  const hashingLarge = mapLimit(large, SYNC_FS_CONCURRENCY, async f => {
    f.entry.sha256 = await hashFile(f.abs)
    cache.remember(f.entry.path, f.st, f.entry.mode, f.entry.sha256)
  })
  const buf = Buffer.allocUnsafe(SMALL_FILE_BYTES)
  let sinceYield = 0
  for (const f of toHash) {
    if (f.st.size > SMALL_FILE_BYTES) continue
    try {
      f.entry.sha256 = sha256OfSmallFileSync(f.abs, buf)
    } catch (err) {
      throw bad(`--sync: cannot read ${f.abs}: ${(err as Error).message}`, err)
    }
    cache.remember(f.entry.path, f.st, f.entry.mode, f.entry.sha256)
    sinceYield += f.st.size + 4096
    if (sinceYield >= HASH_YIELD_BYTES) { sinceYield = 0; await new Promise(resolve => setImmediate(resolve)) }
  }
  await hashingLarge
  const manifest: Manifest = { version: 1, entries }
  let bytesOf: Buffer | undefined
  const encoded = (): Buffer => { bytesOf ??= encodeManifest(manifest); return bytesOf }
  const same = cache.sameManifest()
  const hash = same ?? sha256Hex(encoded())
  const previous = same === undefined ? cache.change() : undefined
  let saved = false
  const saveWalk = (): void => { if (!saved) { saved = true; cache.save(hash) } }
  if (opts.deferSave !== true) saveWalk()
  return { manifest, hash, encoded, saveWalk, ...(previous === undefined || previous.base === hash ? {} : { previous }), root, files: fileCount, bytes, ignoreFile: excludes.file }
}

/** A link's target, made relative, when it resolves inside `root`; else the input is refused naming the link. */
async function insideLink (root: string, abs: string): Promise<string> {
  let target: string
  try { target = await readlink(abs) } catch (err) { throw bad(`--sync: cannot read link ${abs}: ${(err as Error).message}`, err) }
  const lexical = resolve(dirname(abs), target)
  const out = (): InvalidArgumentError => bad(`--sync: link ${abs} points out of the synced directory (to ${target}); copy what it points to into the directory, or exclude the link`)
  if (lexical !== root && !lexical.startsWith(root + sep)) throw out()
  // where it really leads (a link to a link out of the tree is out too); a dangling link is kept as it is
  try {
    const real = await realpath(abs)
    if (real !== root && !real.startsWith(root + sep)) throw out()
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err
  }
  const relTarget = relative(dirname(abs), lexical).split(sep).join('/')
  return relTarget === '' ? '.' : relTarget
}

export async function hashFile (abs: string): Promise<string> {
  try {
    return await sha256OfFile(abs)
  } catch (err) {
    throw bad(`--sync: cannot read ${abs}: ${(err as Error).message}`, err)
  }
}
