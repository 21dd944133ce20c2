import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { COMMANDS } from '../../src/cli/commands/index.ts'
import { commandSpecs, positionalKind } from '../../src/cli/completion.ts'
import { runGridctl } from '../../src/cli/index.ts'

const dir = mkdtempSync(join(tmpdir(), 'grid-completion-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
const HAS = (shell: string): boolean => spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0

async function ctl (argv: string[], socket = join(dir, 'none.sock')): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await runGridctl(['--socket', socket, ...argv], {
    out: { write: t => { out += t.toString() } },
    err: { write: t => { err += t.toString() } },
    env: {},
    tty: false,
    signal: new AbortController().signal
  })
  return { code, out, err }
}

/**
 * Completes each line in bash with the script sourced, as readline would (COMP_WORDS, COMP_CWORD, the function
 * `complete` registered), and returns what it offers. A stand-in gridctl on PATH answers --values, naming its
 * arguments, so the test sees what the script asked the daemon.
 */
function bashComplete (script: string, lines: string[][]): string[][] {
  const bin = join(dir, 'bin')
  spawnSync('mkdir', ['-p', bin])
  writeFileSync(join(bin, 'gridctl'), '#!/bin/sh\n# stand-in: gridctl [--socket S] completion --values KIND\n[ "$1" = --socket ] && { s="$2"; shift 2; }\ncase "$3" in node) echo "gpu-01 gpu-02${s:+ via-$s}" ;; task) echo "t-aaa t-bbb" ;; session) echo "sess-1" ;; esac\n')
  chmodSync(join(bin, 'gridctl'), 0o755)
  writeFileSync(join(dir, 'gridctl.bash'), script)
  const calls = lines.map(words => `COMP_WORDS=(${words.map(w => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); $(complete -p gridctl | sed -E 's/.*-F ([^ ]+).*/\\1/'); echo "\${COMPREPLY[*]}"`)
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', [`source ${join(dir, 'gridctl.bash')}`, ...calls].join('\n')], { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin` } })
  expect(r.stderr).toBe('')
  return r.stdout.split('\n').slice(0, lines.length).map(l => l.split(' ').filter(w => w !== ''))
}

describe('completion - generated from the command table', () => {
  it('reads what a first argument is from the usage line', () => {
    const kind = (path: string[]): string => {
      const top = COMMANDS.find(c => c.name === path[0])
      const cmd = path.length === 1 ? top : top?.subcommands?.find(s => s.name === path[1])
      return positionalKind(cmd as NonNullable<typeof cmd>, path)
    }
    expect(kind(['task'])).toBe('task')
    expect(kind(['logs'])).toBe('task')
    expect(kind(['nodes', 'get'])).toBe('node')
    expect(kind(['drain'])).toBe('node')
    expect(kind(['sessions', 'put'])).toBe('session')
    expect(kind(['keygen'])).toBe('file')
    expect(kind(['run'])).toBe('command')
    expect(kind(['nodes'])).toBe('none')
    expect(kind(['status'])).toBe('none')
  })

  it('covers every command, subcommand and option', () => {
    const specs = commandSpecs(COMMANDS)
    for (const c of COMMANDS) {
      const s = specs.find(x => x.path.join(' ') === c.name)
      expect(s?.flags.map(f => f.long).sort(), c.name).toEqual(Object.keys(c.options ?? {}).sort())
      for (const sub of c.subcommands ?? []) expect(specs.find(x => x.path.join(' ') === `${c.name} ${sub.name}`)?.flags.map(f => f.long).sort()).toEqual(Object.keys(sub.options ?? {}).sort())
    }
  })

  it('prints a script for bash, zsh and fish, and refuses another shell', async () => {
    for (const shell of ['bash', 'zsh', 'fish']) {
      const r = await ctl(['completion', shell])
      expect(r.code, r.err).toBe(0)
      expect(r.out).toMatch(new RegExp(`${shell} completion for gridctl \\d+\\.\\d+\\.\\d+`))
    }
    const bad = await ctl(['completion', 'tcsh'])
    expect(bad.code).toBe(2)
    expect(bad.err).toMatch(/unknown shell "tcsh": bash, zsh or fish/)
  })
})

describe('completion - bash', () => {
  it('completes commands, a command\'s flags, subcommands, flag values and arguments, with live values from the daemon', async () => {
    const script = (await ctl(['completion', 'bash'])).out
    const run = COMMANDS.find(c => c.name === 'run')
    const [all, ru, runFlags, logsFlags, nodesSubs, nodeGet, logsId, nodeOpt, output, afterDashes, socketed, sessions] = bashComplete(script, [
      ['gridctl', ''],
      ['gridctl', 'ru'],
      ['gridctl', 'run', '-'],
      ['gridctl', '-o', 'json', 'logs', '-'],
      ['gridctl', 'nodes', ''],
      ['gridctl', 'nodes', 'get', ''],
      ['gridctl', 'logs', 't-b'],
      ['gridctl', 'run', '--gpus', '1', '--node', 'gpu-0'],
      ['gridctl', 'status', '--output', 'j'],
      ['gridctl', 'run', '--node', 'gpu-01', '--', 'printen'],
      ['gridctl', '--socket', '/run/x.sock', 'drain', ''],
      ['gridctl', 'sessions', 'get', '']
    ])
    expect(all).toEqual(COMMANDS.map(c => c.name))
    expect(ru).toEqual(['run'])
    for (const [name, o] of Object.entries(run?.options ?? {})) {
      expect(runFlags).toContain(`--${name}`)
      if (o.short !== undefined) expect(runFlags).toContain(`-${o.short}`)
    }
    expect(logsFlags).toEqual(['--follow', '-f', '--socket', '--output', '-o', '--help', '-h', '--version'])
    expect(nodesSubs).toEqual(['get', 'forget'])
    expect(nodeGet).toEqual(['gpu-01', 'gpu-02'])
    expect(logsId).toEqual(['t-bbb'])
    expect(nodeOpt).toEqual(['gpu-01', 'gpu-02'])
    expect(output).toEqual(['json'])
    expect(afterDashes).toContain('printenv')
    // the socket named on the line is the one asked
    expect(socketed).toEqual(['gpu-01', 'gpu-02', 'via-/run/x.sock'])
    expect(sessions).toEqual(['sess-1'])
  })

  it.runIf(HAS('zsh'))('loads in zsh', async () => {
    const file = join(dir, '_gridctl')
    writeFileSync(file, (await ctl(['completion', 'zsh'])).out)
    // registered, and the function (zsh's compadd filters by the prefix afterwards) offers what bash would
    const r = spawnSync('zsh', ['-f', '-c', `source ${file} && echo \${+_comps[gridctl]} && COMP_WORDS=(gridctl -o json nodes '') && COMP_CWORD=4 && _gridctl && echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' })
    expect(r.stdout.trim().split('\n'), r.stderr).toEqual(['1', 'get forget'])
  })

  it.runIf(HAS('fish'))('loads in fish', async () => {
    const file = join(dir, 'gridctl.fish')
    writeFileSync(file, (await ctl(['completion', 'fish'])).out)
    const r = spawnSync('fish', ['-c', `source ${file}; complete -C 'gridctl nodes '`], { encoding: 'utf8' })
    expect(r.stdout, r.stderr).toMatch(/^get\t/m)
  })
})

describe('completion - live values', () => {
  let server: Server | undefined
  afterAll(() => { server?.closeAllConnections(); server?.close() })

  it('prints node names, task ids and session ids from the daemon, one per line', async () => {
    const socket = join(dir, 'd.sock')
    const paths: string[] = []
    server = createServer((req, res) => {
      paths.push(req.url ?? '')
      const body = req.url === '/v1/nodes' ? [{ name: 'gpu-01' }, { name: 'cpu-01' }] : req.url?.startsWith('/v1/tasks') === true ? [{ id: 't-1' }] : [{ id: 's-1' }]
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(body))
    })
    await new Promise<void>(resolve => { server?.listen(socket, resolve) })
    expect(await ctl(['completion', '--values', 'node'], socket)).toEqual({ code: 0, out: 'gpu-01\ncpu-01\n', err: '' })
    expect((await ctl(['completion', '--values', 'task'], socket)).out).toBe('t-1\n')
    expect((await ctl(['completion', '--values', 'session'], socket)).out).toBe('s-1\n')
    expect(paths).toEqual(['/v1/nodes', '/v1/tasks?limit=50', '/v1/sessions'])
    expect((await ctl(['completion', '--values', 'jobs'], socket)).code).toBe(2)
    // no daemon: nothing on stdout (the scripts drop stderr)
    const none = await ctl(['completion', '--values', 'node'])
    expect(none.code).toBe(1)
    expect(none.out).toBe('')
  })
})
