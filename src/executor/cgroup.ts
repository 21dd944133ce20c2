/**
 * Task cgroups: each task runs in a cgroup of its own (v2 where the memory and cpu controllers are there, else v1),
 * with its memory limit (no swap) and CPU quota, under `<root>/grid-<node name>/<task>.<attempt>`; the root is
 * gridd's own cgroup unless `executor.cgroupRoot` names one. Where no cgroup can be written, limits are reservations
 * only, and `status()` says why.
 *
 * Under a delegated v2 tree (systemd Delegate=yes) gridd's cgroup may hold no processes once controllers are enabled
 * for its children, so gridd moves itself into `<root>/gridd` first.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { LimitsStatus } from '../../proto/index.ts'
import {
  CGROUP_CONTROLLERS, cgroupDir, cgroupName, limitWrites, oomKills, parseMountInfo, parseProcCgroup, wrapArgv,
  type CgroupController, type CgroupVersion, type TaskLimits
} from './cgroup-limits.ts'

export type { LimitsStatus }

export interface TaskCgroupsInit {
  nodeName: string
  /** '' : under gridd's own cgroup; 'off': no cgroups; else a cgroup path such as /grid (in every hierarchy) */
  root: string
}

/** Where the process files are read from (tests hand other ones). */
export interface CgroupSystem {
  mountInfo: () => string
  procCgroup: () => string
  pid: number
}

const SYSTEM: CgroupSystem = {
  mountInfo: () => readFileSync('/proc/self/mountinfo', 'utf8'),
  procCgroup: () => readFileSync('/proc/self/cgroup', 'utf8'),
  pid: process.pid
}

/** How often and how long removing a task's cgroup is tried while its last processes exit. */
const REMOVE_RETRY_MS = 100
const REMOVE_TRIES = 50
/** A task cgroup found at start is a leftover when it is older than this. */
const LEFTOVER_AGE_MS = 60_000

export class TaskCgroups {
  private state: LimitsStatus = { enforced: false, cgroup: null, reason: 'not set up yet' }
  /** the node's directory, per controller (v2: the same one for both) */
  private nodeDirs?: Record<CgroupController, string>

  constructor (private readonly log: Logger, private readonly init: TaskCgroupsInit, private readonly sys: CgroupSystem = SYSTEM) {}

  status (): LimitsStatus { return { ...this.state } }

  /** Finds the hierarchy and makes the node's cgroup; says once (warn) when limits cannot be enforced. */
  setup (): LimitsStatus {
    try {
      if (this.init.root === 'off') throw new Error('executor.cgroupRoot is off')
      const found = this.findNodeDirs()
      this.nodeDirs = found.dirs
      this.state = { enforced: true, cgroup: found.version, reason: null }
      this.removeLeftovers()
      this.log.info({ cgroup: found.version, dir: found.dirs.memory }, 'task limits are enforced with cgroups')
    } catch (err) {
      this.nodeDirs = undefined
      const reason = (err as Error).message
      this.state = { enforced: false, cgroup: null, reason }
      this.log.warn({ reason }, 'task limits are NOT enforced (memory and CPU are reservations only): no writable cgroup')
    }
    return this.status()
  }

  /** A cgroup for one attempt of a task, its limits written; undefined when limits are not enforced. Throws on failure. */
  create (taskId: string, attempt: number, limits: TaskLimits): TaskCgroup | undefined {
    const nodeDirs = this.nodeDirs
    if (nodeDirs === undefined || this.state.cgroup === null) return undefined
    const version = this.state.cgroup
    const name = `${cgroupName(taskId)}.${attempt}`
    const dirs = { memory: `${nodeDirs.memory}/${name}`, cpu: `${nodeDirs.cpu}/${name}` }
    const unique = [...new Set(Object.values(dirs))]
    for (const d of unique) mkdirSync(d, { recursive: true })
    const cg = new TaskCgroup(version, dirs, unique, limits.memoryBytes)
    try {
      for (const w of limitWrites(version, limits)) {
        const file = `${dirs[w.controller]}/${w.file}`
        if (w.optional === true && !existsSync(file)) continue
        try {
          writeFileSync(file, w.value)
        } catch (err) {
          if (w.optional !== true) throw err
        }
      }
    } catch (err) {
      cg.remove()
      throw err
    }
    return cg
  }

  /** Removes the node's cgroup (when no task of another daemon of the same name is in it). */
  close (): void {
    if (this.nodeDirs === undefined) return
    for (const d of new Set(Object.values(this.nodeDirs))) { try { rmdirSync(d) } catch {} }
  }

  private findNodeDirs (): { version: CgroupVersion, dirs: Record<CgroupController, string> } {
    const mounts = parseMountInfo(this.sys.mountInfo())
    const own = parseProcCgroup(this.sys.procCgroup())
    const node = `grid-${cgroupName(this.init.nodeName)}`
    const configured = this.init.root === '' ? undefined : this.init.root
    const v2 = mounts.find(m => m.version === 'v2')
    const v1 = (c: string): typeof mounts[number] | undefined => mounts.find(m => m.version === 'v1' && m.controllers.includes(c))
    const problems: string[] = []
    if (v2 !== undefined && own.v2 !== undefined) {
      const base = cgroupDir(v2, configured ?? own.v2)
      if (base !== undefined && configured !== undefined) ensureRoot(base, v2.mountPoint)
      const available = base === undefined ? [] : readWords(`${base}/cgroup.controllers`)
      if (base !== undefined && CGROUP_CONTROLLERS.every(c => available.includes(c))) {
        return { version: 'v2', dirs: this.setupV2(base, node) }
      }
      problems.push(`cgroup v2 at ${v2.mountPoint} has no ${CGROUP_CONTROLLERS.filter(c => !available.includes(c)).join(' and ')} controller for ${base ?? 'gridd'}`)
    }
    const mem = v1('memory')
    const cpu = v1('cpu')
    if (mem !== undefined && cpu !== undefined) {
      const dirs = {} as Record<CgroupController, string>
      for (const [c, m] of [['memory', mem], ['cpu', cpu]] as const) {
        const path = configured ?? own.v1.get(c) ?? '/'
        const base = cgroupDir(m, path)
        if (base === undefined) throw new Error(`cgroup ${path} is outside the ${c} hierarchy mounted at ${m.mountPoint}`)
        if (configured !== undefined) ensureRoot(base, m.mountPoint)
        dirs[c] = `${base}/${node}`
      }
      for (const d of new Set(Object.values(dirs))) makeWritable(d)
      return { version: 'v1', dirs }
    }
    if (mem === undefined && v2 === undefined) problems.push('no cgroup file system is mounted (neither v2 nor a v1 memory hierarchy)')
    else if (mem === undefined || cpu === undefined) problems.push(`cgroup v1 has no ${mem === undefined ? 'memory' : 'cpu'} hierarchy mounted`)
    throw new Error(problems.join('; '))
  }

  /** v2: controllers for the node's cgroup and its tasks; gridd leaves `base` for `base/gridd` when `base` must be empty. */
  private setupV2 (base: string, node: string): Record<CgroupController, string> {
    const want = CGROUP_CONTROLLERS.map(c => `+${c}`).join(' ')
    const enabled = (dir: string): boolean => CGROUP_CONTROLLERS.every(c => readWords(`${dir}/cgroup.subtree_control`).includes(c))
    if (!enabled(base)) {
      try {
        writeFileSync(`${base}/cgroup.subtree_control`, want)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw new Error(`cannot enable ${want} for ${base}: ${(err as Error).message}`, { cause: err })
        // "no internal processes": gridd (and whatever else is there) must leave the cgroup first
        const own = `${base}/gridd`
        mkdirSync(own, { recursive: true })
        writeFileSync(`${own}/cgroup.procs`, String(this.sys.pid))
        try {
          writeFileSync(`${base}/cgroup.subtree_control`, want)
        } catch (err2) {
          // back where it was: a failed setup leaves nothing moved
          try { writeFileSync(`${base}/cgroup.procs`, String(this.sys.pid)); rmdirSync(own) } catch {}
          throw new Error(`cannot enable ${want} for ${base} (other processes than gridd are in it: start gridd in a delegated cgroup of its own, e.g. the systemd unit with Delegate=yes): ${(err2 as Error).message}`, { cause: err2 })
        }
      }
    }
    const dir = `${base}/${node}`
    makeWritable(dir)
    if (!enabled(dir)) writeFileSync(`${dir}/cgroup.subtree_control`, want)
    return { memory: dir, cpu: dir }
  }

  /**
   * Task cgroups that an earlier run left (their processes were reaped): empty ones can go, once old enough not to be
   * one that another daemon of the same name on this machine (tests) has just made for a task about to join it.
   */
  private removeLeftovers (): void {
    const before = Date.now() - LEFTOVER_AGE_MS
    for (const d of new Set(Object.values(this.nodeDirs ?? {}))) {
      let names: string[] = []
      try { names = readdirSync(d, { withFileTypes: true }).filter(e => e.isDirectory()).map(e => e.name) } catch {}
      for (const n of names) { try { if (statSync(`${d}/${n}`).mtimeMs < before) rmdirSync(`${d}/${n}`) } catch {} }
    }
  }
}

/** One task attempt's cgroup (a directory per v1 hierarchy, one under v2). */
export class TaskCgroup {
  private removed = false

  constructor (readonly version: CgroupVersion, private readonly dirs: Record<CgroupController, string>, private readonly unique: string[], readonly memoryLimitBytes: number) {}

  /** The argv that joins this cgroup, then execs `argv`. */
  wrap (argv: string[]): string[] {
    return wrapArgv(this.unique, argv)
  }

  /** Did the kernel kill a process of it for memory? */
  oomKilled (): boolean {
    if (this.memoryLimitBytes <= 0) return false
    const dir = this.dirs.memory
    const text = readOr(this.version === 'v2' ? `${dir}/memory.events` : `${dir}/memory.oom_control`)
    const kills = oomKills(text)
    if (kills !== undefined) return kills > 0
    // v1 before 4.13 has no oom_kill count: the limit was hit and nothing was left running
    return Number(readOr(`${dir}/memory.failcnt`, '0').trim()) > 0
  }

  /** Kills what is left in it, and removes it (retrying while the last processes exit). */
  remove (): void {
    if (this.removed) return
    this.removed = true
    let tries = 0
    const attempt = (): void => {
      let left = false
      for (const d of this.unique) {
        if (!existsSync(d)) continue
        if (this.version === 'v2' && existsSync(`${d}/cgroup.kill`)) { try { writeFileSync(`${d}/cgroup.kill`, '1') } catch {} } else {
          for (const pid of readOr(`${d}/cgroup.procs`).split('\n').filter(s => s !== '')) { try { process.kill(Number(pid), 'SIGKILL') } catch {} }
        }
        try { rmdirSync(d) } catch { left = true }
      }
      if (left && ++tries < REMOVE_TRIES) setTimeout(attempt, REMOVE_RETRY_MS).unref()
    }
    attempt()
  }
}

function readOr (path: string, fallback = ''): string {
  try { return readFileSync(path, 'utf8') } catch { return fallback }
}

function readWords (path: string): string[] {
  return readOr(path).trim().split(/\s+/).filter(s => s !== '')
}

/** Makes the configured root cgroup when it is not there yet (inside a cgroup mount only). */
function ensureRoot (dir: string, mountPoint: string): void {
  if (existsSync(dir) || !existsSync(`${mountPoint}/cgroup.procs`)) return
  try {
    mkdirSync(dir, { recursive: true })
  } catch (err) {
    throw new Error(`cannot create cgroup ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
}

/** Makes the directory (a cgroup: its parent is one) and checks that a task could be put in it. */
function makeWritable (dir: string): void {
  try {
    const parent = dir.slice(0, dir.lastIndexOf('/'))
    if (!existsSync(`${parent}/cgroup.procs`)) throw new Error(`${parent} is not a cgroup`)
    mkdirSync(dir, { recursive: true })
    writeFileSync(`${dir}/cgroup.procs`, '', { flag: 'a' })
  } catch (err) {
    throw new Error(`cannot create cgroup ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
}
