import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/cluster.ts'
import { staleSources } from '../helpers/global-setup.ts'

const roots: string[] = []
afterAll(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }) })

/** A scratch checkout: each file path with its modification time (seconds since the epoch). */
function checkout (files: Record<string, number>): string {
  const root = tempDir('grid-dist-')
  roots.push(root)
  for (const [path, mtime] of Object.entries(files)) {
    const p = join(root, path)
    mkdirSync(dirname(p), { recursive: true })
    writeFileSync(p, '')
    utimesSync(p, mtime, mtime)
  }
  return root
}

describe('the cluster suite\'s check that dist/ is built from the sources', () => {
  it('passes when every source was built after it last changed', () => {
    const root = checkout({
      'src/a.ts': 100,
      'dist/src/a.js': 200,
      'daemon/gridd.ts': 100,
      'dist/daemon/gridd.js': 200,
      // declaration files emit nothing
      'src/x.d.ts': 300
    })
    expect(staleSources(root)).toEqual([])
  })

  it('names the sources changed since the build, or never built, newest first', () => {
    const root = checkout({
      'src/a.ts': 100,
      'dist/src/a.js': 200,
      'proto/wire.ts': 300,
      'dist/proto/wire.js': 200,
      'src/deep/new.ts': 400
    })
    expect(staleSources(root).map(s => [s.source, s.why])).toEqual([
      ['src/deep/new.ts', 'not built'],
      ['proto/wire.ts', 'changed since the build']
    ])
  })
})
