/**
 * The pure parts of task cgroups: where the hierarchies are (from /proc/self/mountinfo and /proc/self/cgroup), what
 * a task's limits write into which file (v1 and v2), whether the kernel killed something for memory (memory.events,
 * memory.oom_control), and how that reads in a task's error. No file system access here (cgroup.ts does it).
 */

export type CgroupVersion = 'v1' | 'v2'

/** The controllers a task's cgroup needs (v1: one hierarchy each; v2: enabled in the parent's subtree_control). */
export const CGROUP_CONTROLLERS = ['memory', 'cpu'] as const
export type CgroupController = typeof CGROUP_CONTROLLERS[number]

/** The CFS period a CPU quota is expressed in (the kernel's default); the quota is cpus × this. */
export const CPU_PERIOD_US = 100_000
/** The smallest quota the kernel takes (1 ms per period). */
export const CPU_QUOTA_MIN_US = 1_000

export interface TaskLimits {
  /** bytes; 0: no memory limit */
  memoryBytes: number
  /** cores, fractional; 0: no CPU quota */
  cpus: number
}

/** One value to write into a task's cgroup: `controller`'s directory (v1) or the one directory (v2), `file`, `value`. */
export interface LimitWrite {
  controller: CgroupController
  file: string
  value: string
  /** the file may not exist (swap accounting off, an older kernel): skip it then */
  optional?: boolean
}

/** What a task's limits write, in order (v1 needs memory.limit_in_bytes before memory.memsw.limit_in_bytes). */
export function limitWrites (version: CgroupVersion, limits: TaskLimits): LimitWrite[] {
  const out: LimitWrite[] = []
  const mem = Math.floor(limits.memoryBytes)
  if (mem > 0) {
    if (version === 'v2') {
      out.push({ controller: 'memory', file: 'memory.max', value: String(mem) })
      // no swap: a task over its limit is killed, not paged out until the machine crawls
      out.push({ controller: 'memory', file: 'memory.swap.max', value: '0', optional: true })
      // the whole task goes, not one process of it
      out.push({ controller: 'memory', file: 'memory.oom.group', value: '1', optional: true })
    } else {
      out.push({ controller: 'memory', file: 'memory.limit_in_bytes', value: String(mem) })
      out.push({ controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: String(mem), optional: true })
    }
  }
  if (limits.cpus > 0) {
    const quota = Math.max(CPU_QUOTA_MIN_US, Math.round(limits.cpus * CPU_PERIOD_US))
    if (version === 'v2') {
      out.push({ controller: 'cpu', file: 'cpu.max', value: `${quota} ${CPU_PERIOD_US}` })
    } else {
      out.push({ controller: 'cpu', file: 'cpu.cfs_period_us', value: String(CPU_PERIOD_US) })
      out.push({ controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(quota) })
    }
  }
  return out
}

/**
 * How many processes the kernel's OOM killer took in the cgroup: the `oom_kill N` line of memory.events (v2) or of
 * memory.oom_control (v1, kernel 4.13+). Undefined when the text has no such line.
 */
export function oomKills (text: string): number | undefined {
  const m = /^oom_kill\s+(\d+)\s*$/m.exec(text)
  return m === null ? undefined : Number(m[1])
}

/** The error of a task killed for memory: "killed: out of memory, limit 10 MiB". */
export function oomReason (limitBytes: number): string {
  return `killed: out of memory, limit ${formatLimit(limitBytes)}`
}

/** Bytes as a limit reads: whole units when exact ("10 MiB"), else one decimal ("1.5 GiB"). */
export function formatLimit (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i] as string}`
}

/** A cgroup file system as /proc/self/mountinfo lists it. */
export interface CgroupMount {
  version: CgroupVersion
  /** where it is mounted */
  mountPoint: string
  /** the cgroup path that is the mount's root (not "/" inside some containers) */
  root: string
  /** v1: the controllers of this hierarchy */
  controllers: string[]
}

/** The cgroup mounts in /proc/self/mountinfo (v1 hierarchies with controllers, and the v2 one). */
export function parseMountInfo (text: string): CgroupMount[] {
  const out: CgroupMount[] = []
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const left = line.slice(0, sep).split(' ')
    const right = line.slice(sep + 3).split(' ')
    const fstype = right[0]
    const root = unescapeMount(left[3] ?? '/')
    const mountPoint = unescapeMount(left[4] ?? '')
    if (fstype === 'cgroup2') out.push({ version: 'v2', mountPoint, root, controllers: [] })
    else if (fstype === 'cgroup') {
      const opts = (right[2] ?? '').split(',')
      const controllers = opts.filter(o => !o.includes('=') && !['rw', 'ro', 'relatime', 'noatime', 'nosuid', 'nodev', 'noexec', 'clone_children', 'xattr', 'nsdelegate', 'noprefix', 'cpuset_v2_mode'].includes(o))
      out.push({ version: 'v1', mountPoint, root, controllers })
    }
  }
  return out
}

/** mountinfo escapes spaces and the like as \040. */
function unescapeMount (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** This process's cgroups from /proc/self/cgroup: `v2` (the "0::" line) and each v1 controller's path. */
export function parseProcCgroup (text: string): { v2: string | undefined, v1: Map<string, string> } {
  let v2: string | undefined
  const v1 = new Map<string, string>()
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim())
    if (m === null) continue
    const [, id, ctrls, path] = m as unknown as [string, string, string, string]
    if (id === '0' && ctrls === '') v2 = path
    else for (const c of ctrls.split(',')) if (c !== '') v1.set(c, path)
  }
  return { v2, v1 }
}

/** The directory of cgroup `path` in a mount (a path outside the mount's root has none). */
export function cgroupDir (mount: CgroupMount, path: string): string | undefined {
  const root = mount.root === '/' ? '' : mount.root.replace(/\/$/, '')
  if (root !== '' && path !== root && !path.startsWith(root + '/')) return undefined
  const rel = path.slice(root.length).replace(/^\/+/, '')
  return rel === '' ? mount.mountPoint : `${mount.mountPoint.replace(/\/$/, '')}/${rel}`
}

/** A name that is safe as one cgroup directory. */
export function cgroupName (s: string): string {
  const n = s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200)
  return n === '' || n === '.' || n === '..' ? '_' : n
}

/**
 * The wrapper that joins the task's cgroups before the task's own program runs, so nothing of it runs outside them:
 * `sh -c SCRIPT sh DIR... -- ARGV...` writes its pid into each DIR/cgroup.procs, then execs ARGV (same pid).
 */
export const CGROUP_WRAPPER_SCRIPT = 'n=0; for d do if [ "$d" = -- ]; then break; fi; echo $$ > "$d/cgroup.procs" || exit 125; n=$((n+1)); done; shift $((n+1)); exec "$@"'

export function wrapArgv (dirs: string[], argv: string[]): string[] {
  return ['/bin/sh', '-c', CGROUP_WRAPPER_SCRIPT, 'sh', ...dirs, '--', ...argv]
}
