import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { SYSUSERS_CONF, TMPFILES_CONF, renderUnit } from '../../src/deploy/index.ts'
import { tempDir } from '../helpers/cluster.ts'
import { ROOT } from '../helpers/paths.ts'
import { REQUIRE_TOOLS as REQUIRE } from '../helpers/tools.ts'

const UNIT = join(ROOT, 'systemd/gridd.service')
const SYSUSERS = join(ROOT, 'systemd/grid.sysusers.conf')
const TMPFILES = join(ROOT, 'systemd/grid.tmpfiles.conf')

const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find(p => existsSync(p))
const SYSUSERS_BIN = ['/usr/bin/systemd-sysusers', '/bin/systemd-sysusers'].find(p => existsSync(p))
const TMPFILES_BIN = ['/usr/bin/systemd-tmpfiles', '/bin/systemd-tmpfiles'].find(p => existsSync(p))

const root = tempDir('grid-systemd-')
afterAll(() => { rmSync(root, { recursive: true, force: true }) })

/** The unit's [Service] settings as key → values (a key may repeat). */
function settings (text: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
    if (m === null) continue
    out.set(m[1] as string, [...(out.get(m[1] as string) ?? []), m[2] as string])
  }
  return out
}

/**
 * `systemd-analyze verify` checks that ExecStart's program exists and is executable, and no test machine has
 * /opt/grid/bin/gridd. So the unit is verified as a copy in a temp dir whose ExecStart names a real executable there:
 * the only line that differs, and only in the program's path.
 */
function verifyCopy (text: string, name = 'gridd.service'): { code: number, output: string } {
  const dir = join(root, `verify-${Math.random().toString(36).slice(2)}`)
  mkdirSync(dir)
  const exe = join(dir, 'gridd')
  writeFileSync(exe, '#!/bin/sh\nexit 0\n')
  chmodSync(exe, 0o755)
  const unit = join(dir, name)
  const replaced = text.replace(/^ExecStart=\/opt\/grid\/bin\/gridd /m, `ExecStart=${exe} `)
  expect(replaced).not.toBe(text)
  writeFileSync(unit, replaced)
  const r = spawnSync(ANALYZE as string, ['verify', '--man=no', unit], { encoding: 'utf8' })
  return { code: r.status ?? 1, output: `${r.stdout}${r.stderr}`.trim() }
}

describe('systemd - the unit gridctl deploy installs', () => {
  it('is the one in systemd/, rendered for the default prefix, with its sysusers and tmpfiles entries', () => {
    expect(readFileSync(UNIT, 'utf8')).toBe(renderUnit())
    expect(readFileSync(SYSUSERS, 'utf8')).toBe(SYSUSERS_CONF)
    expect(readFileSync(TMPFILES, 'utf8')).toBe(TMPFILES_CONF)
    expect(renderUnit('/srv/grid')).toMatch(/^ExecStart=\/srv\/grid\/bin\/gridd --config \/etc\/grid\/gridd\.yaml$/m)
  })

  it('runs as grid with a state and a runtime directory, restarts on failure and outwaits the graceful leave', () => {
    const s = settings(readFileSync(UNIT, 'utf8'))
    expect(s.get('User')).toEqual(['grid'])
    expect(s.get('StateDirectory')).toEqual(['grid grid-scratch'])
    expect(s.get('RuntimeDirectory')).toEqual(['grid'])
    expect(s.get('Restart')).toEqual(['on-failure'])
    expect(s.get('KillMode')).toEqual(['mixed'])
    // gridd cuts its own stop at 20 s (daemon/gridd-main.ts STOP_DEADLINE_MS)
    const stop = /^(\d+)s$/.exec(s.get('TimeoutStopSec')?.[0] ?? '')
    expect(Number(stop?.[1])).toBeGreaterThan(20)
    expect(readFileSync(join(ROOT, 'daemon/gridd-main.ts'), 'utf8')).toMatch(/STOP_DEADLINE_MS = 20_000/)
    expect(s.get('NoNewPrivileges')).toEqual(['yes'])
    expect(s.get('ProtectSystem')).toEqual(['full'])
    expect(s.get('ProtectHome')).toEqual(['read-only'])
    // GPUs live in /dev/nvidia*: a private /dev would hide them from tasks
    expect(s.has('PrivateDevices')).toBe(false)
    expect(s.has('DevicePolicy')).toBe(false)
    // a system call outside @system-service fails with EPERM in a task; without this line it would kill the task
    expect(s.get('SystemCallFilter')).toEqual(['@system-service'])
    expect(s.get('SystemCallErrorNumber')).toEqual(['EPERM'])
    // tasks run as grid-task (executor.taskUser): setpriv needs CAP_SETUID and CAP_SETGID, signals to them CAP_KILL,
    // the shared scratch directories the grid-task group; nothing else
    expect(s.get('Environment')).toEqual(['GRID_TASK_USER=grid-task'])
    expect(s.get('CapabilityBoundingSet')).toEqual(['CAP_SETUID CAP_SETGID CAP_KILL'])
    expect(s.get('AmbientCapabilities')).toEqual(['CAP_SETUID CAP_SETGID CAP_KILL'])
    expect(s.get('SupplementaryGroups')).toEqual(['grid-task'])
  })

  describe.skipIf(ANALYZE === undefined && !REQUIRE)(`systemd-analyze verify${ANALYZE === undefined ? ' (skipped: systemd-analyze is not installed)' : ''}`, () => {
    it('passes on the unit without a single warning', () => {
      expect(ANALYZE, 'GRID_TEST_REQUIRE_TOOLS=1 but systemd-analyze is missing (apt-get install systemd)').toBeDefined()
      const r = verifyCopy(readFileSync(UNIT, 'utf8'))
      expect(r.output).toBe('')
      expect(r.code).toBe(0)
    })

    it('would catch a broken unit (so the check above means something)', () => {
      const broken = readFileSync(UNIT, 'utf8').replace(/^ProtectHome=read-only$/m, 'ProtectHome=sometimes').replace(/^KillMode=mixed$/m, 'KillMode=gently').replace(/^User=/m, 'Usr=')
      const r = verifyCopy(broken)
      // systemd-analyze exits 0 on these: they are warnings, which is why the test above wants no output at all
      expect(r.output).toMatch(/protect home value, ignoring: sometimes/)
      expect(r.output).toMatch(/kill mode specification, ignoring: gently/)
      expect(r.output).toMatch(/Unknown key 'Usr'/)
    })
  })

  describe.skipIf(ANALYZE === undefined && !REQUIRE)(`systemd-analyze security${ANALYZE === undefined ? ' (skipped: systemd-analyze is not installed)' : ''}`, () => {
    /** The overall exposure score of a copy of the unit (0 is the best, 10 the worst). */
    const exposure = (text: string): number => {
      const dir = join(root, `security-${Math.random().toString(36).slice(2)}`)
      mkdirSync(dir)
      const exe = join(dir, 'gridd')
      writeFileSync(exe, '#!/bin/sh\nexit 0\n')
      chmodSync(exe, 0o755)
      const unit = join(dir, 'gridd.service')
      writeFileSync(unit, text.replace(/^ExecStart=\/opt\/grid\/bin\/gridd /m, `ExecStart=${exe} `))
      const r = spawnSync(ANALYZE as string, ['security', '--offline=true', '--no-pager', unit], { encoding: 'utf8' })
      const m = /Overall exposure level for gridd\.service: (\d+\.\d+)/.exec(`${r.stdout}${r.stderr}`)
      expect(m, `${r.stdout}${r.stderr}`).not.toBeNull()
      return Number(m?.[1])
    }

    it('scores the unit\'s exposure under 5', () => {
      expect(ANALYZE, 'GRID_TEST_REQUIRE_TOOLS=1 but systemd-analyze is missing (apt-get install systemd)').toBeDefined()
      expect(exposure(readFileSync(UNIT, 'utf8'))).toBeLessThan(5)
    })

    it('would score the unit without its sandboxing directives at 5 or more (so the check above means something)', () => {
      const bare = readFileSync(UNIT, 'utf8').replace(/^(CapabilityBoundingSet|RestrictNamespaces|RestrictAddressFamilies|SystemCallFilter|SystemCallErrorNumber|ProtectProc|RemoveIPC|PrivateMounts)=.*\n/gm, '')
      expect(exposure(bare)).toBeGreaterThanOrEqual(5)
    })
  })

  // chown needs root even in a scratch root; a missing tool fails only where tools are required (CI)
  const notRoot = process.getuid?.() !== 0
  const noTools = SYSUSERS_BIN === undefined || TMPFILES_BIN === undefined
  describe.skipIf(notRoot || (noTools && !REQUIRE))(`sysusers and tmpfiles, applied to a scratch root${notRoot ? ' (skipped: needs root)' : noTools && !REQUIRE ? ' (skipped: systemd-sysusers or systemd-tmpfiles is not installed)' : ''}`, () => {
    it('create the grid and grid-task users and /etc/grid owned by root:grid with mode 0750', () => {
      expect(noTools, 'GRID_TEST_REQUIRE_TOOLS=1 but systemd-sysusers or systemd-tmpfiles is missing (apt-get install systemd)').toBe(false)
      const r = join(root, 'sysroot')
      mkdirSync(join(r, 'etc'), { recursive: true })
      execFileSync(SYSUSERS_BIN as string, [`--root=${r}`, SYSUSERS], { stdio: 'pipe' })
      const passwd = readFileSync(join(r, 'etc/passwd'), 'utf8')
      expect(passwd).toMatch(/^grid:x:\d+:\d+:Grid cluster daemon:\/var\/lib\/grid:/m)
      expect(passwd).toMatch(/^grid-task:x:\d+:\d+:Grid tasks:\/nonexistent:/m)
      const gid = Number(/^grid:x:(\d+):/m.exec(readFileSync(join(r, 'etc/group'), 'utf8'))?.[1])
      copyFileSync(TMPFILES, join(root, 'grid.tmpfiles.conf'))
      execFileSync(TMPFILES_BIN as string, [`--root=${r}`, '--create', join(root, 'grid.tmpfiles.conf')], { stdio: 'pipe' })
      const st = statSync(join(r, 'etc/grid'))
      expect(st.isDirectory()).toBe(true)
      expect(st.mode & 0o777).toBe(0o750)
      expect(st.uid).toBe(0)
      expect(st.gid).toBe(gid)
    })
  })
})
