import type { Logger } from 'pino'
import { describe, expect, it } from 'vitest'
import { TaskCgroups } from '../../src/executor/cgroup.ts'
import {
  cgroupDir, cgroupName, formatLimit, limitWrites, oomKills, oomReason, parseMountInfo, parseProcCgroup
} from '../../src/executor/cgroup-limits.ts'
import { outcomeOf, exitCodeOf } from '../../src/executor/index.ts'

const MOUNTINFO = [
  '25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  '26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate',
  '27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd',
  '30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory',
  '31 25 0:28 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct',
  '32 25 0:29 / /mnt/with\\040space rw - cgroup cgroup rw,pids'
].join('\n')

describe('cgroups - limits as files', () => {
  it('writes a v2 memory limit without swap, and the CPU quota over a 100 ms period', () => {
    expect(limitWrites('v2', { memoryBytes: 20 * 1024 * 1024, cpus: 0.2 })).toEqual([
      { controller: 'memory', file: 'memory.max', value: '20971520' },
      { controller: 'memory', file: 'memory.swap.max', value: '0', optional: true },
      { controller: 'memory', file: 'memory.oom.group', value: '1', optional: true },
      { controller: 'cpu', file: 'cpu.max', value: '20000 100000' }
    ])
  })

  it('writes v1 limits, memory before memory+swap, period before quota', () => {
    expect(limitWrites('v1', { memoryBytes: 10485760, cpus: 2 })).toEqual([
      { controller: 'memory', file: 'memory.limit_in_bytes', value: '10485760' },
      { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: '10485760', optional: true },
      { controller: 'cpu', file: 'cpu.cfs_period_us', value: '100000' },
      { controller: 'cpu', file: 'cpu.cfs_quota_us', value: '200000' }
    ])
  })

  it('writes no limit of a kind the task did not ask for, and never a quota below 1 ms', () => {
    expect(limitWrites('v1', { memoryBytes: 0, cpus: 0 })).toEqual([])
    expect(limitWrites('v2', { memoryBytes: 0, cpus: 0.001 })).toEqual([{ controller: 'cpu', file: 'cpu.max', value: '1000 100000' }])
  })
})

describe('cgroups - killed for memory', () => {
  it('reads the OOM kill count from memory.events (v2) and memory.oom_control (v1)', () => {
    expect(oomKills('low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n')).toBe(1)
    expect(oomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 0\n')).toBe(0)
    expect(oomKills('oom_kill_disable 0\nunder_oom 0\n')).toBeUndefined()
  })

  it('says why, with the limit in whole units where it is exact', () => {
    expect(oomReason(10 * 1024 * 1024)).toBe('killed: out of memory, limit 10 MiB')
    expect(formatLimit(1.5 * 1024 ** 3)).toBe('1.5 GiB')
    expect(formatLimit(1000)).toBe('1000 B')
  })

  it('fails the task with that reason, oom true and the shell\'s 137', () => {
    const patch = outcomeOf({ command: 'python3', nodeName: 'n1' }, { code: null, signal: 'SIGKILL', oom: { limitBytes: 20 * 1024 * 1024 } })
    expect(patch).toMatchObject({ status: 'failed', oom: true, error: 'killed: out of memory, limit 20 MiB' })
    expect(exitCodeOf({ ...patch, status: 'failed' })).toBe(137)
  })
})

describe('cgroups - where they are', () => {
  it('finds the v2 mount and the v1 hierarchies with their controllers and roots', () => {
    const m = parseMountInfo(MOUNTINFO)
    expect(m).toEqual([
      { version: 'v2', mountPoint: '/sys/fs/cgroup/unified', root: '/', controllers: [] },
      { version: 'v1', mountPoint: '/sys/fs/cgroup/systemd', root: '/', controllers: [] },
      { version: 'v1', mountPoint: '/sys/fs/cgroup/memory', root: '/', controllers: ['memory'] },
      { version: 'v1', mountPoint: '/sys/fs/cgroup/cpu,cpuacct', root: '/docker/abc', controllers: ['cpu', 'cpuacct'] },
      { version: 'v1', mountPoint: '/mnt/with space', root: '/', controllers: ['pids'] }
    ])
  })

  it('reads this process\'s cgroup per controller and its v2 cgroup', () => {
    const own = parseProcCgroup('9:name=systemd:/\n4:memory:/process_api/824e\n2:cpu,cpuacct:/docker/abc/x\n0::/system.slice/gridd.service\n')
    expect(own.v2).toBe('/system.slice/gridd.service')
    expect(own.v1.get('memory')).toBe('/process_api/824e')
    expect(own.v1.get('cpu')).toBe('/docker/abc/x')
    expect(own.v1.get('cpuacct')).toBe('/docker/abc/x')
  })

  it('maps a cgroup path to its directory, relative to the mount\'s root', () => {
    const [, , mem, cpu] = parseMountInfo(MOUNTINFO)
    expect(cgroupDir(mem!, '/process_api/824e')).toBe('/sys/fs/cgroup/memory/process_api/824e')
    expect(cgroupDir(mem!, '/')).toBe('/sys/fs/cgroup/memory')
    expect(cgroupDir(cpu!, '/docker/abc/x')).toBe('/sys/fs/cgroup/cpu,cpuacct/x')
    expect(cgroupDir(cpu!, '/elsewhere')).toBeUndefined()
  })

  it('names a task\'s cgroup safely', () => {
    expect(cgroupName('a/b c')).toBe('a_b_c')
    expect(cgroupName('..')).toBe('_')
  })
})

describe('cgroups - where none can be written', () => {
  const logged: Array<{ obj: unknown, msg: string }> = []
  const logger = { info: () => {}, warn: (obj: unknown, msg: string) => { logged.push({ obj, msg }) } } as unknown as Logger

  it('says once, with the reason, that limits are not enforced', () => {
    logged.length = 0
    const cg = new TaskCgroups(logger, { nodeName: 'n1', root: '' }, { mountInfo: () => MOUNTINFO.split('\n')[0] as string, procCgroup: () => '0::/\n', pid: 1 })
    expect(cg.setup()).toEqual({ enforced: false, cgroup: null, reason: 'no cgroup file system is mounted (neither v2 nor a v1 memory hierarchy)' })
    expect(logged).toEqual([{ obj: { reason: expect.stringMatching(/no cgroup file system/) }, msg: expect.stringMatching(/NOT enforced/) }])
    expect(cg.create('t', 1, { memoryBytes: 1 << 20, cpus: 1 })).toBeUndefined()
  })

  it('names a hierarchy whose directory cannot be made', () => {
    const cg = new TaskCgroups(logger, { nodeName: 'n1', root: '' }, {
      mountInfo: () => '30 25 0:27 / /nonexistent/grid-cg/memory rw - cgroup cgroup rw,memory\n31 25 0:28 / /nonexistent/grid-cg/cpu rw - cgroup cgroup rw,cpu',
      procCgroup: () => '4:memory:/\n1:cpu:/\n',
      pid: 1
    })
    expect(cg.setup()).toMatchObject({ enforced: false, reason: expect.stringMatching(/cannot create cgroup \/nonexistent\/grid-cg\/memory\/grid-n1/) })
  })

  it('is off when executor.cgroupRoot is off', () => {
    expect(new TaskCgroups(logger, { nodeName: 'n1', root: 'off' }).setup()).toEqual({ enforced: false, cgroup: null, reason: 'executor.cgroupRoot is off' })
  })
})
