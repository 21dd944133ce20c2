import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hashCacheFile } from '../../src/sync/hash-cache.ts'
import { buildManifest } from '../../src/sync/manifest.ts'
import { encodeManifest, sha256Hex } from '../../src/sync/manifest-codec.ts'
import { applyDelta, deltaBytes, diffManifests } from '../../src/sync/manifest-delta.ts'

const base = mkdtempSync(join(tmpdir(), 'grid-sync-delta-'))
const cacheHome = process.env.XDG_CACHE_HOME
process.env.XDG_CACHE_HOME = join(base, 'cache')
afterAll(() => {
  rmSync(base, { recursive: true, force: true })
  if (cacheHome === undefined) delete process.env.XDG_CACHE_HOME
  else process.env.XDG_CACHE_HOME = cacheHome
})
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
    const cacheFile = hashCacheFile(first.root, env)
    // the cache is what a second build reads: a planted hash shows it is used for a file left as it was
    const saved = JSON.parse(readFileSync(cacheFile, 'utf8')) as { rows: Record<string, [number, number, number, number, string]> }
    expect(Object.keys(saved.rows).sort()).toEqual(['a.txt', 'b.txt'])
    ;(saved.rows['a.txt'] as [number, number, number, number, string])[4] = 'f'.repeat(64)
    writeFileSync(cacheFile, JSON.stringify(saved))
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
    const cacheFile = hashCacheFile(first.root, { XDG_CACHE_HOME: join(base, 'cache') })
    const saved = JSON.parse(readFileSync(cacheFile, 'utf8')) as { rows: Record<string, [number, number, number, number, string]> }
    ;(saved.rows['x.txt'] as [number, number, number, number, string])[4] = 'f'.repeat(64)
    writeFileSync(cacheFile, JSON.stringify({ ...saved, writtenAt: Date.now() }))
    const again = await buildManifest(dir, { hashCache: true })
    expect(again.manifest.entries[0]).toMatchObject({ sha256: sha256Hex(Buffer.from('x')) })
  })
})
