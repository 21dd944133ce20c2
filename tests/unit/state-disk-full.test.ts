import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { StateFiles } from '../../src/state/persistence.ts'

/** A small tmpfs to fill (root only: CI runs as root). */
function smallDisk (): string | undefined {
  const at = mkdtempSync(join(tmpdir(), 'grid-full-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', at], { stdio: 'ignore' })
    return at
  } catch {
    rmSync(at, { recursive: true, force: true })
    return undefined
  }
}

const disk = process.getuid?.() === 0 ? smallDisk() : undefined

describe('state - persistence on a full disk', () => {
  it.skipIf(disk === undefined)('keeps every append acknowledged before and after the disk filled (no torn frame left behind)', async () => {
    const root = disk as string
    try {
      const d = join(root, 'data')
      mkdirSync(d)
      // room to free later
      writeFileSync(join(root, 'filler'), Buffer.alloc(64 * 1024))
      const f = new StateFiles(d)
      f.load()
      const acked: number[] = []
      let failed = false
      for (let i = 0; i < 100 && !failed; i++) {
        try {
          await f.append([{ w: 'a', g: 0, u: new Uint8Array(10_000).fill(i) }])
          acked.push(i)
        } catch (err) {
          expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC')
          failed = true
        }
      }
      expect(failed).toBe(true)
      unlinkSync(join(root, 'filler'))
      await f.append([{ w: 'a', g: 0, u: new Uint8Array([200]) }])
      acked.push(200)
      await f.close()
      const loaded = new StateFiles(d).load()
      expect(loaded.wal.map(r => r.u[0])).toEqual(acked)
      expect(loaded.truncatedBytes).toBe(0)
    } finally {
      execFileSync('umount', [root], { stdio: 'ignore' })
      rmSync(root, { recursive: true, force: true })
    }
  })
})
