import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { StatsResponse } from '../../proto/index.ts'
import { renderStats } from '../../src/cli/commands/watch.ts'
import { runGridctl } from '../../src/cli/index.ts'
import { Lines, bar, cpuText, printList, printObject, safeText } from '../../src/cli/output.ts'

/** A daemon stand-in on a Unix socket: `handle` answers each request. */
async function fakeDaemon (handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ socket: string, close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'grid-ctl-'))
  const socket = join(dir, 'd.sock')
  const server: Server = createServer(handle)
  await new Promise<void>(resolve => { server.listen(socket, resolve) })
  return { socket, close: () => { server.closeAllConnections(); server.close(); rmSync(dir, { recursive: true, force: true }) } }
}

async function ctl (argv: string[], socket = '/nonexistent/gridd.sock'): Promise<{ code: number, out: string, err: string }> {
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

const sink = (): { out: { write: (t: string | Uint8Array) => void }, text: () => string } => {
  let s = ''
  return { out: { write: t => { s += t.toString() } }, text: () => s }
}

const ESC_NAME = 'evil\u001b]0;pwned\u0007\u001b[2J\nnode\u202e'

describe('gridctl - text from the cluster cannot drive the terminal', () => {
  it('shows control characters, C1 controls and direction overrides as visible escapes', () => {
    expect(safeText(ESC_NAME)).toBe('evil\\x1b]0;pwned\\x07\\x1b[2J\\nnode\\u202e')
    expect(safeText('plain név 日本')).toBe('plain név 日本')
    expect(safeText('a\u009bb\u007f')).toBe('a\\x9bb\\x7f')
  })

  it('escapes them in table and Markdown cells, label keys included, but keeps JSON exact', () => {
    const rows = [{ name: ESC_NAME, labels: { 'k\u001b': 'v\u001b' }, cmd: ['sh', '-c', 'echo \u001b[31mred'] }]
    const cols = [{ header: 'name', value: (r: typeof rows[0]) => r.name }, { header: 'labels', value: (r: typeof rows[0]) => r.labels }, { header: 'cmd', value: (r: typeof rows[0]) => r.cmd }]
    for (const format of ['table', 'markdown'] as const) {
      const s = sink()
      printList(s.out, format, rows, cols)
      expect(s.text()).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/)
      expect(s.text()).toContain('evil\\x1b]0;pwned\\x07')
      expect(s.text()).toContain('k\\x1b=v\\x1b')
      expect(s.text().split('\n').filter(l => l !== '')).toHaveLength(format === 'table' ? 2 : 3)
    }
    const s = sink()
    printObject(s.out, 'table', [['name', ESC_NAME]], {})
    expect(s.text()).toBe('name:  evil\\x1b]0;pwned\\x07\\x1b[2J\\nnode\\u202e\n')
    const j = sink()
    printList(j.out, 'json', rows, cols)
    expect(JSON.parse(j.text())).toEqual(rows)
  })

  it('escapes node names in watch\'s table', () => {
    const lines = renderStats(stats({ name: ESC_NAME }))
    expect(lines.join('\n')).not.toMatch(/\u001b/)
    expect(lines.join('\n')).toContain('evil\\x1b]0;pwned')
  })
})

function stats (node: Partial<StatsResponse['perNode'][number]> = {}): StatsResponse {
  return {
    at: '2026-01-01T00:00:00.000Z',
    nodes: { total: 1, alive: 1, suspect: 0, dead: 0, left: 0, draining: 0 },
    slots: { total: 2, free: 1 },
    gpus: { total: 0, free: 0, utilizationPercent: 0, memoryUsedBytes: 0, memoryTotalBytes: 0 },
    tasks: { running: 12, queued: 3, done: 123456, failed: 789, donePerSecond: 10.5, failedPerSecond: 0.25 },
    sessions: 4,
    workers: 2,
    perNode: [{ id: 'p1', name: 'n1', state: 'alive', drain: false, cpu: 0.5, memUsed: 0.4, slots: 2, freeSlots: 1, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, running: 1, queued: 0, ...node }]
  } as StatsResponse
}

describe('gridctl - figures that say what they mean', () => {
  it('never shows a CPU above 100 %: a load beyond the CPUs is named as a load', () => {
    expect(cpuText(0.42)).toBe(' 42%')
    expect(cpuText(2.5)).toBe('100% (load 2.5/CPU)')
    expect(bar(2.5, 4)).toBe('[####]')
    const row = renderStats(stats({ cpu: 2.5 })).find(l => l.startsWith('n1')) as string
    expect(row).toContain('[##########] 100% (load 2.5/CPU)')
    expect(row).not.toMatch(/2[0-9]{2}%/)
  })

  it('names watch\'s running+queued column instead of "RUN+Q"', () => {
    const lines = renderStats(stats())
    expect(lines.find(l => l.startsWith('NODE'))).toMatch(/RUN\+QUEUED$/)
  })

  it('fits watch to the terminal\'s width: summary lines break between parts, rows are cut, nothing wraps', () => {
    const wide = renderStats(stats({ name: 'a-node-with-a-rather-long-name-indeed' }))
    expect(Math.max(...wide.map(l => l.length))).toBeGreaterThan(60)
    for (const width of [60, 80]) {
      const lines = renderStats(stats({ name: 'a-node-with-a-rather-long-name-indeed' }), { width })
      for (const l of lines) expect(l.length).toBeLessThanOrEqual(width)
      expect(lines.join('\n')).toContain('sessions 4 (2 warm workers)')
    }
    // a wide terminal keeps the one-line summary
    expect(renderStats(stats(), { width: 200 }).filter(l => l.startsWith('tasks'))[0]).toContain('sessions 4')
  })

  it('aligns every address of status under the first, in the value column', () => {
    const s = sink()
    printObject(s.out, 'table', [['id', 'p1'], ['addrs', new Lines(['/ip4/10.0.0.1/tcp/7470', '/ip4/127.0.0.1/tcp/7470'])], ['capabilities', []]], {})
    const lines = s.text().split('\n')
    const col = (lines[1] as string).indexOf('/ip4/10')
    expect(col).toBe('capabilities:  '.length)
    expect((lines[2] as string).indexOf('/ip4/127')).toBe(col)
    expect((lines[2] as string).slice(0, col).trim()).toBe('')
    const md = sink()
    printObject(md.out, 'markdown', [['addrs', new Lines(['/a', '/b'])]], {})
    expect(md.text()).toContain('| addrs | /a<br>/b |')
  })
})

describe('gridctl - usage errors that say what to type', () => {
  it('run without -- shows where it goes, with the user\'s own line', async () => {
    const r = await ctl(['run', 'ls', '-la'])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/^gridctl run: put -- before the command, so that its flags are not taken for gridctl's: gridctl run -- ls -la\n/)
    expect(r.err).not.toMatch(/Unknown option/)
    const f = await ctl(['run', '--cpus', '2', 'python3', '-u', 'job.py', '--lr=0.1'])
    expect(f.err).toContain('gridctl run --cpus 2 -- python3 -u job.py --lr=0.1\n')
  })

  it('run with a bad flag of its own and -- keeps parseArgs\' message', async () => {
    const r = await ctl(['run', '--frob', '--', 'ls'])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/Unknown option '--frob'/)
  })

  it('sessions put with a value that is not JSON names the value, not "JSON is not valid JSON"', async () => {
    const r = await ctl(['sessions', 'put', 's1', '{a:1}'])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/^gridctl sessions put: the session's value "\{a:1\}" is not JSON \(/)
    expect(r.err).not.toMatch(/JSON is not valid JSON/)
  })
})

describe('gridctl run - the daemon going away mid-stream', () => {
  let daemon: { socket: string, close: () => void } | undefined
  afterEach(() => { daemon?.close(); daemon = undefined })

  it('says the daemon went away and that the task goes on, instead of "aborted"', async () => {
    daemon = await fakeDaemon((req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      res.write(JSON.stringify({ type: 'accepted', id: 't-42' }) + '\n')
      res.write(JSON.stringify({ type: 'output', id: 't-42', stream: 'stdout', data: Buffer.from('hello\n').toString('base64') }) + '\n', () => {
        // the daemon dies: its end of the connection is gone without the end of the answer
        setTimeout(() => { req.socket.destroy() }, 20)
      })
    })
    const r = await ctl(['run', '--no-stdin', '--', 'sleep', '60'], daemon.socket)
    expect(r.out).toBe('hello\n')
    expect(r.code).toBe(1)
    expect(r.err).toContain(`gridctl: the daemon at ${daemon.socket} went away (it stopped or crashed) before its answer ended; task t-42 goes on in the cluster`)
    expect(r.err).toContain('gridctl logs t-42 -f')
    expect(r.err).not.toMatch(/^gridctl: aborted$/m)
  })
})

describe('gridctl - the errors a user meets first say the cause and the next step, with their code', () => {
  let daemon: { socket: string, close: () => void } | undefined
  afterEach(() => { daemon?.close(); daemon = undefined })

  it('names the socket no daemon answers at and how to start one, exit 1', async () => {
    const r = await ctl(['status'], '/nonexistent/gridd.sock')
    expect(r.code).toBe(1)
    expect(r.err).toBe('gridctl: error [DAEMON_NOT_RUNNING]: no gridd answers at /nonexistent/gridd.sock — start it with `npm start` or `systemctl start gridd`, or point gridctl at another socket with --socket (or GRID_SOCKET)\n')
  })

  it('adds the next step to a daemon\'s no-node-can-run-it, even when an older daemon sent none, exit 2', async () => {
    daemon = await fakeDaemon((req, res) => {
      req.resume()
      res.writeHead(422, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { code: 'UNSATISFIABLE', message: 'no node can run this task: no node has 4 GPUs (the most any alive node has is 0)' } }))
    })
    const r = await ctl(['run', '--no-stdin', '--gpus', '4', '--', 'true'], daemon.socket)
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/^gridctl: error \[UNSATISFIABLE\]: no node can run this task: no node has 4 GPUs \(the most any alive node has is 0\) — ask for what a node offers \(`gridctl nodes` lists/)
  })

  it('prints other errors as before: their message alone', async () => {
    daemon = await fakeDaemon((req, res) => {
      req.resume()
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no task t-1' } }))
    })
    const r = await ctl(['task', 't-1'], daemon.socket)
    expect(r).toMatchObject({ code: 1, err: 'gridctl: no task t-1\n' })
  })
})
