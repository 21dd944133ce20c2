/**
 * The errors a user meets first, met for real: each names its cause and the next step, with its code
 * (docs/troubleshooting.md). The daemon-side ones (no swarm key, a different swarm key, a port in use) are in
 * swarm-key.test.ts and gridd-flags.test.ts; no node can run it in tasks.test.ts and pending-reasons.test.ts.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync } from 'node:fs'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, Gridd, runCtl } from '../helpers/cluster.ts'
import { GRIDCTL, GRIDD } from '../helpers/paths.ts'

/** A Node older than 22 on this machine (the PATH's, before deploy/with-node.sh put its own first), if there is one. */
function oldNode (): string | undefined {
  for (const bin of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(bin)) continue
    const v = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim()
    if (/^v(\d+)\./.test(v) && Number(/^v(\d+)\./.exec(v)?.[1]) < 22) return bin
  }
  return undefined
}

const NOT_RUNNING_HINT = '— start it with `npm start` or `systemctl start gridd`, or point gridctl at another socket with --socket (or GRID_SOCKET)\n'

describe('gridctl - the errors a user meets first', () => {
  const c = new Cluster()
  let n1: Gridd
  beforeAll(async () => { n1 = await c.add('n1') })
  afterAll(async () => { await c.destroy() })

  it('says a socket whose daemon was killed has nobody listening, and how to start one', async () => {
    const dead = await c.add('dead')
    await dead.kill()
    expect(existsSync(dead.socket)).toBe(true)
    const r = await runCtl(['--socket', dead.socket, 'status'])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`gridctl: error [DAEMON_NOT_RUNNING]: no gridd answers at ${dead.socket} (the socket is there, but nobody listens on it: gridd stopped or crashed and left it) ${NOT_RUNNING_HINT}`)
  })

  const asNobody = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0
  it.skipIf(!asNobody)('says a user the socket is not open to that permission is denied, and how to be let in', async () => {
    // the socket is 0660 and its directory 0700: open the directory, so it is the socket's own mode that refuses
    chmodSync(dirname(n1.socket), 0o755)
    const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, GRIDCTL, '--socket', n1.socket, 'status'], { encoding: 'utf8', timeout: 60_000 })
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(new RegExp(`^gridctl: error \\[SOCKET_PERMISSION_DENIED\\]: permission denied on ${n1.socket.replace(/[.]/g, '\\.')}: this user \\(uid \\d+\\) may not use gridd's control socket — run gridctl as the socket's owner, or as a member of its group`))
    // the owner still gets in
    expect((await runCtl(['--socket', n1.socket, 'status'])).code).toBe(0)
  })

  const old = oldNode()
  it.skipIf(old === undefined)('says Node is too old, and what to run instead, before loading anything', () => {
    for (const [program, file] of [['gridctl', GRIDCTL], ['gridd', GRIDD]] as const) {
      const r = spawnSync(old as string, [file, '--version'], { encoding: 'utf8', timeout: 60_000 })
      expect(r.status, program).toBe(1)
      expect(r.stdout, program).toBe('')
      expect(r.stderr, program).toMatch(new RegExp(`^${program}: error \\[NODE_TOO_OLD\\]: ${program} needs Node\\.js 22 or later \\(found \\d+\\.\\d+\\.\\d+\\) — install Node\\.js 24 LTS, or run it through deploy/with-node\\.sh`))
    }
  })
})
