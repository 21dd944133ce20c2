import { mkdtempSync, rmSync, chmodSync, mkdirSync, chownSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.ts'
import { missingCapabilities, resolveTaskUser, runAs, userCanEnter, type TaskUserSystem } from '../../src/executor/index.ts'
import { InvalidConfigError } from '../../src/interface/index.ts'
import { violationsOf } from '../helpers/violations.ts'

const violations = (fn: () => unknown): string[] => violationsOf(InvalidConfigError, fn)

/** A machine with one user, task (uid 1500, groups 1500 and 44), where gridd is `uid` with `capEff`. */
function system (over: Partial<TaskUserSystem> & { capEff?: string } = {}): TaskUserSystem {
  return {
    passwd: name => name === 'task' || name === '1500' ? 'task:x:1500:1500:Tasks:/home/task:/usr/sbin/nologin\n' : undefined,
    groups: () => '1500 44\n',
    uid: 0,
    ownGroups: [0],
    status: () => `Name:\tnode\nCapEff:\t${over.capEff ?? '0000000000000000'}\n`,
    setpriv: () => '/usr/bin/setpriv',
    ...over
  }
}

const dir = mkdtempSync(join(tmpdir(), 'grid-task-user-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

describe('task user - executor.taskUser', () => {
  it('is off by default, and takes a user name or a uid from the file, GRID_TASK_USER or --task-user', () => {
    const none = join(dir, 'none.yaml')
    expect(loadConfig({ env: {}, defaultConfigFile: none }).executor.taskUser).toBe('')
    expect(loadConfig({ env: { GRID_TASK_USER: 'grid-task' }, defaultConfigFile: none }).executor.taskUser).toBe('grid-task')
    expect(loadConfig({ env: {}, defaultConfigFile: none, flags: { 'executor.taskUser': '65534' } }).executor.taskUser).toBe('65534')
    expect(violations(() => loadConfig({ env: { GRID_TASK_USER: 'no body' }, defaultConfigFile: none }))).toEqual([
      'executor.taskUser (GRID_TASK_USER): "no body" must be a user name (as in grid-task) or a uid, or empty (tasks run as gridd\'s user)'
    ])
  })

  it('resolves the user\'s uid, gid, groups and home', () => {
    expect(resolveTaskUser('task', system())).toEqual({ name: 'task', uid: 1500, gid: 1500, groups: [1500, 44], home: '/home/task', setpriv: '/usr/bin/setpriv' })
    expect(resolveTaskUser('1500', system()).name).toBe('task')
  })

  it('fails with an error naming executor.taskUser for an unknown user', () => {
    expect(violations(() => resolveTaskUser('nosuchuser', system()))).toEqual([
      'executor.taskUser: there is no user "nosuchuser" on this machine (create it, as the systemd unit\'s sysusers entry does for grid-task, or name another)'
    ])
  })

  it('fails when gridd cannot switch to it: not root and without CAP_SETUID, CAP_SETGID and CAP_KILL, nor in its group', () => {
    const v = violations(() => resolveTaskUser('task', system({ uid: 1000, ownGroups: [1000] })))
    expect(v).toHaveLength(2)
    expect(v[0]).toMatch(/^executor\.taskUser: gridd runs as uid 1000 without CAP_SETUID, CAP_SETGID, CAP_KILL, so it cannot start tasks as task: run it as root, or grant/)
    expect(v[1]).toMatch(/^executor\.taskUser: gridd \(uid 1000\) is not in task's group \(gid 1500\)/)
    // the systemd unit's ambient set: CAP_KILL, CAP_SETGID, CAP_SETUID are bits 5, 6, 7
    expect(resolveTaskUser('task', system({ uid: 1000, ownGroups: [1000, 1500], capEff: '00000000000000e0' })).uid).toBe(1500)
    expect(missingCapabilities('CapEff:\t0000000000000040\n')).toEqual(['CAP_SETUID', 'CAP_KILL'])
  })

  it('fails without setpriv, and refuses root as the task user', () => {
    expect(violations(() => resolveTaskUser('task', system({ setpriv: () => undefined })))[0]).toMatch(/^executor\.taskUser: switching to task needs setpriv \(util-linux\), which is not installed here/)
    expect(violations(() => resolveTaskUser('root', system({ passwd: () => 'root:x:0:0:root:/root:/bin/sh' })))[0]).toMatch(/^executor\.taskUser: root is root/)
  })

  it('runs a command through setpriv with the user\'s ids and groups, no capabilities, entering its directory as the user', () => {
    const user = resolveTaskUser('task', system())
    const r = runAs(user, ['python3', 'x.py'], { A: '1' }, '/srv/work')
    expect(r.argv).toEqual(['/usr/bin/setpriv', '--reuid=1500', '--regid=1500', '--groups=1500,44', '--inh-caps=-all', '--ambient-caps=-all', '--', '/bin/sh', '-c', 'cd -- "$1" && shift && exec "$@"', 'sh', '/srv/work', 'python3', 'x.py'])
    // /home/task does not exist here: HOME is the directory it runs in
    expect(r.env).toEqual({ A: '1', HOME: '/srv/work', USER: 'task', LOGNAME: 'task' })
  })

  it.skipIf(process.getuid?.() !== 0)('says whether the user may enter a directory, by every directory above it', () => {
    const user = { ...resolveTaskUser('task', system()), uid: 65534, gid: 65534, groups: [65534] }
    const open = join(dir, 'open')
    const closed = join(dir, 'closed')
    mkdirSync(join(open, 'in'), { recursive: true })
    mkdirSync(join(closed, 'in'), { recursive: true })
    chmodSync(dir, 0o755)
    chmodSync(open, 0o711)
    chmodSync(closed, 0o700)
    expect(userCanEnter(user, join(open, 'in'))).toBe(true)
    expect(userCanEnter(user, join(closed, 'in'))).toBe(false)
    expect(userCanEnter(user, join(open, 'missing'))).toBe(false)
    // through its group
    chownSync(closed, 0, 65534)
    chmodSync(closed, 0o710)
    expect(userCanEnter(user, join(closed, 'in'))).toBe(true)
  })
})
