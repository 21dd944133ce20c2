import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, tempDir, waitFor, type Gridd } from '../helpers/cluster.ts'
import { finished } from '../helpers/tasks.ts'
import { fetchMetrics, metricValue } from '../helpers/metrics.ts'

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

/** A project directory: a script, data, and things that must stay behind. */
function project (): string {
  const dir = tempDir('grid-sync-project-')
  mkdirSync(join(dir, 'data'))
  mkdirSync(join(dir, 'node_modules', 'dep'), { recursive: true })
  writeFileSync(join(dir, 'train.sh'), '#!/bin/sh\necho "training on $(cat data/in.txt)"\n', { mode: 0o755 })
  writeFileSync(join(dir, 'data', 'in.txt'), 'dataset-v1')
  writeFileSync(join(dir, 'data', 'big.bin'), randomBytes(3 * 1024 * 1024 + 17))
  for (let i = 0; i < 50; i++) writeFileSync(join(dir, 'data', `f${i}.txt`), `file ${i}\n`)
  writeFileSync(join(dir, 'node_modules', 'dep', 'index.js'), 'module.exports = 1\n')
  writeFileSync(join(dir, '.gridignore'), 'secret.txt\n')
  writeFileSync(join(dir, 'secret.txt'), 'do not ship')
  writeFileSync(join(dir, 'debug.log'), 'log')
  return dir
}

describe('run --sync: the code ships with the task', () => {
  let c: Cluster
  let n1: Gridd
  let dir: string
  const sent = async (n: Gridd): Promise<{ file: number, manifest: number, saved: number }> => {
    const t = await fetchMetrics(n.socket)
    return { file: metricValue(t, 'grid_sync_bytes_sent_total', { kind: 'file' }), manifest: metricValue(t, 'grid_sync_bytes_sent_total', { kind: 'manifest' }), saved: metricValue(t, 'grid_sync_bytes_saved_total') }
  }
  beforeAll(async () => {
    c = new Cluster()
    n1 = await c.add('n1')
    await c.add('n2')
    await c.converged()
    dir = project()
  })
  afterAll(async () => { await c?.destroy() })

  it('runs on another node in a copy of the directory, GRID_SYNC_DIR naming it', async () => {
    const r = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', './train.sh && [ "$(pwd)" = "$GRID_SYNC_DIR" ] && [ "$GRID_SYNC_DIR" != "$1" ] && echo cwd-ok && sha256sum data/big.bin', 'sh', dir])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const [first, second, third] = r.stdout.trim().split('\n')
    expect(first).toBe('training on dataset-v1')
    expect(second).toBe('cwd-ok')
    expect(third?.split(' ')[0]).toBe(sha(readFileSync(join(dir, 'data', 'big.bin'))))
  })

  it('sends only the changed file the second time', async () => {
    // the first sync of this tree happened in the test above; one file changes
    const before = await sent(n1)
    writeFileSync(join(dir, 'data', 'in.txt'), 'dataset-v2, longer')
    const r = await n1.ctl(['run', '-v', '--node', 'n2', '--sync', dir, '--', './train.sh'])
    expect(r).toMatchObject({ code: 0, stdout: 'training on dataset-v2, longer\n' })
    // gridctl sent n1 the manifest as its difference from the one it built last, and only the changed file
    expect(r.stderr).toMatch(/1 blobs \(18 bytes\) were new to this node; the manifest went as its difference from the last/)
    const after = await sent(n1)
    expect(after.file - before.file).toBe(Buffer.byteLength('dataset-v2, longer'))
    expect(after.saved - before.saved).toBeGreaterThan(3 * 1024 * 1024)
    // the manifest went as its difference from the last one n2 got: the changed entry, not all 55
    expect(after.manifest - before.manifest).toBeGreaterThan(0)
    expect(after.manifest - before.manifest).toBeLessThan(400)
  })

  it('leaves out the defaults, .gridignore\'s patterns and --sync-exclude\'s (on the node it was submitted to)', async () => {
    const r = await n1.ctl(['run', '--node', 'n1', '--sync', dir, '--sync-exclude', '*.log', '--', 'sh', '-c', '[ "$(pwd)" = "$GRID_SYNC_DIR" ] || echo not-in-tree; for f in node_modules secret.txt debug.log .gridignore train.sh; do [ -e "$f" ] && echo "has $f"; done; true'])
    expect(r).toMatchObject({ code: 0, stdout: 'has .gridignore\nhas train.sh\n' })
  })

  it('brings files the task wrote back with --fetch', async () => {
    const r = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--fetch', 'out/**', '--fetch', 'model.txt', '--', 'sh', '-c', 'mkdir -p out/sub && echo r1 > out/result.txt && echo r2 > out/sub/deep.txt && echo m > model.txt && echo x > other.txt'])
    expect(r).toMatchObject({ code: 0 })
    expect(readFileSync(join(dir, 'out', 'result.txt'), 'utf8')).toBe('r1\n')
    expect(readFileSync(join(dir, 'out', 'sub', 'deep.txt'), 'utf8')).toBe('r2\n')
    expect(readFileSync(join(dir, 'model.txt'), 'utf8')).toBe('m\n')
    expect(existsSync(join(dir, 'other.txt'))).toBe(false)
  })

  it('gives two tasks on the same tree their own copies', async () => {
    const script = 'echo "$GRID_TASK_ID" > data/in.txt; sleep 1; cat data/in.txt; [ "$(cat data/f1.txt)" = "file 1" ] && echo same-input'
    const [a, b] = await Promise.all([
      n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', script]),
      n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', script])
    ])
    expect(a?.code).toBe(0)
    expect(b?.code).toBe(0)
    const [idA] = (a?.stdout ?? '').split('\n')
    const [idB] = (b?.stdout ?? '').split('\n')
    expect(idA).not.toBe(idB)
    expect(a?.stdout).toContain('same-input')
    // the local directory is untouched
    expect(readFileSync(join(dir, 'data', 'in.txt'), 'utf8')).toBe('dataset-v2, longer')
  })

  it('lays the next attempt\'s tree out from the spare, without what the last task wrote in its own', async () => {
    const spareUses = (): number => (c.node('n2').log().match(/laid out from the spare/g) ?? []).length
    const wrote = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', 'echo task-wrote > data/in.txt && rm data/f1.txt && mkdir extra && chmod 600 train.sh'])
    expect(wrote.code).toBe(0)
    const before = spareUses()
    const r = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', 'cat data/in.txt; cat data/f1.txt; [ -e extra ] && echo has-extra; ./train.sh'])
    const input = readFileSync(join(dir, 'data', 'in.txt'), 'utf8')
    expect(r).toMatchObject({ code: 0, stdout: `${input}file 1\ntraining on ${input}\n` })
    expect(spareUses()).toBeGreaterThan(before)
  })

  it('lays a new tree out as its files arrive, so its first attempt takes that tree ready', async () => {
    const log = (): string => c.node('n2').log()
    const count = (re: RegExp): number => (log().match(re) ?? []).length
    const [ahead, fromSpare] = [count(/laying a spare synced tree out as its blobs arrive/g), count(/laid out from the spare/g)]
    const fresh = tempDir('grid-sync-arriving-')
    mkdirSync(join(fresh, 'a', 'b'), { recursive: true })
    writeFileSync(join(fresh, 'a', 'b', 'large.bin'), randomBytes(2 * 1024 * 1024 + 5))
    for (let i = 0; i < 120; i++) writeFileSync(join(fresh, 'a', `s${i}.txt`), `small ${i} ${randomBytes(8).toString('hex')}\n`)
    writeFileSync(join(fresh, 'run.sh'), '#!/bin/sh\ncat a/s7.txt && sha256sum a/b/large.bin\n', { mode: 0o755 })
    const r = await n1.ctl(['run', '--node', 'n2', '--sync', fresh, '--', './run.sh'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`${readFileSync(join(fresh, 'a', 's7.txt'), 'utf8')}${sha(readFileSync(join(fresh, 'a', 'b', 'large.bin')))}  a/b/large.bin\n`)
    expect(count(/laying a spare synced tree out as its blobs arrive/g)).toBe(ahead + 1)
    expect(count(/laid out from the spare/g)).toBe(fromSpare + 1)
  })

  it('never hands the next run a tree its task wrote in, whether the next tree is a task\'s left as laid out or the spare', async () => {
    // runs back to back: a tree its task left alone may serve the next run (by a rename); one written in may not
    const input = readFileSync(join(dir, 'data', 'in.txt'), 'utf8')
    for (let i = 0; i < 3; i++) {
      const alone = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', 'cat data/in.txt >/dev/null'])
      expect(alone.code).toBe(0)
      const wrote = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', `cat data/in.txt; echo run-${i} > data/in.txt; touch -r train.sh data/in.txt; echo x > data/new-${i}.txt`])
      expect(wrote).toMatchObject({ code: 0, stdout: input })
    }
    const r = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', 'cat data/in.txt; ls data | grep -c new- || true'])
    expect(r).toMatchObject({ code: 0, stdout: `${input}0\n` })
  })

  it('refuses a link out of the directory with exit 2, naming it, before sending anything', async () => {
    const bad = tempDir('grid-sync-bad-')
    writeFileSync(join(bad, 'fresh.txt'), randomBytes(64))
    symlinkSync('/etc/hostname', join(bad, 'escape'))
    const tasksBefore = (await n1.api.get<unknown[]>('/tasks')).length
    const r = await n1.ctl(['run', '--node', 'n2', '--sync', bad, '--', 'true'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(join(bad, 'escape'))
    expect(r.stderr).toContain('points out of the synced directory')
    expect((await n1.api.get<unknown[]>('/tasks')).length).toBe(tasksBefore)
    const fresh = sha(readFileSync(join(bad, 'fresh.txt')))
    expect((await n1.api.post<{ missing: string[] }>('/sync/missing', { hashes: [fresh] })).missing).toEqual([fresh])
    const missing = await n1.ctl(['run', '--sync', join(bad, 'nope'), '--', 'true'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain(join(bad, 'nope'))
  })

  it('refuses a blob whose content does not match its hash, and takes it when sent right', async () => {
    const real = Buffer.from('the real content')
    const h = sha(real)
    const forged = await n1.api.post<{ refused: string[] }>('/sync/blobs', { pieces: [{ hash: h, size: 16, offset: 0, data: Buffer.from('a forged content').toString('base64') }] })
    expect(forged.refused).toEqual([h])
    expect((await n1.api.post<{ missing: string[] }>('/sync/missing', { hashes: [h] })).missing).toEqual([h])
    const ok = await n1.api.post<{ refused: string[] }>('/sync/blobs', { pieces: [{ hash: h, size: 16, offset: 0, data: real.toString('base64') }] })
    expect(ok.refused).toEqual([])
    expect((await n1.api.post<{ missing: string[] }>('/sync/missing', { hashes: [h] })).missing).toEqual([])
    expect(metricValue(await fetchMetrics(n1.socket), 'grid_sync_blobs_refused_total')).toBeGreaterThanOrEqual(1)
  })

  it('takes blob pieces as msgpack with raw bytes, refusing a forged one and a body that is not msgpack', async () => {
    const { Packr } = await import('msgpackr')
    const packr = new Packr({ useRecords: false })
    const real = randomBytes(3000)
    const h = sha(real)
    const upload = async (data: Buffer): Promise<{ refused: string[] }> => await n1.api.postBytes('/sync/blobs', packr.pack({ pieces: [{ hash: h, size: data.byteLength, offset: 0, data }] }), 'application/msgpack')
    expect((await upload(randomBytes(3000))).refused).toEqual([h])
    expect((await n1.api.post<{ missing: string[] }>('/sync/missing', { hashes: [h] })).missing).toEqual([h])
    // data as text where bytes belong, and bytes that are not msgpack: a clear error, nothing stored
    await expect(n1.api.postBytes('/sync/blobs', packr.pack({ pieces: [{ hash: h, size: 3000, offset: 0, data: real.toString('base64') }] }), 'application/msgpack')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(n1.api.postBytes('/sync/blobs', Buffer.from([0xc1, 0xc1, 0xc1]), 'application/msgpack')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('not msgpack') })
    expect((await upload(real)).refused).toEqual([])
    expect((await n1.api.post<{ missing: string[] }>('/sync/missing', { hashes: [h] })).missing).toEqual([])
  })

  it('tells the client how the transfer to the executor goes (sync events)', async () => {
    const fresh = tempDir('grid-sync-fresh-')
    writeFileSync(join(fresh, 'weights.bin'), randomBytes(2 * 1024 * 1024))
    const r = await n1.ctl(['-o', 'json', 'run', '--node', 'n2', '--sync', fresh, '--', 'true'])
    expect(r.code).toBe(0)
    const events = r.stderr.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as { type: string, sentBytes?: number, totalBytes?: number, nodeName?: string })
    const last = events.filter(e => e.type === 'sync').at(-1)
    expect(last).toMatchObject({ nodeName: 'n2', sentBytes: 2 * 1024 * 1024, totalBytes: 2 * 1024 * 1024 })
  })

  it('shows the cache size in gridctl stats', async () => {
    const r = await n1.ctl(['stats'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/sync cache [0-9.]+ MiB of 10240 MiB \(\d+ blobs, this node\)/)
  })

  it('ships the tree to every run of a distribute job (and refuses --fetch there)', async () => {
    const r = await n1.ctl(['distribute', '-o', 'json', '--strategy', 'broadcast', '--sync', dir, '--', 'sh', '-c', '[ "$(pwd)" = "$GRID_SYNC_DIR" ] && cat data/in.txt'], { timeoutMs: 110_000 })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const job = JSON.parse(r.stdout) as { status: string, results: Array<{ nodeName: string, stdout: string }> }
    expect(job.status).toBe('completed')
    expect(job.results.map(x => x.nodeName).sort()).toEqual(['n1', 'n2'])
    for (const x of job.results) expect(x.stdout).toBe(readFileSync(join(dir, 'data', 'in.txt'), 'utf8'))
    const f = await n1.ctl(['distribute', '--count', '2', '--sync', dir, '--fetch', 'out/**', '--', 'true'])
    expect(f.code).toBe(2)
    expect(f.stderr).toMatch(/fetch/)
  })

  it('ships a workflow job\'s sync: DIR (relative to the workflow file) with that job', async () => {
    const wf = join(dirname(dir), `wf-sync-${Date.now()}.yaml`)
    writeFileSync(wf, [
      'name: synced',
      'jobs:',
      '  train:',
      `    sync: ${basename(dir)}`,
      '    node: n2',
      '    command: ["sh", "-c", "grep -q dataset data/in.txt && [ -x train.sh ]"]',
      '  plain:',
      '    needs: [train]',
      '    command: ["sh", "-c", "[ -z \\"$GRID_SYNC_DIR\\" ] && [ ! -e train.sh ]"]',
      ''
    ].join('\n'))
    const r = await n1.ctl(['workflow', 'run', wf, '-o', 'json'], { timeoutMs: 110_000 })
    expect(r.stderr).toBe('')
    const w = JSON.parse(r.stdout) as { status: string, jobs: Array<{ name: string, status: string }> }
    expect(w.jobs).toEqual([expect.objectContaining({ name: 'train', status: 'succeeded' }), expect.objectContaining({ name: 'plain', status: 'succeeded' })])
    expect(w.status).toBe('succeeded')
    expect(r.code).toBe(0)
    // a directory that is not there: exit 2 naming it, nothing submitted
    writeFileSync(wf, 'name: missing\njobs:\n  a:\n    sync: no-such-dir\n    command: [true]\n')
    const bad = await n1.ctl(['workflow', 'run', wf])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/no-such-dir/)
  })
})

const asRoot = process.getuid?.() === 0
describe.skipIf(!asRoot)(`run --sync with executor.taskUser: the tree is the task user's to use${asRoot ? '' : ' (skipped: needs root)'}`, () => {
  let c: Cluster
  let n1: Gridd
  beforeAll(async () => {
    c = new Cluster()
    chmodSync(c.root, 0o755)
    const cfg = join(c.root, 'gridd.yaml')
    writeFileSync(cfg, 'executor:\n  taskUser: nobody\n')
    n1 = await c.add('n1', { args: ['--config', cfg] })
    await c.add('n2', { args: ['--config', cfg] })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('lets the task user read, run, change and add files in its tree, and fetches what it wrote', async () => {
    const dir = project()
    const r = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--fetch', 'out.txt', '--', 'sh', '-c', 'id -un; ./train.sh && echo more >> data/in.txt && cat data/in.txt && echo made > out.txt'])
    expect(r.stderr).toBe('')
    expect(r).toMatchObject({ code: 0, stdout: 'nobody\ntraining on dataset-v1\ndataset-v1more\n' })
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('made\n')
    // its change stayed in its tree: a second task sees the file as synced
    const again = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'cat', 'data/in.txt'])
    expect(again).toMatchObject({ code: 0, stdout: 'dataset-v1' })
  })
})

describe.skipIf(!asRoot)(`run --sync with executor.syncLayout link: hard links to the cache, read-only to the task${asRoot ? '' : ' (skipped: needs root)'}`, () => {
  let c: Cluster
  let n1: Gridd
  beforeAll(async () => {
    c = new Cluster()
    chmodSync(c.root, 0o755)
    const cfg = join(c.root, 'gridd.yaml')
    writeFileSync(cfg, 'executor:\n  taskUser: nobody\n  syncLayout: link\n')
    n1 = await c.add('n1', { args: ['--config', cfg] })
    await c.add('n2', { args: ['--config', cfg] })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('lets the task read and replace a linked file but not write into it; the cache and the next tree keep the synced content', async () => {
    const dir = project()
    const into = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', './train.sh && echo more >> data/in.txt'])
    expect(into.stdout).toBe('training on dataset-v1\n')
    expect(into.code).not.toBe(0)
    const replace = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', 'chmod u+w data/in.txt 2>/dev/null && echo chmod-worked; { cat data/in.txt; echo more; } > t && mv t data/in.txt && cat data/in.txt && echo x >> train.sh'])
    expect(replace).toMatchObject({ code: 0, stdout: 'dataset-v1more\n' })
    const again = await n1.ctl(['run', '--node', 'n2', '--sync', dir, '--', 'sh', '-c', 'cat data/in.txt; tail -1 train.sh'])
    expect(again).toMatchObject({ code: 0, stdout: 'dataset-v1echo "training on $(cat data/in.txt)"\n' })
    expect(c.node('n2').log()).toMatch(/"linked":5[0-9]/)
  })
})

describe('run --sync: a retry on another node sends only what that node lacks', () => {
  let c: Cluster
  let n1: Gridd
  beforeAll(async () => {
    c = new Cluster()
    n1 = await c.add('n1')
    await c.add('n2', { args: ['--label', 'role=w'] })
    await c.add('n3', { args: ['--label', 'role=w'] })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('runs attempt 2 on the node that has the tree already without sending its files again', async () => {
    const dir = project()
    const tree = (await n1.ctl(['run', '--node', 'n3', '--sync', dir, '--', 'true']))
    expect(tree.code).toBe(0)
    // attempt 1 goes to n2 (n3 is draining), which dies while it runs; n3, open again, has every blob
    expect((await n1.ctl(['drain', 'n3'])).code).toBe(0)
    await waitFor('n1 to see n3 draining', async () => (await n1.nodes()).find(n => n.name === 'n3')?.drain === true)
    const marker = join(c.root, 'attempt-1')
    const r = await n1.ctl(['run', '--detach', '--label', 'role=w', '--sync', dir, '--', 'sh', '-c', `if [ "$GRID_ATTEMPT" = 1 ]; then echo "$GRID_NODE_NAME" > ${marker}; sleep 300; fi; ./train.sh`])
    const id = r.stdout.trim()
    // the shell makes the file before echo writes into it: wait for its line, not for the file
    await waitFor('attempt 1 to run', () => existsSync(marker) && readFileSync(marker, 'utf8').endsWith('\n'))
    expect(readFileSync(marker, 'utf8')).toBe('n2\n')
    expect((await n1.ctl(['undrain', 'n3'])).code).toBe(0)
    await waitFor('n1 to see n3 open again', async () => (await n1.nodes()).find(n => n.name === 'n3')?.drain === false)
    const before = metricValue(await fetchMetrics(n1.socket), 'grid_sync_bytes_sent_total', { kind: 'file' })
    await c.node('n2').kill()
    const done = await finished(n1, id, 90_000)
    expect(done).toMatchObject({ status: 'completed', nodeName: 'n3', attempts: 2 })
    expect(metricValue(await fetchMetrics(n1.socket), 'grid_sync_bytes_sent_total', { kind: 'file' })).toBe(before)
  })
})
