/**
 * The task user (`executor.taskUser`): tasks and warm workers run as another user than gridd, so that they cannot
 * read its data dir (node identity, swarm key, state). Resolved and checked once at start (an unknown user, or a
 * gridd that cannot switch to it, is an InvalidConfigError naming executor.taskUser, before any task comes).
 *
 * How: the spawner stays gridd's user and starts each child through setpriv (util-linux), which sets the user's
 * uid, gid and supplementary groups (as initgroups would), drops every inheritable and ambient capability (so the
 * child has none after its exec, even where gridd holds some), then a shell enters the working directory as that
 * user (a directory the user may not enter fails the start, rather than being entered by gridd on its behalf) and
 * execs the program. The spawner keeps its pid and process group, so signals, output and exits work as before;
 * a task's cgroup is joined before setpriv, still as gridd.
 *
 * gridd needs: to be root, or CAP_SETUID and CAP_SETGID (setpriv) and CAP_KILL (signals to another user's process
 * groups), and to be in the user's primary group (tasks' scratch directories are shared through that group).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { InvalidConfigError } from '../interface/index.ts'

export interface TaskUser {
  name: string
  uid: number
  gid: number
  /** supplementary groups, as initgroups(3) would give them (the primary one included) */
  groups: number[]
  /** from the password database; HOME is this when it is a directory, else the child's working directory */
  home: string
  /** the setpriv program that switches to it */
  setpriv: string
}

/** Capability numbers (linux/capability.h) gridd needs when it is not root. */
const CAP_KILL = 5
const CAP_SETGID = 6
const CAP_SETUID = 7
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv', '/sbin/setpriv']
/** sh, as the user: enter the directory ($1), then run the program */
const ENTER_SCRIPT = 'cd -- "$1" && shift && exec "$@"'

/** What the checks read (tests hand other ones). */
export interface TaskUserSystem {
  /** `getent passwd NAME` (undefined: no such user) */
  passwd: (name: string) => string | undefined
  /** `id -G NAME` */
  groups: (name: string) => string
  uid: number
  /** gridd's own groups, primary included */
  ownGroups: number[]
  /** /proc/self/status */
  status: () => string
  setpriv: () => string | undefined
}

const SYSTEM: TaskUserSystem = {
  passwd: name => { try { return execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }) } catch { return undefined } },
  groups: name => execFileSync('id', ['-G', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
  uid: process.getuid?.() ?? -1,
  ownGroups: [...new Set([process.getgid?.() ?? -1, ...(process.getgroups?.() ?? [])])],
  status: () => { try { return readFileSync('/proc/self/status', 'utf8') } catch { return '' } },
  setpriv: () => SETPRIV_PATHS.find(p => existsSync(p))
}

/**
 * The user tasks run as, checked: it exists, setpriv is there, and gridd may switch to it. Throws InvalidConfigError
 * (every problem found, each naming executor.taskUser) otherwise.
 */
export function resolveTaskUser (name: string, sys: TaskUserSystem = SYSTEM): TaskUser {
  const key = 'executor.taskUser'
  const line = sys.passwd(name)?.split('\n')[0]
  const f = line?.split(':')
  if (f === undefined || f.length < 7) throw new InvalidConfigError([`${key}: there is no user ${JSON.stringify(name)} on this machine (create it, as the systemd unit's sysusers entry does for grid-task, or name another)`])
  const [userName = name, , uidText = '', gidText = '', , home = '/'] = f
  const uid = Number(uidText)
  const gid = Number(gidText)
  let groups: number[]
  try {
    groups = sys.groups(userName).trim().split(/\s+/).filter(s => s !== '').map(Number).filter(Number.isInteger)
  } catch {
    groups = [gid]
  }
  const problems: string[] = []
  if (uid === 0) problems.push(`${key}: ${userName} is root; tasks as root could read everything gridd holds (unset it, or name an unprivileged user)`)
  const setpriv = sys.setpriv()
  if (setpriv === undefined) problems.push(`${key}: switching to ${userName} needs setpriv (util-linux), which is not installed here (looked in ${SETPRIV_PATHS.join(', ')})`)
  if (sys.uid !== 0) {
    const missing = missingCapabilities(sys.status())
    if (missing.length > 0) problems.push(`${key}: gridd runs as uid ${sys.uid} without ${missing.join(', ')}, so it cannot start tasks as ${userName}: run it as root, or grant ${missing.join(' ')} (the systemd unit does, with AmbientCapabilities=), or unset ${key}`)
    if (!sys.ownGroups.includes(gid)) problems.push(`${key}: gridd (uid ${sys.uid}) is not in ${userName}'s group (gid ${gid}), through which tasks' scratch directories are shared: add it (the systemd unit has SupplementaryGroups=grid-task), or unset ${key}`)
  }
  if (problems.length > 0) throw new InvalidConfigError(problems)
  return { name: userName, uid, gid, groups: groups.length > 0 ? groups : [gid], home, setpriv: setpriv as string }
}

/** The capabilities (of CAP_SETUID, CAP_SETGID, CAP_KILL) missing from the effective set in /proc/self/status. */
export function missingCapabilities (status: string): string[] {
  const hex = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status)?.[1]
  const eff = hex === undefined ? 0n : BigInt(`0x${hex}`)
  const has = (cap: number): boolean => (eff & (1n << BigInt(cap))) !== 0n
  return ([['CAP_SETUID', CAP_SETUID], ['CAP_SETGID', CAP_SETGID], ['CAP_KILL', CAP_KILL]] as const).filter(([, c]) => !has(c)).map(([n]) => n)
}

/**
 * The argv and environment that run `argv` as `user` in `cwd` (its home, else /, when none is given): setpriv,
 * then a shell that enters the directory as the user and execs the program. HOME, USER and LOGNAME are the user's.
 */
export function runAs (user: TaskUser, argv: string[], env: Record<string, string>, cwd: string | undefined): { argv: string[], env: Record<string, string> } {
  const homeIsDir = isDir(user.home)
  const dir = cwd ?? (homeIsDir ? user.home : '/')
  return {
    argv: [user.setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${user.groups.join(',')}`, '--inh-caps=-all', '--ambient-caps=-all', '--', '/bin/sh', '-c', ENTER_SCRIPT, 'sh', dir, ...argv],
    env: { ...env, HOME: homeIsDir ? user.home : dir, USER: user.name, LOGNAME: user.name }
  }
}

/**
 * Could `user` enter `dir` (search permission on it and every directory above it, by the mode bits: ACLs are not
 * read)? The executor uses it to choose a directory the task can run in.
 */
export function userCanEnter (user: TaskUser, dir: string): boolean {
  let p = resolve(dir)
  for (;;) {
    let st
    try { st = statSync(p) } catch { return false }
    const bit = st.uid === user.uid ? 0o100 : user.groups.includes(st.gid) ? 0o010 : 0o001
    if ((st.mode & bit) === 0) return false
    const up = dirname(p)
    if (up === p) return true
    p = up
  }
}

function isDir (path: string): boolean {
  try { return statSync(path).isDirectory() } catch { return false }
}
