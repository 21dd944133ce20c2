import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WorkflowRecord } from '../../proto/index.ts'
import { Cluster, type CtlResult, type Gridd, tempDir, waitFor } from '../helpers/cluster.ts'
import { pathWith, torchPython, writeGridBin } from '../helpers/grid-bin.ts'
import { ROOT } from '../helpers/paths.ts'
import { needsTool } from '../helpers/tools.ts'

// Every example that needs no GPU, run with the command examples/README.md gives for it (the test checks the README
// still says so), from the repository root, with gridctl on the PATH, against a real 3-node cluster. The PyTorch ones
// need a Python with torch (CI installs Debian's python3-torch for /usr/bin/python3); it is put first on the daemons'
// PATH as python3, so the examples' plain `python3` finds it wherever they run.
const README = readFileSync(join(ROOT, 'examples/README.md'), 'utf8')
const TORCH = torchPython()
const torch = (title: string): { title: string, skipped: boolean } => needsTool(title, TORCH, 'a Python with torch (apt-get install python3-torch)')

const WORDCOUNT = 'gridctl distribute --strategy map-reduce --items examples/wordcount/input.txt --reduce \'python3 examples/wordcount/reduce.py\' -- python3 examples/wordcount/map.py'
const WORKFLOW = 'gridctl workflow run examples/workflow/train-eval.yaml --param repo=$PWD'
const TRAIN = 'gridctl run -- python3 examples/pytorch/train.py --steps 50'
const LEARN = 'gridctl run --type model --session s1 --payload \'{"learn": {"x": [1, 0, 0, 0], "y": 2}, "steps": 20}\''
const PREDICT = 'gridctl run --type model --session s1 --payload \'{"x": [1, 0, 0, 0]}\''

describe('examples - each run as examples/README.md says, on a real 3-node cluster', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd
  let bin: string
  const binRoot = tempDir('grid-examples-bin-')

  /** A README command, in bash, from the repository root, against `node`; `gridctl` becomes `gridctl -o json` with `json`. */
  const sh = async (cmd: string, opts: { node?: Gridd, json?: boolean } = {}): Promise<CtlResult> => {
    expect(README, 'examples/README.md gives this command').toContain(`\`${cmd}\``)
    const line = opts.json === true ? cmd.replace(/^gridctl /, 'gridctl -o json ') : cmd
    return await new Promise((resolve, reject) => {
      const p = spawn('bash', ['-c', line], { cwd: ROOT, env: { ...process.env, PATH: pathWith(bin), GRID_SOCKET: (opts.node ?? n1).socket }, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
      p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
      const t = setTimeout(() => { p.kill('SIGKILL') }, 100_000)
      p.on('error', reject)
      p.on('close', code => { clearTimeout(t); resolve({ code: code ?? 1, stdout, stderr }) })
    })
  }

  beforeAll(async () => {
    bin = writeGridBin(binRoot, TORCH === undefined ? {} : { python: TORCH })
    // the model server's task type names its program relative to gridd's directory: the daemons run in the root
    process.chdir(ROOT)
    const config = join(ROOT, 'examples/model-server/gridd.yaml')
    const opts = { args: ['--config', config, '--slots', '4'], env: { PATH: pathWith(bin) } }
    c = new Cluster()
    n1 = await c.add('n1', opts)
    // the other two join through n1 at once (each start costs seconds on a loaded machine)
    ;[n2] = await Promise.all([c.add('n2', opts), c.add('n3', opts)])
    await c.converged()
    await waitFor('every node\'s load to reach n1', async () => (await n1.nodes()).filter(n => n.load !== undefined && n.load !== null).length === 3)
  })
  afterAll(async () => {
    await c?.destroy()
    rmSync(binRoot, { recursive: true, force: true })
  })

  it('examples/README.md has a line for every example folder', () => {
    const folders = readdirSync(join(ROOT, 'examples'), { withFileTypes: true }).filter(e => e.isDirectory()).map(e => e.name)
    expect(folders.length).toBeGreaterThanOrEqual(5)
    for (const f of folders) expect(README, `examples/${f}/ has no line in examples/README.md`).toContain(`| [${f}/](${f}/) |`)
  })

  it('wordcount: the map-reduce job\'s answer is the word counts of input.txt', async () => {
    const r = await sh(WORDCOUNT, { json: true })
    expect(r.code, r.stderr).toBe(0)
    const job = JSON.parse(r.stdout) as { status: string, total: number, succeeded: number, answer: string }
    expect(job).toMatchObject({ status: 'completed', total: 3, succeeded: 3 })
    expect(job.answer.trim().split('\n')).toEqual([
      'dog 3', 'the 3', 'a 2', 'fox 2', 'is 2', 'lazy 2', 'quick 2', 'and 1', 'barks 1', 'brown 1', 'jumps 1', 'over 1'
    ])
  })

  const train = torch('pytorch: the training script trains on the CPU (no GPU given) and prints the device and the loss')
  it.skipIf(train.skipped)(train.title, async () => {
    const r = await sh(TRAIN)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain('device cpu (no GPU given)')
    const losses = [...r.stderr.matchAll(/step \d+\/50 loss ([\d.]+)/g)].map(m => Number(m[1]))
    expect(losses.length).toBeGreaterThanOrEqual(2)
    expect(losses.at(-1)).toBeLessThan(losses[0] as number)
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { device: string, gpus: number, steps: number, loss: number }
    expect(result).toMatchObject({ device: 'cpu', gpus: 0, steps: 50 })
  })

  const wf = torch('workflow: prepare -> train -> evaluate runs to success, evaluate scoring the trained model')
  it.skipIf(wf.skipped)(wf.title, async () => {
    const r = await sh(WORKFLOW, { json: true })
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const w = JSON.parse(r.stdout) as WorkflowRecord
    expect(w.status).toBe('succeeded')
    expect(w.jobs.map(j => [j.name, j.status])).toEqual([['prepare', 'succeeded'], ['train', 'succeeded'], ['evaluate', 'succeeded']])
    const logs = await n2.ctl(['workflow', 'logs', w.id, 'evaluate'])
    const score = JSON.parse(logs.stdout.trim().split('\n').at(-1) as string) as { test_mse: number, baseline_mse: number, device: string }
    expect(score.device).toBe('cpu')
    expect(score.test_mse).toBeLessThan(score.baseline_mse / 2)
  })

  const server = torch('model-server: a session\'s warm worker answers and keeps what it learned between calls, from any node')
  it.skipIf(server.skipped)(server.title, async () => {
    const learn = await sh(LEARN)
    expect(learn.code, learn.stderr).toBe(0)
    const first = JSON.parse(learn.stdout) as { served: number, updates: number, pid: number, session: string, loss: number }
    expect(first).toMatchObject({ served: 1, updates: 20, session: 's1' })
    // the next request, through another node, reaches the same process: it predicts what it was taught
    const predict = await sh(PREDICT, { node: n2 })
    expect(predict.code, predict.stderr).toBe(0)
    const second = JSON.parse(predict.stdout) as { y: number, served: number, updates: number, pid: number }
    expect(second).toMatchObject({ served: 2, updates: 20, pid: first.pid })
    expect(Math.abs(second.y - 2)).toBeLessThan(0.1)
  })
})
