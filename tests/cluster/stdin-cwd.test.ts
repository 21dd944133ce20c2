import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, tempDir, type Gridd } from '../helpers/cluster.ts'
import { GRIDCTL } from '../helpers/paths.ts'

/** gridctl whose stdin stays open (never written, never closed) until it exits by itself. */
async function runWithOpenStdin (n: Gridd, args: string[]): Promise<{ code: number | null, stdout: string }> {
  return await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [GRIDCTL, '--socket', n.socket, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
    let stdout = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('gridctl did not exit while its stdin stayed open')) }, 20_000)
    p.on('close', code => { clearTimeout(t); p.stdin.destroy(); resolve({ code, stdout }) })
  })
}

/** gridctl started in a directory that is removed before it runs: a directory the executor cannot have. */
async function runFromRemovedDir (n: Gridd, args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const dir = join(tempDir('grid-gone-'), 'here')
  mkdirSync(dir)
  return await new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', 'cd "$1" && rmdir "$1" && shift && exec "$@"', 'sh', dir, process.execPath, GRIDCTL, '--socket', n.socket, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    p.on('error', reject)
    p.on('close', code => { resolve({ code, stdout, stderr }) })
  })
}

describe('run - stdin and the working directory, as if the task ran here', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd
  let typeDir: string
  beforeAll(async () => {
    c = new Cluster()
    typeDir = realpathSync(tempDir('grid-type-cwd-'))
    const cfg = join(c.root, 'types.yaml')
    writeFileSync(cfg, `
tasks:
  say:
    command: [sh, -c, 'echo "$MODE $(pwd)"']
    env: {MODE: type}
    cwd: ${typeDir}
`)
    n1 = await c.add('n1', { args: ['--config', cfg] })
    n2 = await c.add('n2', { args: ['--config', cfg] })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('streams gridctl\'s stdin to the task, here and on another node', async () => {
    const here = await n1.ctl(['run', '--node', 'n1', '--', 'cat'], { input: 'x\n' })
    expect(here).toMatchObject({ code: 0, stdout: 'x\n' })
    const there = await n1.ctl(['run', '--node', 'n2', '--', 'cat'], { input: 'x\n' })
    expect(there).toMatchObject({ code: 0, stdout: 'x\n' })
  })

  it('delivers a stdin of several MiB whole, in order', async () => {
    const input = randomBytes(3 * 1024 * 1024).toString('base64')
    const want = createHash('sha256').update(input).digest('hex')
    const r = await n1.ctl(['run', '--node', 'n2', '--', 'sha256sum'], { input })
    expect(r.code).toBe(0)
    expect(r.stdout.split(' ')[0]).toBe(want)
  })

  it('gives the task an empty stdin with --no-stdin', async () => {
    const r = await n1.ctl(['run', '--no-stdin', '--', 'sh', '-c', 'cat; echo read-eof'], { input: 'not for the task\n' })
    expect(r).toMatchObject({ code: 0, stdout: 'read-eof\n' })
  })

  it('ends the run with the task\'s code when the task exits without reading stdin', async () => {
    const r = await runWithOpenStdin(n1, ['run', '--node', 'n2', '--', 'sh', '-c', 'echo done; exit 3'])
    expect(r).toEqual({ code: 3, stdout: 'done\n' })
  })

  it('runs in the caller\'s directory when the node has it', async () => {
    const dir = realpathSync(tempDir('grid-caller-'))
    const r = await n1.ctl(['run', '--node', 'n2', '--', 'pwd'], { cwd: dir })
    expect(r).toMatchObject({ code: 0, stdout: `${dir}\n` })
    // an explicit --cwd keeps its meaning: it must exist there
    const missing = await n1.ctl(['run', '--cwd', join(dir, 'nope'), '--', 'pwd'], { cwd: dir })
    expect(missing.code).toBe(126)
  })

  it('runs in the task\'s own scratch directory under the data dir when the caller\'s is not there', async () => {
    const r = await runFromRemovedDir(n1, ['run', '--node', 'n2', '--', 'sh', '-c', 'pwd; echo "$GRID_SCRATCH_DIR"; echo "$GRID_TASK_ID"'])
    expect(r.code, r.stderr).toBe(0)
    const [pwd, scratch, id] = r.stdout.trim().split('\n')
    expect(pwd).toBe(join(n2.dataDir, 'scratch', id as string))
    expect(scratch).toBe(pwd)
  })

  it('lets a task type\'s own env and cwd win over the caller\'s, and refuses a PATH for it', async () => {
    const r = await n1.ctl(['run', '--type', 'say', '--env', 'MODE=caller', '--cwd', '/tmp'])
    expect(r).toMatchObject({ code: 0, stdout: `type ${typeDir}\n` })
    const planted = await n1.ctl(['run', '--type', 'say', '--env', 'PATH=/tmp/evil'])
    expect(planted.code).toBe(2)
    expect(planted.stderr).toMatch(/cannot set PATH/)
  })
})
