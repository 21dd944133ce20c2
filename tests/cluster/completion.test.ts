/**
 * `gridctl completion bash` as a person uses it: the script sourced in bash, the real gridctl on PATH, a real daemon
 * behind GRID_SOCKET; Tab offers the cluster's node names and the ids of its tasks.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster } from '../helpers/cluster.ts'
import { GRIDCTL } from '../helpers/paths.ts'

describe('completion - against real daemons', () => {
  let c: Cluster
  beforeAll(async () => {
    c = await Cluster.start(2)
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  /** What bash offers for each line, with the script that gridctl printed sourced and gridctl on PATH. */
  async function complete (lines: string[][]): Promise<string[][]> {
    const script = await c.node('n1').ctl(['completion', 'bash'])
    expect(script.code, script.stderr).toBe(0)
    const file = join(c.root, 'gridctl.bash')
    writeFileSync(file, script.stdout)
    const bin = join(c.root, 'bin')
    spawnSync('mkdir', ['-p', bin])
    writeFileSync(join(bin, 'gridctl'), `#!/bin/sh\nexec '${process.execPath}' '${GRIDCTL}' "$@"\n`)
    chmodSync(join(bin, 'gridctl'), 0o755)
    const calls = lines.map(words => `COMP_WORDS=(${words.map(w => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _gridctl; echo "\${COMPREPLY[*]}"`)
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', [`source ${file}`, ...calls].join('\n')], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/bin:/bin`, GRID_SOCKET: c.node('n2').socket },
      timeout: 60_000
    })
    expect(r.stderr).toBe('')
    return r.stdout.split('\n').slice(0, lines.length).map(l => l.split(' ').filter(w => w !== '').sort())
  }

  it('offers the cluster\'s node names and its task ids from the local daemon', async () => {
    const r = await c.node('n1').ctl(['run', '--node', 'n2', '--', 'true'])
    expect(r.code).toBe(0)
    const [id] = (await c.node('n2').api.get<Array<{ id: string }>>('/tasks')).map(t => t.id)
    const [commands, nodes, runNode, tasks, flags] = await complete([
      ['gridctl', 'st'],
      ['gridctl', 'nodes', 'get', ''],
      ['gridctl', 'run', '--node', 'n'],
      ['gridctl', 'logs', ''],
      ['gridctl', 'cancel', '--']
    ])
    expect(commands).toEqual(['stats', 'status'])
    expect(nodes).toEqual(['n1', 'n2'])
    expect(runNode).toEqual(['n1', 'n2'])
    expect(tasks).toEqual([id])
    expect(flags).toEqual(['--help', '--no-wait', '--output', '--socket', '--version'])
  })

  it('offers the ids of the cluster\'s jobs where a job id goes', async () => {
    const r = await c.node('n1').ctl(['distribute', '--count', '2', '-o', 'json', '--', 'true'])
    expect(r.code, r.stderr).toBe(0)
    const { id } = JSON.parse(r.stdout) as { id: string }
    const [jobs] = await complete([['gridctl', 'job', 'cancel', '']])
    expect(jobs).toEqual([id])
  })
})
