import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync, readlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { BlobCache, BlobReceiver } from '../../src/sync/index.ts'
import { layoutTree } from '../../src/sync/layout.ts'
import { SpareTrees } from '../../src/sync/spare-tree.ts'
import { SYNC_SPARE_DIFF_MAX } from '../../src/sync/constants.ts'
import { stampTree, unchangedSince, TREE_STAMP_RACY_MS } from '../../src/sync/tree-stamp.ts'

const base = mkdtempSync(join(tmpdir(), 'grid-sync-cache-'))
afterAll(() => { rmSync(base, { recursive: true, force: true }) })
const log = pino({ level: 'silent' })
let n = 0
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')
function newCache (max = 1 << 30): BlobCache {
  const c = new BlobCache(join(base, `c${n++}`), max, log)
  c.open()
  return c
}

describe('sync - blob cache', () => {
  it('keeps a blob under its hash, read-only, and reads ranges of it', async () => {
    const c = newCache()
    const h = await c.putBuffer(Buffer.from('hello world'))
    expect(h).toBe(sha('hello world'))
    expect(c.has(h)).toBe(true)
    expect((await c.read(h, 6, 100)).toString()).toBe('world')
    expect(c.bytes).toBe(11)
  })

  it('drops the least recently used blobs past its bound, never a pinned one', async () => {
    const c = newCache(30)
    const a = await c.putBuffer(Buffer.alloc(10, 'a'))
    const b = await c.putBuffer(Buffer.alloc(10, 'b'))
    const cc = await c.putBuffer(Buffer.alloc(10, 'c'))
    c.path(a) // a used again: b is now the oldest
    const unpin = c.pin([b])
    await c.putBuffer(Buffer.alloc(10, 'd'))
    expect(c.has(b)).toBe(true) // pinned
    expect(c.has(cc)).toBe(false)
    expect(c.bytes).toBeLessThanOrEqual(30)
    unpin()
    expect(c.bytes).toBeLessThanOrEqual(30)
  })

  it('after a crash, forgets half-written blobs and finds the complete ones', async () => {
    const root = join(base, 'crash')
    const c = new BlobCache(root, 1 << 20, log)
    c.open()
    const h = await c.putBuffer(Buffer.from('kept'))
    writeFileSync(join(root, 'tmp', `${sha('partial')}.abc`), 'part')
    const again = new BlobCache(root, 1 << 20, log)
    again.open()
    expect(again.has(h)).toBe(true)
    expect(again.has(sha('partial'))).toBe(false)
    expect(readdirSync(join(root, 'tmp'))).toEqual([])
  })
})

describe('sync - waiting for a blob', () => {
  it('resolves when the blob arrives, at once when it is there, and rejects when the wait is given up', async () => {
    const c = newCache()
    const here = await c.putBuffer(Buffer.from('here'))
    const ctl = new AbortController()
    await c.whenPresent(here, ctl.signal)
    const later = c.whenPresent(sha('later'), ctl.signal)
    await c.putBuffer(Buffer.from('later'))
    await later
    const never = c.whenPresent(sha('never'), ctl.signal)
    ctl.abort(new Error('gave up'))
    await expect(never).rejects.toThrow('gave up')
    await expect(c.whenPresent(sha('never'), ctl.signal)).rejects.toThrow('gave up')
  })
})

describe('sync - receiving blobs', () => {
  it('assembles a blob from pieces and makes it visible only once whole and checked', async () => {
    const c = newCache()
    const r = new BlobReceiver(c, log)
    const data = Buffer.alloc(3000, 7)
    const h = sha(data)
    expect((await r.receive('p', [{ hash: h, size: 3000, offset: 0, data: data.subarray(0, 1000) }])).refused).toEqual([])
    expect(c.has(h)).toBe(false)
    await r.receive('p', [{ hash: h, size: 3000, offset: 1000, data: data.subarray(1000, 2000) }, { hash: h, size: 3000, offset: 2000, data: data.subarray(2000) }])
    expect(c.has(h)).toBe(true)
    expect(readFileSync(c.path(h)).equals(data)).toBe(true)
    r.close()
  })

  it('refuses a blob whose content does not match its hash, and keeps nothing of it', async () => {
    const c = newCache()
    let refusedCount = 0
    const r = new BlobReceiver(c, log, () => { refusedCount++ })
    const h = sha('the real content')
    expect((await r.receive('p', [{ hash: h, size: 5, offset: 0, data: Buffer.from('forge') }])).refused).toEqual([h])
    const big = Buffer.alloc(2000, 1)
    const hb = sha(big)
    const bad = Buffer.from(big)
    bad[1500] = 2
    await r.receive('p', [{ hash: hb, size: 2000, offset: 0, data: bad.subarray(0, 1000) }])
    expect((await r.receive('p', [{ hash: hb, size: 2000, offset: 1000, data: bad.subarray(1000) }])).refused).toEqual([hb])
    expect(c.has(h) || c.has(hb)).toBe(false)
    expect(refusedCount).toBe(2)
    expect(readdirSync(join(c.root, 'tmp'))).toEqual([])
    // sent again, right: taken
    await r.receive('p', [{ hash: hb, size: 2000, offset: 0, data: big }])
    expect(c.has(hb)).toBe(true)
    r.close()
  })

  it('refuses a piece out of order (its start was lost), so the sender sends the blob again', async () => {
    const c = newCache()
    const r = new BlobReceiver(c, log)
    const data = Buffer.alloc(2000, 3)
    const h = sha(data)
    expect((await r.receive('p', [{ hash: h, size: 2000, offset: 1000, data: data.subarray(1000) }])).refused).toEqual([h])
    r.close()
  })
})

describe('sync - layout', () => {
  it('lays out a fresh tree of copies: writing a file changes neither the cache nor another tree', async () => {
    const c = newCache()
    const h = await c.putBuffer(Buffer.from('v1\n'))
    const m = { version: 1 as const, entries: [{ path: 'src/a.txt', mode: 0o644, size: 3, sha256: h }, { path: 'run.sh', mode: 0o755, size: 3, sha256: h }, { path: 'link.txt', link: 'src/a.txt' }] }
    const t1 = join(base, 'tree1')
    const t2 = join(base, 'tree2')
    await layoutTree(c, m, t1)
    await layoutTree(c, m, t2)
    writeFileSync(join(t1, 'src/a.txt'), 'changed by task 1\n')
    expect(readFileSync(join(t2, 'src/a.txt'), 'utf8')).toBe('v1\n')
    expect(readFileSync(c.path(h), 'utf8')).toBe('v1\n')
    expect(readlinkSync(join(t2, 'link.txt'))).toBe('src/a.txt')
    expect(readFileSync(join(t2, 'link.txt'), 'utf8')).toBe('v1\n')
    // a retry on the same node starts from a fresh tree, without the last attempt's writes
    mkdirSync(join(t1, 'out'))
    await layoutTree(c, m, t1)
    expect(existsSync(join(t1, 'out'))).toBe(false)
    expect(readFileSync(join(t1, 'src/a.txt'), 'utf8')).toBe('v1\n')
  })

  it('makes each directory once, parents first, for a deep tree', async () => {
    const c = newCache()
    const h = await c.putBuffer(Buffer.from('x'))
    const m = { version: 1 as const, entries: [{ path: 'a/b/c/d.txt', mode: 0o644, size: 1, sha256: h }, { path: 'a-b/e.txt', mode: 0o600, size: 1, sha256: h }, { path: 'a/f.txt', mode: 0o644, size: 1, sha256: h }] }
    const t = join(base, 'deep')
    expect(await layoutTree(c, m, t)).toEqual({ copied: 3, linked: 0 })
    expect(readFileSync(join(t, 'a/b/c/d.txt'), 'utf8')).toBe('x')
    expect(statSync(join(t, 'a-b/e.txt')).mode & 0o777).toBe(0o600)
  })

  // as root a write through a read-only link would succeed: the task's side is tried as nobody
  const nobody = process.getuid?.() === 0 ? spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }) : undefined
  it.skipIf(nobody?.status !== 0)('links (with a task user): the task cannot write into a linked file, only replace it; the cache stays as it was', async () => {
    const uid = Number(nobody?.stdout.trim())
    const gid = Number(spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).stdout.trim())
    chmodSync(base, 0o755)
    const c = newCache()
    const h = await c.putBuffer(Buffer.from('v1\n'))
    const m = { version: 1 as const, entries: [{ path: 'src/a.txt', mode: 0o644, size: 3, sha256: h }, { path: 'run.sh', mode: 0o755, size: 3, sha256: h }] }
    const t1 = join(base, 'linked1')
    const t2 = join(base, 'linked2')
    expect(await layoutTree(c, m, t1, { group: gid, link: true })).toEqual({ copied: 1, linked: 1 })
    await layoutTree(c, m, t2, { group: gid, link: true })
    // no data copied: the same file as the cache's; the executable one is a copy (the blob is not executable)
    expect(statSync(join(t1, 'src/a.txt')).ino).toBe(statSync(c.path(h)).ino)
    expect(statSync(join(t1, 'run.sh')).ino).not.toBe(statSync(c.path(h)).ino)
    const asTask = (script: string): number | null => spawnSync('sh', ['-c', script], { cwd: t1, uid, gid, stdio: 'ignore' }).status
    expect(asTask('echo more >> src/a.txt')).not.toBe(0)
    expect(asTask('chmod u+w src/a.txt')).not.toBe(0)
    expect(asTask('echo mine > src/a.new && mv src/a.new src/a.txt && echo x >> run.sh')).toBe(0)
    expect(readFileSync(join(t1, 'src/a.txt'), 'utf8')).toBe('mine\n')
    expect(readFileSync(c.path(h), 'utf8')).toBe('v1\n')
    expect(readFileSync(join(t2, 'src/a.txt'), 'utf8')).toBe('v1\n')
    expect(readFileSync(join(t2, 'run.sh'), 'utf8')).toBe('v1\n')
  })
})

describe('sync - spare tree', () => {
  const listing = (root: string): string[] => (readdirSync(root, { recursive: true }) as string[]).sort().map(p => {
    const st = statSync(join(root, p))
    return st.isDirectory() ? `${p}/` : `${p} ${(st.mode & 0o777).toString(8)} ${readFileSync(join(root, p), 'utf8')}`
  })

  it('gives the next tree a few entries away the spare with the difference applied, the same as a fresh layout', async () => {
    const c = newCache()
    const [a, b, x] = await Promise.all(['a1\n', 'b1\n', 'x\n'].map(async t => await c.putBuffer(Buffer.from(t))))
    const file = (path: string, sha256: string, mode = 0o644): { path: string, mode: number, size: number, sha256: string } => ({ path, mode, size: 3, sha256 })
    const m1 = { version: 1 as const, entries: [file('src/a.txt', a as string), file('gone/deep/old.txt', b as string), file('was-file', b as string), file('keep.sh', x as string, 0o755)] }
    const m2 = { version: 1 as const, entries: [file('src/a.txt', b as string), file('new/n.txt', a as string), file('was-file/now-dir.txt', a as string), file('keep.sh', x as string, 0o755)] }
    const spares = new SpareTrees(join(base, 'spares'), c, log, {})
    spares.open()
    spares.prepare('m1', m1)
    const t = join(base, 'from-spare')
    expect(await spares.take('m2', m2, t)).toBeDefined()
    const fresh = join(base, 'fresh-m2')
    await layoutTree(c, m2, fresh)
    expect(listing(t)).toEqual(listing(fresh))
    // the spare went to that attempt: the next one has none until one is laid out again
    expect(await spares.take('m2', m2, join(base, 'none'))).toBeUndefined()
    spares.prepare('m2', m2)
    const t2 = join(base, 'from-spare-2')
    expect(await spares.take('m2', m2, t2)).toBeDefined()
    // a task's write to its tree does not reach the next one's
    writeFileSync(join(t2, 'src/a.txt'), 'task wrote\n')
    spares.prepare('m2', m2)
    const t3 = join(base, 'from-spare-3')
    expect(await spares.take('m2', m2, t3)).toBeDefined()
    expect(readFileSync(join(t3, 'src/a.txt'), 'utf8')).toBe('b1\n')
    expect(readFileSync(c.path(b as string), 'utf8')).toBe('b1\n')
  })

  it('lays a spare out as its blobs arrive, each file once its blob is in the cache', async () => {
    const c = newCache()
    const data = ['one\n', 'two\n', 'three\n'].map(t => Buffer.from(t))
    const present = await c.putBuffer(data[0] as Buffer)
    const m = { version: 1 as const, entries: data.map((d, i) => ({ path: `d/f${i}`, mode: 0o644, size: d.byteLength, sha256: sha(d) })) }
    const spares = new SpareTrees(join(base, 'spares-ahead'), c, log, {})
    spares.prepareAhead('ahead', m)
    const taken = spares.take('ahead', m, join(base, 'ahead-tree'))
    let done = false
    void taken.then(() => { done = true })
    await new Promise(resolve => setTimeout(resolve, 50))
    // two blobs have not arrived: the tree is not ready
    expect(done).toBe(false)
    expect(present).toBe(sha(data[0] as Buffer))
    await c.putBuffer(data[2] as Buffer)
    await c.putBuffer(data[1] as Buffer)
    expect(await taken).toBeDefined()
    expect(listing(join(base, 'ahead-tree'))).toEqual(['d/', 'd/f0 644 one\n', 'd/f1 644 two\n', 'd/f2 644 three\n'])
  })

  it('does not hold another tree\'s layout behind a spare still waiting for its blobs', async () => {
    const c = newCache()
    const have = await c.putBuffer(Buffer.from('have\n'))
    const file = (path: string, sha256: string): { path: string, mode: number, size: number, sha256: string } => ({ path, mode: 0o644, size: 5, sha256 })
    const spares = new SpareTrees(join(base, 'spares-other'), c, log, {})
    spares.prepareAhead('waiting', { version: 1, entries: [file('a', have), file('b', sha('never sent'))] })
    // a tree one entry away from it: no spare for it (a fresh layout follows), at once, not after the wait
    expect(await spares.take('other', { version: 1, entries: [file('a', have)] }, join(base, 'other-tree'))).toBeUndefined()
  })

  it('keeps the spare that serves the next tree instead of laying one out ahead of its blobs', async () => {
    const c = newCache()
    const [a, b] = await Promise.all(['a\n', 'b\n'].map(async t => await c.putBuffer(Buffer.from(t))))
    const shared = await Promise.all(Array.from({ length: 10 }, async (_, i) => ({ path: `s${i}`, mode: 0o644, size: 3, sha256: await c.putBuffer(Buffer.from(`s${i}\n`)) })))
    const x = (h: string): { path: string, mode: number, size: number, sha256: string } => ({ path: 'x', mode: 0o644, size: 2, sha256: h })
    const m1 = { version: 1 as const, entries: [...shared, x(a as string)] }
    const m2 = { version: 1 as const, entries: [...shared, x(b as string), { path: 'y', mode: 0o644, size: 2, sha256: sha('not here yet') }] }
    const spares = new SpareTrees(join(base, 'spares-keep'), c, log, {})
    spares.prepare('m1', m1)
    spares.prepareAhead('m2', m2)
    // the spare of m1 is still there: a tree one file away from it takes it, not waiting for m2's missing blob
    const t = join(base, 'keep-tree')
    expect(await spares.take('m1b', { version: 1, entries: [...shared, x(b as string)] }, t)).toBeDefined()
    expect(readFileSync(join(t, 'x'), 'utf8')).toBe('b\n')
    expect(readFileSync(join(t, 's3'), 'utf8')).toBe('s3\n')
  })

  it('drops a spare of a tree too far from the asked one', async () => {
    const c = newCache()
    const entries = await Promise.all(Array.from({ length: SYNC_SPARE_DIFF_MAX + 2 }, async (_, i) => ({ path: `f${i}`, mode: 0o644, size: String(i).length, sha256: await c.putBuffer(Buffer.from(String(i))) })))
    const spares = new SpareTrees(join(base, 'spares-far'), c, log, {})
    spares.prepare('one', { version: 1, entries: entries.slice(0, 1) })
    expect(await spares.take('all', { version: 1, entries }, join(base, 'far'))).toBeUndefined()
    expect(existsSync(join(base, 'far'))).toBe(false)
  })
})

describe('sync - a task\'s tree back as the spare', () => {
  const file = (path: string, sha256: string, mode = 0o644): { path: string, mode: number, size: number, sha256: string } => ({ path, mode, size: 3, sha256 })
  async function tree (c: BlobCache, name: string): Promise<{ m: { version: 1, entries: Array<ReturnType<typeof file>> }, dir: string }> {
    const [a, b] = await Promise.all(['a1\n', 'b1\n'].map(async t => await c.putBuffer(Buffer.from(t))))
    const m = { version: 1 as const, entries: [file('src/a.txt', a as string), file('src/deep/b.txt', b as string), file('top.txt', a as string)] }
    const dir = join(base, name)
    await layoutTree(c, m, dir)
    return { m, dir }
  }
  /** waits out the stamp's racy window, so what follows is told apart by ctime alone */
  const settle = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, TREE_STAMP_RACY_MS + 20)) }

  it('tells a tree left as laid out from one written, added to, or removed from (mtimes put back)', async () => {
    const c = newCache()
    for (const [name, touch] of [
      ['written', (d: string) => { const st = statSync(join(d, 'src/a.txt')); writeFileSync(join(d, 'src/a.txt'), 'zz\n'); utimesSync(join(d, 'src/a.txt'), st.atime, st.mtime) }],
      ['added', (d: string) => { const st = statSync(join(d, 'src/deep')); writeFileSync(join(d, 'src/deep/new.txt'), 'n'); utimesSync(join(d, 'src/deep'), st.atime, st.mtime) }],
      ['removed', (d: string) => { rmSync(join(d, 'top.txt')) }],
      ['chmod', (d: string) => { chmodSync(join(d, 'src/deep/b.txt'), 0o777) }]
    ] as const) {
      const { m, dir } = await tree(c, `stamp-${name}`)
      const stamp = await stampTree(dir, m)
      await settle()
      expect(await unchangedSince(dir, m, stamp)).toBe(true)
      touch(dir)
      expect(await unchangedSince(dir, m, stamp), name).toBe(false)
    }
  })

  it('checks an entry stamped within the racy window by its content', async () => {
    const c = newCache()
    const { m, dir } = await tree(c, 'stamp-racy')
    const stamp = await stampTree(dir, m)
    // written at once (the same clock tick, maybe), to the same size: only its content tells
    writeFileSync(join(dir, 'src/a.txt'), 'zz\n')
    const mk = stamp.marks.get('src/a.txt')
    const now = statSync(join(dir, 'src/a.txt'))
    // make it look as though the ctime did not move (a write within the tick of the stamp)
    if (mk !== undefined) { mk.ctimeMs = now.ctimeMs; mk.ino = now.ino }
    expect(await unchangedSince(dir, m, stamp)).toBe(false)
  })

  it('takes the ended task\'s tree as the spare when the copy is not ready, and leaves a written one', async () => {
    const c = newCache()
    const spares = new SpareTrees(join(base, 'spares-recycle'), c, log, {})
    spares.open()
    const { m, dir } = await tree(c, 'recycle-clean')
    const stamp = await stampTree(dir, m)
    const ino = statSync(join(dir, 'src/a.txt')).ino
    await settle()
    spares.prepare('m', m)
    spares.recycle('m', m, dir, stamp)
    const next = join(base, 'recycle-next')
    expect(await spares.take('m', m, next)).toBeDefined()
    // the same files (moved, not copied), and the task's tree is gone from where it was
    expect(statSync(join(next, 'src/a.txt')).ino).toBe(ino)
    expect(existsSync(dir)).toBe(false)
    expect(readFileSync(join(next, 'src/deep/b.txt'), 'utf8')).toBe('b1\n')

    const w = await tree(c, 'recycle-written')
    const ws = await stampTree(w.dir, w.m)
    await settle()
    writeFileSync(join(w.dir, 'top.txt'), 'task\n')
    spares.prepare('m', w.m)
    spares.recycle('m', w.m, w.dir, ws)
    const next2 = join(base, 'recycle-next-2')
    // the background copy serves, with what was laid out; the written tree stays where its task left it
    expect(await spares.take('m', w.m, next2)).toBeDefined()
    expect(readFileSync(join(next2, 'top.txt'), 'utf8')).toBe('a1\n')
    expect(readFileSync(join(w.dir, 'top.txt'), 'utf8')).toBe('task\n')
  })
})
