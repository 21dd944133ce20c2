/**
 * Builds the manifest of a directory for `gridctl run --sync DIR`: every file's path, mode, size and sha256, symlinks
 * as links, the excludes left out. Bad input is refused before anything is sent, naming the path: DIR missing or not
 * a directory, a file that cannot be read, a link that points out of DIR, a tree over `maxBytes`.
 */
import { createHash } from 'node:crypto'
import { createReadStream, lstatSync, readdirSync, type Stats } from 'node:fs'
import { readlink, realpath, stat } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import type { Manifest, ManifestEntry } from '../../proto/index.ts'
import { InvalidArgumentError } from '../interface/index.ts'
import { SYNC_FS_CONCURRENCY, SYNC_MAX_DEFAULT_BYTES } from './constants.ts'
import { loadExcludes, type Excludes } from './excludes.ts'
import { mapLimit } from './pool.ts'
import { HashCache, hashCacheFile } from './hash-cache.ts'

export interface BuildOptions {
  /** `--sync-exclude` patterns (gitignore syntax) */
  excludes?: readonly string[]
  /** refuse a tree whose files add up to more (`--sync-max`) */
  maxBytes?: number
  /** remember hashes across builds (gridctl: true, in the user's cache directory): unchanged files are not read */
  hashCache?: boolean
}

export interface BuiltManifest {
  manifest: Manifest
  /** the directory, resolved */
  root: string
  files: number
  bytes: number
  ignoreFile: Excludes['file']
}

const bad = (msg: string, cause?: unknown): InvalidArgumentError => new InvalidArgumentError(msg, cause === undefined ? undefined : { cause })

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
  const files: Array<{ rel: string, abs: string, mode: number, size: number, st: Stats }> = []
  const links: ManifestEntry[] = []
  let bytes = 0
  const walk = async (absDir: string, relDir: string): Promise<void> => {
    let names
    try {
      // gridctl's walk: sync calls (metadata the kernel has cached) take a fraction of a round trip each to the
      // thread pool, and nothing else waits on this process meanwhile
      names = readdirSync(absDir, { withFileTypes: true })
    } catch (err) {
      throw bad(`--sync: cannot read directory ${absDir}: ${(err as Error).message}`, err)
    }
    names.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    for (const d of names) {
      const rel = relDir === '' ? d.name : `${relDir}/${d.name}`
      const abs = join(absDir, d.name)
      if (d.isDirectory()) {
        if (!excludes.excluded(rel, true)) await walk(abs, rel)
      } else if (d.isSymbolicLink()) {
        if (excludes.excluded(rel, false)) continue
        links.push({ path: rel, link: await insideLink(root, abs) })
      } else if (d.isFile()) {
        if (excludes.excluded(rel, false)) continue
        let st
        try { st = lstatSync(abs) } catch (err) { throw bad(`--sync: cannot read ${abs}: ${(err as Error).message}`, err) }
        bytes += st.size
        if (bytes > maxBytes) throw bad(`--sync ${dir}: the tree is over --sync-max (${maxBytes} bytes) at ${abs}; leave large files out with --sync-exclude or .gridignore, or raise --sync-max`)
        files.push({ rel, abs, mode: st.mode & 0o7777, size: st.size, st })
      }
      // sockets, fifos and devices are not content: left out
    }
  }
  await walk(root, '')
  const cache = new HashCache(opts.hashCache === true ? hashCacheFile(root) : undefined)
  const hashed = await mapLimit(files, SYNC_FS_CONCURRENCY, async f => {
    const sha256 = cache.lookup(f.rel, f.st) ?? await hashFile(f.abs)
    cache.remember(f.rel, f.st, sha256)
    return { path: f.rel, mode: f.mode, size: f.size, sha256 }
  })
  cache.save()
  return { manifest: { version: 1, entries: [...hashed, ...links] }, root, files: files.length, bytes, ignoreFile: excludes.file }
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
  const h = createHash('sha256')
  try {
    for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer)
  } catch (err) {
    throw bad(`--sync: cannot read ${abs}: ${(err as Error).message}`, err)
  }
  return h.digest('hex')
}
