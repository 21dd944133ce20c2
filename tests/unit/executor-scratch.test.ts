/**
 * The scratch sweep: expired task directories go, kept and fresh ones stay, and a large tree does not hold the event
 * loop (heartbeats and RPCs run while it is removed).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { sweepScratch } from '../../src/executor/scratch.ts'

const roots: string[] = []
afterEach(() => { for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true }) })

function scratchRoot (): string {
  const root = mkdtempSync(join(tmpdir(), 'grid-scratch-'))
  roots.push(root)
  return root
}

/** A task directory of `files` small files in 50 subdirectories, last touched `ageMs` ago. */
function taskDir (root: string, name: string, files: number, ageMs: number): string {
  const dir = join(root, name)
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${i % 50}`)
    if (i < 50) mkdirSync(sub, { recursive: true })
    writeFileSync(join(sub, `f${i}`), 'x')
  }
  mkdirSync(dir, { recursive: true })
  const then = new Date(Date.now() - ageMs)
  utimesSync(dir, then, then)
  return dir
}

describe('executor - scratch sweep', () => {
  it('removes expired directories only, and keeps the ones of tasks that are here', async () => {
    const root = scratchRoot()
    const old = taskDir(root, 'old', 3, 60_000)
    const kept = taskDir(root, 'kept', 3, 60_000)
    const fresh = taskDir(root, 'fresh', 3, 0)
    const removed = await sweepScratch(root, 10_000, name => name === 'kept')
    expect(removed).toBe(1)
    expect(existsSync(old)).toBe(false)
    expect(existsSync(kept)).toBe(true)
    expect(existsSync(fresh)).toBe(true)
  })

  it('lets timers run while it removes a tree of 5,000 files', async () => {
    const root = scratchRoot()
    const big = taskDir(root, 'big', 5000, 60_000)
    const kept = taskDir(root, 'kept', 10, 60_000)
    let last = performance.now()
    let maxGap = 0
    let ticks = 0
    const interval = setInterval(() => {
      const now = performance.now()
      maxGap = Math.max(maxGap, now - last)
      last = now
      ticks++
    }, 10)
    const started = performance.now()
    last = started
    const removed = await sweepScratch(root, 10_000, name => name === 'kept')
    const took = performance.now() - started
    clearInterval(interval)
    maxGap = Math.max(maxGap, performance.now() - last)
    expect(removed).toBe(1)
    expect(existsSync(big)).toBe(false)
    expect(existsSync(kept)).toBe(true)
    // with rmSync the loop is held for the whole removal: one gap as long as the sweep, no tick within it
    expect(ticks).toBeGreaterThan(2)
    expect(maxGap).toBeLessThan(took / 2)
  })

  it('stops between directories once its signal is aborted', async () => {
    const root = scratchRoot()
    const a = taskDir(root, 'a', 3, 60_000)
    const b = taskDir(root, 'b', 3, 60_000)
    const ctl = new AbortController()
    ctl.abort()
    expect(await sweepScratch(root, 10_000, () => false, { signal: ctl.signal })).toBe(0)
    expect(existsSync(a) && existsSync(b)).toBe(true)
  })
})
