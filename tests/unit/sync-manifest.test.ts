import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/interface/index.ts'
import { buildManifest } from '../../src/sync/manifest.ts'
import { checkManifest, encodeManifest, sha256Hex } from '../../src/sync/manifest-codec.ts'

const base = mkdtempSync(join(tmpdir(), 'grid-sync-manifest-'))
afterAll(() => { rmSync(base, { recursive: true, force: true }) })
let n = 0
function tree (files: Record<string, string>): string {
  const dir = join(base, `t${n++}`)
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true })
    writeFileSync(join(dir, p), text)
  }
  return dir
}
const paths = async (dir: string, excludes: string[] = []): Promise<string[]> => (await buildManifest(dir, { excludes })).manifest.entries.map(e => e.path).sort()

describe('sync - manifest', () => {
  it('lists every file with its mode, size and sha256', async () => {
    const dir = tree({ 'train.py': 'print(1)\n', 'data/a.csv': 'x,y\n' })
    chmodSync(join(dir, 'train.py'), 0o755)
    const b = await buildManifest(dir)
    expect(b.files).toBe(2)
    expect(b.bytes).toBe(13)
    const train = b.manifest.entries.find(e => e.path === 'train.py')
    expect(train).toEqual({ path: 'train.py', mode: 0o755, size: 9, sha256: sha256Hex(Buffer.from('print(1)\n')) })
    expect(b.manifest.entries.map(e => e.path)).toContain('data/a.csv')
  })

  it('hashes small files (read whole at once) and large ones (streamed) alike, an empty one too', async () => {
    const big = 'large file line\n'.repeat(200_000) // 3.2 MB: over the 1 MiB of one read
    const edge = 'e'.repeat(1024 * 1024) // exactly one read's worth
    const dir = tree({ 'big.bin': big, 'edge.bin': edge, 'empty': '', 'small.txt': 'small' })
    const b = await buildManifest(dir)
    const hashes = Object.fromEntries(b.manifest.entries.map(e => [e.path, 'sha256' in e ? e.sha256 : '']))
    expect(hashes).toEqual({ 'big.bin': sha256Hex(Buffer.from(big)), 'edge.bin': sha256Hex(Buffer.from(edge)), empty: sha256Hex(Buffer.alloc(0)), 'small.txt': sha256Hex(Buffer.from('small')) })
  })

  it('gives the same tree the same manifest bytes, whatever the order of its entries', async () => {
    const dir = tree({ 'b.txt': 'b', 'a.txt': 'a', 'c/d.txt': 'd' })
    const m = (await buildManifest(dir)).manifest
    const reversed = { ...m, entries: [...m.entries].reverse() }
    expect(sha256Hex(encodeManifest(reversed))).toBe(sha256Hex(encodeManifest(m)))
  })

  it('keeps a link inside the tree as a link', async () => {
    const dir = tree({ 'lib/util.py': 'x' })
    symlinkSync('lib/util.py', join(dir, 'util.py'))
    symlinkSync(join(dir, 'lib'), join(dir, 'abs-lib'))
    const m = (await buildManifest(dir)).manifest
    expect(m.entries).toContainEqual({ path: 'util.py', link: 'lib/util.py' })
    // an absolute link into the tree is kept, made relative
    expect(m.entries).toContainEqual({ path: 'abs-lib', link: 'lib' })
  })

  it('refuses a link out of the tree, naming it', async () => {
    const dir = tree({ 'a.txt': 'a' })
    symlinkSync('/etc/passwd', join(dir, 'secret'))
    await expect(buildManifest(dir)).rejects.toThrow(InvalidArgumentError)
    await expect(buildManifest(dir)).rejects.toThrow(/link .*secret points out of the synced directory/)
    const dir2 = tree({ 'a.txt': 'a' })
    symlinkSync('../../..', join(dir2, 'up'))
    await expect(buildManifest(dir2)).rejects.toThrow(/link .*up points out/)
  })

  it('refuses a missing directory, a file given as DIR, and a tree over the limit', async () => {
    await expect(buildManifest(join(base, 'nope'))).rejects.toThrow(/nope: no such directory/)
    const dir = tree({ 'f.txt': 'x' })
    await expect(buildManifest(join(dir, 'f.txt'))).rejects.toThrow(/f\.txt: not a directory/)
    const big = tree({ 'a.bin': 'x'.repeat(600), 'b.bin': 'y'.repeat(600) })
    await expect(buildManifest(big, { maxBytes: 1000 })).rejects.toThrow(/over --sync-max \(1000 bytes\) at .*b\.bin/)
  })

  it('refuses a file it cannot read, naming it', async () => {
    if (process.getuid?.() === 0) return // root reads anything
    const dir = tree({ 'locked.txt': 'x' })
    chmodSync(join(dir, 'locked.txt'), 0o000)
    await expect(buildManifest(dir)).rejects.toThrow(/cannot read .*locked\.txt/)
  })
})

describe('sync - excludes', () => {
  it('leaves out .git, node_modules, __pycache__, .venv and .grid by default', async () => {
    const dir = tree({ 'main.py': 'x', '.git/HEAD': 'ref', 'node_modules/x/index.js': 'x', 'pkg/__pycache__/m.pyc': 'x', '.venv/bin/python': 'x', '.grid/state': 'x' })
    expect(await paths(dir)).toEqual(['main.py'])
  })

  it('reads .gridignore in gitignore syntax, else .gitignore', async () => {
    const dir = tree({ '.gridignore': '*.ckpt\n/data/\n!keep.ckpt\n', '.gitignore': 'main.py\n', 'main.py': 'x', 'a.ckpt': 'x', 'keep.ckpt': 'x', 'data/big': 'x', 'sub/data/small': 'x' })
    expect(await paths(dir)).toEqual(['.gitignore', '.gridignore', 'keep.ckpt', 'main.py', 'sub/data/small'])
    const git = tree({ '.gitignore': 'build/\n*.log\n', 'main.py': 'x', 'build/out.o': 'x', 'run.log': 'x' })
    expect(await paths(git)).toEqual(['.gitignore', 'main.py'])
  })

  it('adds --sync-exclude patterns', async () => {
    const dir = tree({ 'main.py': 'x', 'results/r1.txt': 'x', 'notes.md': 'x' })
    expect(await paths(dir, ['results/', '*.md'])).toEqual(['main.py'])
  })
})

describe('sync - manifest checks at the receiver', () => {
  const file = { mode: 0o644, size: 1, sha256: 'a'.repeat(64) }
  it('refuses paths that leave the tree and links that point out', () => {
    for (const path of ['../x', '/etc/passwd', 'a/../../b', 'a//b', './a']) {
      expect(() => checkManifest({ version: 1, entries: [{ path, ...file }] }, false)).toThrow(InvalidArgumentError)
    }
    expect(() => checkManifest({ version: 1, entries: [{ path: 'a/l', link: '../../x' }] }, false)).toThrow(/points out of the tree/)
    expect(() => checkManifest({ version: 1, entries: [{ path: 'l', link: '/etc' }] }, false)).toThrow(/points out of the tree/)
    expect(checkManifest({ version: 1, entries: [{ path: 'a/l', link: '../b' }, { path: 'b', ...file }] }, false).entries).toHaveLength(2)
  })
})
