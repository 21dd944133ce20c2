import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { fakeGpuUuid, fakeNvidiaSmiScript } from '../../src/cli/dev/fake-gpus.ts'
import { runsAsNode } from '../../src/cli/dev/process.ts'
import { DEV_STATE_VERSION } from '../../src/cli/dev/constants.ts'
import { defaultSocket } from '../../src/cli/run-gridctl.ts'
import { NVIDIA_SMI_QUERY, parseGpuCsv } from '../../src/executor/gpus.ts'

const dirs: string[] = []
function temp (): string {
  const d = mkdtempSync(join(tmpdir(), 'grid-dev-unit-'))
  dirs.push(d)
  return d
}
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })

describe('gridctl dev - fake GPUs', () => {
  it('writes an nvidia-smi whose answer to gridd\'s query parses as K GPUs with the node\'s fake UUIDs', () => {
    const smi = join(temp(), 'nvidia-smi')
    writeFileSync(smi, fakeNvidiaSmiScript('n2', 3))
    chmodSync(smi, 0o755)
    const gpus = parseGpuCsv(execFileSync(smi, NVIDIA_SMI_QUERY, { encoding: 'utf8' }))
    expect(gpus.map(g => [g.index, g.uuid])).toEqual([[0, fakeGpuUuid('n2', 0)], [1, 'GPU-fake-n2-1'], [2, 'GPU-fake-n2-2']])
    expect(gpus.every(g => g.lost !== true && g.memoryTotalMiB > 0)).toBe(true)
  })
})

describe('gridctl dev - the default socket', () => {
  /** A dev cluster record in `cwd` whose nodes have these pids, each with a socket file. */
  function devCluster (cwd: string, pids: number[]): string[] {
    const root = join(cwd, '.grid-dev')
    const nodes = pids.map((pid, i) => {
      const dataDir = join(root, `n${i + 1}`)
      mkdirSync(dataDir, { recursive: true })
      writeFileSync(join(dataDir, 'gridd.sock'), '')
      return { name: `n${i + 1}`, pid, dataDir, socket: join(dataDir, 'gridd.sock'), log: join(dataDir, 'gridd.log'), port: null, id: null, gpus: 0 }
    })
    writeFileSync(join(root, 'cluster.json'), JSON.stringify({ version: DEV_STATE_VERSION, root, swarmKey: join(root, 'swarm.key'), startedAt: '', nodes }))
    return nodes.map(n => n.socket)
  }

  it('is the first running node of a dev cluster here, after GRID_SOCKET and before ./.grid', () => {
    const cwd = temp()
    mkdirSync(join(cwd, '.grid'))
    writeFileSync(join(cwd, '.grid', 'gridd.sock'), '')
    expect(defaultSocket({}, cwd)).toBe(join(cwd, '.grid', 'gridd.sock'))
    // n1's pid is gone (dev kill n1): n2, which runs (this process stands in for it)
    const [, n2] = devCluster(cwd, [2 ** 22 + 12_345, process.pid])
    expect(defaultSocket({}, cwd)).toBe(n2)
    expect(defaultSocket({ GRID_SOCKET: '/elsewhere.sock' }, cwd)).toBe('/elsewhere.sock')
  })

  it('is not a dev cluster whose nodes all stopped', () => {
    const cwd = temp()
    devCluster(cwd, [2 ** 22 + 12_345])
    expect(defaultSocket({}, cwd)).toBe('/run/grid/gridd.sock')
  })

  it('never takes a live pid of another program for a node', () => {
    expect(runsAsNode({ pid: process.pid, dataDir: '/tmp/not-this' })).toBe(false)
  })
})
