import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { walkCacheFile } from '../../src/sync/walk-cache.ts'
import { buildManifest } from '../../src/sync/manifest.ts'
import { checkChange, encodeManifest, sha256Hex } from '../../src/sync/manifest-codec.ts'
import { applyDelta, deltaBytes, diffManifests } from '../../src/sync/manifest-delta.ts'

const base = mkdtempSync(join(tmpdir(), 'grid-sync-delta-'))
const cacheHome = process.env.XDG_CACHE_HOME
process.env.XDG_CACHE_HOME = join(base, 'cache')
afterAll(() => {
  rmSync(base, { recursive: true, force: true })
  if (cacheHome === undefined) delete process.env.XDG_CACHE_HOME
  else process.env.XDG_CACHE_HOME = cacheHome
})
/** Puts hash `sha` for `rel` into gridctl's saved walk (and `writtenAt`, when given): what a next build reads. */
function plant (cacheFile: string, rel: string, sha: string, writtenAt?: number): void {
  const saved = JSON.parse(readFileSync(cacheFile, 'utf8')) as { files: Array<string | number>, writtenAt: number }
  const at = saved.files.indexOf(rel)
  expect(at).toBeGreaterThanOrEqual(0)
  saved.files[at + 6] = sha
  if (writtenAt !== undefined) saved.writtenAt = writtenAt
  writeFileSync(cacheFile, JSON.stringify(saved))
}
const savedPaths = (cacheFile: string): string[] => {
  const saved = JSON.parse(readFileSync(cacheFile, 'utf8')) as { files: Array<string | number> }
  return saved.files.filter((_, i) => i % 7 === 0) as string[]
}
const file = (path: string, sha: string): { path: string, mode: number, size: number, sha256: string } => ({ path, mode: 0o644, size: 1, sha256: sha.repeat(64) })

describe('sync - manifest differences', () => {
  it('sends a changed file as one entry, and rebuilds the same manifest from it', () => {
    const entries = Array.from({ length: 1000 }, (_, i) => file(`d/f${i}`, 'a'))
    const a = { version: 1 as const, entries: [...entries, { path: 'l', link: 'd/f1' }] }
    // d/f0 removed, d/f1 changed, new added, the link removed
    const b = { version: 1 as const, entries: [...entries.slice(2), file('d/f1', 'b'), file('new', 'c')] }
    const d = diffManifests(a, b)
    expect(d.removed.sort()).toEqual(['d/f0', 'l'])
    expect(d.upserted.map(e => e.path).sort()).toEqual(['d/f1', 'new'])
    expect(sha256Hex(encodeManifest(applyDelta(a, d)))).toBe(sha256Hex(encodeManifest(b)))
    expect(deltaBytes(d)).toBeLessThan(encodeManifest(b).byteLength / 50)
  })
})

describe('sync - gridctl\'s hash cache', () => {
  it('reuses the hash of a file that did not change, and hashes again one that did', async () => {
    const dir = join(base, 'tree')
    const env = { XDG_CACHE_HOME: join(base, 'cache') }
    mkdirSync(dir)
    const hour = new Date(Date.now() - 3_600_000)
    for (const n of ['a.txt', 'b.txt']) { writeFileSync(join(dir, n), n); utimesSync(join(dir, n), hour, hour) }
    const first = await buildManifest(dir, { hashCache: true })
    const cacheFile = walkCacheFile(first.root, env)
    // the cache is what a second build reads: a planted hash shows it is used for a file left as it was
    expect(savedPaths(cacheFile).sort()).toEqual(['a.txt', 'b.txt'])
    plant(cacheFile, 'a.txt', 'f'.repeat(64))
    const second = await buildManifest(dir, { hashCache: true })
    expect(second.manifest.entries.find(e => e.path === 'a.txt')).toMatchObject({ sha256: 'f'.repeat(64) })
    // a file written again (same size, its old mtime put back) is hashed again: its ctime changed
    writeFileSync(join(dir, 'b.txt'), 'B.txt')
    utimesSync(join(dir, 'b.txt'), hour, hour)
    const third = await buildManifest(dir, { hashCache: true })
    expect(third.manifest.entries.find(e => e.path === 'b.txt')).toMatchObject({ sha256: sha256Hex(Buffer.from('B.txt')) })
    // without the cache every file is read
    expect((await buildManifest(dir)).manifest.entries.find(e => e.path === 'a.txt')).toMatchObject({ sha256: sha256Hex(Buffer.from('a.txt')) })
  })

  it('hashes a file changed just before the cache was written again (it may change again in the same tick)', async () => {
    const dir = join(base, 'racy')
    mkdirSync(dir)
    writeFileSync(join(dir, 'x.txt'), 'x')
    const first = await buildManifest(dir, { hashCache: true })
    const cacheFile = walkCacheFile(first.root, { XDG_CACHE_HOME: join(base, 'cache') })
    plant(cacheFile, 'x.txt', 'f'.repeat(64), Date.now())
    const again = await buildManifest(dir, { hashCache: true })
    expect(again.manifest.entries[0]).toMatchObject({ sha256: sha256Hex(Buffer.from('x')) })
  })
})

describe('sync - gridctl\'s walk cache', () => {
  const hour = new Date(Date.now() - 3_600_000)
  /** a tree whose files and directories were last changed an hour ago (not racy) */
  const oldTree = (name: string, files: Record<string, string>): string => {
    const dir = join(base, name)
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(join(dir, rel, '..'), { recursive: true })
      writeFileSync(join(dir, rel), text)
      utimesSync(join(dir, rel), hour, hour)
    }
    for (const d of new Set(Object.keys(files).map(r => join(dir, r, '..')))) utimesSync(d, hour, hour)
    utimesSync(dir, hour, hour)
    return dir
  }
  const cacheOf = (root: string): string => walkCacheFile(root, { XDG_CACHE_HOME: join(base, 'cache') })

  it('reuses a directory\'s listing while no name in it came or went, and reads it again once one does', async () => {
    const dir = oldTree('listing', { 'sub/a.txt': 'a', 'sub/b.txt': 'b' })
    const first = await buildManifest(dir, { hashCache: true })
    expect(first.manifest.entries.map(e => e.path).sort()).toEqual(['sub/a.txt', 'sub/b.txt'])
    // a planted listing (without b.txt) is what the next walk goes by: sub was not read again
    const file = cacheOf(first.root)
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { dirs: Array<[string, number, number, number, string]> }
    const sub = saved.dirs.find(d => d[0] === 'sub') as [string, number, number, number, string]
    expect(sub[4]).toBe('fa.txt/fb.txt')
    sub[4] = 'fa.txt'
    writeFileSync(file, JSON.stringify(saved))
    expect((await buildManifest(dir, { hashCache: true })).manifest.entries.map(e => e.path)).toEqual(['sub/a.txt'])
    // other excludes: the listing is not used
    expect((await buildManifest(dir, { hashCache: true, excludes: ['*.log'] })).manifest.entries.map(e => e.path).sort()).toEqual(['sub/a.txt', 'sub/b.txt'])
    // a new file changes the directory: it is read again
    writeFileSync(join(dir, 'sub', 'c.txt'), 'c')
    expect((await buildManifest(dir, { hashCache: true, excludes: ['*.log'] })).manifest.entries.map(e => e.path).sort()).toEqual(['sub/a.txt', 'sub/b.txt', 'sub/c.txt'])
  })

  it('gives the same hash for an unchanged tree, and a changed one as its difference from the last', async () => {
    const files: Record<string, string> = {}
    for (let i = 0; i < 50; i++) files[`d${i % 5}/f${i}.txt`] = `file ${i}`
    const dir = oldTree('change', files)
    const first = await buildManifest(dir, { hashCache: true })
    expect(first.hash).toBe(sha256Hex(encodeManifest(first.manifest)))
    expect(first.previous).toBeUndefined()
    const same = await buildManifest(dir, { hashCache: true })
    expect(same.hash).toBe(first.hash)
    expect(same.previous).toBeUndefined()
    expect(sha256Hex(same.encoded())).toBe(first.hash)
    writeFileSync(join(dir, 'd1', 'f1.txt'), 'changed')
    rmSync(join(dir, 'd2', 'f2.txt'))
    writeFileSync(join(dir, 'd3', 'new.txt'), 'new')
    const next = await buildManifest(dir, { hashCache: true })
    expect(next.hash).toBe(sha256Hex(encodeManifest(next.manifest)))
    expect(next.previous?.base).toBe(first.hash)
    expect(next.previous?.change.removed).toEqual(['d2/f2.txt'])
    expect(next.previous?.change.upserted.map(e => e.path).sort()).toEqual(['d1/f1.txt', 'd3/new.txt'])
    // what the daemon rebuilds from the last manifest and the difference is the new one
    expect(sha256Hex(encodeManifest(applyDelta(first.manifest, next.previous?.change ?? { removed: [], upserted: [] })))).toBe(next.hash)
  })

  it('walks the tree in the manifest\'s order (a directory sorts as its name and a slash)', async () => {
    const dir = oldTree('order', { 'a.txt': '1', 'a/b': '2', 'a-b': '3', 'ab/c': '4', 'a/a.txt': '5' })
    const m = (await buildManifest(dir)).manifest
    const paths = m.entries.map(e => e.path)
    expect(paths).toEqual(['a-b', 'a.txt', 'a/a.txt', 'a/b', 'ab/c'])
    expect(paths).toEqual([...paths].sort())
  })

  it('refuses a difference that would put a path or a link out of the tree', () => {
    const m = { version: 1 as const, entries: [file('a', 'a')] }
    expect(() => checkChange(applyDelta(m, { removed: [], upserted: [file('../x', 'b')] }), [file('../x', 'b')], true)).toThrow(/not a normalized relative path/)
    const out = { path: 'l', link: '../../etc' }
    expect(() => checkChange(applyDelta(m, { removed: [], upserted: [out] }), [out], false)).toThrow(/points out of the tree/)
  })
})
